import Foundation
import Glibc
import KSMCore
import KSMNode
import TestSupport
import Testing

/// LinuxKSMKernel against a fake sysfs/procfs tree in a temporary directory.
@Suite("LinuxKSMKernel on a directory tree")
struct LinuxKernelTreeTests {
    final class Tree {
        let root: URL
        var ksm: String { root.appendingPathComponent("ksm").path }
        var proc: String { root.appendingPathComponent("proc").path }

        init(files: [String: String]) throws {
            root = FileManager.default.temporaryDirectory.appendingPathComponent("ksmfleet-tree-\(UUID().uuidString)")
            try FileManager.default.createDirectory(
                atPath: root.appendingPathComponent("ksm").path, withIntermediateDirectories: true)
            try FileManager.default.createDirectory(
                atPath: root.appendingPathComponent("proc").path, withIntermediateDirectories: true)
            for (name, content) in files { try set(name, content) }
        }

        func set(_ name: String, _ content: String) throws {
            try content.write(toFile: ksm + "/" + name, atomically: false, encoding: .utf8)
        }

        func get(_ name: String) throws -> String {
            try String(contentsOfFile: ksm + "/" + name, encoding: .utf8)
        }

        func proc(_ relative: String, _ content: String) throws {
            let path = proc + "/" + relative
            try FileManager.default.createDirectory(
                atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try content.write(toFile: path, atomically: false, encoding: .utf8)
        }

        deinit { try? FileManager.default.removeItem(at: root) }
    }

    static let modernFiles: [String: String] = [
        "run": "1\n", "pages_to_scan": "100\n", "sleep_millisecs": "20\n", "pages_shared": "16\n",
        "pages_sharing": "4080\n", "pages_unshared": "12\n", "pages_volatile": "3\n", "full_scans": "7\n",
        "merge_across_nodes": "1\n", "max_page_sharing": "256\n", "stable_node_chains": "0\n",
        "stable_node_dups": "0\n", "use_zero_pages": "0\n", "ksm_zero_pages": "5\n", "general_profit": "16551936\n",
        "pages_scanned": "123456\n", "pages_skipped": "42\n", "smart_scan": "1\n",
        "advisor_mode": "[none] scan-time\n", "advisor_max_cpu": "70\n", "advisor_target_scan_time": "200\n",
        "advisor_min_pages_to_scan": "500\n", "advisor_max_pages_to_scan": "30000\n",
    ]

    @Test func readsEveryFileThatExists() throws {
        let t = try Tree(files: Self.modernFiles)
        let k = LinuxKSMKernel(root: t.ksm, proc: t.proc)
        let s = try k.readStatus()
        #expect(s.run == 1)
        #expect(s.pagesShared == 16)
        #expect(s.pagesSharing == 4080)
        #expect(s.pagesUnshared == 12)
        #expect(s.pagesVolatile == 3)
        #expect(s.fullScans == 7)
        #expect(s.maxPageSharing == 256)
        #expect(s.ksmZeroPages == 5)
        #expect(s.generalProfit == 16_551_936)
        #expect(s.pagesScanned == 123_456)
        #expect(s.pagesSkipped == 42)
        #expect(s.smartScan == 1)
        #expect(s.advisorMode == "none")
        #expect(s.advisorMaxCPU == 70)
        #expect(s.advisorTargetScanTime == 200)
        #expect(s.advisorMinPagesToScan == 500)
        #expect(s.advisorMaxPagesToScan == 30000)
        #expect(try k.features().contains("advisor_max_cpu"))
    }

    @Test func aMissingOptionalFileIsAnAbsentFeature() throws {
        var files = Self.modernFiles
        for name in [
            "general_profit", "advisor_mode", "advisor_max_cpu", "smart_scan", "ksm_zero_pages", "max_page_sharing",
        ] {
            files[name] = nil
        }
        let t = try Tree(files: files)
        let k = LinuxKSMKernel(root: t.ksm, proc: t.proc)
        let s = try k.readStatus()
        #expect(s.generalProfit == nil)
        #expect(s.advisorMode == nil)
        #expect(s.advisorMaxCPU == nil)
        #expect(s.smartScan == nil)
        #expect(s.ksmZeroPages == nil)
        #expect(s.maxPageSharing == nil)
        #expect(s.mergeAcrossNodes == 1)
        #expect(!(try k.features()).contains("general_profit"))
        #expect(!k.hasFeature("smart_scan"))
        #expect(k.hasFeature("run"))
    }

    @Test func aMissingRequiredFileMeansNoKSM() throws {
        var files = Self.modernFiles
        files["pages_sharing"] = nil
        let t = try Tree(files: files)
        do {
            _ = try LinuxKSMKernel(root: t.ksm, proc: t.proc).readStatus()
            Issue.record("expected an error")
        } catch {
            #expect(error.isNotFound)
            #expect(error.path.hasSuffix("/pages_sharing"))
        }
    }

    @Test func noKSMDirectoryAtAll() {
        do {
            _ = try LinuxKSMKernel(root: "/nonexistent/ksm", proc: "/proc").readStatus()
            Issue.record("expected an error")
        } catch {
            #expect(error.isNotFound)
            #expect(error.description.contains("/nonexistent/ksm"))
            #expect(error.description.contains("ENOENT"))
        }
    }

