import FleetAPI
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
    /// The generation the form was filled from: the change applies only if it is still current.
    var generation = ""

    init() {}

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
        generation = String(c.generation)
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
        if mode == nil { errors["mode"] = "choose standard, high, customized or throttle" }
        let thres = int("thresCoef", thresCoef)
        var merge: Int?
        switch mergeAcrossNodes {
        case "": merge = nil
        case "0", "1": merge = Int(mergeAcrossNodes)
        default: errors["mergeAcrossNodes"] = "choose unset, 0 or 1"
        }
        var params: ConfigPatch.PartialParameters?
        if mode == .customized {
            params = ConfigPatch.PartialParameters(
                boost: int("parameters.boost", boost), decay: int("parameters.decay", decay),
                minPages: int("parameters.minPages", minPages), maxPages: int("parameters.maxPages", maxPages),
                sleepMsec: int("parameters.sleepMsec", sleepMsec))
        }
        guard errors.isEmpty else { throw FieldErrors(fields: errors) }
        return ConfigPatch(
            run: run, mode: mode, thresCoef: thres, mergeAcrossNodes: merge, parameters: params,
            clear: mergeAcrossNodes.isEmpty ? ["mergeAcrossNodes"] : nil)
    }
}

/// The posted form: every field optional (a missing one reads as empty, then refused as such).
extension ConfigForm: Decodable {
    enum CodingKeys: String, CodingKey {
        case run, mode, thresCoef, mergeAcrossNodes, boost, decay, minPages, maxPages, sleepMsec, generation
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
        generation = try text(.generation)
    }
}
