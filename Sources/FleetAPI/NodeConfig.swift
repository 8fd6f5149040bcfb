#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import KSMCore

/// A node's config on the wire: the KSMConfig fields plus `generation` (increases on every
/// change) and `kickCounter` (increases on every kick from the server, for throttle mode).
public struct NodeConfig: Codable, Sendable, Equatable, KnownFields {
    public var generation: Int64
    public var kickCounter: Int64
    public var config: KSMConfig

    public init(generation: Int64, kickCounter: Int64 = 0, config: KSMConfig) {
        self.generation = generation
        self.kickCounter = kickCounter
        self.config = config
    }

    enum Keys: String, CodingKey { case generation, kickCounter }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: Keys.self)
        generation = try c.decode(Int64.self, forKey: .generation)
        kickCounter = try c.decodeIfPresent(Int64.self, forKey: .kickCounter) ?? 0
        config = try KSMConfig(from: decoder)
    }

    public func encode(to encoder: any Encoder) throws {
        try config.encode(to: encoder)
        var c = encoder.container(keyedBy: Keys.self)
        try c.encode(generation, forKey: .generation)
        try c.encode(kickCounter, forKey: .kickCounter)
    }

    public static var fieldNames: Set<String> { KSMConfig.fieldNames.union(["generation", "kickCounter"]) }
    public static var nestedFields: [String: any KnownFields.Type] { KSMConfig.nestedFields }
}

/// A partial change to a config (PATCH, fleet-wide apply). Absent fields stay as they are.
/// `clear` names optional kernel knobs to unset (leave the kernel's value alone again).
public struct ConfigPatch: Codable, Sendable, Equatable, KnownFields {
    public var run: RunMode?
    public var mode: TuningMode?
    public var thresCoef: Int?
    public var mergeAcrossNodes: Int?
    public var parameters: PartialParameters?
    public var throttle: ThrottleSettings?
    public var maxPageSharing: Int?
    public var useZeroPages: Int?
    public var smartScan: Int?
    public var maxCpuPercent: Double?
    public var advisor: AdvisorSettings?
    public var clear: [String]?

    public struct PartialParameters: Codable, Sendable, Equatable, KnownFields {
        public var boost: Int?
        public var decay: Int?
        public var minPages: Int?
        public var maxPages: Int?
        public var sleepMsec: Int?
        public init(boost: Int? = nil, decay: Int? = nil, minPages: Int? = nil, maxPages: Int? = nil, sleepMsec: Int? = nil) {
            self.boost = boost
            self.decay = decay
            self.minPages = minPages
            self.maxPages = maxPages
            self.sleepMsec = sleepMsec
        }
        public static var fieldNames: Set<String> { TunerParameters.fieldNames }
        public var isEmpty: Bool { self == PartialParameters() }
    }

    public init(
        run: RunMode? = nil, mode: TuningMode? = nil, thresCoef: Int? = nil, mergeAcrossNodes: Int? = nil,
        parameters: PartialParameters? = nil, throttle: ThrottleSettings? = nil, maxPageSharing: Int? = nil,
        useZeroPages: Int? = nil, smartScan: Int? = nil, maxCpuPercent: Double? = nil,
        advisor: AdvisorSettings? = nil, clear: [String]? = nil
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
        self.clear = clear
    }

    public static let clearable: Set<String> = [
        "mergeAcrossNodes", "maxPageSharing", "useZeroPages", "smartScan", "throttle", "maxCpuPercent", "advisor",
    ]

    public static var fieldNames: Set<String> { KSMConfig.fieldNames.union(["clear"]) }
    public static var nestedFields: [String: any KnownFields.Type] {
        ["parameters": PartialParameters.self, "throttle": ThrottleSettings.self, "advisor": AdvisorSettings.self]
    }

    public var isEmpty: Bool { self == ConfigPatch() }

    /// The config with this change applied, validated. Switching to a preset mode takes the
    /// preset's parameters; switching to customized starts from the parameters in force.
    public func applied(to base: KSMConfig) throws(ConfigValidationError) -> KSMConfig {
        var c = base
        for name in clear ?? [] {
            guard Self.clearable.contains(name) else {
                throw ConfigValidationError([
                    ValidationIssue(
                        code: "invalid_value", field: "clear",
                        message: "'\(name)' cannot be cleared; clearable: \(Self.clearable.sorted().joined(separator: ", "))")
                ])
            }
            switch name {
            case "mergeAcrossNodes": c.mergeAcrossNodes = nil
            case "maxPageSharing": c.maxPageSharing = nil
            case "useZeroPages": c.useZeroPages = nil
            case "smartScan": c.smartScan = nil
            case "maxCpuPercent": c.maxCpuPercent = nil
            case "advisor": c.advisor = nil
            default: c.throttle = nil
            }
        }
        if let run { c.run = run }
        if let mode {
            if mode != c.mode {
                c.parameters = mode.preset ?? (mode == .customized ? base.effectiveParameters : base.parameters)
            }
            c.mode = mode
        }
        if let thresCoef { c.thresCoef = thresCoef }
        if let mergeAcrossNodes { c.mergeAcrossNodes = mergeAcrossNodes }
        if let maxPageSharing { c.maxPageSharing = maxPageSharing }
        if let useZeroPages { c.useZeroPages = useZeroPages }
        if let smartScan { c.smartScan = smartScan }
        if let throttle { c.throttle = throttle }
        if let maxCpuPercent { c.maxCpuPercent = maxCpuPercent }
        if let advisor { c.advisor = advisor }
        if let p = parameters, !p.isEmpty {
            var q = c.parameters ?? c.effectiveParameters
            if let v = p.boost { q.boost = v }
            if let v = p.decay { q.decay = v }
            if let v = p.minPages { q.minPages = v }
            if let v = p.maxPages { q.maxPages = v }
            if let v = p.sleepMsec { q.sleepMsec = v }
            c.parameters = q
        }
        return try c.validated()
    }
}

/// Field-by-field differences between two configs, for dry runs and the audit log.
public func configDiff(_ a: KSMConfig, _ b: KSMConfig) -> [String] {
    var out: [String] = []
    func cmp<T: Equatable>(_ name: String, _ x: T?, _ y: T?) {
        if x != y { out.append("\(name): \(x.map { "\($0)" } ?? "unset") → \(y.map { "\($0)" } ?? "unset")") }
    }
    cmp("run", a.run.rawValue, b.run.rawValue)
    cmp("mode", a.mode.rawValue, b.mode.rawValue)
    cmp("thresCoef", a.thresCoef, b.thresCoef)
    cmp("mergeAcrossNodes", a.mergeAcrossNodes, b.mergeAcrossNodes)
    let pa = a.effectiveParameters, pb = b.effectiveParameters
    cmp("parameters.boost", pa.boost, pb.boost)
    cmp("parameters.decay", pa.decay, pb.decay)
    cmp("parameters.minPages", pa.minPages, pb.minPages)
    cmp("parameters.maxPages", pa.maxPages, pb.maxPages)
    cmp("parameters.sleepMsec", pa.sleepMsec, pb.sleepMsec)
    if a.throttle != b.throttle { out.append("throttle: changed") }
    cmp("maxPageSharing", a.maxPageSharing, b.maxPageSharing)
    cmp("useZeroPages", a.useZeroPages, b.useZeroPages)
    cmp("smartScan", a.smartScan, b.smartScan)
    cmp("maxCpuPercent", a.maxCpuPercent, b.maxCpuPercent)
    if a.advisor != b.advisor { out.append("advisor: changed") }
    return out
}
