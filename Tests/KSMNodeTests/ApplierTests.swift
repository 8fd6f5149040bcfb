import KSMCore
import KSMNode
import TestSupport
import Testing

@Suite("Applier")
struct ApplierTests {
    let log = quietLogger()

    @Test func writesOnlyValuesThatDiffer() async throws {
        let k = FakeKSMKernel()  // run 0, pages_to_scan 100, sleep 20, merge_across_nodes 1
        let report = try await Applier.apply(
            KernelSettings(run: 1, pagesToScan: 100, sleepMillisecs: 30, mergeAcrossNodes: 1), to: k, logger: log)
        #expect(k.writes == [.init(.sleepMillisecs, 30), .init(.run, 1)])
        #expect(report.written.map(\.tunable) == [.sleepMillisecs, .run])
        #expect(report.written.first?.from == 20)
        #expect(Set(report.unchanged) == [.pagesToScan, .mergeAcrossNodes])

        k.clearWrites()
        let again = try await Applier.apply(
            KernelSettings(run: 1, pagesToScan: 100, sleepMillisecs: 30, mergeAcrossNodes: 1), to: k, logger: log)
        #expect(k.writes.isEmpty)
        #expect(again.written.isEmpty)
    }

    @Test func nilFieldsAreLeftAlone() async throws {
        let k = FakeKSMKernel()
        try await Applier.apply(KernelSettings(), to: k, logger: log)
        #expect(k.writes.isEmpty)
    }

    @Test func scanParametersAreWrittenBeforeRunOne() async throws {
        let k = FakeKSMKernel()
        try await Applier.apply(KernelSettings(run: 1, pagesToScan: 5000, sleepMillisecs: 10), to: k, logger: log)
        #expect(k.writes == [.init(.pagesToScan, 5000), .init(.sleepMillisecs, 10), .init(.run, 1)])
    }

    @Test func neverPagesToScanZeroWithRunOne() async throws {
        let k = FakeKSMKernel()
        await #expect(throws: KSMApplyError.self) {
            try await Applier.apply(KernelSettings(run: 1, pagesToScan: 0), to: k, logger: log)
        }
        #expect(k.writes.isEmpty)

