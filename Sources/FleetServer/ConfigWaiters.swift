import FleetAPI
import ServiceLifecycle
import Synchronization

/// Long-poll waiters, in memory: one continuation per waiting request, keyed by node, woken by
/// every config write. A waiting agent costs no thread, no task of its own and no database
/// query; the new config travels with the wake-up, so 10,000 woken agents do not stampede the
/// database. Timeouts are kept in 100 ms buckets that one reaper task empties while anything
/// waits (a wait ends within about a bucket after its timeout, never before), instead of a task
/// group with a sleeping child and a waiting child per request: two task creations, a timer and
/// a cancellation per poll, and about 5 KB a held poll (docs/benchmarks.md).
///
/// Every node has an epoch that each notification increments. A handler reads the epoch before
/// it reads the config from the database and waits "since" that epoch, so a change committed
/// between the read and the wait is never missed.
///
/// While this process hears of every committed change (its change feed: on SQLite every write
/// is its own; on PostgreSQL the notices LISTEN delivers), the highest generation it has heard
/// of for a node is the store's, or one whose successor is on its way and will move the epoch.
/// A poll whose agent has that generation then waits without reading the store (`pollStart`):
/// after a fleet-wide change every agent asks again at once with the generation it was just
/// handed, 10,000 reads in a second that would tell nothing new. On PostgreSQL only a notice
/// vouches for a generation (its commit came after LISTEN was in place): a replica's own write,
/// or a read, may have been overtaken by a change that LISTEN, lost meanwhile, never delivered,
/// so they count once their notice comes back (`hear`).
final class ConfigWaiters: Sendable {
    enum Outcome: Sendable {
        /// The config changed (nil: the node was deleted); `epoch` is the epoch after the change.
        case changed(NodeConfig?, epoch: UInt64)
        case timedOut
    }

    /// A timeout bucket's width: a wait ends about this much after its timeout at most (and
    /// the reaper's own lateness), never before.
    static let tick: Duration = .milliseconds(tickMs)

    private struct Due {
        let nodeId: String
        let id: UInt64
    }

    private struct State {
        var epochs: [String: UInt64] = [:]
        /// Added to every node's epoch; moves when the change feed starts (again), so that every
        /// poll between its read and its wait then reads the store again, whatever node it is
        /// for (`changeFeedStarted`).
        var epochBase: UInt64 = 0
        var latest: [String: NodeConfig] = [:]
        /// The highest generation notified per node, with or without its config: a config
        /// older than it is never handed to a waiter (it reads the store instead).
        var highest: [String: Int64] = [:]
        /// When each node's highest generation was last vouched for by the change feed (ticks):
        /// it is trusted to be the store's for `trustTicks` after. That bounds what a lost
        /// LISTEN connection that nothing reports (a half-open TCP connection) could hide, or a
        /// write that notifies nothing (a second server on one SQLite file, which nothing
        /// supports).
        var heardAt: [String: Int64] = [:]
        var waiters: [String: [UInt64: CheckedContinuation<Outcome, Never>]] = [:]
        /// Waits by the tick that ends them (entries of waits already ended are skipped).
        var due: [Int64: [Due]] = [:]
        var reaping = false
        var cancelledBeforeRegistration: Set<UInt64> = []
        var nextID: UInt64 = 0
        var shuttingDown = false
        /// Every committed change is heard of (`changeFeedStarted` / `changeFeedStopped`).
        var feedLive: Bool
        /// This process's own writes are the whole feed (a lone server): its `notify` calls
        /// vouch for their generations.
        let ownWritesAreTheFeed: Bool

        /// A node's epoch (`epochBase` included).
        func epoch(_ nodeId: String) -> UInt64 { (epochs[nodeId] ?? 0) &+ epochBase }

        /// The newest config notified, unless a newer generation was notified without its
        /// config (nil: read the store).
        func current(_ nodeId: String) -> NodeConfig? {
            guard let config = latest[nodeId] else { return nil }
            return config.generation >= (highest[nodeId] ?? Int64.min) ? config : nil
        }