    @Test func garbageInAFileIsAnError() throws {
        var files = Self.modernFiles
        files["full_scans"] = "lots\n"
        let t = try Tree(files: files)
        do {
            _ = try LinuxKSMKernel(root: t.ksm, proc: t.proc).readStatus()
            Issue.record("expected an error")
        } catch {
            #expect(error.description.contains("full_scans"))
            #expect(error.description.contains("lots"))
        }
    }

    @Test func writesGoToTheFile() throws {
        let t = try Tree(files: Self.modernFiles)
        let k = LinuxKSMKernel(root: t.ksm, proc: t.proc)
        try k.write(.pagesToScan, 5000)
        #expect(try t.get("pages_to_scan").trimmingCharacters(in: .whitespacesAndNewlines) == "5000")
        #expect(try k.readStatus().pagesToScan == 5000)
    }

    @Test func writingAFileThatDoesNotExistIsENOENT() throws {
        var files = Self.modernFiles
        files["smart_scan"] = nil
        let t = try Tree(files: files)
        do {
            try LinuxKSMKernel(root: t.ksm, proc: t.proc).write(.smartScan, 1)
            Issue.record("expected ENOENT")
        } catch {
            #expect(error.isNotFound)
            #expect(error.description == "write 1 to \(t.ksm)/smart_scan: ENOENT (No such file or directory)")
        }
    }

    @Test func applierAgainstTheTree() async throws {
        let t = try Tree(files: Self.modernFiles.merging(["pages_shared": "0\n", "run": "0\n"]) { $1 })
        let k = LinuxKSMKernel(root: t.ksm, proc: t.proc)
        let report = try await Applier.apply(
            KernelSettings(run: 1, pagesToScan: 300, sleepMillisecs: 20, mergeAcrossNodes: 1), to: k,
            logger: quietLogger())
        #expect(report.written.map(\.tunable) == [.pagesToScan, .run])
        #expect(try t.get("run").hasPrefix("1"))
    }

    @Test func meminfoAndKsmdFromProc() throws {
        let t = try Tree(files: Self.modernFiles)
        try t.proc(
            "meminfo",
            """
            MemTotal:       24576000 kB
            MemFree:         1000000 kB
            MemAvailable:   20000000 kB
            Buffers:           50000 kB
            Cached:           700000 kB
            SwapCached:            0 kB
            AnonPages:       2000000 kB

            """)
        try t.proc("1/comm", "systemd\n")
        try t.proc("1/stat", "1 (systemd) S 0 1 1 0 -1 4194560 1 2 3 4 500 600 0 0 20 0 1 0 5 0\n")
        try t.proc("37/comm", "ksmd\n")
        try t.proc("37/stat", "37 (ksmd) S 2 0 0 0 -1 2129984 0 0 0 0 120 30 0 0 25 5 1 0 20 0 0\n")
        try t.proc("self/comm", "x\n")
        let k = LinuxKSMKernel(root: t.ksm, proc: t.proc)
        let m = try k.readMemory()
        #expect(m.memTotalKB == 24_576_000)
        #expect(m.memAvailableKB == 20_000_000)
        #expect(m.anonPagesKB == 2_000_000)
        #expect(m.cachedKB == 700_000)
        #expect(try k.findKsmd() == 37)
        #expect(try k.ksmdCPUTicks() == 150)
        // ksmd moves on, then is gone.
        try t.proc("37/stat", "37 (ksmd) S 2 0 0 0 -1 2129984 0 0 0 0 220 40 0 0 25 5 1 0 20 0 0\n")
        #expect(try k.ksmdCPUTicks() == 260)
        try FileManager.default.removeItem(atPath: t.proc + "/37")
        #expect(try k.ksmdCPUTicks() == nil)
        // ...and comes back under a new pid: found again.
        try t.proc("99/comm", "ksmd\n")
        try t.proc("99/stat", "99 (ksmd) S 2 0 0 0 -1 2129984 0 0 0 0 1 2 0 0 25 5 1 0 20 0 0\n")
        #expect(try k.ksmdCPUTicks() == 3)
    }

    @Test func pageSizeAndClockTicksComeFromSysconf() {
        let k = LinuxKSMKernel()
        #expect(k.pageSize == Int(sysconf(Int32(_SC_PAGESIZE))))
        #expect(k.clockTicksPerSecond == Int(sysconf(Int32(_SC_CLK_TCK))))
        #expect(k.pageSize >= 4096)
    }

    @Test func hostInfo() throws {
        let t = try Tree(files: [:])
        for d in ["node0", "node1", "node12", "nodes", "possible", "online"] {
            try FileManager.default.createDirectory(
                atPath: t.root.path + "/node/" + d, withIntermediateDirectories: true)
        }
        #expect(HostInfo.numaNodeCount(root: t.root.path + "/node") == 3)
        #expect(HostInfo.numaNodeCount(root: "/nonexistent") == 1)
        try t.proc("machine-id", "3d1219c7c4c5404aaa1f6d2a48adfda4\n")
        #expect(
            HostInfo.machineId(paths: ["/nonexistent", t.proc + "/machine-id"]) == "3d1219c7c4c5404aaa1f6d2a48adfda4")
        #expect(!HostInfo.kernelRelease().isEmpty)
        #expect(!HostInfo.hostname().isEmpty)
        #expect(HostInfo.current().numaNodes >= 1)
    }
}
