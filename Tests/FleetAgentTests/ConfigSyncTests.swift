import FleetAPI
import FleetTestSupport
import Foundation
import KSMCore
import TestSupport
import Testing

@testable import FleetAgent

/// The server's kickCounter as the agent reads it: a kick is the counter going up.
@Suite struct ConfigSyncTests {
    /// A node registered anew (its counter back at 0 while the state directory holds 5), or the
    /// server's database restored: the lower counter is the new base, not a kick.
    @Test func aLowerKickCounterIsANewBaseNotAKick() async throws {
        let engine = try NodeEngine(kernel: FakeKSMKernel(), clock: ManualClock(), logger: quietLogger())
        let dir = try AgentStateDir(makeTemporaryDirectory(prefix: "ksmfleet-sync").path + "/state")
        let sync = try ConfigSync(
            engine: engine, stateDir: dir, options: AgentOptions(serverURL: "http://127.0.0.1:1"), logger: quietLogger())
        let throttle = KSMConfig(run: .run, mode: .throttle)
        func kicks() async -> Int { await engine.tune().decision.state.throttle.kicks }
        _ = await sync.handle(NodeConfig(generation: 9, kickCounter: 5, config: throttle))
        #expect(await kicks() == 0, "the first config is no kick")
        _ = await sync.handle(NodeConfig(generation: 10, kickCounter: 0, config: throttle))
        #expect(await kicks() == 0, "a lower counter was taken for a kick")
        _ = await sync.handle(NodeConfig(generation: 11, kickCounter: 1, config: throttle))
        #expect(await kicks() == 1)
    }
}
