import KSMCore

/// The integer tunables of `/sys/kernel/mm/ksm` that the agent writes.
public enum KSMTunable: String, CaseIterable, Sendable, Hashable {
    case run
    case pagesToScan = "pages_to_scan"
    case sleepMillisecs = "sleep_millisecs"
    case mergeAcrossNodes = "merge_across_nodes"
    case maxPageSharing = "max_page_sharing"
    case useZeroPages = "use_zero_pages"
    case smartScan = "smart_scan"

    /// The file name under the KSM sysfs directory.
    public var fileName: String { rawValue }

    /// Knobs the kernel refuses to change (EBUSY) while any page is shared: they need the
    /// unmerge protocol.
    public var needsUnmerge: Bool { self == .mergeAcrossNodes || self == .maxPageSharing }
}

/// Every file of KSM.md §1 that the agent reads; a kernel may lack some (features are detected).
public enum KSMFiles {
    public static let counters = [
        "pages_shared", "pages_sharing", "pages_unshared", "pages_volatile", "full_scans",
        "stable_node_chains", "stable_node_dups", "ksm_zero_pages", "general_profit", "pages_scanned",
        "pages_skipped",
    ]
    public static let tunables =
        KSMTunable.allCases.map(\.fileName) + [
            "advisor_mode", "advisor_target_scan_time", "advisor_min_pages_to_scan", "advisor_max_pages_to_scan",
            "advisor_max_cpu", "stable_node_chains_prune_millisecs",
        ]
    /// Files every KSM kernel has; their absence means KSM itself is missing.
    public static let required = [
        "run", "pages_to_scan", "sleep_millisecs", "pages_shared", "pages_sharing", "pages_unshared",
        "pages_volatile", "full_scans",
    ]
    public static let all = tunables + counters
}

/// The node's kernel as far as KSM is concerned. `LinuxKSMKernel` is the real one,
/// `FakeKSMKernel` (in the TestSupport test target) an in-memory stand-in that follows the
/// kernel's rules.
public protocol KSMKernel: Sendable {
    /// The KSM files present on this kernel (file names, sorted), for feature detection.
    func features() throws(KSMKernelError) -> [String]
    /// Every counter and tunable that exists; absent optional files are nil.
    func readStatus() throws(KSMKernelError) -> KSMStatus
    /// Writes one tunable. Errors carry the file and the errno (EBUSY, EINVAL, EACCES, ENOENT…).
    func write(_ tunable: KSMTunable, _ value: Int) throws(KSMKernelError)
    /// `/proc/meminfo`.
    func readMemory() throws(KSMKernelError) -> MemorySnapshot
    /// ksmd's utime + stime in clock ticks; nil when no ksmd thread is found.
    func ksmdCPUTicks() throws(KSMKernelError) -> UInt64?
    /// The page size in bytes (`sysconf(_SC_PAGESIZE)` on Linux).
    var pageSize: Int { get }
    /// Clock ticks per second of the CPU times in `/proc/PID/stat` (`sysconf(_SC_CLK_TCK)`).
    var clockTicksPerSecond: Int { get }
    /// `/proc/pressure/memory` some avg10 in percent; nil where PSI is missing.
    func memoryPressureSomeAvg10() -> Double?
    /// Pages of anonymous memory of the processes marked mergeable; nil where unknown.
    func mergeableAnonPages() -> Int64?
    /// Writes a KSM file as text (`advisor_mode` takes a word; the advisor's numbers go here too).
    func writeRaw(_ name: String, _ text: String) throws(KSMKernelError)
    /// This boot's id (`/proc/sys/kernel/random/boot_id`): KSM settings captured in another boot
    /// are not this boot's. nil where unknown.
    func bootID() -> String?
    /// Writes run=2 once. Linux unmerges every page inside this write (0.6 s a GiB measured
    /// here) and stops early when the writing thread gets a signal: the write then fails with
    /// EINTR and the kernel leaves run=0. So EINTR is returned, not retried (`UnmergeThread`
    /// interrupts it that way when the unmerge takes too long).
    func writeUnmerge() throws(KSMKernelError)
}

extension KSMKernel {
    public func bootID() -> String? { nil }
    public func writeUnmerge() throws(KSMKernelError) { try write(.run, 2) }
    public func memoryPressureSomeAvg10() -> Double? { nil }
    public func mergeableAnonPages() -> Int64? { nil }

    /// True when the kernel has the file `name` under its KSM directory.
    public func hasFeature(_ name: String) -> Bool {
        (try? features().contains(name)) ?? false
    }
}
