#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// What the node should do with KSM (Harvester's `run`, plus cc-proxy's `initial` as `unmanaged`).
public enum RunMode: String, Codable, Sendable, CaseIterable {
    /// run=0: ksmd stops, merged pages stay merged (cc-proxy's `off`).
    case stop
    /// The tuner for `mode` drives ksmd.
    case run
    /// run=2: ksmd stops and every merged page is unmerged.
    case prune
    /// The agent never writes to the kernel; it only reports (cc-proxy's `initial`).
    case unmanaged

    public init(from decoder: any Decoder) throws {
        self = try decodeEnum(decoder, Self.self)
    }
}

/// How the tuner picks pages_to_scan and sleep_millisecs while `run` is `run`.
public enum TuningMode: String, Codable, Sendable, CaseIterable {
    /// Harvester preset: boost 0, decay 0, minPages 100, maxPages 100, sleepMsec 20.
    case standard
    /// Harvester preset: boost 200, decay 50, minPages 100, maxPages 10000, sleepMsec 20.
    case high
    /// ksmtuned semantics with the operator's own parameters.
    case customized
    /// cc-proxy's kick-driven throttle: aggressive → standard → slow → initial settings.
    case throttle
    /// Feedback from the kernel: full speed while passes still merge, near idle when they stop,
    /// full speed again when new mergeable memory appears (see `Adaptive`).
    case adaptive
    /// The kernel's own advisor (`advisor_mode` scan-time, kernels 6.7+) with `advisor` settings.
    case advisor

    public init(from decoder: any Decoder) throws {
        self = try decodeEnum(decoder, Self.self)
    }

    /// The preset parameters of a preset mode, nil for modes whose parameters are the user's.
    public var preset: TunerParameters? {
        switch self {
        case .standard: return .standard
        case .high: return .high
        case .customized, .throttle, .adaptive, .advisor: return nil
        }
    }
}

/// Decodes a String-backed enum and names the accepted values when the input is not one of them.
func decodeEnum<E: RawRepresentable & CaseIterable>(_ decoder: any Decoder, _: E.Type) throws -> E
where E.RawValue == String {
    let container = try decoder.singleValueContainer()
    let raw = try container.decode(String.self)
    guard let value = E(rawValue: raw) else {
        let allowed = E.allCases.map(\.rawValue).joined(separator: ", ")
        throw DecodingError.dataCorruptedError(
            in: container, debugDescription: "unknown value '\(raw)', expected one of: \(allowed)")
    }
    return value
}

/// ksmtuned parameters (Harvester's `ksmtunedParameters`).
public struct TunerParameters: Codable, Sendable, Equatable, Hashable {
    /// pages_to_scan increment per tuning step while KSM runs.
    public var boost: Int
    /// pages_to_scan decrement per tuning step while KSM is stopped by the threshold.
    public var decay: Int
    /// Floor of pages_to_scan, and its value on the first run.
    public var minPages: Int
    /// Ceiling of pages_to_scan.
    public var maxPages: Int
    /// Base ksmd sleep for a 16 GiB host; scaled by 16 GiB / MemTotal, floor 10 ms.
    public var sleepMsec: Int

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case boost, decay, minPages, maxPages, sleepMsec
    }

    public init(boost: Int, decay: Int, minPages: Int, maxPages: Int, sleepMsec: Int) {
        self.boost = boost
        self.decay = decay
        self.minPages = minPages
        self.maxPages = maxPages
        self.sleepMsec = sleepMsec
    }

    public static let standard = TunerParameters(boost: 0, decay: 0, minPages: 100, maxPages: 100, sleepMsec: 20)
    public static let high = TunerParameters(boost: 200, decay: 50, minPages: 100, maxPages: 10000, sleepMsec: 20)
}

/// cc-proxy throttle settings. Scan sizes are fractions of AnonPages (divisors), sleeps in ms,
/// and the three timers in seconds. Defaults are cc-proxy's.
public struct ThrottleSettings: Codable, Sendable, Equatable, Hashable {
    public var aggressiveDivisor: Int
    public var aggressiveSleepMsec: Int
    public var standardDivisor: Int
    public var standardSleepMsec: Int
    public var slowDivisor: Int
    public var slowSleepMsec: Int
    /// Seconds without a kick before aggressive → standard.
    public var toStandardSeconds: Int
    /// Seconds without a kick before standard → slow.
    public var toSlowSeconds: Int
    /// Seconds without a kick before slow → the initial settings.
    public var toInitialSeconds: Int

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case aggressiveDivisor, aggressiveSleepMsec, standardDivisor, standardSleepMsec
        case slowDivisor, slowSleepMsec, toStandardSeconds, toSlowSeconds, toInitialSeconds
    }

    public init(
        aggressiveDivisor: Int = 10, aggressiveSleepMsec: Int = 1,
        standardDivisor: Int = 100, standardSleepMsec: Int = 10,
        slowDivisor: Int = 500, slowSleepMsec: Int = 100,
        toStandardSeconds: Int = 30, toSlowSeconds: Int = 120, toInitialSeconds: Int = 120
    ) {
        self.aggressiveDivisor = aggressiveDivisor
        self.aggressiveSleepMsec = aggressiveSleepMsec
        self.standardDivisor = standardDivisor
        self.standardSleepMsec = standardSleepMsec
        self.slowDivisor = slowDivisor
        self.slowSleepMsec = slowSleepMsec
        self.toStandardSeconds = toStandardSeconds
        self.toSlowSeconds = toSlowSeconds
        self.toInitialSeconds = toInitialSeconds
    }

    public static let ccProxy = ThrottleSettings()
}

