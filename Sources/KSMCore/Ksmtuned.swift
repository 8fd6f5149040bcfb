/// The tuner's memory between steps.
public struct TunerState: Codable, Sendable, Equatable, Hashable {
    /// pages_to_scan the ksmtuned loop last chose; nil before its first step.
    public var pagesToScan: Int?
    public var throttle: ThrottleState
    /// The adaptive mode's memory; nil until its first step (and after it stops).
    public var adaptive: AdaptiveState?
    /// The advisor mode's start-up; nil until its first step.
    public var advisor: AdvisorHandover?

    public init(
        pagesToScan: Int? = nil, throttle: ThrottleState = ThrottleState(), adaptive: AdaptiveState? = nil,
        advisor: AdvisorHandover? = nil
    ) {
        self.pagesToScan = pagesToScan
        self.throttle = throttle
        self.adaptive = adaptive
        self.advisor = advisor
    }
}

/// What one tuning step decided: what to write, the phase, and why, in an operator's words.
public struct TuningDecision: Sendable, Equatable {
    public var settings: KernelSettings
    public var phase: KSMPhase
    public var reason: String
    public var state: TunerState
}

/// Harvester's ksmtuned loop as pure functions, with the Go port's defects fixed:
/// the sleep formula uses kB throughout, the first run starts at minPages (never
/// pages_to_scan 0 with run 1), and pages_to_scan is clamped into [minPages, maxPages] both ways.
public enum Ksmtuned {
    /// 16 GiB expressed in kB, the unit of MemTotal in /proc/meminfo.
    public static let sixteenGiBInKB: Int64 = 16 * 1024 * 1024
    public static let sleepFloorMsec = 10

    /// `sleepMsec × 16 GiB / MemTotal`, floored at 10 ms (both sizes in kB).
    public static func sleepMillisecs(sleepMsec: Int, memTotalKB: Int64) -> Int {
        guard memTotalKB > 0 else { return max(sleepMsec, sleepFloorMsec) }
        let scaled = Int64(sleepMsec) * sixteenGiBInKB / memTotalKB
        return Int(max(scaled, Int64(sleepFloorMsec)))
    }

    /// True when KSM should run: MemAvailable < thresCoef % of MemTotal.
    public static func belowThreshold(thresCoef: Int, memory: MemorySnapshot) -> Bool {
        // Integer arithmetic in kB: avail * 100 < total * coef.
        memory.memAvailableKB * 100 < memory.memTotalKB * Int64(thresCoef)
    }

    /// Why KSM is stopped when MemAvailable is not below the threshold: the one wording of every
    /// mode that honours `thresCoef` (ksmtuned modes, adaptive, advisor).
    public static func aboveThresholdReason(config: KSMConfig, memory: MemorySnapshot) -> String {
        let avail = Percent.format(memory.availablePercent, against: config.thresCoef)
        let side =
            memory.memTotalKB > 0 && memory.memAvailableKB * 100 == memory.memTotalKB * Int64(config.thresCoef)
            ? "at" : "above"
        return "Stopped: MemAvailable \(avail) % is \(side) the \(config.thresCoef) % threshold (KSM runs only below it)"
    }

    /// One step of the loop for run=run in a ksmtuned mode (standard, high, customized).
    public static func step(config: KSMConfig, memory: MemorySnapshot, state: TunerState) -> TuningDecision {
        let p = config.effectiveParameters
        let clamp = { (v: Int) in min(max(v, p.minPages), p.maxPages) }
        let avail = Percent.format(memory.availablePercent, against: config.thresCoef)
        var next = state
        var settings = KernelSettings()
        settings.sleepMillisecs = sleepMillisecs(sleepMsec: p.sleepMsec, memTotalKB: memory.memTotalKB)
        if belowThreshold(thresCoef: config.thresCoef, memory: memory) {
            // First run starts at minPages; later runs boost, capped at maxPages.
            let pages = state.pagesToScan.map { clamp($0 + p.boost) } ?? clamp(p.minPages)
            next.pagesToScan = pages
            settings.run = 1
            settings.pagesToScan = pages
            return TuningDecision(
                settings: settings, phase: .running,
                reason:
                    "Running: MemAvailable \(avail) % is below the \(config.thresCoef) % threshold; pages_to_scan \(pages) (\(config.mode.rawValue): +\(p.boost) per step up to \(p.maxPages))",
                state: next)
        } else {
            let pages = state.pagesToScan.map { clamp($0 - p.decay) } ?? clamp(p.minPages)
            next.pagesToScan = pages
            settings.run = 0
            settings.pagesToScan = pages
            return TuningDecision(
                settings: settings, phase: .stopped,
                reason: aboveThresholdReason(config: config, memory: memory), state: next)
        }
    }
}

/// Percent formatting for reasons: whole numbers, unless rounding would make a value look equal
/// to the threshold it is compared with (any value but the threshold itself: 19.99995 % is
/// below a 20 % threshold and is shown so, "19.99").
public enum Percent {
    public static func format(_ value: Double, against threshold: Int) -> String {
        let rounded = value.rounded()
        if Int(rounded) == threshold && value != Double(threshold) {
            let tenth = (value * 10).rounded() / 10
            if tenth == Double(threshold) {
                return value < Double(threshold) ? "\(threshold - 1).99" : "\(threshold).01"
            }
            return "\(tenth)"
        }
        return "\(Int(rounded))"
    }
}
