import FleetAgent
import KSMCore
import KSMNode
import TestSupport
import Testing

/// NodeEngine against the fake kernel (no real kernel needed; lives here because this target
/// links FleetAgent).
@Suite("NodeEngine on the fake kernel")
struct NodeEngineTests {
    static let fast = KSMConfig(
        run: .run, mode: .customized, thresCoef: 100,
        parameters: TunerParameters(boost: 0, decay: 0, minPages: 5000, maxPages: 5000, sleepMsec: 10))

    @Test func capturesTheInitialSettings() throws {
        let k = FakeKSMKernel()
        k.update {
            $0.pagesToScan = 1234
            $0.sleepMillisecs = 55
        }
        let engine = try NodeEngine(kernel: k, clock: ManualClock(), logger: quietLogger())
        #expect(engine.initialSettings.pagesToScan == 1234)
        #expect(engine.initialSettings.sleepMillisecs == 55)
        #expect(engine.initialSettings.run == 0)
        #expect(engine.initialSettings.mergeAcrossNodes == 1)
    }

    @Test func withoutAConfigNothingIsWritten() async throws {
        let k = FakeKSMKernel()
        let engine = try NodeEngine(kernel: k, clock: ManualClock(), logger: quietLogger())
        let outcome = await engine.tune()
        #expect(outcome.report == nil)
        #expect(outcome.appliedGeneration == nil)
        #expect(k.writes.isEmpty)
        let snap = try await engine.snapshot()
        #expect(snap.phase == .unmanaged)
    }

    @Test func setConfigAppliesAtOnceAndLogsTheGeneration() async throws {
        let k = FakeKSMKernel()  // 16 GiB total
        let capture = LogCapture()
        let engine = try NodeEngine(kernel: k, clock: ManualClock(), logger: capture.logger())
        let outcome = await engine.setConfig(Self.fast, generation: 7)
        #expect(outcome.applyError == nil)
        #expect(outcome.appliedGeneration == 7)
        #expect(outcome.decision.phase == .running)
        #expect(outcome.decision.reason.contains("below the 100 % threshold"))
        #expect(k.writes == [.init(.pagesToScan, 5000), .init(.sleepMillisecs, 10), .init(.run, 1)])
        let applied = capture.messages(containing: "applied")
        #expect(applied.count == 1)
        #expect(applied.first?.metadata["generation"] == "7")
        #expect(applied.first?.metadata["written"]?.contains("run 0→1") == true)

        // The next step writes nothing new.
        k.clearWrites()
        let again = await engine.tune()
        #expect(k.writes.isEmpty)
        #expect(again.report?.written.isEmpty == true)
        #expect(await engine.appliedGeneration == 7)
    }

    @Test func thresholdStopsKSM() async throws {
        let k = FakeKSMKernel()
        let engine = try NodeEngine(kernel: k, clock: ManualClock(), logger: quietLogger())
        var c = Self.fast
        c.thresCoef = 20  // MemAvailable is 50 % in the fake
        let outcome = await engine.setConfig(c, generation: 1)
        #expect(outcome.decision.phase == .stopped)
        #expect(outcome.decision.reason.hasPrefix("Stopped: MemAvailable 50 % is above the 20 % threshold"))
        #expect(k.current.run == 0)
    }

    @Test func stopAndPrune() async throws {
        let k = FakeKSMKernel()
        let engine = try NodeEngine(kernel: k, clock: ManualClock(), logger: quietLogger())
        await engine.setConfig(Self.fast, generation: 1)
        k.merge(shared: 16, sharing: 4080)
        var c = Self.fast
        c.run = .stop
        let stopped = await engine.setConfig(c, generation: 2)
        #expect(stopped.decision.phase == .stopped)
        #expect(k.current.run == 0)
        #expect(k.current.pagesSharing == 4080)
        c.run = .prune
        let pruned = await engine.setConfig(c, generation: 3)
        #expect(pruned.decision.phase == .pruned)
        #expect(k.current.run == 2)
        #expect(k.current.pagesShared == 0)
    }

    @Test func unmanagedNeverWrites() async throws {
        let k = FakeKSMKernel()
        let engine = try NodeEngine(kernel: k, clock: ManualClock(), logger: quietLogger())
        let outcome = await engine.setConfig(KSMConfig(run: .unmanaged, mode: .standard, thresCoef: 20), generation: 4)
        #expect(k.writes.isEmpty)
        #expect(outcome.appliedGeneration == 4)
        #expect(outcome.decision.phase == .unmanaged)
    }

