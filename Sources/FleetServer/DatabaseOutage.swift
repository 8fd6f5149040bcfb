import FleetStore
import Logging
import ServiceLifecycle
import Synchronization

/// Requests refused because the database cannot serve them (`DatabaseUnavailable`: PostgreSQL
/// down, restarting, read-only or not answering; SQLite's file locked, a full disk), logged as
/// one outage: a warning at the first refusal (the database's words, the request's path), a line
/// at most every `summaryInterval` while it lasts (how many were refused since, the latest
/// words), and a notice at its end, with how long it lasted and how many requests it refused.
/// It is over when the database answers a query (`DatabaseOutageService` asks every
/// `probeInterval`) and either a write request succeeded since the last refusal or none was
/// refused for `quietInterval`: a full disk or a read-only database answers reads while every
/// write fails. The write must be to a route whose writes were refused (a push, when pushes
/// were): a table locked by another session (an operator's `LOCK TABLE`, a long `ALTER`) stalls
/// only the writes that need it, and a registration going through meanwhile says nothing about
/// them. The quiet is longer than one agent's refusals are apart: its push waits up to
/// the server's limit (27 s of the agent's 30) before the 503, then the agent backs off up to
/// a minute. With 30 s, a small fleet's pushes behind a locked table were an outage begun and
/// ended per push. A line per request would be thousands a second for a fleet's pushes, and
/// would bury the one line that says what happened.
final class DatabaseOutage: Sendable {
    private struct State {
        /// When the outage began; nil while there is none.
        var began: ContinuousClock.Instant?
        var refused = 0
        var refusedSinceLine = 0
        var latest: DatabaseUnavailable?
        var lastRefused: ContinuousClock.Instant?
        /// A write request succeeded after the last refusal, to a route in `refusedWrites` (to
        /// any route while that is empty).
        var wroteSince = false
        /// The routes (`APIRoutes.route`) of the write requests refused during the outage.
        var refusedWrites: Set<String> = []
    }
    private let state = Mutex(State())
    /// Whether an outage is under way, read without the lock on every write request.
    private let underWay = Atomic<Bool>(false)
    private let logger: Logger
    /// Wakes the watcher at an outage's first refusal.
    let beginnings: AsyncStream<Void>
    private let begin: AsyncStream<Void>.Continuation
    let probeInterval: Duration
    let summaryInterval: Duration
    let quietInterval: Duration

    init(
        logger: Logger, probeInterval: Duration = .seconds(1), summaryInterval: Duration = .seconds(10),
        quietInterval: Duration = .seconds(90)
    ) {
        self.logger = logger
        self.probeInterval = probeInterval
        self.summaryInterval = summaryInterval
        self.quietInterval = quietInterval
        (beginnings, begin) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// Whether an outage is under way (a request was refused and the outage has not ended).
    var active: Bool { underWay.load(ordering: .relaxed) }

    /// What the latest refusal was, if one came within `within` (`/readyz`).
    func refused(within: Duration) -> DatabaseUnavailable? {
        state.withLock { s in
            guard let last = s.lastRefused, ContinuousClock.now - last < within else { return nil }
            return s.latest
        }
    }

    /// Counts a request refused for `why` (`write`: an API request that writes, a POST, PUT,
    /// PATCH or DELETE under `/api/v1/`); the first of an outage logs it and wakes the watcher.
    func refused(_ why: DatabaseUnavailable, path: String, write: Bool) {
        let route = write ? APIRoutes.route(path) : nil
        let first = state.withLock { s -> Bool in
            let now = ContinuousClock.now
            s.refused += 1
            s.refusedSinceLine += 1
            s.latest = why
            s.lastRefused = now
            s.wroteSince = false
            if let route { s.refusedWrites.insert(route) }
            guard s.began == nil else { return false }
            s.began = now
            s.refused = 1
            s.refusedSinceLine = 0
            underWay.store(true, ordering: .relaxed)
            return true
        }
        guard first else { return }
        logger.warning(
            "the database is unavailable: requests that need it are answered 503 until it answers again",
            metadata: ["reason": "\(why.detail)", "path": "\(path)"])
        begin.yield()
    }

    /// A write request to `path` succeeded (called only while an outage is under way). It
    /// counts if writes to its route were refused, or no write was.
    func writeSucceeded(path: String) {
        let route = APIRoutes.route(path)
        state.withLock { s in
            if s.began != nil, s.refusedWrites.isEmpty || s.refusedWrites.contains(route) { s.wroteSince = true }
        }
    }

    /// Until `probe` says the database answers and a write succeeded since the last refusal (or
    /// none came for `quietInterval`): a summary line every `summaryInterval`, then the end.
    func watch(probe: () async -> Bool) async {
        var sinceLine = Duration.zero
        while !Task.isCancelled {
            try? await Task.sleep(for: probeInterval)
            if Task.isCancelled { return }
            let answers = await probe()
            if answers, let (began, ended, byWrite, refused) = endIfSettled() {
                let seconds = (ended - began) / .seconds(1)
                // Ended by quiet, the outage is counted to its last refusal, not to the end of
                // the quiet (up to `quietInterval` later).
                logger.notice(
                    "the database answers again",
                    metadata: [
                        "outage_s": "\((seconds * 10).rounded() / 10)", "refused_requests": "\(refused)",
                        "ended_by": "\(byWrite ? "a write" : "no refusal for \(quietInterval)")",
                    ])
                return
            }
            sinceLine += probeInterval
            if sinceLine >= summaryInterval {
                sinceLine = .zero
                let (refused, latest) = state.withLock { s -> (Int, DatabaseUnavailable?) in
                    defer { s.refusedSinceLine = 0 }
                    return (s.refusedSinceLine, s.latest)
                }
                // While it answers and nothing was refused, a write is all that is awaited:
                // nothing new to say. Refusals while it answers reads: a full disk, a standby.
                if !answers || refused > 0 {
                    logger.warning(
                        "the database is still unavailable",
                        metadata: ["refused_requests": "\(refused)", "reason": "\(latest?.detail ?? "")"])
                }
            }
        }
    }

    /// Whether requests say the outage may be over: a write went through since the last
    /// refusal, or none came for `quietInterval`.
    private func settled(_ s: State) -> Bool {
        s.wroteSince || s.lastRefused.map { ContinuousClock.now - $0 >= quietInterval } ?? true
    }

    /// Ends the outage if it is still settled after the probe (a refusal may have come while it
    /// ran): when it began, when it ended (now, or its last refusal when quiet ended it), whether
    /// a write ended it, and how many requests it refused.
    private func endIfSettled() -> (ContinuousClock.Instant, ContinuousClock.Instant, Bool, Int)? {
        state.withLock { s -> (ContinuousClock.Instant, ContinuousClock.Instant, Bool, Int)? in
            guard settled(s), let began = s.began else { return nil }
            defer {
                s = State()
                underWay.store(false, ordering: .relaxed)
            }
            return (began, s.wroteSince ? .now : s.lastRefused ?? .now, s.wroteSince, s.refused)
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
