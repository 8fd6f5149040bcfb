import FleetAPI
import FleetStore
import Foundation
import KSMCore

/// The node page's config form, as the text of its fields (so a value the user typed is shown
/// back as typed when it is refused). Filled from a stored config, or decoded from the posted form.
struct ConfigForm: Sendable, Equatable {
    var run = ""
    var mode = ""
    var thresCoef = ""
    var mergeAcrossNodes = ""
    var boost = ""
    var decay = ""
    var minPages = ""
    var maxPages = ""
    var sleepMsec = ""
    /// ksmd CPU budget in % of one core; empty means no cap.
    var maxCpuPercent = ""
    /// The generation the form was filled from: the change applies only if it is still current.
    var generation = ""
    /// A digest of the config the form was filled from (`digest`): a newer generation holding
    /// the same config (only kicks came between) does not refuse the form.
    var base = ""

    init() {}

    /// The config's digest, as the form carries it.
    static func digest(_ config: KSMConfig) -> String {
        let json = (try? StrictJSON.encoder().encode(config)).map { String(decoding: $0, as: UTF8.self) } ?? ""
        return String(Secrets.hash(json).prefix(32))
    }

    init(_ c: NodeConfig) {
        let cfg = c.config
        let p = cfg.effectiveParameters
        run = cfg.run.rawValue
        mode = cfg.mode.rawValue
        thresCoef = String(cfg.thresCoef)
        mergeAcrossNodes = cfg.mergeAcrossNodes.map(String.init) ?? ""
        boost = String(p.boost)
        decay = String(p.decay)
        minPages = String(p.minPages)
        maxPages = String(p.maxPages)
        sleepMsec = String(p.sleepMsec)
        // The stored value as it is (a form must round-trip: a rounded value would change the
        // config on the next save of any other field).
        maxCpuPercent = cfg.maxCpuPercent.map { $0.description } ?? ""
        generation = String(c.generation)
        base = Self.digest(cfg)
    }

    /// The form's errors by field, named as `ConfigValidationError` names them ("run",
    /// "parameters.boost"), so the page shows both kinds beside the same inputs.
    struct FieldErrors: Error, Equatable {
        var fields: [String: String]
    }

    /// The generation to check (`If-Match`), or nil when the form does not say.
    var expectedGeneration: Int64? { Int64(generation) }

    /// The API's `ConfigPatch` this form asks for: run, mode, thresCoef and mergeAcrossNodes
    /// always (an unset mergeAcrossNodes clears it), the parameters only in mode customized (the
    /// other modes use their preset's). Throws the fields that are not what they must be.
    func patch() throws(FieldErrors) -> ConfigPatch {
        var errors: [String: String] = [:]
        func int(_ field: String, _ text: String) -> Int? {
            let t = text.trimmingCharacters(in: .whitespaces)
            guard let v = Int(t) else {
                errors[field] = t.isEmpty ? "required" : "'\(t)' is not a whole number"
                return nil
            }
            return v
        }
        let run = RunMode(rawValue: self.run)
        if run == nil { errors["run"] = "choose stop, run, prune or unmanaged" }
        let mode = TuningMode(rawValue: self.mode)
        if mode == nil {
            errors["mode"] = "choose " + TuningMode.allCases.map(\.rawValue).joined(separator: ", ")
        }
        let thres = int("thresCoef", thresCoef)
        var merge: Int?
        switch mergeAcrossNodes {
        case "": merge = nil
        case "0", "1": merge = Int(mergeAcrossNodes)
        default: errors["mergeAcrossNodes"] = "choose unset, 0 or 1"
        }
        let budgetText = maxCpuPercent.trimmingCharacters(in: .whitespaces)
        var budget: Double?
        if !budgetText.isEmpty {
            if let v = Double(budgetText), v.isFinite {
                budget = v
            } else {
                errors["maxCpuPercent"] = "'\(budgetText)' is not a number (percent of one core; empty for no cap)"
            }
        }
        var params: ConfigPatch.PartialParameters?
        if mode == .customized {
            params = ConfigPatch.PartialParameters(
                boost: int("parameters.boost", boost), decay: int("parameters.decay", decay),
                minPages: int("parameters.minPages", minPages), maxPages: int("parameters.maxPages", maxPages),
                sleepMsec: int("parameters.sleepMsec", sleepMsec))
        }
        guard errors.isEmpty else { throw FieldErrors(fields: errors) }
        let clear = (mergeAcrossNodes.isEmpty ? ["mergeAcrossNodes"] : []) + (budget == nil ? ["maxCpuPercent"] : [])
        return ConfigPatch(
            run: run, mode: mode, thresCoef: thres, mergeAcrossNodes: merge, parameters: params,
            maxCpuPercent: budget, clear: clear.isEmpty ? nil : clear)
    }
}

/// The posted form: every field optional (a missing one reads as empty, then refused as such).
extension ConfigForm: Decodable {
    enum CodingKeys: String, CodingKey {
        case run, mode, thresCoef, mergeAcrossNodes, boost, decay, minPages, maxPages, sleepMsec, maxCpuPercent
        case generation, base
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        func text(_ key: CodingKeys) throws -> String { try c.decodeIfPresent(String.self, forKey: key) ?? "" }
        run = try text(.run)
        mode = try text(.mode)
        thresCoef = try text(.thresCoef)
        mergeAcrossNodes = try text(.mergeAcrossNodes)
        boost = try text(.boost)
        decay = try text(.decay)
        minPages = try text(.minPages)
        maxPages = try text(.maxPages)
        sleepMsec = try text(.sleepMsec)
        maxCpuPercent = try text(.maxCpuPercent)
        generation = try text(.generation)
        base = try text(.base)
    }
}
