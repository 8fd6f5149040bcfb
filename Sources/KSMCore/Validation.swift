/// One problem with one field of a config: what an operator needs to fix it.
public struct ValidationIssue: Error, Sendable, Equatable, Hashable, CustomStringConvertible {
    /// Machine-readable reason, e.g. `out_of_range`, `min_above_max`.
    public var code: String
    /// The offending field as a JSON path, e.g. `parameters.minPages`.
    public var field: String
    public var message: String

    public init(code: String, field: String, message: String) {
        self.code = code
        self.field = field
        self.message = message
    }

    public var description: String { "\(field): \(message)" }
}

/// All the problems of a config, in field order. Thrown by `KSMConfig.validated()`.
public struct ConfigValidationError: Error, Sendable, Equatable, CustomStringConvertible {
    public var issues: [ValidationIssue]
    public init(_ issues: [ValidationIssue]) { self.issues = issues }
    public var description: String { issues.map(\.description).joined(separator: "; ") }
}

/// Upper bounds that keep values inside what the kernel's unsigned int files accept and what
/// makes sense for a host; anything above is almost certainly a typo.
public enum ConfigLimits {
    public static let maxPagesToScan = 100_000_000
    public static let maxSleepMsec = 3_600_000
    public static let maxThrottleSeconds = 86_400
    public static let maxDivisor = 1_000_000
    public static let maxPageSharingRange = 2...1_000_000
    /// The smallest ksmd CPU budget: below it ksmd could not finish a pass on a large host.
    public static let minCpuPercent = 0.1
}