        // Also when the 0 is already in the kernel and only run=1 is asked for.
        k.update { $0.pagesToScan = 0 }
        do {
            try await Applier.apply(KernelSettings(run: 1), to: k, logger: log)
            Issue.record("expected a refusal")
        } catch {
            guard case .invalidSettings(let why) = error.reason else {
                Issue.record("unexpected \(error)")
                return
            }
            #expect(why.contains("pages_to_scan 0 with run 1"))
        }
        #expect(k.writes.isEmpty)
        // pages_to_scan 0 with run 0 is harmless.
        try await Applier.apply(KernelSettings(run: 0, pagesToScan: 0), to: k, logger: log)
    }

    @Test func mergeAcrossNodesWithoutSharedPagesIsWrittenDirectly() async throws {
        let k = FakeKSMKernel()
        let report = try await Applier.apply(KernelSettings(mergeAcrossNodes: 0), to: k, logger: log)
        #expect(k.writes == [.init(.mergeAcrossNodes, 0)])
        #expect(!report.unmerged)
    }

    @Test func unmergeProtocolChangesTheKnobAndRestoresRun() async throws {
        let k = FakeKSMKernel(unmerge: .gradual(perRead: 4))
        try k.write(.run, 1)
        k.merge(shared: 10, sharing: 300)
        k.clearWrites()
        let capture = LogCapture()
        let report = try await Applier.apply(
            // A generous timeout: the fake unmerges in three polls, but a loaded test machine can
            // leave this task unscheduled for seconds; the timeout case is tested below.
            KernelSettings(run: 1, mergeAcrossNodes: 0, maxPageSharing: 512), to: k, unmergeTimeout: .seconds(120),
            pollInterval: .milliseconds(1), logger: capture.logger())
        #expect(
            k.writes == [
                .init(.run, 2), .init(.mergeAcrossNodes, 0), .init(.maxPageSharing, 512), .init(.run, 1),
            ])
        #expect(report.unmerged)
        #expect(report.written.map(\.tunable) == [.mergeAcrossNodes, .maxPageSharing])
        #expect(report.warnings.contains { $0.contains("unmerged") })
        let s = try k.readStatus()
        #expect(s.run == 1)
        #expect(s.mergeAcrossNodes == 0)
        #expect(s.maxPageSharing == 512)
        #expect(!capture.messages(containing: "unmerg").isEmpty)
    }

    @Test func unmergeProtocolRunsWhileKsmdRunsEvenWithNothingShared() async throws {
        // ksmd could merge a page between the read and the write: do not race it.
        let k = FakeKSMKernel()
        try k.write(.run, 1)
        k.clearWrites()
        try await Applier.apply(KernelSettings(mergeAcrossNodes: 0), to: k, logger: log)
        #expect(k.writes == [.init(.run, 2), .init(.mergeAcrossNodes, 0), .init(.run, 1)])
    }

    @Test func unmergeTimeoutRestoresRunAndSaysWhatHappened() async throws {
        let k = FakeKSMKernel(unmerge: .never)
        try k.write(.run, 1)
        k.merge(shared: 1234, sharing: 5000)
        k.clearWrites()
        let clock = ContinuousClock()
        let start = clock.now
        do {
            try await Applier.apply(
                KernelSettings(mergeAcrossNodes: 0), to: k, unmergeTimeout: .milliseconds(300),
                pollInterval: .milliseconds(20), logger: log)
            Issue.record("expected a timeout")
        } catch {
            guard case .unmergeTimeout(let tunables, _, let shared, let restoredRun, _) = error.reason else {
                Issue.record("unexpected \(error)")
                return
            }
            #expect(tunables == [.mergeAcrossNodes])
            #expect(shared == 1234)
            #expect(restoredRun == 1)
            #expect(
                error.description
                    == "merge_across_nodes change timed out after 0.3 s: pages_shared still 1234; run restored to 1")
        }
        // Never a hang: the call returns on its own (bounded far above the 0.3 s timeout so a
        // loaded machine does not fail it; no timing is asserted beyond that).
        #expect(clock.now - start < .seconds(120))
        #expect(k.writes == [.init(.run, 2), .init(.run, 1)])
        #expect(k.current.mergeAcrossNodes == 1)
        #expect(k.current.run == 1)
    }

    @Test func timeoutMessageInWholeSeconds() async throws {
        let k = FakeKSMKernel(unmerge: .never)
        k.merge(shared: 3, sharing: 3)
        do {
            try await Applier.apply(
                KernelSettings(maxPageSharing: 300), to: k, unmergeTimeout: .seconds(1),
                pollInterval: .milliseconds(50),
                logger: log)
            Issue.record("expected a timeout")
        } catch {
            #expect(
                error.description
                    == "max_page_sharing change timed out after 1 s: pages_shared still 3; run restored to 0")
        }
    }

    @Test func pruneWithAKnobChangeLeavesRunAtTwo() async throws {
        let k = FakeKSMKernel()
        try k.write(.run, 1)
        k.merge(shared: 5, sharing: 50)
        k.clearWrites()
        try await Applier.apply(KernelSettings(run: 2, mergeAcrossNodes: 0), to: k, logger: log)
        #expect(k.writes == [.init(.run, 2), .init(.mergeAcrossNodes, 0)])
        #expect(k.current.run == 2)
    }

    @Test func kernelErrorsAreTypedAndKeepThePartialReport() async throws {
        let k = FakeKSMKernel()
        k.failWrites(of: .run, errno: 13)  // EACCES
        do {
            try await Applier.apply(KernelSettings(run: 1, pagesToScan: 300), to: k, logger: log)
            Issue.record("expected a failure")
        } catch {
            guard case .kernel(let e) = error.reason else {
                Issue.record("unexpected \(error)")
                return
            }
            #expect(e.isPermissionDenied)
            #expect(error.report.written.map(\.tunable) == [.pagesToScan])
            #expect(error.description.contains("/sys/kernel/mm/ksm/run"))
        }
    }

    @Test func advisorOwnsPagesToScan() async throws {
        let k = FakeKSMKernel()
        k.update { $0.advisorMode = "scan-time" }
        let report = try await Applier.apply(
            KernelSettings(run: 1, pagesToScan: 700, sleepMillisecs: 15), to: k, logger: log)
        #expect(k.writes == [.init(.sleepMillisecs, 15), .init(.run, 1)])
        #expect(report.skipped == [.pagesToScan])
        #expect(report.warnings.contains { $0.contains("advisor_mode is scan-time") })
    }

    @Test func featuresTheKernelLacksAreSkippedWithAWarning() async throws {
        let k = FakeKSMKernel(features: FakeKSMKernel.Features.legacy)
        let report = try await Applier.apply(KernelSettings(sleepMillisecs: 40, smartScan: 1), to: k, logger: log)
        #expect(k.writes == [.init(.sleepMillisecs, 40)])
        #expect(report.skipped == [.smartScan])
        #expect(report.warnings.contains { $0.contains("smart_scan is not supported") })
    }

    @Test func captureAndRestore() async throws {
        let k = FakeKSMKernel()
        let captured = try k.readStatus().tunables
        try await Applier.apply(
            KernelSettings(run: 1, pagesToScan: 5000, sleepMillisecs: 10, mergeAcrossNodes: 0, useZeroPages: 1),
            to: k, logger: log)
        k.merge(shared: 4, sharing: 40)
        #expect(try k.readStatus().tunables != captured)
        try await Applier.restore(captured, to: k, logger: log)
        #expect(try k.readStatus().tunables == captured)
    }

    // MARK: The unmerge's memory guard

    static let gib: Int64 = 1024 * 1024 * 1024
    /// 8 GiB merged (pages_sharing of 4 KiB pages) on a 16 GiB node with `availableGiB` available.
    static func mergedNode(availableGiB: Int64, unmerge: FakeKSMKernel.UnmergeBehaviour = .immediate) throws
        -> FakeKSMKernel
    {
        try FakeKSMKernel.mergedNode(availableGiB: availableGiB, unmerge: unmerge)
    }

    @Test("prune is refused when unmerging 8 GiB would not fit in 1 GiB MemAvailable: no run=2, the numbers in the error")
    func pruneRefusedWithoutMemory() async throws {
        let k = try Self.mergedNode(availableGiB: 1)
        let capture = LogCapture()
        do {
            try await Applier.apply(KernelSettings(run: 2), to: k, logger: capture.logger())
            Issue.record("expected a refusal")
        } catch {
            guard case .unmergeRefused(let s) = error.reason else {
                Issue.record("unexpected \(error)")
                return
            }
            #expect(s.neededBytes == 8 * Self.gib)
            #expect(s.memAvailableBytes == 1 * Self.gib)
            #expect(s.memTotalBytes == 16 * Self.gib)
            #expect(error.isUnmergeNotDone)
            #expect(
                error.description
                    == "unmerging every KSM page (run=2, for prune) would need ~8 GiB, MemAvailable is 1 GiB of 16 GiB and at least 10 % of MemTotal must stay available: not unmerged, KSM is left merged with run 1; free memory or unmerge by hand (echo 2 > /sys/kernel/mm/ksm/run)"
            )
        }
        #expect(k.writes.isEmpty)
        #expect(k.current.run == 1)
        #expect(k.current.pagesSharing == 8 * Self.gib / 4096)
        let logged = capture.messages(containing: "unmerge refused")
        #expect(logged.count == 1)
        #expect(logged.first?.metadata["needed_bytes"] == "\(8 * Self.gib)")
    }

    @Test("prune with enough memory writes run=2 as before")
    func pruneWithEnoughMemory() async throws {
        let k = try Self.mergedNode(availableGiB: 12)  // 12 - 8 = 4 GiB left, above 1.6 GiB
        try await Applier.apply(KernelSettings(run: 2), to: k, logger: log)
        #expect(k.writes == [.init(.run, 2)])
        #expect(k.current.pagesSharing == 0)
    }

    @Test("the margin: unmerging must leave 10 % of MemTotal available")
    func reserveMargin() async throws {
        // 9.5 GiB available - 8 GiB = 1.5 GiB < 1.6 GiB: refused.
        let k = FakeKSMKernel(
            memory: MemorySnapshot(memTotalKB: 16 * 1024 * 1024, memAvailableKB: 9 * 1024 * 1024 + 512 * 1024))
        k.merge(shared: 1, sharing: 8 * Self.gib / 4096)
        await #expect(throws: KSMApplyError.self) {
            try await Applier.apply(KernelSettings(run: 2), to: k, logger: log)
        }
        #expect(k.writes.isEmpty)
        // With a 5 % margin (0.8 GiB) it fits.
        try await Applier.apply(
            KernelSettings(run: 2), to: k, unmergeGuard: UnmergeGuard(reservePercent: 5), logger: log)
        #expect(k.writes == [.init(.run, 2)])
    }

    @Test("a knob change whose unmerge would not fit: the rest is written, run and the knob are left")
    func knobChangeRefusedWithoutMemory() async throws {
        let k = try Self.mergedNode(availableGiB: 1)
        do {
            try await Applier.apply(
                KernelSettings(run: 1, pagesToScan: 200, mergeAcrossNodes: 0), to: k, logger: log)
            Issue.record("expected a refusal")
        } catch {
            guard case .unmergeRefused(let s) = error.reason else {
                Issue.record("unexpected \(error)")
                return
            }
            #expect(s.purpose == "to change merge_across_nodes")
            #expect(error.report.written.map(\.tunable) == [.pagesToScan])
        }
        #expect(k.writes == [.init(.pagesToScan, 200)])
        #expect(k.current.run == 1)
        #expect(k.current.mergeAcrossNodes == 1)
    }

    @Test("a failed unmerge (ENOMEM; the kernel leaves run=0) restores run for a knob change and says so")
    func failedUnmergeRestoresRun() async throws {
        let k = try Self.mergedNode(availableGiB: 12, unmerge: .fails(errno: 12))  // ENOMEM
        do {
            try await Applier.apply(KernelSettings(mergeAcrossNodes: 0), to: k, logger: log)
            Issue.record("expected a failure")
        } catch {
            guard case .unmergeFailed(_, let e, let runLeft, _, let restored, _) = error.reason else {
                Issue.record("unexpected \(error)")
                return
            }
            #expect(e.errnoName == "ENOMEM")
            #expect(runLeft == 0)
            #expect(restored == 1)
            #expect(error.description.hasPrefix("unmerging every KSM page (run=2, to change merge_across_nodes) failed:"))
            #expect(error.description.contains("run restored to 1"))
        }
        #expect(k.refusedWrites == [.init(.run, 2)])
        #expect(k.writes == [.init(.run, 1)])
        #expect(k.current.run == 1)
        #expect(k.current.mergeAcrossNodes == 1)
    }

    @Test("a failed prune leaves the kernel's run=0 and says so")
    func failedPruneSaysWhatIsLeft() async throws {
        let k = try Self.mergedNode(availableGiB: 12, unmerge: .fails(errno: 12))
        do {
            try await Applier.apply(KernelSettings(run: 2), to: k, logger: log)
            Issue.record("expected a failure")
        } catch {
            #expect(error.isUnmergeNotDone)
            #expect(error.description.contains("ENOMEM"))
            #expect(error.description.contains("the kernel left run 0; pages_shared still 1000"))
        }
        #expect(k.current.run == 0)
        #expect(k.writes.isEmpty)
    }

    @Test("held back: no run=2 while something is merged; with nothing merged run=2 costs nothing and is written")
    func heldBack() async throws {
        let k = try Self.mergedNode(availableGiB: 12)
        do {
            try await Applier.apply(
                KernelSettings(run: 2), to: k, unmergeGuard: UnmergeGuard(heldBack: "refused earlier"), logger: log)
            Issue.record("expected a refusal")
        } catch {
            #expect(error.description == "refused earlier")
        }
        #expect(k.writes.isEmpty)

        let empty = FakeKSMKernel()
        try empty.write(.run, 1)
        empty.clearWrites()
        try await Applier.apply(
            KernelSettings(run: 2), to: empty, unmergeGuard: UnmergeGuard(heldBack: "refused earlier"), logger: log)
        #expect(empty.writes == [.init(.run, 2)])
    }
}
