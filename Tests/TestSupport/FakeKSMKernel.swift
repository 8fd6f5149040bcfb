import KSMCore
import KSMNode
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// An in-memory kernel that follows the real one's rules, for tests:
/// - EBUSY on changing merge_across_nodes or max_page_sharing while pages_shared > 0;
/// - EINVAL on pages_to_scan while advisor_mode is scan-time, and on out-of-range values;
/// - ENOENT on files the modelled kernel lacks (features are configurable);
/// - run=2 unmerges every page (at once, gradually, or never, as the test chooses).
/// Tests set counters, "merge" pages, move ksmd's CPU ticks and read back every write.
public final class FakeKSMKernel: KSMKernel {
    /// How the fake reacts to run=2.
    public enum UnmergeBehaviour: Sendable, Equatable {
        /// pages_shared and pages_sharing drop to 0 within the write, as on a small host.
        case immediate
        /// pages_shared drops by this many pages per status read while run is 2 (a big host).
        case gradual(perRead: Int64)
        /// pages_shared never drops (a stuck unmerge), to test the timeout.
        case never
        /// run=2 fails with this errno (ENOMEM: the kernel could not allocate the copies) and, as
        /// the kernel does, leaves run=0 with the pages still merged.
        case fails(errno: Int32)
        /// As Linux does: the write of run=2 returns only once every page is unmerged, this many
        /// pages a millisecond, and a signal to the writing thread stops it (EINTR, run left 0,
        /// the pages not reached still merged).
        case blocking(perMillisecond: Int64)
    }

    /// One accepted write.
    public struct Write: Sendable, Equatable, CustomStringConvertible {
        public var tunable: KSMTunable
        public var value: Int
        public init(_ tunable: KSMTunable, _ value: Int) {
            self.tunable = tunable
            self.value = value
        }
        public var description: String { "\(tunable.fileName)=\(value)" }
    }

    /// Which optional files exist.
    public enum Features {
        /// A 6.7+ kernel: every file of KSM.md §1.
        public static let modern: Set<String> = Set(KSMFiles.all)
        /// An older kernel (5.x): no advisor, smart_scan, general_profit, ksm_zero_pages,
        /// pages_scanned or pages_skipped.
        public static let legacy: Set<String> = modern.subtracting([
            "advisor_mode", "advisor_target_scan_time", "advisor_min_pages_to_scan", "advisor_max_pages_to_scan",
            "advisor_max_cpu", "smart_scan", "general_profit", "ksm_zero_pages", "pages_scanned", "pages_skipped",
        ])
        /// Only the files every KSM kernel has.
        public static let minimal: Set<String> = Set(KSMFiles.required)
    }

    struct State {
        var status: KSMStatus
        var features: Set<String>
        var memory: MemorySnapshot
        var ksmdTicks: UInt64?
        var unmerge: UnmergeBehaviour
        var writes: [Write] = []
        var refusedWrites: [Write] = []
        var failures: [KSMTunable: Int32] = [:]
        var statusReads = 0
        var bootID: String? = "boot-1"
    }

    private let state: Mutex<State>
    public let pageSize: Int
    public let clockTicksPerSecond: Int
    /// The directory the fake pretends to be, used in error messages.
    public let root: String

    public init(
        features: Set<String> = Features.modern,
        status: KSMStatus? = nil,
        memory: MemorySnapshot = MemorySnapshot(
            memTotalKB: 16 * 1024 * 1024, memAvailableKB: 8 * 1024 * 1024, memFreeKB: 4 * 1024 * 1024,
            anonPagesKB: 4 * 1024 * 1024),
        ksmdTicks: UInt64? = 0,
        unmerge: UnmergeBehaviour = .immediate,
        pageSize: Int = 4096,
        clockTicksPerSecond: Int = 100,
        root: String = "/sys/kernel/mm/ksm"
    ) {
        var s = status ?? KSMStatus(run: 0, pagesToScan: 100, sleepMillisecs: 20)
        if status == nil {
            // The kernel defaults for the files this kernel has.
            func has(_ name: String) -> Bool { features.contains(name) }
            s.mergeAcrossNodes = has("merge_across_nodes") ? 1 : nil
            s.maxPageSharing = has("max_page_sharing") ? 256 : nil
            s.stableNodeChains = has("stable_node_chains") ? 0 : nil
            s.stableNodeDups = has("stable_node_dups") ? 0 : nil
            s.useZeroPages = has("use_zero_pages") ? 0 : nil
            s.ksmZeroPages = has("ksm_zero_pages") ? 0 : nil
            s.generalProfit = has("general_profit") ? 0 : nil
            s.pagesScanned = has("pages_scanned") ? 0 : nil
            s.pagesSkipped = has("pages_skipped") ? 0 : nil
            s.smartScan = has("smart_scan") ? 1 : nil
            s.advisorMode = has("advisor_mode") ? "none" : nil
            s.advisorTargetScanTime = has("advisor_target_scan_time") ? 200 : nil
            s.advisorMinPagesToScan = has("advisor_min_pages_to_scan") ? 500 : nil
            s.advisorMaxPagesToScan = has("advisor_max_pages_to_scan") ? 30000 : nil
            s.advisorMaxCPU = has("advisor_max_cpu") ? 70 : nil
        }
        state = Mutex(State(status: s, features: features, memory: memory, ksmdTicks: ksmdTicks, unmerge: unmerge))
        self.pageSize = pageSize
        self.clockTicksPerSecond = clockTicksPerSecond
        self.root = root
    }

