import FleetAgent
import KSMCore
import KSMNode
import TestSupport
import Testing

/// A decision that could not be applied is not reported as the node's phase: the phase is what
/// the kernel does, the reason says what was decided and why it did not take.
@Suite struct ApplyFailurePhaseTests {
    @Test func thePhaseIsTheKernelsWhenTheApplyFailed() async throws {
        let k = FakeKSMKernel(features: FakeKSMKernel.Features.legacy)
        let engine = try NodeEngine(kernel: k, clock: ManualClock(), logger: quietLogger())
        let outcome = await engine.setConfig(KSMConfig(run: .run, mode: .advisor, thresCoef: 100), generation: 1)
        let snap = try await engine.snapshot()
        #expect(outcome.applyError != nil, "a kernel without the advisor refuses the advisor mode")
        #expect(try k.readStatus().run == 0)
        #expect(snap.phase == .stopped, "\(snap.phaseReason)")
        #expect(snap.phaseReason.hasPrefix("Stopped: the kernel's run is 0; applying the decision failed"), "\(snap.phaseReason)")
        #expect(snap.applyError == outcome.applyError)
    }

    @Test func aDecisionThatTookIsThePhase() async throws {
        let k = FakeKSMKernel()
        let engine = try NodeEngine(kernel: k, clock: ManualClock(), logger: quietLogger())
        let outcome = await engine.setConfig(KSMConfig(run: .run, mode: .standard, thresCoef: 100), generation: 1)
        let snap = try await engine.snapshot()
        #expect(outcome.applyError == nil)
        #expect(snap.phase == outcome.decision.phase && snap.phaseReason == outcome.decision.reason)
    }
}
