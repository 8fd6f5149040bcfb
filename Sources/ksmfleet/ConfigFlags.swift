import ArgumentParser
import FleetAPI
import Foundation
import KSMCore

extension RunMode: ExpressibleByArgument {}
extension TuningMode: ExpressibleByArgument {}
extension KSMPhase: ExpressibleByArgument {
    /// `running` works as well as `Running`.
    public init?(argument: String) {
        guard let phase = KSMPhase.allCases.first(where: { $0.rawValue.lowercased() == argument.lowercased() }) else {
            return nil
        }
        self = phase
    }
}

/// The config flags of `config set` and `config apply`, turned into a `ConfigPatch`.
struct ConfigFlags: ParsableArguments {
    @Option(
        help: "What ksmd should do: stop (keep merged pages), run, prune (unmerge all), unmanaged (agent only reports)."
    )
    var run: RunMode?

    @Option(
        help:
            "Tuning mode: standard, high (presets), customized (your parameters), throttle (kick-driven), adaptive (feedback from the kernel), advisor (the kernel's own, 6.7+)."
    )
    var mode: TuningMode?

    @Option(
        parsing: .unconditional,
        help: "ksmd CPU budget in % of one core (mode adaptive keeps to it, measured over 20 s windows).")
    var maxCpuPercent: Double?

    @Option(parsing: .unconditional, help: "KSM runs while MemAvailable is below this % of MemTotal (0-100).")
    var thresCoef: Int?

    @Option(parsing: .unconditional, help: "pages_to_scan increase per tuning step (mode customized).")
    var boost: Int?

    @Option(parsing: .unconditional, help: "pages_to_scan decrease per tuning step (mode customized).")
    var decay: Int?

    @Option(parsing: .unconditional, help: "Lowest pages_to_scan (mode customized).")
    var minPages: Int?

    @Option(parsing: .unconditional, help: "Highest pages_to_scan (mode customized).")
    var maxPages: Int?

    @Option(parsing: .unconditional, help: "Base ksmd sleep in ms for a 16 GiB host (mode customized).")
    var sleepMsec: Int?

    @Option(parsing: .unconditional, help: "merge_across_nodes: 0 or 1 (changing it unmerges every page first).")
    var mergeAcrossNodes: Int?

    var isEmpty: Bool { patch.isEmpty }

    var patch: ConfigPatch {
        let params = ConfigPatch.PartialParameters(
            boost: boost, decay: decay, minPages: minPages, maxPages: maxPages, sleepMsec: sleepMsec)
        return ConfigPatch(
            run: run, mode: mode, thresCoef: thresCoef, mergeAcrossNodes: mergeAcrossNodes,
            parameters: params.isEmpty ? nil : params, maxCpuPercent: maxCpuPercent)
    }
}

enum PatchCheck {
    /// The problems a change has on any node, found without asking the server (so no request is
    /// sent for them): values out of range, minPages above maxPages when both are given,
    /// parameters that disagree with a preset mode given in the same change. The messages are
    /// KSMCore's validation messages, the ones the server answers with.
    static func issues(_ patch: ConfigPatch) -> [ValidationIssue] {
        // A neutral base: every field the change leaves alone has a value that passes, so only
        // the given values can fail.
        let mode = patch.mode ?? .customized
        let given = patch.parameters ?? ConfigPatch.PartialParameters()
        let neutral =
            mode.preset
            ?? TunerParameters(
                boost: 0, decay: 0, minPages: 1, maxPages: ConfigLimits.maxPagesToScan, sleepMsec: 20)
        var params = neutral
        if let v = given.boost { params.boost = v }
        if let v = given.decay { params.decay = v }
        if let v = given.maxPages { params.maxPages = v }
        if let v = given.minPages {
            params.minPages = v
        } else if params.minPages > params.maxPages {
            params.minPages = max(0, min(params.minPages, params.maxPages))
        }
        if let v = given.sleepMsec { params.sleepMsec = v }
        var config = KSMConfig(
            run: patch.run ?? .stop, mode: mode, thresCoef: patch.thresCoef ?? 20,
            mergeAcrossNodes: patch.mergeAcrossNodes, parameters: mode == .throttle || mode == .adaptive || mode == .advisor ? nil : params,
            throttle: patch.throttle, maxPageSharing: patch.maxPageSharing, useZeroPages: patch.useZeroPages,
            smartScan: patch.smartScan, maxCpuPercent: patch.maxCpuPercent, advisor: patch.advisor)
        if mode.preset != nil && patch.parameters == nil { config.parameters = nil }
        var issues = config.validate()
        // minPages 0 with run=run only counts when both are in this change.
        if !(patch.run == .run && given.minPages == 0) {
            issues.removeAll { $0.code == "zero_while_running" }
        }
        // minPages above maxPages only counts when both are in this change (or the preset decides).
        if given.minPages == nil || (given.maxPages == nil && mode.preset == nil) {
            issues.removeAll { $0.code == "min_above_max" }
        }
        // Page counts and sleeps are never negative nor out of range, whatever the mode.
        if mode == .throttle || mode == .adaptive || mode == .advisor, patch.parameters != nil {
            var asCustom = config
            asCustom.mode = .customized
            asCustom.parameters = params
            issues += asCustom.validate().filter {
                $0.field.hasPrefix("parameters.") && ($0.code == "negative" || $0.code == "out_of_range")
            }
        }
        for name in patch.clear ?? [] where !ConfigPatch.clearable.contains(name) {
            issues.append(
                ValidationIssue(
                    code: "invalid_value", field: "clear",
                    message:
                        "'\(name)' cannot be cleared; clearable: \(ConfigPatch.clearable.sorted().joined(separator: ", "))"
                ))
        }
        return issues
    }

    static func check(_ patch: ConfigPatch) throws(CLIError) {
        let found = issues(patch)
        if !found.isEmpty { throw CLIError.invalid(found) }
    }

    /// A change from a JSON file: the fields of `ConfigPatch` (unknown fields refused).
    static func load(file path: String) throws(CLIError) -> ConfigPatch {
        try PatchFile.load(path: path)
    }
}