    // MARK: KSMKernel

    public func features() throws(KSMKernelError) -> [String] {
        state.withLock { $0.features }.sorted()
    }

    public func readStatus() throws(KSMKernelError) -> KSMStatus {
        state.withLock { st in
            st.statusReads += 1
            if st.status.run == 2, case .gradual(let step) = st.unmerge, st.status.pagesShared > 0 {
                let before = st.status.pagesShared
                st.status.pagesShared = max(0, before - step)
                if st.status.pagesShared == 0 {
                    st.status.pagesSharing = 0
                } else {
                    st.status.pagesSharing = st.status.pagesSharing * st.status.pagesShared / max(before, 1)
                }
            }
            return st.status
        }
    }

    public func write(_ tunable: KSMTunable, _ value: Int) throws(KSMKernelError) {
        let result: KSMKernelError? = state.withLock { st in
            let file = root + "/" + tunable.fileName
            func fail(_ code: Int32, _ detail: String? = nil) -> KSMKernelError {
                KSMKernelError(path: file, operation: .write(String(value)), errno: code, detail: detail)
            }
            guard st.features.contains(tunable.fileName) else { return fail(ENOENT) }
            if let code = st.failures[tunable] { return fail(code, "injected by the test") }
            guard value >= 0, value <= Int(UInt32.max) else { return fail(EINVAL) }
            switch tunable {
            case .run:
                guard value <= 2 else { return fail(EINVAL) }
                if value == 2, case .fails(let code) = st.unmerge {
                    st.status.run = 0
                    st.refusedWrites.append(Write(tunable, value))
                    return fail(code, "unmerge failed")
                }
                st.status.run = value
                if value == 2, st.unmerge == .immediate { Self.unmergeAll(&st.status) }
            case .pagesToScan:
                if st.status.advisorMode == "scan-time" {
                    return fail(EINVAL, "advisor_mode is scan-time")
                }
                st.status.pagesToScan = value
            case .sleepMillisecs:
                st.status.sleepMillisecs = value
            case .mergeAcrossNodes:
                guard value <= 1 else { return fail(EINVAL) }
                if value != st.status.mergeAcrossNodes && st.status.pagesShared > 0 { return fail(EBUSY) }
                st.status.mergeAcrossNodes = value
            case .maxPageSharing:
                guard value >= 2 else { return fail(EINVAL) }
                if value != st.status.maxPageSharing && st.status.pagesShared > 0 { return fail(EBUSY) }
                st.status.maxPageSharing = value
            case .useZeroPages:
                guard value <= 1 else { return fail(EINVAL) }
                st.status.useZeroPages = value
            case .smartScan:
                guard value <= 1 else { return fail(EINVAL) }
                st.status.smartScan = value
            }
            st.writes.append(Write(tunable, value))
            return nil
        }
        if let result { throw result }
        if tunable == .run, value == 2, case .blocking(let step) = state.withLock({ $0.unmerge }) {
            try unmergeBlocking(step: step)
        }
    }

    /// `UnmergeBehaviour.blocking`: the writing thread unmerges until done or signalled.
    private func unmergeBlocking(step: Int64) throws(KSMKernelError) {
        while true {
            let done = state.withLock { st -> Bool in
                let before = st.status.pagesShared
                guard before > 0 else {
                    Self.unmergeAll(&st.status)
                    return true
                }
                st.status.pagesShared = max(0, before - step)
                st.status.pagesSharing = st.status.pagesSharing * st.status.pagesShared / max(before, 1)
                return false
            }
            if done { return }
            var pause = timespec(tv_sec: 0, tv_nsec: 1_000_000)
            if nanosleep(&pause, nil) != 0 && errno == EINTR {
                state.withLock { $0.status.run = 0 }
                throw KSMKernelError(
                    path: root + "/run", operation: .write("2"), errno: EINTR, detail: "interrupted (fake kernel)")
            }
        }
    }

    public func readMemory() throws(KSMKernelError) -> MemorySnapshot {
        state.withLock { $0.memory }
    }

