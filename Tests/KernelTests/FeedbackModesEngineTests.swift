import FleetAgent
import KSMCore
import KSMNode
import TestSupport
import Testing

/// NodeEngine with the feedback modes on the fake kernel: the step cadence, what is observed,
/// and the advisor's start-up and refusal.
@Suite("NodeEngine: adaptive and advisor modes on the fake kernel")
struct FeedbackModesEngineTests {
    static let adaptive = KSMConfig(run: .run, mode: .adaptive, thresCoef: 100)
    static let advisor = KSMConfig(run: .run, mode: .advisor, thresCoef: 100)

    @Test func adaptiveStepsEverySecondOtherModesAtTheInterval() async throws {
        let engine = try NodeEngine(kernel: FakeKSMKernel(), clock: ManualClock(), logger: quietLogger())
        #expect(await engine.tuneInterval(default: 60) == 60)
        await engine.setConfig(Self.adaptive, generation: 1)
        #expect(await engine.tuneInterval(default: 60) == 1)
        var stopped = Self.adaptive
        stopped.run = .stop
        await engine.setConfig(stopped, generation: 2)
        #expect(await engine.tuneInterval(default: 60) == 60)
        await engine.setConfig(KSMConfig(run: .run, mode: .standard, thresCoef: 100), generation: 3)
        #expect(await engine.tuneInterval(default: 60) == 60)
    }

    @Test func adaptiveStartsAtFullSpeedAndReadsKsmdCPU() async throws {
        let k = FakeKSMKernel()
        let clock = ManualClock()
        let engine = try NodeEngine(kernel: k, clock: clock, logger: quietLogger())
        let first = await engine.setConfig(Self.adaptive, generation: 1)
        #expect(first.applyError == nil)
        let s = try k.readStatus()
        #expect(s.run == 1)
        #expect(s.pagesToScan == 20_000)
        #expect(s.sleepMillisecs == 0)
        #expect(first.decision.reason.contains("full speed"))
        // A second step sees ksmd's CPU through the kernel and keeps its memory of it.
        k.addKsmdTicks(100)
        clock.advance(1)
        await engine.tune()
        let state = try #require(await engine.state.adaptive)
        #expect(state.lastCPUSeconds == 1)
        #expect(state.cpuRecent == 1)
    }

    @Test func leavingTheAdvisorMakesPagesToScanWritableAgain() async throws {
        let k = FakeKSMKernel()
        let clock = ManualClock()
        let engine = try NodeEngine(kernel: k, clock: clock, logger: quietLogger())
        await engine.setConfig(Self.advisor, generation: 1)
        #expect(try k.readStatus().advisorMode == "none", "the advisor takes over only mid-pass")
        #expect(await engine.tuneInterval(default: 60) == 1)
        clock.advance(2)
        let handed = await engine.tune()
        #expect(handed.applyError == nil)
        #expect(try k.readStatus().advisorMode == "scan-time")
        #expect(try k.readStatus().advisorTargetScanTime == 30)
        #expect(handed.decision.reason.contains("the kernel advisor picks pages_to_scan"))
        #expect(await engine.tuneInterval(default: 60) == 60)
        let back = await engine.setConfig(Self.adaptive, generation: 2)
        #expect(back.applyError == nil)
        let s = try k.readStatus()
        #expect(s.advisorMode == "none")
        #expect(s.pagesToScan == 20_000)
    }

    @Test func restoringPutsBackTheAdvisorsOwnSettings() async throws {
        let k = FakeKSMKernel()
        let clock = ManualClock()
        let engine = try NodeEngine(kernel: k, clock: clock, logger: quietLogger())
        let before = try k.readStatus()
        await engine.setConfig(Self.advisor, generation: 1)
        clock.advance(2)
        _ = await engine.tune()
        #expect(try k.readStatus().advisorTargetScanTime == 30)
        try await engine.restoreInitial()
        let after = try k.readStatus()
        #expect(after.advisorTargetScanTime == before.advisorTargetScanTime)
        #expect(after.advisorMode == before.advisorMode)
    }

    @Test func theAdvisorIsRefusedInWordsOnAKernelWithoutIt() async throws {
        let k = FakeKSMKernel(features: FakeKSMKernel.Features.legacy)
        let log = LogCapture()
        let engine = try NodeEngine(kernel: k, clock: ManualClock(), logger: log.logger())
        let outcome = await engine.setConfig(Self.advisor, generation: 1)
        let error = try #require(outcome.applyError)
        #expect(error.contains("mode advisor needs the kernel's KSM advisor (advisor_mode, Linux 6.7+)"), "\(error)")
        #expect(k.writes.isEmpty)
        // Nothing to feed back from: no step every second (86,400 a day), and the same refusal
        // logged once as an error, not at every step.
        #expect(await engine.tuneInterval(default: 60) == 60)
        for _ in 0..<5 { await engine.tune() }
        let errors = log.messages(containing: "config not applied").filter { $0.level == .error }
        #expect(errors.count == 1, "\(errors.count) errors logged")
    }

    /// MemAvailable above the threshold keeps KSM off: the advisor has not begun, so the agent
    /// steps at its interval as the other modes do, not every second.
    @Test func theAdvisorAboveTheThresholdStepsAtTheInterval() async throws {
        let k = FakeKSMKernel()
        let engine = try NodeEngine(kernel: k, clock: ManualClock(), logger: quietLogger())
        var config = Self.advisor
        config.thresCoef = 1
        await engine.setConfig(config, generation: 1)
        #expect(await engine.tuneInterval(default: 60) == 60)
        await engine.setConfig(Self.advisor, generation: 2)
        #expect(await engine.tuneInterval(default: 60) == 1)
    }
}

/// The adaptive mode applies every second: a warning about the kernel (a configured file it
/// lacks) is logged when it appears, not once a second.
@Suite struct EngineWarningTests {
    @Test func aRepeatedWarningIsLoggedOnce() async throws {
        let capture = LogCapture()
        let kernel = FakeKSMKernel(features: FakeKSMKernel.Features.modern.subtracting(["smart_scan"]))
        let engine = try NodeEngine(kernel: kernel, clock: ManualClock(), logger: capture.logger())
        var config = KSMConfig(run: .run, mode: .adaptive, thresCoef: 100)
        config.smartScan = 1
        _ = await engine.setConfig(config, generation: 1)
        for _ in 0..<5 { _ = await engine.tune() }
        let warnings = capture.all.filter { $0.level == .warning && $0.message.contains("smart_scan") }
        #expect(warnings.count == 1, "\(warnings.map(\.message))")
    }
}
