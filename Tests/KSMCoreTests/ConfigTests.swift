import FleetAPI
import Foundation
import KSMCore
import Testing

@Suite("Config model, presets and validation")
struct ConfigTests {
    @Test("standard preset is exactly Harvester's")
    func standardPreset() {
        #expect(TunerParameters.standard == TunerParameters(boost: 0, decay: 0, minPages: 100, maxPages: 100, sleepMsec: 20))
        #expect(TuningMode.standard.preset == .standard)
    }

    @Test("high preset is exactly Harvester's")
    func highPreset() {
        #expect(TunerParameters.high == TunerParameters(boost: 200, decay: 50, minPages: 100, maxPages: 10000, sleepMsec: 20))
        #expect(TuningMode.high.preset == .high)
    }

    @Test("customized and throttle have no preset; customized takes the user's values")
    func customized() throws {
        #expect(TuningMode.customized.preset == nil)
        #expect(TuningMode.throttle.preset == nil)
        let mine = TunerParameters(boost: 300, decay: 50, minPages: 100, maxPages: 2000, sleepMsec: 20)
        let c = try KSMConfig(run: .run, mode: .customized, parameters: mine).validated()
        #expect(c.effectiveParameters == mine)
    }

    @Test("the auto-created config: standard, thresCoef 20, run stop, mergeAcrossNodes unset")
    func standardDefault() throws {
        let c = KSMConfig.standardDefault
        #expect(c.run == .stop)
        #expect(c.mode == .standard)
        #expect(c.thresCoef == 20)
        #expect(c.parameters == .standard)
        // Harvester's auto-created CR wrote mergeAcrossNodes 0, silently changing the kernel default 1.
        #expect(c.mergeAcrossNodes == nil)
        let json = String(decoding: try StrictJSON.encoder().encode(c), as: UTF8.self)
        #expect(!json.contains("mergeAcrossNodes"))
        #expect(c.validate().isEmpty)
    }

    @Test("normalized() spells out preset parameters")
    func normalized() {
        #expect(KSMConfig(mode: .high).normalized().parameters == .high)
        #expect(KSMConfig(mode: .customized).normalized().parameters == nil)
    }

    static let invalid: [(String, KSMConfig, String, String)] = [
        ("thresCoef above 100", KSMConfig(thresCoef: 101), "thresCoef", "out_of_range"),
        ("thresCoef negative", KSMConfig(thresCoef: -1), "thresCoef", "negative"),
        (
            "negative boost",
            KSMConfig(mode: .customized, parameters: .init(boost: -5, decay: 0, minPages: 10, maxPages: 20, sleepMsec: 20)),
            "parameters.boost", "negative"
        ),
        (
            "negative decay",
            KSMConfig(mode: .customized, parameters: .init(boost: 0, decay: -1, minPages: 10, maxPages: 20, sleepMsec: 20)),
            "parameters.decay", "negative"
        ),
        (
            "negative minPages",
            KSMConfig(mode: .customized, parameters: .init(boost: 0, decay: 0, minPages: -10, maxPages: 20, sleepMsec: 20)),
            "parameters.minPages", "negative"
        ),
        (
            "negative maxPages",
            KSMConfig(mode: .customized, parameters: .init(boost: 0, decay: 0, minPages: 0, maxPages: -20, sleepMsec: 20)),
            "parameters.maxPages", "negative"
        ),
        (
            "minPages above maxPages",
            KSMConfig(mode: .customized, parameters: .init(boost: 0, decay: 0, minPages: 500, maxPages: 100, sleepMsec: 20)),
            "parameters.minPages", "min_above_max"
        ),
        (
            "minPages 0 while running",
            KSMConfig(run: .run, mode: .customized, parameters: .init(boost: 10, decay: 0, minPages: 0, maxPages: 100, sleepMsec: 20)),
            "parameters.minPages", "zero_while_running"
        ),
        (
            "sleepMsec 0",
            KSMConfig(mode: .customized, parameters: .init(boost: 0, decay: 0, minPages: 10, maxPages: 100, sleepMsec: 0)),
            "parameters.sleepMsec", "zero"
        ),
        (
            "preset parameters that disagree",
            KSMConfig(mode: .standard, parameters: .init(boost: 300, decay: 0, minPages: 100, maxPages: 100, sleepMsec: 20)),
            "parameters", "preset_mismatch"
        ),
        ("customized without parameters", KSMConfig(mode: .customized), "parameters", "required"),
        ("mergeAcrossNodes 2", KSMConfig(mergeAcrossNodes: 2), "mergeAcrossNodes", "out_of_range"),
        ("maxPageSharing 1", KSMConfig(maxPageSharing: 1), "maxPageSharing", "out_of_range"),
        ("useZeroPages 3", KSMConfig(useZeroPages: 3), "useZeroPages", "out_of_range"),
        ("throttle divisor 0", KSMConfig(mode: .throttle, throttle: ThrottleSettings(aggressiveDivisor: 0)), "throttle.aggressiveDivisor", "out_of_range"),
        ("throttle timer 0", KSMConfig(mode: .throttle, throttle: ThrottleSettings(toSlowSeconds: 0)), "throttle.toSlowSeconds", "out_of_range"),
        (
            "throttle with negative stored parameters",
            KSMConfig(mode: .throttle, parameters: .init(boost: 0, decay: 0, minPages: -3628, maxPages: 100, sleepMsec: 20)),
            "parameters.minPages", "negative"
        ),
    ]

