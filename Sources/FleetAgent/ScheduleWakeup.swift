import Synchronization

/// Ends a tuning loop's sleep early. The loops sleep until the engine's next step is due
/// (`NodeEngine.tuneInterval`), and a kick or a new config changes when that is: a throttle kick
/// steps down 30 s later, not at the loop's next 60 s tick (kata's throttler keeps 30 s, 2 min,
/// 2 min; on the tick alone its aggressive scanning lasted up to 89 s). One sleeper at a time.
public final class ScheduleWakeup: Sendable {
    private struct State {
        /// Signalled while no sleep was waiting: the next one returns at once.
        var signalled = false
        var waiter: (id: Int, continuation: CheckedContinuation<Void, Never>)?
        var nextId = 0
    }
    private let state = Mutex(State())

    public init() {}

    /// Ends the sleep under way, or the next one.
    public func signal() {
        let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
            guard let w = s.waiter else {
                s.signalled = true
                return nil
            }
            s.waiter = nil
            return w.continuation
        }
        waiter?.resume()
    }

    /// Sleeps `seconds`, less when signalled: true when a signal ended it. Throws when the task
    /// is cancelled.
    public func sleep(seconds: Double) async throws -> Bool {
        try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask {
                try await Task.sleep(for: .milliseconds(Int64(max(0, seconds) * 1000)))
                return false
            }
            group.addTask {
                await self.waitForSignal()
                return true
            }
            defer { group.cancelAll() }
            guard let first = try await group.next() else { return false }
            try Task.checkCancellation()
            return first
        }
    }

    private func waitForSignal() async {
        let id = state.withLock { s -> Int in
            s.nextId += 1
            return s.nextId
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let now = state.withLock { s -> Bool in
                    if s.signalled {
                        s.signalled = false
                        return true
                    }
                    if Task.isCancelled { return true }  // its handler may have run already
                    // One loop sleeps on a wakeup: a second sleeper would take the first's place.
                    precondition(s.waiter == nil, "ScheduleWakeup has one sleeper at a time")
                    s.waiter = (id, c)
                    return false
                }
                if now { c.resume() }
            }
        } onCancel: {
            let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
                guard let w = s.waiter, w.id == id else { return nil }
                s.waiter = nil
                return w.continuation
            }
            waiter?.resume()
        }
    }
}
