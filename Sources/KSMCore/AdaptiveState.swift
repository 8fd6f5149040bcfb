/// Where the adaptive policy is in its cycle.
public enum AdaptivePhase: String, Codable, Sendable, CaseIterable {
    /// Full speed after a start, a kick or new mergeable memory, until enough passes have been
    /// seen to judge (a page needs two passes to merge).
    case warming
    /// Full speed: the last pass newly merged a meaningful share of the tracked pages.
    case merging
    /// A pass stopped paying: the speed halves every fast pass's duration.
    case backingOff
    /// Near idle, waiting for new mergeable memory.
    case idle
}

/// The adaptive policy's memory between steps: what it saw last, and its estimates.
public struct AdaptiveState: Codable, Sendable, Equatable, Hashable {
    public var phase: AdaptivePhase
    /// The share of one core ksmd should use (0...1), before the CPU budget.
    public var speed: Double
    /// Why the policy last went to full speed, in words.
    public var wakeCause: String
    /// Full scans completed since the last wake.
    public var passesSinceWake: Int64
    public var lastFullScans: Int64
    /// pages_sharing and the time when the pass in progress started.
    public var passStartSharing: Int64
    public var passStartTime: Double
    /// Seconds a pass took at full speed (the back-off step).
    public var fastPassSeconds: Double?
    /// Newly merged pages of the last completed pass, in % of the tracked pages.
    public var lastPassMergedPercent: Double?
    public var lastPassNumber: Int64?
    public var lastBackoffAt: Double
    /// Mergeable memory (pages) and KSM-tracked pages the growth triggers compare with.
    public var mergeableRef: Int64
    public var trackedRef: Int64
    /// Kicks already acted on.
    public var kicks: Int
    /// The previous step: time, ksmd CPU seconds and pages_scanned.
    public var lastTime: Double
    public var lastCPUSeconds: Double?
    public var lastPagesScanned: Int64?
    /// ksmd CPU seconds per scanned page, estimated from the kernel's own counters.
    public var costPerPage: Double?
    /// ksmd's CPU share over about 20 s (a moving average, for diagnostics).
    public var cpuRecent: Double?
    /// Correction of the settings so that the measured CPU share meets the target.
    public var gain: Double
    /// The share targeted (a change starts a new correction window).
    public var target: Double
    /// The correction's window: when it started and ksmd's CPU seconds then.
    public var windowStart: Double = 0
    public var windowCPU: Double?

    public init(
        phase: AdaptivePhase, speed: Double, wakeCause: String, passesSinceWake: Int64, lastFullScans: Int64,
        passStartSharing: Int64, passStartTime: Double, fastPassSeconds: Double? = nil,
        lastPassMergedPercent: Double? = nil, lastPassNumber: Int64? = nil, lastBackoffAt: Double,
        mergeableRef: Int64, trackedRef: Int64, kicks: Int, lastTime: Double, lastCPUSeconds: Double?,
        lastPagesScanned: Int64?, costPerPage: Double? = nil, cpuRecent: Double? = nil,
        gain: Double = 1, target: Double = 1
    ) {
        self.phase = phase
        self.speed = speed
        self.wakeCause = wakeCause
        self.passesSinceWake = passesSinceWake
        self.lastFullScans = lastFullScans
        self.passStartSharing = passStartSharing
        self.passStartTime = passStartTime
        self.fastPassSeconds = fastPassSeconds
        self.lastPassMergedPercent = lastPassMergedPercent
        self.lastPassNumber = lastPassNumber
        self.lastBackoffAt = lastBackoffAt
        self.mergeableRef = mergeableRef
        self.trackedRef = trackedRef
        self.kicks = kicks
        self.lastTime = lastTime
        self.lastCPUSeconds = lastCPUSeconds
        self.lastPagesScanned = lastPagesScanned
        self.costPerPage = costPerPage
        self.cpuRecent = cpuRecent
        self.gain = gain
        self.target = target
    }
}

/// The adaptive policy's constants. They are principles, not fitted to one workload: a pass
/// pays when it newly merges 1 % of the tracked pages; new memory is 2 % of the tracked pages
/// (at least 32 MiB); idle is 0.4 % of a core, under the 1 % a settled node may use.
public struct AdaptiveTuning: Sendable, Equatable {
    public var payFraction = 0.01
    /// Passes after a wake before a pass that merged nothing may slow ksmd down.
    public var warmPasses: Int64 = 3
    public var idleShare = 0.004
    /// Idle share while memory is under pressure (PSI some avg10 at or above `pressurePercent`).
    public var pressureIdleShare = 0.02
    public var pressurePercent = 10.0
    public var growthFraction = 0.02
    public var minGrowthBytes: Int64 = 32 * 1024 * 1024
    /// Full speed: what the benchmarks call full speed (pages_to_scan 20000, sleep 0).
    public var fullSpeedPages = 20_000
    /// Cost of a scanned page before the kernel has told us (seconds of ksmd CPU).
    public var defaultCostPerPage = 3e-6
    public var recentWindowSeconds = 20.0
    /// How often the agent should run a step while the mode is adaptive.
    public var stepSeconds = 1.0

    public init() {}

    public static let standard = AdaptiveTuning()
}
