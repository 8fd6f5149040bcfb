import Foundation
import FleetStore
import Hummingbird
import Synchronization

/// A fixed-window counter per key (a client address): at most `limit` events per `window`
/// seconds. Memory is bounded: at most `maxKeys` keys are tracked; when the table is full and
/// no window has ended, new keys count on one overflow counter (a flood from many addresses is
/// counted as one, rather than growing the table). Only a key that was counted is ever refused:
/// an address with no events (a healthy agent) is never limited by someone else's flood.
/// `limit == 0` turns the limiter off.
///
/// Used for registrations, failed token checks and dashboard logins; each has its own instance.
public final class RateLimiter: Sendable {
    public enum Decision: Sendable, Equatable {
        case allowed
        /// Whole seconds until the window ends (at least 1).
        case limited(retryAfter: Int)
    }

    public let limit: Int
    public let window: Double
    public let maxKeys: Int
    private let clock: @Sendable () -> Double

    private struct Entry {
        var start: Double
        var count: Int
    }
    private struct State {
        var entries: [String: Entry] = [:]
        /// When ended windows were last swept from a full table (at most once a window).
        var lastSweep: Double = -.infinity
    }
    private let state = Mutex(State())
    static let overflowKey = "\u{0}overflow"

    public init(
        limit: Int, window: Double = 60, maxKeys: Int = 10_000,
        clock: @escaping @Sendable () -> Double = { Date().timeIntervalSince1970 }
    ) {
        self.limit = max(0, limit)
        self.window = max(1, window)
        self.maxKeys = max(1, maxKeys)
        self.clock = clock
    }

    /// Whether `key` is over its limit now, without counting an event.
    public func check(_ key: String) -> Decision {
        guard limit > 0 else { return .allowed }
        let now = clock()
        return state.withLock { s in
            guard let e = s.entries[key], now < e.start + window else { return .allowed }
            return e.count >= limit ? .limited(retryAfter: retryAfter(e, now)) : .allowed
        }
    }

    /// Counts one event for `key`; `.limited` when that event is over the limit.
    @discardableResult
    public func hit(_ key: String) -> Decision {
        guard limit > 0 else { return .allowed }
        let now = clock()
        return state.withLock { s in
            var k = key
            if s.entries[k] == nil, s.entries.count >= maxKeys {
                if now >= s.lastSweep + window {
                    s.entries = s.entries.filter { now < $0.value.start + window }
                    s.lastSweep = now
                }
                if s.entries.count >= maxKeys { k = Self.overflowKey }
            }
            var e = s.entries[k] ?? Entry(start: now, count: 0)
            if now >= e.start + window { e = Entry(start: now, count: 0) }
            e.count += 1
            s.entries[k] = e
            return e.count > limit ? .limited(retryAfter: retryAfter(e, now)) : .allowed
        }
    }

    /// Keys tracked now (tests).
    public var trackedKeys: Int { state.withLock { $0.entries.count } }

    private func retryAfter(_ e: Entry, _ now: Double) -> Int {
        max(1, Int((e.start + window - now).rounded(.up)))
    }
}

/// Answers 429 to a source address that failed too many token checks (401) lately, and counts
/// every 401 the routes behind it answer. Sits inside `ErrorMiddleware`, so it sees the
/// `APIError`s the routes throw.
struct FailedAuthLimitMiddleware<Context: RequestContext>: RouterMiddleware {
    let limiter: RateLimiter
    /// The client's address (`ServerState.clientAddress`: through a trusted proxy, the client's).
    let address: @Sendable (Request, Context) -> String

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response)
        async throws -> Response
    {
        let source = address(request, context)
        if case .limited(let after) = limiter.check(source) {
            throw APIError.rateLimited(
                "too many failed token checks from \(source) in the last \(Int(limiter.window)) s; try again in \(after) s",
                retryAfter: after)
        }
        do {
            let response = try await next(request, context)
            if response.status == .unauthorized { limiter.hit(source) }
            return response
        } catch let e as APIError where e.status == .unauthorized {
            limiter.hit(source)
            throw e
        } catch let e as HTTPError where e.status == .unauthorized {
            limiter.hit(source)
            throw e
        } catch let e as StoreError where APIError.from(e).status == .unauthorized {
            // A refused enrollment token reaches here as the store's error (ErrorMiddleware
            // makes it the 401): guessing enrollment tokens counts like any other token.
            limiter.hit(source)
            throw e
        }
    }
}
