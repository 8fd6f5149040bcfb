import KSMCore
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// The running kernel: `/sys/kernel/mm/ksm` and `/proc`. Both roots are parameters so tests can
/// point it at a fake directory tree.
public final class LinuxKSMKernel: KSMKernel {
    public let root: String
    public let proc: String
    public let pageSize: Int
    public let clockTicksPerSecond: Int
    /// ksmd's pid, found once and looked up again when it disappears.
    private let ksmdPID = Mutex<Int32?>(nil)

    public init(root: String = "/sys/kernel/mm/ksm", proc: String = "/proc") {
        self.root = root
        self.proc = proc
        let page = sysconf(Int32(_SC_PAGESIZE))
        self.pageSize = page > 0 ? Int(page) : 4096
        let ticks = sysconf(Int32(_SC_CLK_TCK))
        self.clockTicksPerSecond = ticks > 0 ? Int(ticks) : 100
    }

    func path(_ name: String) -> String { root + "/" + name }

    public func features() throws(KSMKernelError) -> [String] {
        let names: [String]
        do {
            names = try FileIO.list(root)
        } catch {
            var e = error
            if e.isNotFound { e.detail = "no KSM directory here (a kernel without CONFIG_KSM, or the wrong --sysfs)" }
            throw e
        }
        let present = Set(names)
        return KSMFiles.all.filter { present.contains($0) }.sorted()
    }

    public func readStatus() throws(KSMKernelError) -> KSMStatus {
        let present = Set(try features())
        for name in KSMFiles.required where !present.contains(name) {
            throw KSMKernelError(
                path: path(name), operation: .read, errno: ENOENT,
                detail: "this kernel has no KSM (or \(root) is not its KSM directory)")
        }
        func int64(_ name: String) throws(KSMKernelError) -> Int64? {
            guard present.contains(name) else { return nil }
            let text = try FileIO.read(path(name))
            guard let v = ProcParsing.integer(text) else {
                throw KSMKernelError(
                    path: path(name), operation: .read, errno: 0, detail: "not an integer: '\(text.trimmed)'")
            }
            return v
        }
        func int(_ name: String) throws(KSMKernelError) -> Int? { try int64(name).map { Int($0) } }
        func required(_ name: String) throws(KSMKernelError) -> Int64 { try int64(name) ?? 0 }

        var s = KSMStatus()
        s.run = Int(try required("run"))
        s.pagesToScan = Int(try required("pages_to_scan"))
        s.sleepMillisecs = Int(try required("sleep_millisecs"))
        s.pagesShared = try required("pages_shared")
        s.pagesSharing = try required("pages_sharing")
        s.pagesUnshared = try required("pages_unshared")
        s.pagesVolatile = try required("pages_volatile")
        s.fullScans = try required("full_scans")
        s.mergeAcrossNodes = try int("merge_across_nodes")
        s.maxPageSharing = try int("max_page_sharing")
        s.stableNodeChains = try int64("stable_node_chains")
        s.stableNodeDups = try int64("stable_node_dups")
        s.useZeroPages = try int("use_zero_pages")
        s.ksmZeroPages = try int64("ksm_zero_pages")
        s.generalProfit = try int64("general_profit")
        s.pagesScanned = try int64("pages_scanned")
        s.pagesSkipped = try int64("pages_skipped")
        s.smartScan = try int("smart_scan")
        if present.contains("advisor_mode") {
            s.advisorMode = ProcParsing.selectedChoice(try FileIO.read(path("advisor_mode")))
        }
        s.advisorTargetScanTime = try int64("advisor_target_scan_time")
        s.advisorMinPagesToScan = try int64("advisor_min_pages_to_scan")
        s.advisorMaxPagesToScan = try int64("advisor_max_pages_to_scan")
        s.advisorMaxCPU = try int64("advisor_max_cpu")
        return s
    }

    public func write(_ tunable: KSMTunable, _ value: Int) throws(KSMKernelError) {
        try FileIO.write(path(tunable.fileName), String(value))
    }

    public func writeUnmerge() throws(KSMKernelError) {
        try FileIO.write(path(KSMTunable.run.fileName), "2", retryInterrupted: false)
    }

    /// Writes any KSM file as text (e.g. `advisor_mode`), for tools and tests.
    public func writeRaw(_ name: String, _ text: String) throws(KSMKernelError) {
        try FileIO.write(path(name), text)
    }

    /// Reads any KSM file's trimmed text, nil when the file is absent.
    public func readRaw(_ name: String) throws(KSMKernelError) -> String? {
        guard FileIO.exists(path(name)) else { return nil }
        return try FileIO.read(path(name)).trimmed
    }

    public func bootID() -> String? {
        guard let id = (try? FileIO.read(proc + "/sys/kernel/random/boot_id"))?.trimmed, !id.isEmpty else { return nil }
        return id
    }

    public func readMemory() throws(KSMKernelError) -> MemorySnapshot {
        let file = proc + "/meminfo"
        let text = try FileIO.read(file)
        guard let m = ProcParsing.meminfo(text) else {
            throw KSMKernelError(path: file, operation: .read, errno: 0, detail: "no MemTotal line")
        }
        return m
    }

    public func ksmdCPUTicks() throws(KSMKernelError) -> UInt64? {
        if let pid = ksmdPID.withLock({ $0 }), let ticks = ticks(pid: pid, expectKsmd: true) {
            return ticks
        }
        guard let pid = try findKsmd() else {
            ksmdPID.withLock { $0 = nil }
            return nil
        }
        ksmdPID.withLock { $0 = pid }
        return ticks(pid: pid, expectKsmd: true)
    }

    /// utime + stime of `pid`, nil when it is gone (or, with `expectKsmd`, is no longer ksmd).
    func ticks(pid: Int32, expectKsmd: Bool) -> UInt64? {
        guard let text = try? FileIO.read("\(proc)/\(pid)/stat") else { return nil }
        guard let (comm, _) = ProcParsing.statFields(text) else { return nil }
        if expectKsmd && comm != "ksmd" { return nil }
        return ProcParsing.cpuTicks(stat: text)
    }

    /// The pid whose `comm` is `ksmd`, scanning `/proc/*/comm`.
    public func findKsmd() throws(KSMKernelError) -> Int32? {
        for name in try FileIO.list(proc) {
            guard let pid = Int32(name) else { continue }
            if let comm = try? FileIO.read("\(proc)/\(name)/comm"), comm.trimmed == "ksmd" { return pid }
        }
        return nil
    }
}
