import Foundation
import KSMCore
import KSMNode
import TestSupport
import Testing

/// Per-process attribution on the real kernel: the test's own process madvises duplicate pages,
/// KSM runs fast, and the scan of /proc finds it, names it and ranks it.
@Suite("Real kernel: per-process attribution", .serialized)
struct ProcessAttributionTests {
    static let pages = 4096

    @Test func theScanNamesTheTestsOwnProcess() async throws {
        guard FileManager.default.fileExists(atPath: "/proc/self/ksm_stat") else {
            try Test.cancel("this kernel has no /proc/PID/ksm_stat (added in 6.1)")
        }
        try await withRealKSM { _ in
            let kernel = LinuxKSMKernel()
            let buffer = try MergeableBuffer(pages: Self.pages)
            try kernel.write(.pagesToScan, 5000)
            try kernel.write(.sleepMillisecs, 10)
            try kernel.write(.run, 1)
            let pid = getpid()
            let scanner = ProcessScanner()
            // Scans read /proc synchronously: off the cooperative pool, which the other suites share.
            let merged = await waitUntil(timeout: .seconds(20), poll: .milliseconds(200)) {
                let scan = try? await offPool { scanner.scan() }
                return (scan?.records.first { $0.pid == pid }?.stat.mergingPages ?? 0) >= Int64(Self.pages / 2)
            }
            let scan = try await offPool { scanner.scan() }
            let mine = try #require(
                scan.records.first { $0.pid == pid },
                "the scan did not list this process (\(pid)) among \(scan.records.count) with KSM pages")
            #expect(merged, "ksm_merging_pages of this process stayed below \(Self.pages / 2): \(mine.stat)")
            #expect(mine.stat.mergeable)
            #expect(mine.stat.rmapItems >= Int64(Self.pages))
            // Named by its command: the test runner's comm.
            let comm = try String(contentsOfFile: "/proc/self/comm", encoding: .utf8)
                .trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(mine.command == comm)
            let cgroup = (try? String(contentsOfFile: "/proc/self/cgroup", encoding: .utf8))
                .flatMap(ProcessGrouping.cgroupPath)
            let expected =
                cgroup.flatMap(ProcessGrouping.group(cgroup:)) ?? ProcessGroupKey(kind: .command, name: comm)
            #expect(mine.group == expected)
            // And its group is in the report, with at least this process's merged pages.
            let group = try #require(scan.report.groups.first { $0.key == mine.group }, "\(scan.report.groups)")
            #expect(group.mergingPages >= mine.stat.mergingPages)
            #expect(scan.report.perProcessStats)
            #expect(scan.report.mergeableProcesses >= 1)
            _ = buffer.checksum()
        }
    }

    /// The cost the agent pays per scan on this machine (printed for docs, bounded loosely so a
    /// pathological regression fails).
    @Test func aScanOfEveryProcessIsCheap() async throws {
        let scanner = ProcessScanner()
        let runs = 20
        let (scanned, each) = try await offPool { () -> (Int, Duration) in
            _ = scanner.scan()
            let clock = ContinuousClock()
            let start = clock.now
            var scanned = 0
            for _ in 0..<runs { scanned = scanner.scan().report.processesScanned }
            return (scanned, (clock.now - start) / runs)
        }
        print("process scan: \(scanned) processes in \(each) per scan (mean of \(runs))")
        #expect(scanned > 0)
        #expect(each < .milliseconds(250))
    }
}
