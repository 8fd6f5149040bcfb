import FleetAgent
import KSMCore
import KSMNode
import TestSupport
import Testing

/// Linux unmerges inside the write of run=2 (`FakeKSMKernel.UnmergeBehaviour.blocking` does the
/// same): the agent writes it on a thread of its own, so the engine goes on serving samples
/// meanwhile, other applies wait their turn, and a timeout or a cancellation interrupts it.
@Suite("An unmerge under way")
struct UnmergeUnderWayTests {
    static let running = KSMConfig(
        run: .run, mode: .customized, thresCoef: 100,
        parameters: TunerParameters(boost: 0, decay: 0, minPages: 5000, maxPages: 5000, sleepMsec: 10))

    /// A 16 GiB node with 8 GiB merged (1,000 pages shared), 12 GiB available: the unmerge fits.
    static func node(perMillisecond: Int64) throws -> FakeKSMKernel {
        try FakeKSMKernel.mergedNode(availableGiB: 12, unmerge: .blocking(perMillisecond: perMillisecond))
    }

    /// Snapshots until one is taken while the unmerge is under way (at most `seconds`).
    static func snapshotDuringUnmerge(_ engine: NodeEngine, seconds: Double = 10) async throws -> EngineSnapshot? {
        let clock = ContinuousClock()
        let end = clock.now + .milliseconds(Int64(seconds * 1000))
        while clock.now < end {
            let s = try await engine.snapshot()
            // The write under way (the kernel's run 2), not only about to begin.
            if s.phaseReason.contains("unmerging every KSM page"), s.status.run == 2 { return s }
            try await Task.sleep(for: .milliseconds(5))
        }
        return nil
    }

    /// `Self.running` with merge_across_nodes 0 (a change that needs the unmerge) applied as
    /// generation 2 in a task of its own; returns once its unmerge is under way.
    static func flipUnderWay(_ engine: NodeEngine) async throws -> Task<EngineOutcome, Never> {
        var flip = running
        flip.mergeAcrossNodes = 0
        let task = Task { await engine.setConfig(flip, generation: 2) }
        _ = try #require(try await snapshotDuringUnmerge(engine))
        return task
    }

    /// `running`, merge_across_nodes 0, pages_to_scan 300: the config that comes meanwhile.
    static var slowerFlip: KSMConfig {
        var c = running
        c.mergeAcrossNodes = 0
        c.parameters = TunerParameters(boost: 0, decay: 0, minPages: 300, maxPages: 300, sleepMsec: 10)
        return c
    }

    @Test func samplesGoOnWhilePruneUnmerges() async throws {
        let k = try Self.node(perMillisecond: 1)  // 1,000 pages shared: about a second
        let engine = try NodeEngine(kernel: k, clock: ManualClock(), logger: quietLogger())
        await engine.setConfig(Self.running, generation: 1)
        let prune = Task { await engine.setConfig(KSMConfig(run: .prune), generation: 2) }
        let during = try #require(try await Self.snapshotDuringUnmerge(engine), "no sample while the unmerge ran")
        #expect(during.status.run == 2)
        #expect(during.phase == .pruned)
        #expect(during.status.pagesShared > 0 && during.status.pagesShared < 1000, "\(during.status)")
        #expect(during.phaseReason.contains("applying generation 2 (run prune)"), "\(during.phaseReason)")
        #expect(during.appliedGeneration == 1)
        let outcome = await prune.value
        #expect(outcome.applyError == nil)
        #expect(outcome.appliedGeneration == 2)
        #expect(k.current.pagesShared == 0 && k.current.pagesSharing == 0)
        let after = try await engine.snapshot()
        #expect(!after.phaseReason.contains("unmerging"))
        #expect(after.appliedGeneration == 2)
    }

