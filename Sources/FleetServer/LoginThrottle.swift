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

    /// An attempt about to check a token: nil when it may go on, and then it is already counted
    /// as failed (a success clears the address, `succeeded`; an attempt that checked no token
    /// gives its count back, `checkedNoToken`); else the seconds until the address may try
    /// again. Checked and counted under one lock: sign-ins sent at once all passed a check made
    /// before any of their failures was counted, so any number of guesses went through.
    func attempt(_ address: String, now: Date = Date()) -> Int? {
        let window = self.window, maxFailures = self.maxFailures
        return entries.withLock { e -> Int? in
            if let entry = e[address], entry.windowStart.addingTimeInterval(window) > now, entry.failures >= maxFailures {
                return max(1, Int(entry.windowStart.addingTimeInterval(window).timeIntervalSince(now).rounded(.up)))
            }
            count(&e, address, now: now)
            return nil
        }
    }

    /// An attempt counted by `attempt` that checked no token (its form had expired): not a failure.
    func checkedNoToken(_ address: String) {
        entries.withLock { e in
            guard let entry = e[address] else { return }
            if entry.failures <= 1 { e.removeValue(forKey: address) } else { e[address]?.failures -= 1 }
        }
    }

    private func count(_ e: inout [String: Entry], _ address: String, now: Date) {
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

    /// A successful sign-in: the address starts afresh.
    func succeeded(_ address: String) {
        _ = entries.withLock { $0.removeValue(forKey: address) }
    }
}