        /// Takes a waiter out (nil when it is not waiting any more).
        mutating func removeWaiter(_ nodeId: String, _ id: UInt64) -> CheckedContinuation<Outcome, Never>? {
            guard let c = waiters[nodeId]?.removeValue(forKey: id) else { return nil }
            if waiters[nodeId]?.isEmpty == true { waiters[nodeId] = nil }
            return c
        }
    }

    private let state: Mutex<State>
    private let origin = ContinuousClock.now

    /// `changeFeedLive`: whether every committed config change is notified here from the start
    /// (one process on its own store); false until `changeFeedStarted` otherwise.
    init(changeFeedLive: Bool = true) {
        state = Mutex(State(feedLive: changeFeedLive, ownWritesAreTheFeed: changeFeedLive))
    }

    /// A long-poll's start: the node's epoch (wait since it), and whether `generation`, the one
    /// its agent has, is the newest this process has heard of with its change feed in place all
    /// along. Then the store holds that generation, or a newer one whose notification is on its
    /// way and will move the epoch, so the poll need not read it.
    func pollStart(_ nodeId: String, agentHas generation: Int64?) -> (epoch: UInt64, current: Bool) {
        let now = tick(of: .now)
        return state.withLock { s in
            let current =
                s.feedLive && generation != nil && s.highest[nodeId] == generation
                && now - (s.heardAt[nodeId] ?? Int64.min / 2) < Self.trustTicks
            return (s.epoch(nodeId), current)
        }
    }

    /// The change feed is in place again (or for the first time): changes committed while it was
    /// not were never heard. Every generation heard of is forgotten, and every node's epoch
    /// moves: a poll that started trusting a generation, or that read the store before such a
    /// change committed and comes to wait only now, after the resync has listed the nodes
    /// waiting, reads the store when it comes to wait. (Moving only the epochs of the nodes
    /// heard of left the second kind waiting with the old config until its timeout.) Call
    /// before re-reading the configs of the nodes waiting here.
    func changeFeedStarted() {
        state.withLock { s in
            s.epochBase &+= 1
            s.highest = [:]
            s.heardAt = [:]
            s.latest = [:]
            s.feedLive = true
        }
    }

    /// The change feed was lost: nothing heard of is trusted until it is in place again.
    func changeFeedStopped() {
        state.withLock { $0.feedLive = false }
    }

    /// Whether every committed change is heard of now (metrics: `ksmfleet_config_feed_live`).
    var changeFeedLive: Bool {
        state.withLock { $0.feedLive }
    }

    /// Whether this process's own config writes come back to it through the change feed, now: a
    /// replica of a shared store with LISTEN in place (never a lone server, whose writes are the
    /// whole feed). A fleet apply of more than `ServerConfig.applyDirectWakeLimit` nodes then
    /// leaves its wake-ups to its notices, as every other replica does; waking them directly as
    /// well did the work twice (`ServerState.fleetApplied`). Should
    /// the feed be lost before the notices arrive, its resync reads every waiting node's config;
    /// should they not come back at all (a stalled connection), the apply wakes those nodes
    /// itself after `ServerConfig.applyNoticeGraceSeconds` (`wakeUnheard`).
    var feedWakesOwnWrites: Bool {
        state.withLock { $0.feedLive && !$0.ownWritesAreTheFeed }
    }

    /// How many times the change feed has started (`changeFeedStarted`), for a fleet apply's
    /// later check (`wakeUnheard`).
    var feedStarts: UInt64 {
        state.withLock { $0.epochBase }
    }

    /// A fleet apply's check of its own notices (`ServerState.wakeUnheard`): if a request
    /// of the node waits here, this process has heard of neither `generation` nor a newer one,
    /// and the feed has not started again since `feedStarts` (its resync reads every waiting
    /// node's config), the node's waiters are woken without a config, to read the store: by
    /// now another replica may have changed or deleted the node, unheard here as well, so the
    /// apply's config is not handed out, nor recorded as heard. True when it woke any.
    func wakeUnheard(_ nodeId: String, generation: Int64, feedStarts: UInt64) -> Bool {
        wake(nodeId, if: { s in
            s.epochBase == feedStarts && (s.highest[nodeId] ?? Int64.min) < generation && s.waiters[nodeId] != nil
        }) { _ in nil }
    }

    /// Number of requests waiting now (metrics, tests).
    var waitingCount: Int {
        state.withLock { $0.waiters.values.reduce(0) { $0 + $1.count } }
    }

