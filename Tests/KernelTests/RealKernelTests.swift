import FleetAgent
import Foundation
import KSMCore
import KSMNode
import TestSupport
import Synchronization
import Testing

/// The engine on the real kernel with a test-owned buffer of identical MADV_MERGEABLE pages.
@Suite("Real kernel: NodeEngine", .serialized)
struct RealKernelTests {
    static let pages = 4096
    /// A GiB of 4 KiB pages: unmerging it takes the kernel about 0.6 s here.
    static let gibPages = 262_144
    /// Merges a GiB within seconds.
    static let fastGiBMerge = KSMConfig(
        run: .run, mode: .customized, thresCoef: 100,
        parameters: TunerParameters(boost: 0, decay: 0, minPages: 20000, maxPages: 20000, sleepMsec: 1))

    @Test func runMergesTheTestPages() async throws {
        try await withRealKSM { _ in
            let baseline = try realStatus().pagesSharing
            let buffer = try MergeableBuffer(pages: Self.pages)
            let engine = try NodeEngine(kernel: LinuxKSMKernel(), logger: quietLogger())
            let outcome = await engine.setConfig(fastMerge, generation: 1)
            #expect(outcome.applyError == nil)
            #expect(outcome.decision.phase == .running)
            let s = try realStatus()
            #expect(s.run == 1)
            #expect(s.pagesToScan == 5000)
            let merged = await waitForMerge(above: baseline, pages: Int64(Self.pages / 2))
            #expect(merged, "pages_sharing did not grow by \(Self.pages / 2) within 20 s: \(statusText())")
            let snap = try await engine.snapshot()
            #expect(snap.savedBytes >= Int64(Self.pages / 2) * Int64(snap.pageSize))
            _ = buffer.checksum()
        }
    }