    @Test("every invalid value is refused with its own field and code", arguments: invalid)
    func invalidConfigs(name: String, config: KSMConfig, field: String, code: String) {
        let issues = config.validate()
        #expect(issues.contains { $0.field == field && $0.code == code }, "\(name): got \(issues)")
        #expect(throws: ConfigValidationError.self) { try config.validated() }
    }

    @Test("a preset given with exactly its own parameters is accepted")
    func presetMatching() {
        #expect(KSMConfig(mode: .high, parameters: .high).validate().isEmpty)
    }

    @Test("minPages 0 is fine while stopped, since nothing scans")
    func zeroMinWhileStopped() {
        let c = KSMConfig(run: .stop, mode: .customized, parameters: .init(boost: 0, decay: 0, minPages: 0, maxPages: 10, sleepMsec: 20))
        #expect(c.validate().isEmpty)
    }

    @Test("an unknown mode is refused with the accepted values named")
    func unknownMode() {
        let data = Data(#"{"run":"run","mode":"turbo","thresCoef":20}"#.utf8)
        do {
            _ = try StrictJSON.decode(KSMConfig.self, from: data)
            Issue.record("decoded an unknown mode")
        } catch {
            #expect(error.field == "mode")
            #expect(error.code == "invalid_value")
            #expect(error.message.contains("standard, high, customized, throttle"))
        }
    }

    @Test("unknown fields are refused with their path")
    func unknownFields() {
        let top = Data(#"{"run":"run","mode":"standard","thresCoef":20,"thresCoeff":30}"#.utf8)
        do {
            _ = try StrictJSON.decode(KSMConfig.self, from: top)
            Issue.record("accepted an unknown field")
        } catch {
            #expect(error.code == "unknown_field")
            #expect(error.field == "thresCoeff")
        }
        let nested = Data(#"{"run":"run","mode":"customized","thresCoef":20,"parameters":{"boost":1,"decay":1,"minPages":1,"maxPages":2,"sleepMsec":3,"turbo":1}}"#.utf8)
        do {
            _ = try StrictJSON.decode(KSMConfig.self, from: nested)
            Issue.record("accepted an unknown nested field")
        } catch {
            #expect(error.field == "parameters.turbo")
        }
    }

    @Test("malformed JSON and wrong types name the problem")
    func malformed() {
        do {
            _ = try StrictJSON.decode(KSMConfig.self, from: Data("{run:".utf8))
            Issue.record("accepted malformed JSON")
        } catch {
            #expect(error.code == "malformed_json")
        }
        do {
            _ = try StrictJSON.decode(KSMConfig.self, from: Data(#"{"run":"run","mode":"high","thresCoef":"twenty"}"#.utf8))
            Issue.record("accepted a string for an integer")
        } catch {
            #expect(error.code == "invalid_type")
            #expect(error.field == "thresCoef")
        }
        do {
            _ = try StrictJSON.decode(KSMConfig.self, from: Data(#"{"mode":"high","thresCoef":20}"#.utf8))
            Issue.record("accepted a missing run")
        } catch {
            #expect(error.code == "missing_field")
            #expect(error.field == "run")
        }
    }

    @Test("a NodeConfig round-trips with generation and kickCounter flattened")
    func nodeConfigWire() throws {
        let nc = NodeConfig(generation: 7, kickCounter: 2, config: KSMConfig.standardDefault)
        let data = try StrictJSON.encoder().encode(nc)
        let text = String(decoding: data, as: UTF8.self)
        #expect(text.contains(#""generation":7"#))
        #expect(text.contains(#""run":"stop""#))
        #expect(try StrictJSON.decode(NodeConfig.self, from: data) == nc)
    }
}

@Suite("Partial changes (PATCH, fleet-wide apply)")
struct ConfigPatchTests {
    @Test("changing one field keeps the rest")
    func onlyThatField() throws {
        let base = KSMConfig.standardDefault
        let c = try ConfigPatch(run: .run).applied(to: base)
        #expect(c.run == .run)
        #expect(c.mode == .standard)
        #expect(c.thresCoef == 20)
    }

    @Test("switching to a preset takes the preset's parameters")
    func toPreset() throws {
        let base = try KSMConfig(mode: .customized, parameters: .init(boost: 1, decay: 1, minPages: 5, maxPages: 50, sleepMsec: 30)).validated()
        let c = try ConfigPatch(mode: .high).applied(to: base)
        #expect(c.parameters == .high)
    }

    @Test("switching to customized starts from the parameters in force")
    func toCustomized() throws {
        let c = try ConfigPatch(mode: .customized, parameters: .init(maxPages: 5000)).applied(to: .standardDefault)
        #expect(c.parameters == TunerParameters(boost: 0, decay: 0, minPages: 100, maxPages: 5000, sleepMsec: 20))
    }

    @Test("a change that breaks a rule is refused with the field")
    func invalid() {
        #expect(throws: ConfigValidationError.self) {
            try ConfigPatch(mode: .customized, parameters: .init(minPages: 500, maxPages: 100)).applied(to: .standardDefault)
        }
        // Parameters on a preset mode that disagree with it.
        #expect(throws: ConfigValidationError.self) {
            try ConfigPatch(parameters: .init(maxPages: 5000)).applied(to: .standardDefault)
        }
    }

    @Test("clear unsets an optional kernel knob; unknown names are refused")
    func clear() throws {
        let base = try KSMConfig(mergeAcrossNodes: 0, parameters: .standard).validated()
        #expect(try ConfigPatch(clear: ["mergeAcrossNodes"]).applied(to: base).mergeAcrossNodes == nil)
        #expect(throws: ConfigValidationError.self) { try ConfigPatch(clear: ["thresCoef"]).applied(to: base) }
    }

    @Test("configDiff lists exactly the changed fields")
    func diff() throws {
        let a = KSMConfig.standardDefault
        let b = try ConfigPatch(run: .run, thresCoef: 30).applied(to: a)
        #expect(configDiff(a, b) == ["run: stop → run", "thresCoef: 20 → 30"])
        #expect(configDiff(a, a).isEmpty)
    }

    @Test("selectors parse k=v pairs and refuse junk")
    func selectors() throws {
        #expect(try parseSelector("rack=a, zone = eu") == ["rack": "a", "zone": "eu"])
        #expect(throws: InputError.self) { try parseSelector("rack") }
        #expect(throws: InputError.self) { try parseSelector("") }
        // A key twice matches no node; keeping the last value matched every env=staging node.
        #expect(throws: InputError.self) { try parseSelector("env=prod,env=staging") }
    }
}
