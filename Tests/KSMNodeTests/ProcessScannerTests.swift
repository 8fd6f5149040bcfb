import Foundation
import KSMCore
import KSMNode
import Testing

/// The per-process scan against a fake /proc tree written from fixture text.
@Suite("Process scanner on a /proc tree")
struct ProcessScannerTests {
    final class ProcTree {
        let root: URL
        var proc: String { root.appendingPathComponent("proc").path }
        var thp: String { root.appendingPathComponent("thp-enabled").path }

        init() throws {
            root = FileManager.default.temporaryDirectory.appendingPathComponent("ksmfleet-proc-\(UUID().uuidString)")
            try FileManager.default.createDirectory(atPath: proc, withIntermediateDirectories: true)
            try "always [madvise] never\n".write(toFile: thp, atomically: false, encoding: .utf8)
        }

        func process(
            _ pid: Int, comm: String, cmdline: [String], cgroup: String = "0::/\n", ksmStat: String?,
            smapsRollup: String? = nil
        ) throws {
            let dir = proc + "/\(pid)"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            try (comm + "\n").write(toFile: dir + "/comm", atomically: false, encoding: .utf8)
            try cmdline.map { $0 + "\0" }.joined().write(toFile: dir + "/cmdline", atomically: false, encoding: .utf8)
            try cgroup.write(toFile: dir + "/cgroup", atomically: false, encoding: .utf8)
            if let ksmStat { try ksmStat.write(toFile: dir + "/ksm_stat", atomically: false, encoding: .utf8) }
            if let smapsRollup {
                try smapsRollup.write(toFile: dir + "/smaps_rollup", atomically: false, encoding: .utf8)
            }
        }

        deinit { try? FileManager.default.removeItem(at: root) }
    }

    static func stat(rmap: Int64, merging: Int64, zero: Int64 = 0, mergeable: Bool = true) -> String {
        """
        ksm_rmap_items \(rmap)
        ksm_zero_pages \(zero)
        ksm_merging_pages \(merging)
        ksm_process_profit \((merging + zero) * 4096 - rmap * 64)
        ksm_merge_any: no
        ksm_mergeable: \(mergeable ? "yes" : "no")

        """
    }

    static let idle = stat(rmap: 0, merging: 0, mergeable: false)

    func fleetHost() throws -> ProcTree {
        let t = try ProcTree()
        try t.process(1, comm: "systemd", cmdline: ["/sbin/init"], ksmStat: Self.idle)
        try t.process(
            100, comm: "qemu-system-x86", cmdline: ["/usr/bin/qemu-system-x86_64", "-name", "guest=web-1,debug-threads=on"],
            cgroup: "0::/machine.slice/machine-qemu\\x2d1\\x2dweb\\x2d1.scope/libvirt/emulator\n",
            ksmStat: Self.stat(rmap: 262144, merging: 200000),
            smapsRollup: "Rss: 1048576 kB\nAnonymous: 1048576 kB\nAnonHugePages: 524288 kB\n")
        try t.process(
            101, comm: "qemu-system-x86", cmdline: ["/usr/bin/qemu-system-x86_64", "-name", "guest=db,debug-threads=on"],
            ksmStat: Self.stat(rmap: 262144, merging: 50000, zero: 1000),
            smapsRollup: "Rss: 1048576 kB\nAnonymous: 1048576 kB\nAnonHugePages: 0 kB\n")
        // Two processes of one container add up.
        let docker = "0::/system.slice/docker-feedfacecafebeef0000111122223333444455556666777788889999aaaabbbb.scope\n"
        try t.process(200, comm: "java", cmdline: ["java", "-jar", "a.jar"], cgroup: docker, ksmStat: Self.stat(rmap: 1000, merging: 300))
        try t.process(201, comm: "java", cmdline: ["java", "-jar", "b.jar"], cgroup: docker, ksmStat: Self.stat(rmap: 1000, merging: 200))
        // prctl'd but nothing merged yet: still mergeable.
        try t.process(300, comm: "redis-server", cmdline: ["/usr/bin/redis-server"], ksmStat: Self.stat(rmap: 10, merging: 0))
        // A process that vanished between the listing and the read has no files.
        try FileManager.default.createDirectory(atPath: t.proc + "/400", withIntermediateDirectories: true)
        // Not a process.
        try "MemTotal: 1 kB\n".write(toFile: t.proc + "/meminfo", atomically: false, encoding: .utf8)
        return t
    }

    @Test func groupsAndRanksTheProcessesKSMKnows() throws {
        let t = try fleetHost()
        let scan = ProcessScanner(proc: t.proc, transparentHugePagePath: t.thp).scan()
        let r = scan.report
        #expect(r.perProcessStats)
        #expect(r.processesScanned == 7)
        #expect(r.mergeableProcesses == 5)
        #expect(r.mergingProcesses == 4)
        #expect(r.rmapItems == 262144 * 2 + 2010)
        #expect(r.mergingPages == 250500)
        #expect(!r.truncated)
        #expect(r.transparentHugePages == "madvise")
        #expect(r.anonHugePagesKB == 524288)
        #expect(r.anonymousKB == 2_097_152)
        #expect(r.groups.map(\.key.label) == [
            "vm:web-1", "vm:db", "container:docker:feedfacecafe", "command:redis-server",
        ])
        let container = try #require(r.groups.first { $0.kind == .container })
        #expect(container.processes == 2)
        #expect(container.mergingPages == 500)
        #expect(r.groups[1].mergedBytes(pageSize: 4096) == 51000 * 4096)
        #expect(scan.records.first { $0.pid == 300 }?.command == "redis-server")
    }

    @Test func capsKeepTheLargestAndSayTheyCut() throws {
        let t = try fleetHost()
        let scan = ProcessScanner(proc: t.proc, transparentHugePagePath: t.thp, maxDetailed: 2, maxRollups: 1, top: 1)
            .scan()
        #expect(scan.report.truncated)
        #expect(scan.records.map(\.pid) == [100, 101])
        #expect(scan.report.groups.map(\.name) == ["web-1"])
        #expect(scan.report.anonHugePagesKB == 524288)
        #expect(scan.report.anonymousKB == 1_048_576)
    }

    @Test func aKernelWithoutKsmStatReportsNoPerProcessFigures() throws {
        let t = try ProcTree()
        try t.process(1, comm: "init", cmdline: ["/sbin/init"], ksmStat: nil)
        let r = ProcessScanner(proc: t.proc, transparentHugePagePath: t.thp).scan().report
        #expect(!r.perProcessStats)
        #expect(r.groups.isEmpty)
    }

    @Test func a519KernelsLoneMergingPagesFileCounts() throws {
        let t = try ProcTree()
        try t.process(7, comm: "qemu-kvm", cmdline: ["qemu-kvm", "-name", "old"], ksmStat: nil)
        try "42\n".write(toFile: t.proc + "/7/ksm_merging_pages", atomically: false, encoding: .utf8)
        let r = ProcessScanner(proc: t.proc, transparentHugePagePath: t.thp).scan().report
        #expect(r.perProcessStats)
        #expect(r.groups == [
            ProcessGroupSavings(kind: .vm, name: "old", processes: 1, mergingPages: 42, zeroPages: 0, rmapItems: 0, profitBytes: nil)
        ])
    }
}