    @Test func anUnmergeTimeoutIsReportedInWordsAndKeepsTheOldGeneration() async throws {
        let k = FakeKSMKernel(unmerge: .never)
        let clock = ManualClock()
        let engine = try NodeEngine(
            kernel: k, clock: clock, logger: quietLogger(), unmergeTimeout: .milliseconds(200))
        await engine.setConfig(Self.fast, generation: 1)
        k.merge(shared: 1234, sharing: 5000)
        var c = Self.fast
        c.mergeAcrossNodes = 0
        let outcome = await engine.setConfig(c, generation: 2)
        #expect(outcome.appliedGeneration == 1)
        #expect(
            outcome.applyError
                == "merge_across_nodes change timed out after 0.2 s: pages_shared still 1234; run restored to 1"
                + "; the agent tries again after 5 min, on a config change or a kick")
        #expect(k.current.run == 1)
        #expect(k.current.mergeAcrossNodes == 1)
        let snap = try await engine.snapshot()
        #expect(snap.applyError == outcome.applyError)
        #expect(snap.appliedGeneration == 1)

        // Not at the next step (run is back, ksmd merges again: another unmerge would last the
        // whole timeout again), but 5 minutes later.
        k.setUnmergeBehaviour(.immediate)
        k.clearWrites()
        let held = await engine.tune()
        #expect(held.appliedGeneration == 1)
        #expect(!k.writes.contains(FakeKSMKernel.Write(.run, 2)), "\(k.writes)")
        clock.advance(NodeEngine.unmergeRetrySeconds)
        let retry = await engine.tune()
        #expect(retry.applyError == nil)
        #expect(retry.appliedGeneration == 2)
        #expect(k.current.mergeAcrossNodes == 0)
        #expect(retry.report?.unmerged == true)
    }

    @Test func throttleKicksAndTimers() async throws {
        let k = FakeKSMKernel()  // AnonPages 4 GiB = 1,048,576 pages of 4 KiB
        k.update {
            $0.pagesToScan = 321
            $0.sleepMillisecs = 45
        }
        let clock = ManualClock()
        let engine = try NodeEngine(kernel: k, clock: clock, logger: quietLogger())
        let c = KSMConfig(
            run: .run, mode: .throttle, thresCoef: 20,
            throttle: ThrottleSettings(toStandardSeconds: 30, toSlowSeconds: 120, toInitialSeconds: 120))
        let idle = await engine.setConfig(c, generation: 1)
        #expect(idle.decision.reason.contains("throttle is idle"))
        #expect(k.current.pagesToScan == 321)

        let kicked = await engine.kick(source: "test")
        #expect(kicked.decision.phase == .running)
        #expect(k.current.run == 1)
        #expect(k.current.pagesToScan == 104_857)
        #expect(k.current.sleepMillisecs == 1)

        clock.advance(31)
        await engine.tune()
        #expect(k.current.pagesToScan == 10_485)
        #expect(k.current.sleepMillisecs == 10)
        clock.advance(121)
        await engine.tune()
        #expect(k.current.pagesToScan == 2097)
        #expect(k.current.sleepMillisecs == 100)
        clock.advance(121)
        await engine.tune()
        #expect(k.current.pagesToScan == 321)
        #expect(k.current.sleepMillisecs == 45)
        #expect(k.current.run == 0)
        #expect(await engine.state.throttle.kicks == 1)
    }

    @Test func snapshotComputesKsmdCPU() async throws {
        let k = FakeKSMKernel(ksmdTicks: 1000, clockTicksPerSecond: 100)
        let clock = ManualClock()
        let engine = try NodeEngine(kernel: k, clock: clock, logger: quietLogger())
        await engine.setConfig(Self.fast, generation: 1)
        let first = try await engine.snapshot()
        #expect(first.ksmdCPUPercent == nil)
        #expect(first.ksmdCPUSeconds == 10)
        clock.advance(2)
        k.addKsmdTicks(50)
        k.merge(shared: 16, sharing: 4080)
        let second = try await engine.snapshot()
        #expect(second.ksmdCPUPercent == 25)
        #expect(second.ksmdCPUSeconds == 10.5)
        #expect(second.savedBytes == 4080 * 4096)
        #expect(second.phase == .running)
        #expect(second.appliedGeneration == 1)
        // No ksmd: no figures, and no bogus delta when it comes back.
        k.setKsmdTicks(nil)
        #expect(try await engine.snapshot().ksmdCPUPercent == nil)
    }

    @Test func restoreInitialPutsBackTheCapturedSettings() async throws {
        let k = FakeKSMKernel()
        let before = try k.readStatus().tunables
        let engine = try NodeEngine(kernel: k, clock: ManualClock(), logger: quietLogger())
        var c = Self.fast
        c.mergeAcrossNodes = 0
        c.useZeroPages = 1
        await engine.setConfig(c, generation: 1)
        k.merge(shared: 3, sharing: 30)
        #expect(try k.readStatus().tunables != before)
        try await engine.restoreInitial()
        #expect(try k.readStatus().tunables == before)
    }
}