    /// Every file of the KSM directory that the status carries is read, advisor settings included
    /// (on kernels that have them; the field is nil where the file is missing).
    @Test func theStatusCarriesTheAdvisorSettingsTheKernelHas() async throws {
        try await withRealKSM { _ in
            let s = try realStatus()
            func file(_ name: String) -> Int64? {
                (try? String(contentsOfFile: "/sys/kernel/mm/ksm/" + name, encoding: .utf8))
                    .flatMap { Int64($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
            }
            #expect(s.advisorTargetScanTime == file("advisor_target_scan_time"))
            #expect(s.advisorMinPagesToScan == file("advisor_min_pages_to_scan"))
            #expect(s.advisorMaxPagesToScan == file("advisor_max_pages_to_scan"))
            #expect(s.advisorMaxCPU == file("advisor_max_cpu"))
            #expect(s.pagesToScan == Int(file("pages_to_scan") ?? -1))
        }
    }

    @Test func stopKeepsTheMergedPages() async throws {
        try await withRealKSM { _ in
            let baseline = try realStatus().pagesSharing
            let buffer = try MergeableBuffer(pages: Self.pages)
            let engine = try NodeEngine(kernel: LinuxKSMKernel(), logger: quietLogger())
            await engine.setConfig(fastMerge, generation: 1)
            #expect(await waitForMerge(above: baseline, pages: Int64(Self.pages / 2)))
            var stop = fastMerge
            stop.run = .stop
            let outcome = await engine.setConfig(stop, generation: 2)
            #expect(outcome.applyError == nil)
            #expect(outcome.decision.phase == .stopped)
            try await Task.sleep(for: .milliseconds(500))
            let s = try realStatus()
            #expect(s.run == 0)
            #expect(s.pagesSharing >= baseline + Int64(Self.pages / 2), "stop must keep merged pages: \(s)")
            _ = buffer.checksum()
        }
    }

    @Test func pruneUnmergesEverything() async throws {
        try await withRealKSM { _ in
            let baseline = try realStatus().pagesSharing
            let buffer = try MergeableBuffer(pages: Self.pages)
            let engine = try NodeEngine(kernel: LinuxKSMKernel(), logger: quietLogger())
            await engine.setConfig(fastMerge, generation: 1)
            #expect(await waitForMerge(above: baseline, pages: Int64(Self.pages / 2)))
            var prune = fastMerge
            prune.run = .prune
            let outcome = await engine.setConfig(prune, generation: 2)
            #expect(outcome.applyError == nil)
            #expect(outcome.decision.phase == .pruned)
            let unmerged = await waitUntil(timeout: .seconds(10)) { (try? realStatus().pagesShared) == 0 }
            #expect(unmerged, "pages_shared not 0 after prune: \(statusText())")
            #expect(try realStatus().run == 2)
            _ = buffer.checksum()
        }
    }

    /// A GiB of identical pages (the caller keeps the buffer) merged by `engine` (generation 1).
    static func mergeAGiB(_ engine: NodeEngine) async throws -> MergeableBuffer {
        let baseline = try realStatus().pagesSharing
        let buffer = try MergeableBuffer(pages: gibPages)
        await engine.setConfig(fastGiBMerge, generation: 1)
        #expect(
            await waitForMerge(above: baseline, pages: Int64(gibPages * 9 / 10), timeout: .seconds(60)),
            "the GiB did not merge: \(statusText())")
        return buffer
    }

    /// Linux unmerges inside the write of run=2 (0.6 s a GiB here): the agent writes it on a
    /// thread of its own, so samples go on meanwhile and show the unmerge progressing.
    @Test func samplesGoOnWhileAGiBIsUnmerged() async throws {
        try await withRealKSM { _ in
            let engine = try NodeEngine(kernel: LinuxKSMKernel(), logger: quietLogger())
            let buffer = try await Self.mergeAGiB(engine)
            let merged = try realStatus().pagesSharing
            let finished = Mutex(false)
            let prune = Task {
                let outcome = await engine.setConfig(KSMConfig(run: .prune), generation: 2)
                finished.withLock { $0 = true }
                return outcome
            }
            var during: EngineSnapshot?
            var pruneDoneThen = true
            let clock = ContinuousClock()
            let end = clock.now + .seconds(30)
            while clock.now < end {
                let doneBefore = finished.withLock { $0 }
                let s = try await engine.snapshot()
                if s.phaseReason.contains("the kernel is unmerging"), s.status.run == 2 {
                    pruneDoneThen = doneBefore
                    during = s
                    break
                }
                try await Task.sleep(for: .milliseconds(2))
            }
            let outcome = await prune.value
            let seen = try #require(during, "no sample taken while the kernel unmerged \(merged) pages")
            #expect(seen.status.run == 2)
            #expect(seen.phase == .pruned)
            #expect(!pruneDoneThen, "the sample came after the prune's apply, not during it")
            #expect(seen.appliedGeneration == 1)
            #expect(outcome.applyError == nil)
            #expect(outcome.appliedGeneration == 2)
            #expect(try realStatus().pagesShared == 0)
            _ = buffer.checksum()
        }
    }

    /// A config that arrives while the kernel unmerges (README: "a config or a kick that arrives
    /// meanwhile is applied once the unmerge is done") waits for its turn, then is applied with
    /// its own generation; the prune keeps its own.
    @Test func aConfigArrivingDuringTheUnmergeIsAppliedAfterIt() async throws {
        try await withRealKSM { _ in
            let engine = try NodeEngine(kernel: LinuxKSMKernel(), logger: quietLogger())
            let buffer = try await Self.mergeAGiB(engine)
            let prune = Task { await engine.setConfig(KSMConfig(run: .prune), generation: 2) }
            let unmerging = await waitUntil(timeout: .seconds(30), poll: .milliseconds(2)) {
                (try? await engine.snapshot().phaseReason.contains("the kernel is unmerging")) ?? false
            }
            #expect(unmerging, "no sample said the kernel was unmerging: \(statusText())")
            var next = Self.fastGiBMerge
            next.parameters = TunerParameters(boost: 0, decay: 0, minPages: 30000, maxPages: 30000, sleepMsec: 1)
            let outcome = await engine.setConfig(next, generation: 3)
            let pruneOutcome = await prune.value
            #expect(pruneOutcome.applyError == nil)
            #expect(pruneOutcome.appliedGeneration == 2)
            // Generation 3 last: applied beside the unmerge, the prune's end would have left run 2.
            #expect(outcome.applyError == nil)
            #expect(outcome.appliedGeneration == 3)
            #expect(outcome.decision.phase == .running)
            let s = try realStatus()
            #expect(s.run == 1)
            #expect(s.pagesToScan == 30000)
            #expect(try await engine.snapshot().appliedGeneration == 3)
            _ = buffer.checksum()
        }
    }

    /// An unmerge longer than --unmerge-timeout is interrupted (a signal to the writing thread;
    /// the kernel leaves run=0 with the rest still merged): run is put back and the knob is not
    /// written. On the real kernel the write of run=2 was the whole wait, so the timeout could
    /// not act before.
    @Test func anUnmergeLongerThanTheTimeoutIsInterrupted() async throws {
        try await withRealKSM { _ in
            guard let original = try realStatus().maxPageSharing else {
                print("⚠️  SKIPPED: this kernel has no max_page_sharing")
                try Test.cancel("this kernel has no max_page_sharing")
            }
            let baseline = try realStatus().pagesSharing
            let engine = try NodeEngine(
                kernel: LinuxKSMKernel(), logger: quietLogger(), unmergeTimeout: .milliseconds(100))
            let buffer = try await Self.mergeAGiB(engine)
            var changed = Self.fastGiBMerge
            changed.maxPageSharing = original == 256 ? 512 : 256
            let outcome = await engine.setConfig(changed, generation: 2)
            let error = try #require(outcome.applyError)
            #expect(error.hasPrefix("max_page_sharing change timed out after 0.1 s: pages_shared still "), "\(error)")
            #expect(error.contains("; run restored to 1; the agent tries again after 5 min"), "\(error)")
            #expect(outcome.appliedGeneration == 1)
            let s = try realStatus()
            #expect(s.run == 1)
            #expect(s.maxPageSharing == original)
            #expect(s.pagesSharing > baseline, "everything was unmerged: the interrupt did not act (\(s))")
            _ = buffer.checksum()
        }
    }

    @Test func mergeAcrossNodesChangesWhilePagesAreMerged() async throws {
        try await withRealKSM { snapshot in
            guard let original = try realStatus().mergeAcrossNodes else {
                print("⚠️  SKIPPED: this kernel has no merge_across_nodes (no NUMA support)")
                try Test.cancel("this kernel has no merge_across_nodes")
            }
            let baseline = try realStatus().pagesSharing
            let buffer = try MergeableBuffer(pages: Self.pages)
            let engine = try NodeEngine(kernel: LinuxKSMKernel(), logger: quietLogger())
            await engine.setConfig(fastMerge, generation: 1)
            #expect(await waitForMerge(above: baseline, pages: Int64(Self.pages / 2)))

            var flipped = fastMerge
            flipped.mergeAcrossNodes = 1 - original
            let outcome = await engine.setConfig(flipped, generation: 2)
            #expect(outcome.applyError == nil)
            #expect(outcome.appliedGeneration == 2)
            #expect(outcome.report?.unmerged == true)
            var s = try realStatus()
            #expect(s.mergeAcrossNodes == 1 - original)
            #expect(s.run == 1, "run must be restored after the unmerge")

            // And back, again through the protocol once ksmd merged the pages again.
            #expect(await waitForMerge(above: baseline, pages: Int64(Self.pages / 2)))
            var back = fastMerge
            back.mergeAcrossNodes = original
            let restored = await engine.setConfig(back, generation: 3)
            #expect(restored.applyError == nil)
            s = try realStatus()
            #expect(s.mergeAcrossNodes == original)
            #expect(s.run == 1)
            #expect(snapshot.settings.mergeAcrossNodes == original)
            _ = buffer.checksum()
        }
    }

    @Test func ksmdUsesCPUWhileScanning() async throws {
        try await withRealKSM { _ in
            let buffer = try MergeableBuffer(pages: 16384)
            let kernel = LinuxKSMKernel()
            #expect(try kernel.ksmdCPUTicks() != nil, "no ksmd thread found in /proc")
            let engine = try NodeEngine(kernel: kernel, logger: quietLogger())
            await engine.setConfig(fastMerge, generation: 1)
            _ = try await engine.snapshot()
            var last: Double?
            let busy = await waitUntil(timeout: .seconds(15), poll: .seconds(1)) {
                last = try? await engine.snapshot().ksmdCPUPercent
                return (last ?? 0) > 0
            }
            #expect(busy, "ksmd CPU % stayed at \(String(describing: last))")
            _ = buffer.checksum()
        }
    }

    @Test func restoreInitialPutsBackWhatWasCaptured() async throws {
        try await withRealKSM { snapshot in
            let engine = try NodeEngine(kernel: LinuxKSMKernel(), logger: quietLogger())
            #expect(engine.initialSettings == snapshot.settings)
            await engine.setConfig(fastMerge, generation: 1)
            #expect(try realStatus().tunables != snapshot.settings)
            try await engine.restoreInitial()
            #expect(try snapshot.matchesKernel())
        }
    }
}
