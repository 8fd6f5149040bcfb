import FleetStore
import Logging
import ServiceLifecycle
import Synchronization

/// Requests refused because the database cannot serve them (`DatabaseUnavailable`: PostgreSQL
/// down or restarting, SQLite's file locked by another process, a full disk), logged as one
/// outage: a warning at the first refusal (the reason, the request's path), a line at most every
/// `summaryInterval` while it lasts (how many were refused since, the latest reason), and a
/// notice when the database answers again, with how long the outage lasted and how many
/// requests it refused. It is over when the database answers a query (`DatabaseOutageService`
/// asks every `probeInterval`) and no request was refused for `quietInterval`: a full disk or a
/// read-only file still answers reads while every write fails. A line per request would be
/// thousands a second for a fleet's pushes, and would bury the one line that says what happened.
final class DatabaseOutage: Sendable {
    private struct State {
        /// When the outage began; nil while there is none.
        var began: ContinuousClock.Instant?
        var refused = 0
        var refusedSinceLine = 0
        var reason = ""
        var lastRefused: ContinuousClock.Instant?
    }
    private let state = Mutex(State())
    private let logger: Logger
    /// Wakes the watcher at an outage's first refusal.
    let beginnings: AsyncStream<Void>
    private let begin: AsyncStream<Void>.Continuation
    let probeInterval: Duration
    let summaryInterval: Duration
    let quietInterval: Duration

    init(
        logger: Logger, probeInterval: Duration = .seconds(1), summaryInterval: Duration = .seconds(10),
        quietInterval: Duration = .seconds(3)
    ) {
        self.logger = logger
        self.probeInterval = probeInterval
        self.summaryInterval = summaryInterval
        self.quietInterval = quietInterval
        (beginnings, begin) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// Whether an outage is under way (a request was refused and the database has not answered
    /// since).
    var active: Bool { state.withLock { $0.began != nil } }

    /// The latest refusal's reason while an outage is under way, nil otherwise.
    var reason: String? { state.withLock { $0.began == nil ? nil : $0.reason } }

    /// Counts a request refused for `reason`; the first of an outage logs it and wakes the watcher.
    func refused(_ reason: String, path: String) {
        let first = state.withLock { s -> Bool in
            s.refused += 1
            s.refusedSinceLine += 1
            s.reason = reason
            s.lastRefused = .now
            guard s.began == nil else { return false }
            s.began = .now
            s.refused = 1
            s.refusedSinceLine = 0
            return true
        }
        guard first else { return }
        logger.warning(
            "the database is unavailable: requests that need it are answered 503 until it answers again",
            metadata: ["reason": "\(reason)", "path": "\(path)"])
        begin.yield()
    }

    /// Until `probe` says the database answers and no request was refused for `quietInterval`:
    /// a summary line every `summaryInterval`, then the outage's end.
    func watch(probe: () async -> Bool) async {
        var sinceLine = Duration.zero
        while !Task.isCancelled {
            try? await Task.sleep(for: probeInterval)
            if Task.isCancelled { return }
            let quiet = state.withLock { s in s.lastRefused.map { ContinuousClock.now - $0 >= quietInterval } ?? true }
            if quiet, await probe() {
                let (began, refused) = state.withLock { s -> (ContinuousClock.Instant?, Int) in
                    defer { s = State() }
                    return (s.began, s.refused)
                }
                let seconds = began.map { (ContinuousClock.now - $0) / .seconds(1) } ?? 0
                logger.notice(
                    "the database answers again",
                    metadata: ["outage_s": "\((seconds * 10).rounded() / 10)", "refused_requests": "\(refused)"])
                return
            }
            sinceLine += probeInterval
            if sinceLine >= summaryInterval {
                sinceLine = .zero
                let (refused, reason) = state.withLock { s -> (Int, String) in
                    defer { s.refusedSinceLine = 0 }
                    return (s.refusedSinceLine, s.reason)
                }
                logger.warning(
                    "the database is still unavailable",
                    metadata: ["refused_requests": "\(refused)", "reason": "\(reason)"])
            }
        }
    }
}

/// Watches each database outage `DatabaseOutage` saw begin until the database answers again.
struct DatabaseOutageService: Service {
    let outage: DatabaseOutage
    let database: FleetDatabase

    func run() async throws {
        await cancelWhenGracefulShutdown {
            for await _ in outage.beginnings {
                await outage.watch { await database.ping() }
            }
        }
    }
}