    /// Nodes with a request waiting now.
    var waitingNodeIds: [String] {
        state.withLock { Array($0.waiters.keys) }
    }

    /// What a change of a node to `generation`, committed elsewhere and heard of now, means here.
    enum Interest: Equatable {
        /// This process has already notified that generation or a newer one: its own change
        /// coming back as a notification. Every wait that began before that notify was woken
        /// by it, and every read after it began after the commit.
        case known
        /// No request of the node waits here: only the epoch must move (`notify(_:generation:)`),
        /// so that a request between its epoch and its wait reads the config again.
        case idle
        /// A request of the node waits: it gets the new config.
        case waiting
    }

    /// A notice of a node's change to `generation` is heard: what it means here. A notice of the
    /// newest generation heard of (this process's own change coming back) vouches for it: see
    /// `heardAt`.
    func hear(_ nodeId: String, generation: Int64) -> Interest {
        let now = tick(of: .now)
        return state.withLock { s in
            if let known = s.highest[nodeId], known >= generation {
                if known == generation { s.heardAt[nodeId] = now }
                return .known
            }
            return s.waiters[nodeId] == nil ? .idle : .waiting
        }
    }

    /// Wakes every waiter of a node with its new config, or with nil when the node was deleted
    /// or its config must be read from the store (a waiter woken with nil reads it).
    /// Call after the change is committed.
    /// `fromFeed`: a notice of the change feed (LISTEN), which vouches for the generation; this
    /// process's own write, or a read, does only on a lone server.
    func notify(_ nodeId: String, config: NodeConfig?, fromFeed: Bool = false) {
        let now = tick(of: .now)
        wake(nodeId) { s in
            guard let config else {
                s.latest[nodeId] = nil
                s.highest[nodeId] = nil
                s.heardAt[nodeId] = nil
                return nil
            }
            // Two writers may notify out of order; keep the newest generation.
            if (s.latest[nodeId]?.generation ?? Int64.min) <= config.generation { s.latest[nodeId] = config }
            s.highest[nodeId] = max(s.highest[nodeId] ?? Int64.min, config.generation)
            if fromFeed || s.ownWritesAreTheFeed { s.heardAt[nodeId] = now }
            return s.current(nodeId)
        }
    }

    /// A change of a node to `generation` whose config is not at hand (a notification for a node
    /// that no request waits for here): the epoch moves and any waiter reads the store; a config
    /// older than `generation` notified later (a writer's own notify that comes late) is not
    /// handed out. A notice: it vouches for the generation (`heardAt`).
    func notify(_ nodeId: String, generation: Int64) {
        let now = tick(of: .now)
        wake(nodeId) { s in
            s.highest[nodeId] = max(s.highest[nodeId] ?? Int64.min, generation)
            s.heardAt[nodeId] = now
            return nil
        }
    }

    /// Moves a node's epoch, records the change (`update`, which returns the config the
    /// waiters get: nil, read the store) and wakes every waiter of the node; all of it only if
    /// `condition` holds, decided under the same lock. Whether any waiter was woken.
    @discardableResult
    private func wake(
        _ nodeId: String, if condition: (State) -> Bool = { _ in true }, _ update: (inout State) -> NodeConfig?
    ) -> Bool {
        let (woken, outcome): ([CheckedContinuation<Outcome, Never>], Outcome) = state.withLock { s in
            guard condition(s) else { return ([], .timedOut) }
            s.epochs[nodeId] = (s.epochs[nodeId] ?? 0) &+ 1
            let e = s.epoch(nodeId)
            let config = update(&s)
            return (s.waiters.removeValue(forKey: nodeId).map { Array($0.values) } ?? [], .changed(config, epoch: e))
        }
        for c in woken { c.resume(returning: outcome) }
        return !woken.isEmpty
    }

    /// Ends every wait at once (graceful shutdown: long-polls answer 304 instead of holding
    /// the server for up to a minute).
    func shutdown() {
        let all: [CheckedContinuation<Outcome, Never>] = state.withLock { s in
            s.shuttingDown = true
            let list = s.waiters.values.flatMap { $0.values }
            s.waiters = [:]
            s.due = [:]
            return list
        }
        for c in all { c.resume(returning: .timedOut) }
    }

