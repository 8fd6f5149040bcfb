import FleetAPI
import KSMCore
import Testing

@testable import FleetServer

/// The in-memory long-poll waiters on their own: wake-ups, deadlines, cancellation, shutdown,
/// and that nothing is left registered afterwards.
@Suite struct ConfigWaitersTests {
    func config(_ generation: Int64) -> NodeConfig { NodeConfig(generation: generation, config: .standardDefault) }

    @Test func manyWaitersWakeOnOneNotifyAndOthersTimeOut() async {
        let waiters = ConfigWaiters()
        let e = waiters.epoch("a")
        let woken = Task {
            await withTaskGroup(of: Int64?.self) { group in
                for _ in 0..<500 {
                    group.addTask {
                        if case .changed(let c, _) = await waiters.wait("a", since: e, timeout: .seconds(30)) { return c?.generation }
                        return nil
                    }
                }
                var out: [Int64?] = []
                for await r in group { out.append(r) }
                return out
            }
        }
        let other = Task { await waiters.wait("b", since: waiters.epoch("b"), timeout: .milliseconds(200)) }
        let deadline = ContinuousClock.now + .seconds(20)
        while waiters.waitingCount < 500 && ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(5)) }
        #expect(waiters.waitingCount >= 500)
        waiters.notify("a", config: config(2))
        let results = await woken.value
        #expect(results.count == 500 && results.allSatisfy { $0 == 2 })
        if case .changed = await other.value { Issue.record("node b was never changed") }
        #expect(waiters.waitingCount == 0)
    }

    @Test func aChangeBeforeTheWaitIsNotMissed() async {
        let waiters = ConfigWaiters()
        let e = waiters.epoch("a")
        waiters.notify("a", config: config(5))  // between reading the config and waiting
        guard case .changed(let c, let newEpoch) = await waiters.wait("a", since: e, timeout: .seconds(30)) else {
            Issue.record("the change was missed")
            return
        }
        #expect(c?.generation == 5 && newEpoch == e + 1)
        // Out-of-order notifications keep the newest generation, and still move the epoch: a wait
        // since the last epoch seen answers at once (a timeout here is a failure).
        waiters.notify("a", config: config(4))
        guard case .changed(let kept, let later) = await waiters.wait("a", since: newEpoch, timeout: .seconds(1)) else {
            Issue.record("the out-of-order notification was missed (the wait timed out)")
            return
        }
        #expect(kept?.generation == 5 && later == newEpoch + 1)
    }

    @Test func cancellationAndShutdownEndEveryWait() async {
        let waiters = ConfigWaiters()
        let cancelled = Task { await waiters.wait("a", since: 0, timeout: .seconds(60)) }
        let held = Task { await waiters.wait("b", since: 0, timeout: .seconds(60)) }
        let deadline = ContinuousClock.now + .seconds(20)
        while waiters.waitingCount < 2 && ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(5)) }
        cancelled.cancel()
        if case .changed = await cancelled.value { Issue.record("a cancelled wait reported a change") }
        waiters.shutdown()
        if case .changed = await held.value { Issue.record("shutdown reported a change") }
        #expect(waiters.waitingCount == 0)
        // After shutdown nothing waits any more.
        let start = ContinuousClock.now
        _ = await waiters.wait("c", since: 0, timeout: .seconds(30))
        #expect(ContinuousClock.now - start < .seconds(20))  // not the 30 s timeout
    }
}