    /// The advisor's files, with the kernel's rules: EINVAL for other words, and entering
    /// scan-time resets pages_to_scan to advisor_min_pages_to_scan, leaving it resets it to 100.
    public func writeRaw(_ name: String, _ text: String) throws(KSMKernelError) {
        let result: KSMKernelError? = state.withLock { st in
            let file = root + "/" + name
            func fail(_ code: Int32) -> KSMKernelError {
                KSMKernelError(path: file, operation: .write(text), errno: code, detail: nil)
            }
            guard st.features.contains(name) else { return fail(ENOENT) }
            if name == "advisor_mode" {
                guard text == "none" || text == "scan-time" else { return fail(EINVAL) }
                if st.status.advisorMode != text {
                    st.status.pagesToScan =
                        text == "scan-time" ? Int(st.status.advisorMinPagesToScan ?? 500) : 100
                }
                st.status.advisorMode = text
                return nil
            }
            guard let v = Int64(text), v > 0 else { return fail(EINVAL) }
            switch name {
            case "advisor_target_scan_time": st.status.advisorTargetScanTime = v
            case "advisor_max_cpu": st.status.advisorMaxCPU = v
            case "advisor_min_pages_to_scan": st.status.advisorMinPagesToScan = v
            case "advisor_max_pages_to_scan": st.status.advisorMaxPagesToScan = v
            default: return fail(EINVAL)
            }
            return nil
        }
        if let result { throw result }
    }

    public func ksmdCPUTicks() throws(KSMKernelError) -> UInt64? {
        state.withLock { $0.ksmdTicks }
    }

    // MARK: Test controls

    static func unmergeAll(_ s: inout KSMStatus) {
        s.pagesShared = 0
        s.pagesSharing = 0
        if s.ksmZeroPages != nil { s.ksmZeroPages = 0 }
        if s.stableNodeChains != nil { s.stableNodeChains = 0 }
        if s.stableNodeDups != nil { s.stableNodeDups = 0 }
    }

    /// Every accepted write, in order.
    public var writes: [Write] { state.withLock { $0.writes } }

    /// Writes the kernel refused after acting on them (run=2 with `.fails`), in order.
    public var refusedWrites: [Write] { state.withLock { $0.refusedWrites } }

    /// Forgets the recorded writes.
    public func clearWrites() {
        state.withLock {
            $0.writes = []
            $0.refusedWrites = []
        }
    }

    /// The status as the fake holds it, without the side effects of a kernel read.
    public var current: KSMStatus { state.withLock { $0.status } }

    /// Changes the status directly (counters, advisor mode, anything), bypassing the write rules.
    public func update(_ body: (inout KSMStatus) -> Void) {
        state.withLock { body(&$0.status) }
    }

    /// ksmd merged pages: `shared` more KSM pages now back `sharing` more sharers.
    public func merge(shared: Int64, sharing: Int64) {
        state.withLock {
            $0.status.pagesShared += shared
            $0.status.pagesSharing += sharing
            $0.status.fullScans += 1
        }
    }

    public func setMemory(_ memory: MemorySnapshot) { state.withLock { $0.memory = memory } }

    /// A 16 GiB node running KSM with `mergedGiB` merged (pages_sharing of 4 KiB pages) and
    /// `availableGiB` available, its writes so far forgotten: the unmerge memory guard's node.
    public static func mergedNode(mergedGiB: Int64 = 8, availableGiB: Int64, unmerge: UnmergeBehaviour = .immediate) throws
        -> FakeKSMKernel
    {
        let k = FakeKSMKernel(
            memory: MemorySnapshot(memTotalKB: 16 * 1024 * 1024, memAvailableKB: availableGiB * 1024 * 1024),
            unmerge: unmerge)
        try k.write(.run, 1)
        k.merge(shared: 1000, sharing: mergedGiB * 1024 * 1024 * 1024 / 4096)
        k.clearWrites()
        return k
    }

    /// The host rebooted (a new boot id), or the id is unknown (nil).
    public func setBootID(_ id: String?) { state.withLock { $0.bootID = id } }

    public func bootID() -> String? { state.withLock { $0.bootID } }

    public func setKsmdTicks(_ ticks: UInt64?) { state.withLock { $0.ksmdTicks = ticks } }

    public func addKsmdTicks(_ ticks: UInt64) { state.withLock { $0.ksmdTicks = ($0.ksmdTicks ?? 0) + ticks } }

    public func setUnmergeBehaviour(_ b: UnmergeBehaviour) { state.withLock { $0.unmerge = b } }

    /// Makes every write of `tunable` fail with `errno` (nil to stop).
    public func failWrites(of tunable: KSMTunable, errno code: Int32?) {
        state.withLock { $0.failures[tunable] = code }
    }
}
