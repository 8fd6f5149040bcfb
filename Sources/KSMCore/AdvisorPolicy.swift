/// Where the advisor mode is in its start-up.
public struct AdvisorHandover: Codable, Sendable, Equatable, Hashable {
    /// When the mode started scanning by itself, and full_scans then.
    public var since: Double
    public var fullScans: Int64
    /// True once advisor_mode is scan-time.
    public var handedOver: Bool

    public init(since: Double, fullScans: Int64, handedOver: Bool = false) {
        self.since = since
        self.fullScans = fullScans
        self.handedOver = handedOver
    }
}

/// `mode: advisor`: the kernel's own scan-time advisor (6.7+), started so that its first-pass
/// quirk (KSM.md §6) does not bite.
///
/// The advisor charges its first pass with ksmd's CPU since `advisor_mode` was set, and its
/// baseline then is zero: a pass that starts after the switch is charged ksmd's whole lifetime
/// CPU and pages_to_scan collapses. So the mode first runs ksmd itself (advisor_mode none) at the
/// pages_to_scan that would finish a pass in the target time, and switches to scan-time while
/// that pass is under way, with advisor_min_pages_to_scan at the same value. The handover pass
/// then ends with a baseline that the kernel measures from the switch (see docs/advisor.md for
/// what was measured on this machine).
public enum AdvisorPolicy {
    /// Seconds ksmd scans by itself before the advisor takes over (mid-pass).
    public static let handoverSeconds = 2.0
    public static let sleepMillisecs = 20

    public static func step(config: KSMConfig, input: TunerInput, state: TunerState) -> TuningDecision {
        var next = state
        let a = config.effectiveAdvisor
        let memory = input.memory
        guard Ksmtuned.belowThreshold(thresCoef: config.thresCoef, memory: memory) else {
            next.advisor = nil
            return TuningDecision(
                settings: KernelSettings(run: 0), phase: .stopped,
                reason: Ksmtuned.aboveThresholdReason(config: config, memory: memory), state: next)
        }
        var advisorSettings = KernelSettings(
            run: 1, sleepMillisecs: sleepMillisecs, advisorMode: "scan-time",
            advisorTargetScanTime: a.targetScanTimeSeconds, advisorMaxCPU: a.maxCpuPercent,
            advisorMinPagesToScan: a.minPagesToScan, advisorMaxPagesToScan: a.maxPagesToScan)
        let describe =
            "the kernel advisor picks pages_to_scan to finish a full scan in \(a.targetScanTimeSeconds) s, using up to \(a.maxCpuPercent) % of a core (pages_to_scan from \(a.minPagesToScan), at most \(a.maxPagesToScan); the kernel may go lower at first)"
        guard let obs = input.observation, obs.status.advisorMode != nil else {
            // No advisor here (or no counters): ask for it and let the apply say why it cannot.
            return TuningDecision(
                settings: advisorSettings, phase: .running, reason: "Running: \(describe)", state: next)
        }
        let pageSize = Int64(max(input.pageSize, 1))
        let pages = max(obs.trackedPages, obs.mergeablePages ?? memory.anonPagesKB * 1024 / pageSize)
        // Pages per wake-up that finish a pass in the target time at this sleep.
        let wakeUps = max(1, Int64(a.targetScanTimeSeconds) * 1000 / Int64(sleepMillisecs))
        let warm = Int(min(max(pages / wakeUps, Int64(a.minPagesToScan)), Int64(a.maxPagesToScan)))

        var h = state.advisor ?? AdvisorHandover(since: input.now, fullScans: obs.status.fullScans)
        if obs.status.advisorMode == "scan-time" && state.advisor == nil {
            // Already in the advisor's hands (the agent restarted): leave it there.
            h.handedOver = true
        }
        if !h.handedOver && input.now - h.since >= handoverSeconds {
            h.handedOver = true
        }
        next.advisor = h
        if h.handedOver {
            advisorSettings.advisorMinPagesToScan = min(max(warm, a.minPagesToScan), a.maxPagesToScan)
            return TuningDecision(
                settings: advisorSettings, phase: .running,
                reason: "Running: \(describe); it took over mid-pass from pages_to_scan \(warm)", state: next)
        }
        return TuningDecision(
            settings: KernelSettings(run: 1, pagesToScan: warm, sleepMillisecs: sleepMillisecs, advisorMode: "none"),
            phase: .running,
            reason:
                "Running: advisor mode starting: ksmd scans \(warm) pages every \(sleepMillisecs) ms (a full scan in about \(a.targetScanTimeSeconds) s) and the kernel advisor takes over mid-pass, so that its first pass is not charged ksmd's lifetime CPU",
            state: next)
    }
}
