import FleetAPI
import ServiceLifecycle
import Synchronization

/// Long-poll waiters, in memory: one continuation per waiting request, keyed by node, woken by
/// every config write. A waiting agent costs no thread and no database query; the new config
/// travels with the wake-up, so 10,000 woken agents do not stampede the database.
///
/// Every node has an epoch that each notification increments. A handler reads the epoch before
/// it reads the config from the database and waits "since" that epoch, so a change committed
/// between the read and the wait is never missed.
final class ConfigWaiters: Sendable {
    enum Outcome: Sendable {
        /// The config changed (nil: the node was deleted); `epoch` is the epoch after the change.
        case changed(NodeConfig?, epoch: UInt64)
        case timedOut
    }

    private struct State {
        var epochs: [String: UInt64] = [:]
        var latest: [String: NodeConfig] = [:]
        var waiters: [String: [UInt64: CheckedContinuation<Outcome, Never>]] = [:]
        var cancelledBeforeRegistration: Set<UInt64> = []
        var nextID: UInt64 = 0
        var shuttingDown = false
    }

    private let state = Mutex(State())

    /// Current epoch of a node's config.
    func epoch(_ nodeId: String) -> UInt64 {
        state.withLock { $0.epochs[nodeId] ?? 0 }
    }

    /// Number of requests waiting now (metrics, tests).
    var waitingCount: Int {
        state.withLock { $0.waiters.values.reduce(0) { $0 + $1.count } }
    }

    /// Nodes with a request waiting now.
    var waitingNodeIds: [String] {
        state.withLock { Array($0.waiters.keys) }
    }

    /// Wakes every waiter of a node with its new config (nil when the node was deleted).
    /// Call after the change is committed.
    func notify(_ nodeId: String, config: NodeConfig?) {
        let (woken, outcome): ([CheckedContinuation<Outcome, Never>], Outcome) = state.withLock { s in
            let e = (s.epochs[nodeId] ?? 0) &+ 1
            s.epochs[nodeId] = e
            if let config {
                // Two writers may notify out of order; keep the newest generation.
                if (s.latest[nodeId]?.generation ?? Int64.min) <= config.generation { s.latest[nodeId] = config }
            } else {
                s.latest[nodeId] = nil
            }
            let list = s.waiters.removeValue(forKey: nodeId).map { Array($0.values) } ?? []
            return (list, .changed(config == nil ? nil : s.latest[nodeId], epoch: e))
        }
        for c in woken { c.resume(returning: outcome) }
    }

    /// Ends every wait at once (graceful shutdown: long-polls answer 304 instead of holding
    /// the server for up to a minute).
    func shutdown() {
        let all: [CheckedContinuation<Outcome, Never>] = state.withLock { s in
            s.shuttingDown = true
            let list = s.waiters.values.flatMap { $0.values }
            s.waiters = [:]
            return list
        }
        for c in all { c.resume(returning: .timedOut) }
    }

    /// Waits until the node's epoch moves past `since`, or `timeout` passes.
    func wait(_ nodeId: String, since: UInt64, timeout: Duration) async -> Outcome {
        let immediate: Outcome? = state.withLock { s in
            if s.shuttingDown { return .timedOut }
            let e = s.epochs[nodeId] ?? 0
            return e != since ? .changed(s.latest[nodeId], epoch: e) : nil
        }
        if let immediate { return immediate }
        let id = state.withLock { s in
            s.nextID &+= 1
            return s.nextID
        }
        let outcome = await withGracefulShutdownHandler {
            await withTaskGroup(of: Outcome.self) { group in
                group.addTask { await self.suspend(nodeId, id: id, since: since) }
                group.addTask {
                    try? await Task.sleep(for: timeout)
                    return .timedOut
                }
                let first = await group.next() ?? .timedOut
                group.cancelAll()
                return first
            }
        } onGracefulShutdown: {
            self.shutdown()
        }
        // Every child has finished: a cancellation that raced the registration left its mark.
        _ = state.withLock { $0.cancelledBeforeRegistration.remove(id) }
        return outcome
    }

    private func suspend(_ nodeId: String, id: UInt64, since: UInt64) async -> Outcome {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Outcome, Never>) in
                let immediate: Outcome? = state.withLock { s in
                    if s.shuttingDown || s.cancelledBeforeRegistration.remove(id) != nil { return .timedOut }
                    let e = s.epochs[nodeId] ?? 0
                    if e != since { return .changed(s.latest[nodeId], epoch: e) }
                    s.waiters[nodeId, default: [:]][id] = c
                    return nil
                }
                if let immediate { c.resume(returning: immediate) }
            }
        } onCancel: {
            let c: CheckedContinuation<Outcome, Never>? = state.withLock { s in
                if let c = s.waiters[nodeId]?.removeValue(forKey: id) {
                    if s.waiters[nodeId]?.isEmpty == true { s.waiters[nodeId] = nil }
                    return c
                }
                s.cancelledBeforeRegistration.insert(id)
                return nil
            }
            c?.resume(returning: .timedOut)
        }
    }
}