    /// A config that arrives during the unmerge protocol waits for it, then applies: nothing is
    /// written to the kernel beside the unmerge.
    @Test func aConfigDuringTheUnmergeWaitsItsTurn() async throws {
        let k = try Self.node(perMillisecond: 1)
        let engine = try NodeEngine(kernel: k, clock: ManualClock(), logger: quietLogger())
        await engine.setConfig(Self.running, generation: 1)
        k.clearWrites()
        let first = try await Self.flipUnderWay(engine)
        let second = Task { await engine.setConfig(Self.slowerFlip, generation: 3) }
        try await Task.sleep(for: .milliseconds(100))
        let during = try #require(try await Self.snapshotDuringUnmerge(engine), "the unmerge ended too soon for the test")
        #expect(!k.writes.contains(FakeKSMKernel.Write(.pagesToScan, 300)), "written beside the unmerge: \(k.writes)")
        #expect(during.appliedGeneration == 1)
        let a = await first.value
        let b = await second.value
        #expect(a.applyError == nil && a.appliedGeneration == 2)
        #expect(b.applyError == nil && b.appliedGeneration == 3)
        #expect(
            k.writes.map(\.description)
                == ["run=2", "merge_across_nodes=0", "run=1", "pages_to_scan=300"])
        #expect(k.current.mergeAcrossNodes == 0 && k.current.run == 1 && k.current.pagesToScan == 300)
    }

    /// An unmerge longer than --unmerge-timeout is interrupted (the kernel then leaves run=0 with
    /// the rest still merged): run is put back, the knob not written, the error says so.
    @Test func anUnmergeLongerThanTheTimeoutIsInterrupted() async throws {
        let k = try Self.node(perMillisecond: 1)
        k.merge(shared: 19_000, sharing: 0)  // 20,000 pages shared: 20 s
        let engine = try NodeEngine(
            kernel: k, clock: ManualClock(), logger: quietLogger(), unmergeTimeout: .milliseconds(300))
        await engine.setConfig(Self.running, generation: 1)
        var flip = Self.running
        flip.mergeAcrossNodes = 0
        let started = ContinuousClock.now
        let outcome = await engine.setConfig(flip, generation: 2)
        let took = ContinuousClock.now - started
        let error = try #require(outcome.applyError)
        #expect(error.hasPrefix("merge_across_nodes change timed out after 0.3 s: pages_shared still "), "\(error)")
        #expect(error.contains("; run restored to 1; the agent tries again after 5 min"), "\(error)")
        #expect(took < .seconds(15), "the interrupt did not stop the unmerge: \(took)")
        #expect(outcome.appliedGeneration == 1)
        #expect(k.current.run == 1)
        #expect(k.current.mergeAcrossNodes == 1)
        #expect(k.current.pagesShared > 0 && k.current.pagesShared < 20_000, "\(k.current)")
    }

    /// A config that came while an unmerge was under way is not held back by that unmerge's
    /// failure (here its timeout): it tries the unmerge itself.
    @Test func aConfigThatCameDuringAFailedUnmergeIsNotHeldBackByIt() async throws {
        let k = try Self.node(perMillisecond: 1)
        k.merge(shared: 19_000, sharing: 0)  // 20 s, against a 2 s timeout: time to come during it
        let engine = try NodeEngine(
            kernel: k, clock: ManualClock(), logger: quietLogger(), unmergeTimeout: .seconds(2))
        await engine.setConfig(Self.running, generation: 1)
        let first = try await Self.flipUnderWay(engine)
        let second = await engine.setConfig(Self.slowerFlip, generation: 3)
        let a = await first.value
        #expect(a.applyError?.contains("timed out") == true, "\(a.applyError ?? "nil")")
        let error = try #require(second.applyError)
        #expect(error.hasPrefix("merge_across_nodes change timed out"), "\(error)")
        // Its own unmerge, not the first's hold: run=2 written twice.
        #expect(k.writes.filter { $0 == FakeKSMKernel.Write(.run, 2) }.count == 2, "held back by the first's hold: \(k.writes)")
        // Its own timeout holds the next step back.
        k.clearWrites()
        let third = await engine.tune()
        #expect(third.applyError == error)
        #expect(!k.writes.contains(FakeKSMKernel.Write(.run, 2)), "\(k.writes)")
    }

    /// The agent stopping (SIGTERM) interrupts a prune's unmerge, which has no time limit, and no
    /// step queued behind it writes afterwards.
    @Test func stoppingInterruptsAPruneAndNothingIsWrittenAfter() async throws {
        let k = try Self.node(perMillisecond: 1)
        k.merge(shared: 19_000, sharing: 0)  // 20 s
        let capture = LogCapture()
        let engine = try NodeEngine(kernel: k, clock: ManualClock(), logger: capture.logger())
        await engine.setConfig(Self.running, generation: 1)
        let prune = Task { await engine.setConfig(KSMConfig(run: .prune), generation: 2) }
        _ = try #require(try await Self.snapshotDuringUnmerge(engine))
        // A config that would start ksmd again, waiting its turn behind the prune.
        let queued = Task { await engine.setConfig(Self.slowerFlip, generation: 3) }
        try await Task.sleep(for: .milliseconds(50))
        let started = ContinuousClock.now
        engine.stopApplying()
        let outcome = await prune.value
        _ = await queued.value
        #expect(ContinuousClock.now - started < .seconds(10), "the prune was not interrupted")
        #expect(outcome.applyError == "cancelled while waiting for the unmerge", "\(outcome.applyError ?? "nil")")
        #expect(k.current.run == 0)
        #expect(k.current.pagesShared > 0)
        #expect(!k.writes.contains(FakeKSMKernel.Write(.pagesToScan, 300)), "the queued config wrote: \(k.writes)")
        // Said as the stop it is, not as an error.
        #expect(capture.messages(containing: "unmerge interrupted: the agent is stopping").map(\.level) == [.info])
        #expect(capture.messages(containing: "config not applied").isEmpty)
        let writes = k.writes
        _ = await engine.tune()
        #expect(k.writes == writes, "a step wrote after the stop")
    }

    /// Stopped before any step finished (SIGTERM while the first config is on its way): that
    /// config is not applied at all.
    @Test func nothingIsWrittenAfterAStopEvenByAFirstConfig() async throws {
        let k = try Self.node(perMillisecond: 1)
        let engine = try NodeEngine(kernel: k, clock: ManualClock(), logger: quietLogger())
        engine.stopApplying()
        let outcome = await engine.setConfig(Self.slowerFlip, generation: 1)
        #expect(k.writes.isEmpty, "\(k.writes)")
        #expect(outcome.appliedGeneration == nil)
    }

    /// The restore at exit runs after the stop; its own unmerge (here to put merge_across_nodes
    /// back) is cut short by a second stop (SIGTERM again), not by the first.
    @Test func aSecondStopInterruptsTheRestoresUnmerge() async throws {
        let k = try Self.node(perMillisecond: 1)  // 1,000 pages shared: about a second
        let engine = try NodeEngine(kernel: k, clock: ManualClock(), logger: quietLogger())
        var flip = Self.running
        flip.mergeAcrossNodes = 0
        #expect(await engine.setConfig(flip, generation: 1).applyError == nil)
        k.merge(shared: 20_000, sharing: 40_000)  // merged again since: 20 s to unmerge
        engine.stopApplying()
        let restore = Task { try await engine.restoreInitial() }
        let clock = ContinuousClock()
        let end = clock.now + .seconds(10)
        while k.current.run != 2, clock.now < end { try await Task.sleep(for: .milliseconds(5)) }
        #expect(k.current.run == 2, "the restore did not start its unmerge")
        let started = clock.now
        engine.stopApplying()
        await #expect(throws: (any Error).self) { try await restore.value }
        #expect(clock.now - started < .seconds(10), "the second stop did not interrupt the restore's unmerge")
        #expect(k.current.mergeAcrossNodes == 0, "the knob needs the unmerge: left as it was")
    }

    /// A cancelled apply (the agent stopping) interrupts the unmerge; prune leaves the kernel's
    /// run=0.
    @Test func cancellingInterruptsTheUnmerge() async throws {
        let k = try Self.node(perMillisecond: 1)
        k.merge(shared: 19_000, sharing: 0)
        let engine = try NodeEngine(kernel: k, clock: ManualClock(), logger: quietLogger())
        await engine.setConfig(Self.running, generation: 1)
        let prune = Task { await engine.setConfig(KSMConfig(run: .prune), generation: 2) }
        _ = try #require(try await Self.snapshotDuringUnmerge(engine))
        prune.cancel()
        let outcome = await prune.value
        #expect(outcome.applyError == "cancelled while waiting for the unmerge", "\(outcome.applyError ?? "nil")")
        #expect(k.current.run == 0)
        #expect(k.current.pagesShared > 0)
    }
}
