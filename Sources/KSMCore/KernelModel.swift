/// The tunables the agent writes to `/sys/kernel/mm/ksm`. nil means "leave the kernel's value alone".
public struct KernelSettings: Codable, Sendable, Equatable, Hashable {
    /// 0 stop (keep merged pages), 1 run, 2 stop and unmerge.
    public var run: Int?
    public var pagesToScan: Int?
    public var sleepMillisecs: Int?
    /// Needs pages_shared == 0 to change (EBUSY otherwise): see the unmerge protocol in KSMNode.
    public var mergeAcrossNodes: Int?
    /// Needs pages_shared == 0 to change, like merge_across_nodes.
    public var maxPageSharing: Int?
    public var useZeroPages: Int?
    public var smartScan: Int?
    /// The kernel advisor (6.7+): `none` or `scan-time`, and its settings. nil leaves them alone.
    public var advisorMode: String?
    public var advisorTargetScanTime: Int?
    public var advisorMaxCPU: Int?
    public var advisorMinPagesToScan: Int?
    public var advisorMaxPagesToScan: Int?

    public init(
        run: Int? = nil, pagesToScan: Int? = nil, sleepMillisecs: Int? = nil,
        mergeAcrossNodes: Int? = nil, maxPageSharing: Int? = nil, useZeroPages: Int? = nil,
        smartScan: Int? = nil, advisorMode: String? = nil, advisorTargetScanTime: Int? = nil,
        advisorMaxCPU: Int? = nil, advisorMinPagesToScan: Int? = nil, advisorMaxPagesToScan: Int? = nil
    ) {
        self.run = run
        self.pagesToScan = pagesToScan
        self.sleepMillisecs = sleepMillisecs
        self.mergeAcrossNodes = mergeAcrossNodes
        self.maxPageSharing = maxPageSharing
        self.useZeroPages = useZeroPages
        self.smartScan = smartScan
        self.advisorMode = advisorMode
        self.advisorTargetScanTime = advisorTargetScanTime
        self.advisorMaxCPU = advisorMaxCPU
        self.advisorMinPagesToScan = advisorMinPagesToScan
        self.advisorMaxPagesToScan = advisorMaxPagesToScan
    }

    /// True when nothing is to be written.
    public var isEmpty: Bool { self == KernelSettings() }
}

/// Everything `/sys/kernel/mm/ksm` reports. Fields the running kernel lacks are nil.
public struct KSMStatus: Codable, Sendable, Equatable, Hashable {
    public var run: Int
    public var pagesToScan: Int
    public var sleepMillisecs: Int
    public var pagesShared: Int64
    public var pagesSharing: Int64
    public var pagesUnshared: Int64
    public var pagesVolatile: Int64
    public var fullScans: Int64
    public var mergeAcrossNodes: Int?
    public var maxPageSharing: Int?
    public var stableNodeChains: Int64?
    public var stableNodeDups: Int64?
    public var useZeroPages: Int?
    public var ksmZeroPages: Int64?
    public var generalProfit: Int64?
    public var pagesScanned: Int64?
    public var pagesSkipped: Int64?
    public var smartScan: Int?
    /// `none` or `scan-time` on kernels with the advisor (6.7+).
    public var advisorMode: String?
    /// The advisor's settings (6.7+): target seconds per full scan, the pages_to_scan range it
    /// may pick, and the ksmd CPU % it may use.
    public var advisorTargetScanTime: Int64?
    public var advisorMinPagesToScan: Int64?
    public var advisorMaxPagesToScan: Int64?
    public var advisorMaxCPU: Int64?