/// The kernel advisor's settings (`advisor_*` files, kernels 6.7+).
public struct AdvisorSettings: Codable, Sendable, Equatable, Hashable {
    /// Seconds the advisor aims to take for one full scan (`advisor_target_scan_time`).
    public var targetScanTimeSeconds: Int
    /// ksmd CPU % the advisor may use (`advisor_max_cpu`).
    public var maxCpuPercent: Int
    /// `advisor_min_pages_to_scan` and `advisor_max_pages_to_scan`: the advisor starts from the
    /// first and never goes above the second; it may go below the first (pages_to_scan 18–70
    /// for minutes after its first pass, KSM.md §6).
    public var minPagesToScan: Int
    public var maxPagesToScan: Int

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case targetScanTimeSeconds, maxCpuPercent, minPagesToScan, maxPagesToScan
    }

    public init(targetScanTimeSeconds: Int = 30, maxCpuPercent: Int = 70, minPagesToScan: Int = 500, maxPagesToScan: Int = 30_000) {
        self.targetScanTimeSeconds = targetScanTimeSeconds
        self.maxCpuPercent = maxCpuPercent
        self.minPagesToScan = minPagesToScan
        self.maxPagesToScan = maxPagesToScan
    }

    /// A 30 s target (the kernel's 200 s merges too slowly: KSM.md §6) and the kernel's bounds.
    public static let defaults = AdvisorSettings()
}

/// One node's KSM tuning config (Harvester's Ksmtuned spec plus throttle mode).
/// Optional kernel knobs mean "leave the kernel's value alone".
public struct KSMConfig: Codable, Sendable, Equatable, Hashable {
    public var run: RunMode
    public var mode: TuningMode
    /// KSM runs while MemAvailable < thresCoef % of MemTotal (0–100).
    public var thresCoef: Int
    /// 0 or 1; nil keeps the kernel's value (default 1).
    public var mergeAcrossNodes: Int?
    /// Parameters in force. For preset modes they are the preset's (filled in by `normalized()`).
    public var parameters: TunerParameters?
    /// Throttle settings; nil means cc-proxy's defaults.
    public var throttle: ThrottleSettings?
    /// Optional kernel knobs; nil leaves the kernel alone.
    public var maxPageSharing: Int?
    public var useZeroPages: Int?
    public var smartScan: Int?
    /// ksmd CPU budget in % of one core (the adaptive mode corrects its settings to it once per
    /// 20 s window of measured ksmd CPU); nil means no cap. The adaptive
    /// mode keeps to it (and says when it is the limit); other modes only report against it.
    public var maxCpuPercent: Double?
    /// The kernel advisor's settings (mode advisor); nil means `AdvisorSettings.defaults`.
    public var advisor: AdvisorSettings?

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case run, mode, thresCoef, mergeAcrossNodes, parameters, throttle
        case maxPageSharing, useZeroPages, smartScan, maxCpuPercent, advisor
    }

    public init(
        run: RunMode = .stop, mode: TuningMode = .standard, thresCoef: Int = 20,
        mergeAcrossNodes: Int? = nil, parameters: TunerParameters? = nil,
        throttle: ThrottleSettings? = nil, maxPageSharing: Int? = nil,
        useZeroPages: Int? = nil, smartScan: Int? = nil, maxCpuPercent: Double? = nil,
        advisor: AdvisorSettings? = nil
    ) {
        self.run = run
        self.mode = mode
        self.thresCoef = thresCoef
        self.mergeAcrossNodes = mergeAcrossNodes
        self.parameters = parameters
        self.throttle = throttle
        self.maxPageSharing = maxPageSharing
        self.useZeroPages = useZeroPages
        self.smartScan = smartScan
        self.maxCpuPercent = maxCpuPercent
        self.advisor = advisor
    }

    /// The config every newly registered node gets: mode standard, thresCoef 20, run stop,
    /// the standard preset's parameters, and mergeAcrossNodes left unset (the kernel's own value
    /// is kept; Harvester silently wrote 0 here).
    public static let standardDefault = KSMConfig(
        run: .stop, mode: .standard, thresCoef: 20, mergeAcrossNodes: nil, parameters: .standard)

    /// The parameters the tuner uses: the preset's for preset modes, the user's otherwise,
    /// the standard preset when none were given (throttle mode ignores them).
    public var effectiveParameters: TunerParameters {
        mode.preset ?? parameters ?? .standard
    }

    public var effectiveThrottle: ThrottleSettings { throttle ?? .ccProxy }

    public var effectiveAdvisor: AdvisorSettings { advisor ?? .defaults }

    /// The same config with the preset's parameters spelled out, as it is stored and shown.
    public func normalized() -> KSMConfig {
        var copy = self
        if let preset = mode.preset { copy.parameters = preset }
        return copy
    }
}
