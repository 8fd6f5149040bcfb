import Glibc
import KSMCore
import KSMNode
import TestSupport
import Testing

@Suite("FakeKSMKernel follows the kernel's rules")
struct FakeKernelTests {
    @Test func mergeAcrossNodesIsBusyWhilePagesAreShared() throws {
        let k = FakeKSMKernel()
        k.merge(shared: 10, sharing: 500)
        #expect(throws: KSMKernelError.self) { try k.write(.mergeAcrossNodes, 0) }
        do {
            try k.write(.mergeAcrossNodes, 0)
        } catch {
            #expect(error.isBusy)
            #expect(error.errnoName == "EBUSY")
            #expect(error.description.contains("/sys/kernel/mm/ksm/merge_across_nodes"))
            #expect(error.description.contains("EBUSY"))
        }
        // The same value is accepted (the kernel compares before checking pages_shared).
        try k.write(.mergeAcrossNodes, 1)
        try k.write(.run, 2)
        try k.write(.mergeAcrossNodes, 0)
        #expect(k.current.mergeAcrossNodes == 0)
    }

    @Test func maxPageSharingIsBusyWhileSharedAndInvalidBelowTwo() throws {
        let k = FakeKSMKernel()
        k.merge(shared: 1, sharing: 2)
        do {
            try k.write(.maxPageSharing, 512)
            Issue.record("expected EBUSY")
        } catch { #expect(error.isBusy) }
        try k.write(.run, 2)
        do {
            try k.write(.maxPageSharing, 1)
            Issue.record("expected EINVAL")
        } catch { #expect(error.isInvalid) }
        try k.write(.maxPageSharing, 512)
        #expect(k.current.maxPageSharing == 512)
    }

    @Test func pagesToScanIsInvalidWhileTheAdvisorRuns() throws {
        let k = FakeKSMKernel()
        k.update { $0.advisorMode = "scan-time" }
        do {
            try k.write(.pagesToScan, 500)
            Issue.record("expected EINVAL")
        } catch {
            #expect(error.isInvalid)
            #expect(error.errno == EINVAL)
        }
        k.update { $0.advisorMode = "none" }
        try k.write(.pagesToScan, 500)
        #expect(k.current.pagesToScan == 500)
    }

    @Test(arguments: [
        (KSMTunable.run, 3), (.run, -1), (.mergeAcrossNodes, 2), (.useZeroPages, 2), (.smartScan, 5),
        (.pagesToScan, -5), (.sleepMillisecs, Int(UInt32.max) + 1),
    ])
    func outOfRangeValuesAreInvalid(tunable: KSMTunable, value: Int) {
        let k = FakeKSMKernel()
        do {
            try k.write(tunable, value)
            Issue.record("expected EINVAL for \(tunable.fileName)=\(value)")
        } catch {
            #expect(error.isInvalid)
        }
        #expect(k.writes.isEmpty)
    }

    @Test func runTwoUnmergesEverything() throws {
        let k = FakeKSMKernel()
        try k.write(.run, 1)
        k.merge(shared: 16, sharing: 4080)
        k.update { $0.ksmZeroPages = 7 }
        try k.write(.run, 2)
        let s = try k.readStatus()
        #expect(s.run == 2)
        #expect(s.pagesShared == 0)
        #expect(s.pagesSharing == 0)
        #expect(s.ksmZeroPages == 0)
    }

    @Test func runZeroKeepsMergedPages() throws {
        let k = FakeKSMKernel()
        try k.write(.run, 1)
        k.merge(shared: 16, sharing: 4080)
        try k.write(.run, 0)
        #expect(try k.readStatus().pagesSharing == 4080)
    }

    @Test func gradualUnmergeDropsOverReads() throws {
        let k = FakeKSMKernel(unmerge: .gradual(perRead: 5))
        k.merge(shared: 12, sharing: 120)
        try k.write(.run, 2)
        #expect(try k.readStatus().pagesShared == 7)
        #expect(try k.readStatus().pagesShared == 2)
        let last = try k.readStatus()
        #expect(last.pagesShared == 0)
        #expect(last.pagesSharing == 0)
    }

    @Test func anOldKernelLacksTheNewFiles() throws {
        let k = FakeKSMKernel(features: FakeKSMKernel.Features.legacy)
        let s = try k.readStatus()
        #expect(s.generalProfit == nil)
        #expect(s.advisorMode == nil)
        #expect(s.smartScan == nil)
        #expect(s.ksmZeroPages == nil)
        #expect(s.mergeAcrossNodes == 1)
        #expect(!(try k.features()).contains("general_profit"))
        do {
            try k.write(.smartScan, 1)
            Issue.record("expected ENOENT")
        } catch {
            #expect(error.isNotFound)
        }
    }

    @Test func injectedFailuresCarryTheErrno() {
        let k = FakeKSMKernel()
        k.failWrites(of: .sleepMillisecs, errno: EACCES)
        do {
            try k.write(.sleepMillisecs, 30)
            Issue.record("expected EACCES")
        } catch {
            #expect(error.isPermissionDenied)
            #expect(error.description.contains("EACCES"))
            #expect(error.description.contains("sleep_millisecs"))
        }
    }
}