    public init(
        run: Int = 0, pagesToScan: Int = 100, sleepMillisecs: Int = 20, pagesShared: Int64 = 0,
        pagesSharing: Int64 = 0, pagesUnshared: Int64 = 0, pagesVolatile: Int64 = 0,
        fullScans: Int64 = 0, mergeAcrossNodes: Int? = nil, maxPageSharing: Int? = nil,
        stableNodeChains: Int64? = nil, stableNodeDups: Int64? = nil, useZeroPages: Int? = nil,
        ksmZeroPages: Int64? = nil, generalProfit: Int64? = nil, pagesScanned: Int64? = nil,
        pagesSkipped: Int64? = nil, smartScan: Int? = nil, advisorMode: String? = nil,
        advisorTargetScanTime: Int64? = nil, advisorMinPagesToScan: Int64? = nil,
        advisorMaxPagesToScan: Int64? = nil, advisorMaxCPU: Int64? = nil
    ) {
        self.run = run
        self.pagesToScan = pagesToScan
        self.sleepMillisecs = sleepMillisecs
        self.pagesShared = pagesShared
        self.pagesSharing = pagesSharing
        self.pagesUnshared = pagesUnshared
        self.pagesVolatile = pagesVolatile
        self.fullScans = fullScans
        self.mergeAcrossNodes = mergeAcrossNodes
        self.maxPageSharing = maxPageSharing
        self.stableNodeChains = stableNodeChains
        self.stableNodeDups = stableNodeDups
        self.useZeroPages = useZeroPages
        self.ksmZeroPages = ksmZeroPages
        self.generalProfit = generalProfit
        self.pagesScanned = pagesScanned
        self.pagesSkipped = pagesSkipped
        self.smartScan = smartScan
        self.advisorMode = advisorMode
        self.advisorTargetScanTime = advisorTargetScanTime
        self.advisorMinPagesToScan = advisorMinPagesToScan
        self.advisorMaxPagesToScan = advisorMaxPagesToScan
        self.advisorMaxCPU = advisorMaxCPU
    }

    /// The tunables in force, as settings (for capture at start and restore on exit).
    public var tunables: KernelSettings {
        KernelSettings(
            run: run, pagesToScan: pagesToScan, sleepMillisecs: sleepMillisecs,
            mergeAcrossNodes: mergeAcrossNodes, maxPageSharing: maxPageSharing,
            useZeroPages: useZeroPages, smartScan: smartScan, advisorMode: advisorMode,
            // The advisor's own settings too: the advisor mode writes them, a restore puts them back.
            advisorTargetScanTime: advisorTargetScanTime.map { Int(clamping: $0) },
            advisorMaxCPU: advisorMaxCPU.map { Int(clamping: $0) },
            advisorMinPagesToScan: advisorMinPagesToScan.map { Int(clamping: $0) },
            advisorMaxPagesToScan: advisorMaxPagesToScan.map { Int(clamping: $0) })
    }
}

/// The `/proc/meminfo` figures the tuner and the reports need, in kB as the kernel gives them.
public struct MemorySnapshot: Codable, Sendable, Equatable, Hashable {
    public var memTotalKB: Int64
    public var memAvailableKB: Int64
    public var memFreeKB: Int64
    public var buffersKB: Int64
    public var cachedKB: Int64
    public var anonPagesKB: Int64

    public init(
        memTotalKB: Int64, memAvailableKB: Int64, memFreeKB: Int64 = 0, buffersKB: Int64 = 0,
        cachedKB: Int64 = 0, anonPagesKB: Int64 = 0
    ) {
        self.memTotalKB = memTotalKB
        self.memAvailableKB = memAvailableKB
        self.memFreeKB = memFreeKB
        self.buffersKB = buffersKB
        self.cachedKB = cachedKB
        self.anonPagesKB = anonPagesKB
    }

    /// MemAvailable as a percentage of MemTotal.
    public var availablePercent: Double {
        memTotalKB > 0 ? Double(memAvailableKB) * 100 / Double(memTotalKB) : 0
    }
}

/// ksmd's phase as Harvester shows it, plus Unmanaged for a node the agent only watches.
public enum KSMPhase: String, Codable, Sendable, CaseIterable {
    case stopped = "Stopped"
    case running = "Running"
    case pruned = "Pruned"
    case unmanaged = "Unmanaged"

    public init(from decoder: any Decoder) throws {
        self = try decodeEnum(decoder, Self.self)
    }

    /// The phase that the kernel's `run` value shows by itself.
    public init(kernelRun: Int) {
        switch kernelRun {
        case 1: self = .running
        case 2: self = .pruned
        default: self = .stopped
        }
    }
}
