import Foundation
import Synchronization

/// Failed dashboard sign-ins counted per client address: after `maxFailures` failures within
/// `window`, further attempts from that address are refused (429 with Retry-After) until the
/// window since the first counted failure has passed. A successful sign-in clears the address.
///
/// A small, login-only limiter (in memory: a restart forgets it). A generic rate limiter for
/// registration and token checks is being built separately (`RateLimiter.swift`); this one can
/// be folded into it.
final class LoginThrottle: Sendable {
    struct Entry: Sendable {
        var failures: Int
        var windowStart: Date
    }

    let maxFailures: Int
    let window: TimeInterval
    /// Addresses tracked at most (the oldest windows are dropped first).
    let maxAddresses: Int
    private let entries = Mutex<[String: Entry]>([:])

    init(maxFailures: Int = 5, window: TimeInterval = 15 * 60, maxAddresses: Int = 10_000) {
        self.maxFailures = maxFailures
        self.window = window
        self.maxAddresses = maxAddresses
    }

    /// Seconds until `address` may try again, or nil when it may try now.
    func retryAfter(_ address: String, now: Date = Date()) -> Int? {
        let window = self.window, maxFailures = self.maxFailures
        return entries.withLock { e -> Int? in
            guard let entry = e[address] else { return nil }
            let ends = entry.windowStart.addingTimeInterval(window)
            guard ends > now else {
                e.removeValue(forKey: address)
                return nil
            }
            guard entry.failures >= maxFailures else { return nil }
            return max(1, Int(ends.timeIntervalSince(now).rounded(.up)))
        }
    }

    /// Counts a failed attempt.
    func failed(_ address: String, now: Date = Date()) {
        let window = self.window, maxAddresses = self.maxAddresses
        entries.withLock { e in
            if var entry = e[address], entry.windowStart.addingTimeInterval(window) > now {
                entry.failures += 1
                e[address] = entry
                return
            }
            if e.count >= maxAddresses {
                e = e.filter { $0.value.windowStart.addingTimeInterval(window) > now }
                if e.count >= maxAddresses, let oldest = e.min(by: { $0.value.windowStart < $1.value.windowStart }) {
                    e.removeValue(forKey: oldest.key)
                }
            }
            e[address] = Entry(failures: 1, windowStart: now)
        }
    }

    /// A successful sign-in: the address starts afresh.
    func succeeded(_ address: String) {
        _ = entries.withLock { $0.removeValue(forKey: address) }
    }
}
