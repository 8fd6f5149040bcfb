import FleetAPI
import Foundation
import KSMCore
import KSMNode
import Testing

@Suite("Config files (JSON)")
struct ConfigFileTests {
    static let json = """
        {"run": "run", "mode": "customized", "thresCoef": 30, "mergeAcrossNodes": 1,
         "parameters": {"boost": 300, "decay": 50, "minPages": 64, "maxPages": 1250, "sleepMsec": 10}}
        """

    static let expected = KSMConfig(
        run: .run, mode: .customized, thresCoef: 30, mergeAcrossNodes: 1,
        parameters: TunerParameters(boost: 300, decay: 50, minPages: 64, maxPages: 1250, sleepMsec: 10))

    @Test func jsonConfig() throws {
        #expect(try ConfigFile.parse(Self.json) == Self.expected)
    }

    @Test func presetModeGetsItsParametersFilledIn() throws {
        let c = try ConfigFile.parse(#"{"run": "run", "mode": "high", "thresCoef": 20}"#)
        #expect(c.parameters == .high)
    }

    @Test func throttleSettingsNest() throws {
        let text = """
            {"run": "run", "mode": "throttle", "thresCoef": 20,
             "throttle": {"aggressiveDivisor": 10, "aggressiveSleepMsec": 1, "standardDivisor": 100,
                          "standardSleepMsec": 10, "slowDivisor": 500, "slowSleepMsec": 100,
                          "toStandardSeconds": 5, "toSlowSeconds": 10, "toInitialSeconds": 10}}
            """
        let c = try ConfigFile.parse(text)
        #expect(c.throttle?.toStandardSeconds == 5)
    }

    @Test func unknownFieldIsRefusedWithItsName() {
        do {
            _ = try ConfigFile.parse(#"{"run": "run", "mode": "standard", "thresCoef": 20, "parameters": {"boots": 1}}"#)
            Issue.record("expected a refusal")
        } catch {
            #expect(error.code == "unknown_field")
            #expect(error.field == "parameters.boots")
            #expect(error.description.contains("parameters.boots"))
        }
    }

    @Test func keyNamedTwiceIsRefusedWithItsPath() {
        // Escaped or not, in one object: JSON leaves which copy counts to the reader.
        for (text, field) in [
            (#"{"run": "run", "mode": "standard", "thresCoef": 20, "thresCoef": 90}"#, "thresCoef"),
            ("\u{FEFF}" + #"{"run": "run", "mode": "standard", "thresCoef": 20, "thresCoef": 90}"#, "thresCoef"),  // a BOM
            (#"{"run": "run", "mode": "standard", "thresCoef": 20, "r\u0075n": "stop"}"#, "run"),
            (#"{"run": "run", "mode": "customized", "thresCoef": 20, "parameters": {"boost": 1, "decay": 1, "minPages": 1, "maxPages": 2, "sleepMsec": 5, "decay": 9}}"#, "parameters.decay"),
        ] {
            do {
                _ = try ConfigFile.parse(text)
                Issue.record("expected a refusal: \(text)")
            } catch {
                #expect(error.code == "duplicate_field")
                #expect(error.field == field)
            }
        }
        // UTF-16 (which Foundation reads and the key scanner does not) is refused as not UTF-8.
        let utf16 = Data(#"{"x":1,"x":2}"#.utf16.flatMap { [UInt8($0 & 0xFF), UInt8($0 >> 8)] })
        for body in [utf16, Data([0xFF, 0xFE]) + utf16] {
            let refused = #expect(throws: InputError.self) { try StrictJSON.value(from: body) }
            #expect(refused?.code == "malformed_json", "\(String(describing: refused))")
        }
        let bom = #expect(throws: InputError.self) { try StrictJSON.value(from: Data([0xEF, 0xBB, 0xBF]) + Data(#"{"x":1,"x":2}"#.utf8)) }
        #expect(bom?.code == "duplicate_field" && bom?.field == "x")
        // The same key in two objects is not a repeat.
        #expect(StrictJSON.duplicateKey(in: Data(#"{"a": {"x": 1}, "b": {"x": [{"x": 2}, {"x": "}"}]}}"#.utf8)) == nil)
        #expect(StrictJSON.duplicateKey(in: Data(#"[{"x": 1}, {"y": "\"x\"", "y2": 1, "y": 0}]"#.utf8))?.path == "[1].y")
    }

    @Test func generationIsNotPartOfAStandaloneFile() {
        do {
            _ = try ConfigFile.parse(#"{"generation": 3, "run": "stop", "mode": "standard", "thresCoef": 20}"#)
            Issue.record("expected a refusal")
        } catch {
            #expect(error.field == "generation")
        }
    }

    @Test func badValueIsRefusedWithFieldAndReason() {
        do {
            _ = try ConfigFile.parse(#"{"run": "run", "mode": "standard", "thresCoef": 150}"#)
            Issue.record("expected a refusal")
        } catch {
            #expect(error.field == "thresCoef")
            #expect(error.code == "out_of_range")
            #expect(error.description.contains("thresCoef"))
            #expect(error.description.contains("150"))
        }
    }

    @Test func everyInvalidFieldIsListed() {
        let text = """
            {"run": "run", "mode": "customized", "thresCoef": -1,
             "parameters": {"boost": 0, "decay": 0, "minPages": 500, "maxPages": 100, "sleepMsec": 10}}
            """
        do {
            _ = try ConfigFile.parse(text)
            Issue.record("expected a refusal")
        } catch {
            #expect(error.issues.map(\.field).contains("thresCoef"))
            #expect(error.issues.map(\.field).contains("parameters.minPages"))
            #expect(error.description.contains("minPages 500 is greater than maxPages 100"))
        }
    }

    @Test func wrongTypeNamesTheField() {
        do {
            _ = try ConfigFile.parse(#"{"run": "run", "mode": "standard", "thresCoef": "lots"}"#)
            Issue.record("expected a refusal")
        } catch {
            #expect(error.field == "thresCoef")
            #expect(error.code == "invalid_type")
        }
    }

    @Test func unknownEnumValueNamesTheAllowedOnes() {
        do {
            _ = try ConfigFile.parse(#"{"run": "sometimes", "mode": "standard", "thresCoef": 20}"#)
            Issue.record("expected a refusal")
        } catch {
            #expect(error.field == "run")
            #expect(error.message.contains("stop, run, prune, unmanaged"))
        }
    }

    @Test func malformedJSON() {
        do {
            _ = try ConfigFile.parse("{\"run\": ")
            Issue.record("expected a refusal")
        } catch {
            #expect(error.code == "malformed_json")
        }
    }

    @Test(arguments: ["", "  \n", "null"])
    func emptyFile(text: String) {
        do {
            _ = try ConfigFile.parse(text)
            Issue.record("expected a refusal")
        } catch {
            #expect(error.code == "empty")
        }
    }

    /// Config files used to be read as YAML too: such a file is refused with a message that says
    /// so and what to do, not with a JSON syntax error.
    @Test(arguments: [
        ("c.yaml", "run: run\nmode: standard\nthresCoef: 20\n"),
        ("c.yml", "# comment\nrun: run\n"),
        ("c.conf", "# slower scanning\nthresCoef: 40\nrun: run\n"),
        ("c.yaml", "---\nrun: run\n"),
    ])
    func yamlIsRefusedClearly(name: String, text: String) throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ksmfleet-cf-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent(name).path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        do {
            _ = try ConfigFile.load(path: path)
            Issue.record("expected a refusal")
        } catch {
            #expect(error.code == "yaml_not_supported")
            #expect(error.description.hasPrefix(path + ": "))
            #expect(error.description.contains("JSON"), "\(error)")
        }
    }

    @Test func filesAreReadWhateverTheirExtension() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ksmfleet-cf-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let j = dir.appendingPathComponent("c.json").path
        try Self.json.write(toFile: j, atomically: true, encoding: .utf8)
        #expect(try ConfigFile.load(path: j) == Self.expected)
        let c = dir.appendingPathComponent("c.conf").path
        try #"{"run":"stop","mode":"standard","thresCoef":20}"#.write(toFile: c, atomically: true, encoding: .utf8)
        #expect(try ConfigFile.load(path: c).run == .stop)
        #expect(
            try ConfigFile.value(path: c)
                == .object(["run": .string("stop"), "mode": .string("standard"), "thresCoef": .int(20)]))
        do {
            _ = try ConfigFile.load(path: dir.appendingPathComponent("missing.json").path)
            Issue.record("expected a refusal")
        } catch {
            #expect(error.code == "unreadable")
            #expect(error.description.contains("missing.json"))
        }
        // A bad JSON file names its path.
        let bad = dir.appendingPathComponent("bad.json").path
        try #"{"run": "run", "mode": ["a"]"#.write(toFile: bad, atomically: true, encoding: .utf8)
        do {
            _ = try ConfigFile.load(path: bad)
            Issue.record("expected a refusal")
        } catch {
            #expect(error.code == "malformed_json")
            #expect(error.description.hasPrefix(bad + ": "))
        }
    }
}

@Suite("The example config files in agent/examples")
struct ExampleConfigTests {
    static var examples: String {
        // Tests/KSMNodeTests/ConfigFileTests.swift → the package root.
        let file = "\(#filePath)"
        var parts = file.split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(3)
        return parts.joined(separator: "/") + "/agent/examples"
    }

    @Test func everyExampleIsJSON() throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: Self.examples)
        #expect(!names.isEmpty)
        #expect(names.allSatisfy { $0.hasSuffix(".json") }, "\(names)")
    }

    @Test func customizedExampleIsValid() throws {
        let c = try ConfigFile.load(path: Self.examples + "/standalone-customized.json")
        #expect(c.run == .run)
        #expect(c.mode == .customized)
        #expect(c.parameters == TunerParameters(boost: 300, decay: 50, minPages: 64, maxPages: 1250, sleepMsec: 10))
        #expect(c.mergeAcrossNodes == nil)
    }

    @Test func jsonExampleIsValid() throws {
        let c = try ConfigFile.load(path: Self.examples + "/standalone.json")
        #expect(c.mode == .throttle)
        #expect(c.effectiveThrottle == .ccProxy)
    }
}