    /// Waits until the node's epoch moves past `since`, or `timeout` passes.
    func wait(_ nodeId: String, since: UInt64, timeout: Duration) async -> Outcome {
        enum Start { case now(Outcome), wait(UInt64) }
        let start: Start = state.withLock { s in
            if s.shuttingDown { return .now(.timedOut) }
            let e = s.epoch(nodeId)
            if e != since { return .now(.changed(s.current(nodeId), epoch: e)) }
            s.nextID &+= 1
            return .wait(s.nextID)
        }
        let id: UInt64
        switch start {
        case .now(let outcome): return outcome
        case .wait(let n): id = n
        }
        let dueTick = tick(of: ContinuousClock.now + timeout) + 1
        let outcome = await withGracefulShutdownHandler {
            await withTaskCancellationHandler {
                await withCheckedContinuation { (c: CheckedContinuation<Outcome, Never>) in
                    let (immediate, startReaper): (Outcome?, Bool) = state.withLock { s in
                        if s.shuttingDown || s.cancelledBeforeRegistration.remove(id) != nil { return (.timedOut, false) }
                        let e = s.epoch(nodeId)
                        if e != since { return (.changed(s.current(nodeId), epoch: e), false) }
                        s.waiters[nodeId, default: [:]][id] = c
                        // The reaper ends a tick's waits once the tick has started: the first
                        // tick after the deadline's, never early.
                        s.due[dueTick, default: []].append(Due(nodeId: nodeId, id: id))
                        if s.reaping { return (nil, false) }
                        s.reaping = true
                        return (nil, true)
                    }
                    if let immediate { c.resume(returning: immediate) }
                    // Detached: the reaper outlives this request and must not carry its task-locals.
                    if startReaper { Task.detached { await self.reap() } }
                }
            } onCancel: {
                let c: CheckedContinuation<Outcome, Never>? = state.withLock { s in
                    if let c = s.removeWaiter(nodeId, id) { return c }
                    s.cancelledBeforeRegistration.insert(id)
                    return nil
                }
                c?.resume(returning: .timedOut)
            }
        } onGracefulShutdown: {
            self.shutdown()
        }
        // The cancellation handler cannot run any more: a cancellation that came after the
        // wait had ended left its mark.
        _ = state.withLock { $0.cancelledBeforeRegistration.remove(id) }
        return outcome
    }

    /// The tick `instant` falls in (ticks counted from `origin`).
    private func tick(of instant: ContinuousClock.Instant) -> Int64 {
        let d = instant - origin
        return (d.components.seconds * 1000 + d.components.attoseconds / 1_000_000_000_000_000) / Self.tickMs
    }

    private static let tickMs: Int64 = 100

    /// How long a generation heard of is trusted to be the store's (`State.heardAt`): 30 s, long
    /// enough for the polls that follow a fleet-wide change, short beside a long-poll's wait.
    static let trustTicks: Int64 = 30_000 / tickMs

    /// The shortest wait of a poll that may trust a generation heard of: a change committed
    /// but not yet notified here (its notice behind thousands of others) must arrive within it.
    static let trustMinimumWait = 10

    /// Ends the waits whose timeout has come, at each tick's start, until nothing waits.
    private func reap() async {
        while true {
            let next = tick(of: .now) + 1
            try? await Task.sleep(until: origin + Self.tick * next, tolerance: .milliseconds(5))
            let now = tick(of: .now)
            let (expired, more): ([CheckedContinuation<Outcome, Never>], Bool) = state.withLock { s in
                var expired: [CheckedContinuation<Outcome, Never>] = []
                for tick in s.due.keys.filter({ $0 <= now }) {
                    for d in s.due.removeValue(forKey: tick) ?? [] {
                        if let c = s.removeWaiter(d.nodeId, d.id) { expired.append(c) }
                    }
                }
                // Nothing waits: what is left in the buckets are waits that a change, a
                // cancellation or a shutdown ended.
                if s.waiters.isEmpty {
                    s.due = [:]
                    s.reaping = false
                }
                return (expired, s.reaping)
            }
            for c in expired { c.resume(returning: .timedOut) }
            if !more { return }
        }
    }
}
