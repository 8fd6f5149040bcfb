import FleetAgent
import KSMCore
import KSMNode
import TestSupport
import Testing

/// Throttle's idle level on a host whose kernel advisor was on at capture (KSM.md §6).
@Suite("Throttle's idle level and the kernel advisor")
struct ThrottleAdvisorEngineTests {
    @Test("a host captured with advisor_mode scan-time gets scan-time back at the idle level, pages_to_scan left to it")
    func scanTimeComesBack() async throws {
        let k = FakeKSMKernel()
        k.update {
            $0.advisorMode = "scan-time"
            $0.pagesToScan = 777  // what the advisor had picked at capture
        }
        let clock = ManualClock()
        let engine = try NodeEngine(kernel: k, clock: clock, logger: quietLogger())
        await engine.setConfig(KSMConfig(run: .run, mode: .throttle), generation: 1)
        await engine.kick(source: "test")
        #expect(try k.readStatus().advisorMode == "none")
        clock.advance(30 + 120 + 120)
        let idle = await engine.tune()
        #expect(idle.decision.state.throttle.level == .initial)
        #expect(idle.applyError == nil)
        #expect(try k.readStatus().advisorMode == "scan-time")
        #expect(idle.report?.skipped.contains(.pagesToScan) == false)
        #expect(!k.writes.contains { $0.tunable == .pagesToScan && $0.value == 777 })
    }
}