extension KSMConfig {
    /// Every problem with this config; empty when it may be applied.
    public func validate() -> [ValidationIssue] {
        var issues: [ValidationIssue] = []
        func outOfRange(_ field: String, _ value: Int, _ range: ClosedRange<Int>) {
            if !range.contains(value) {
                let code = value < 0 && range.lowerBound >= 0 ? "negative" : "out_of_range"
                issues.append(
                    ValidationIssue(
                        code: code, field: field,
                        message: "\(value) is outside \(range.lowerBound)–\(range.upperBound)"))
            }
        }
        outOfRange("thresCoef", thresCoef, 0...100)
        if let m = mergeAcrossNodes { outOfRange("mergeAcrossNodes", m, 0...1) }
        if let v = maxPageSharing { outOfRange("maxPageSharing", v, ConfigLimits.maxPageSharingRange) }
        if let v = useZeroPages { outOfRange("useZeroPages", v, 0...1) }
        if let v = smartScan { outOfRange("smartScan", v, 0...1) }
        if let v = maxCpuPercent, !(v >= ConfigLimits.minCpuPercent && v <= 100) {
            issues.append(
                ValidationIssue(
                    code: v.isNaN || v < 0 ? "negative" : "out_of_range", field: "maxCpuPercent",
                    message:
                        "\(v) is outside \(ConfigLimits.minCpuPercent)–100 (percent of one core; ksmd is one thread)"))
        }

        if let preset = mode.preset, let given = parameters, given != preset {
            let diffs = TunerParameters.CodingKeys.allCases.filter {
                given.value(of: $0) != preset.value(of: $0)
            }.map { "\($0.stringValue) \(given.value(of: $0)) (preset \(preset.value(of: $0)))" }
            issues.append(
                ValidationIssue(
                    code: "preset_mismatch", field: "parameters",
                    message:
                        "mode \(mode.rawValue) uses its preset parameters; these disagree: \(diffs.joined(separator: ", ")). Use mode customized to set your own"
                ))
        }
        if mode == .customized && parameters == nil {
            issues.append(
                ValidationIssue(
                    code: "required", field: "parameters",
                    message: "mode customized needs parameters {boost, decay, minPages, maxPages, sleepMsec}"))
        }
        if let a = advisor {
            outOfRange("advisor.targetScanTimeSeconds", a.targetScanTimeSeconds, 1...ConfigLimits.maxThrottleSeconds)
            outOfRange("advisor.maxCpuPercent", a.maxCpuPercent, 1...100)
            outOfRange("advisor.minPagesToScan", a.minPagesToScan, 1...ConfigLimits.maxPagesToScan)
            outOfRange("advisor.maxPagesToScan", a.maxPagesToScan, 1...ConfigLimits.maxPagesToScan)
            if a.minPagesToScan > a.maxPagesToScan {
                issues.append(
                    ValidationIssue(
                        code: "min_above_max", field: "advisor.minPagesToScan",
                        message: "minPagesToScan \(a.minPagesToScan) is greater than maxPagesToScan \(a.maxPagesToScan)"))
            }
        }
        func inRange(_ p: TunerParameters) {
            outOfRange("parameters.boost", p.boost, 0...ConfigLimits.maxPagesToScan)
            outOfRange("parameters.decay", p.decay, 0...ConfigLimits.maxPagesToScan)
            outOfRange("parameters.minPages", p.minPages, 0...ConfigLimits.maxPagesToScan)
            outOfRange("parameters.maxPages", p.maxPages, 0...ConfigLimits.maxPagesToScan)
            outOfRange("parameters.sleepMsec", p.sleepMsec, 0...ConfigLimits.maxSleepMsec)
        }
        if mode != .throttle && mode != .adaptive && mode != .advisor {
            let p = effectiveParameters
            inRange(p)
            if p.minPages > p.maxPages {
                issues.append(
                    ValidationIssue(
                        code: "min_above_max", field: "parameters.minPages",
                        message: "minPages \(p.minPages) is greater than maxPages \(p.maxPages)"))
            }
            if p.minPages == 0 && run == .run {
                issues.append(
                    ValidationIssue(
                        code: "zero_while_running", field: "parameters.minPages",
                        message: "minPages 0 with run=run would let ksmd run while scanning nothing"))
            }
            if p.sleepMsec == 0 {
                issues.append(
                    ValidationIssue(
                        code: "zero", field: "parameters.sleepMsec",
                        message: "sleepMsec must be at least 1 (0 would make ksmd spin)"))
            }
        } else if let p = parameters {
            // The throttle, adaptive and advisor modes do not use them, but they are stored and
            // shown (the API says each is 0…maxPagesToScan / maxSleepMsec): out of range is refused.
            inRange(p)
        }
        if let t = throttle {
            for (name, v) in [
                ("aggressiveDivisor", t.aggressiveDivisor), ("standardDivisor", t.standardDivisor),
                ("slowDivisor", t.slowDivisor),
            ] {
                outOfRange("throttle.\(name)", v, 1...ConfigLimits.maxDivisor)
            }
            for (name, v) in [
                ("aggressiveSleepMsec", t.aggressiveSleepMsec), ("standardSleepMsec", t.standardSleepMsec),
                ("slowSleepMsec", t.slowSleepMsec),
            ] {
                outOfRange("throttle.\(name)", v, 1...ConfigLimits.maxSleepMsec)
            }
            for (name, v) in [
                ("toStandardSeconds", t.toStandardSeconds), ("toSlowSeconds", t.toSlowSeconds),
                ("toInitialSeconds", t.toInitialSeconds),
            ] {
                outOfRange("throttle.\(name)", v, 1...ConfigLimits.maxThrottleSeconds)
            }
        }
        return issues
    }

    /// The normalized config, or every problem with it.
    public func validated() throws(ConfigValidationError) -> KSMConfig {
        let issues = validate()
        if !issues.isEmpty { throw ConfigValidationError(issues) }
        return normalized()
    }
}

extension KSMConfig {
    /// Problems of this config on a node whose kernel has the KSM files `features` (as the agent
    /// reported at registration): mode advisor needs `advisor_mode` (Linux 6.7+). An empty list
    /// means the features are not known, and nothing is refused for them.
    public func issues(onKernelWith features: [String], kernel: String) -> [ValidationIssue] {
        guard !features.isEmpty, mode == .advisor, !features.contains("advisor_mode") else { return [] }
        return [
            ValidationIssue(
                code: "unsupported", field: "mode",
                message:
                    "mode advisor needs the kernel's KSM advisor (advisor_mode, Linux 6.7+); this node's kernel \(kernel) has none: use adaptive"
            )
        ]
    }
}

extension TunerParameters {
    func value(of key: CodingKeys) -> Int {
        switch key {
        case .boost: return boost
        case .decay: return decay
        case .minPages: return minPages
        case .maxPages: return maxPages
        case .sleepMsec: return sleepMsec
        }
    }
}
