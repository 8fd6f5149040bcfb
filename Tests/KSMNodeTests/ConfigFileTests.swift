import FleetAPI
import Foundation
import KSMCore
import KSMNode
import Testing

@Suite("Config files (JSON and the YAML subset)")
struct ConfigFileTests {
    static let yaml = """
        # standalone config
        run: run
        mode: customized
        thresCoef: 30      # percent
        mergeAcrossNodes: 1
        parameters:
          boost: 300
          decay: 50
          minPages: 64
          maxPages: 1250
          sleepMsec: 10
        """

    static let expected = KSMConfig(
        run: .run, mode: .customized, thresCoef: 30, mergeAcrossNodes: 1,
        parameters: TunerParameters(boost: 300, decay: 50, minPages: 64, maxPages: 1250, sleepMsec: 10))

    @Test func yamlConfig() throws {
        #expect(try ConfigFile.parse(Self.yaml, format: .yaml) == Self.expected)
    }

    @Test func jsonConfig() throws {
        let json = """
            {"run": "run", "mode": "customized", "thresCoef": 30, "mergeAcrossNodes": 1,
             "parameters": {"boost": 300, "decay": 50, "minPages": 64, "maxPages": 1250, "sleepMsec": 10}}
            """
        #expect(try ConfigFile.parse(json, format: .json) == Self.expected)
    }

    @Test func presetModeGetsItsParametersFilledIn() throws {
        let c = try ConfigFile.parse("run: run\nmode: high\nthresCoef: 20\n", format: .yaml)
        #expect(c.parameters == .high)
    }

    @Test func throttleSettingsNest() throws {
        let text = """
            run: run
            mode: throttle
            thresCoef: 20
            throttle:
              aggressiveDivisor: 10
              aggressiveSleepMsec: 1
              standardDivisor: 100
              standardSleepMsec: 10
              slowDivisor: 500
              slowSleepMsec: 100
              toStandardSeconds: 5
              toSlowSeconds: 10
              toInitialSeconds: 10
            """
        let c = try ConfigFile.parse(text, format: .yaml)
        #expect(c.throttle?.toStandardSeconds == 5)
    }

    @Test(arguments: [ConfigFile.Format.yaml, .json])
    func unknownFieldIsRefusedWithItsName(format: ConfigFile.Format) {
        let text =
            format == .yaml
            ? "run: run\nmode: standard\nthresCoef: 20\nparameters:\n  boots: 1\n"
            : #"{"run": "run", "mode": "standard", "thresCoef": 20, "parameters": {"boots": 1}}"#
        do {
            _ = try ConfigFile.parse(text, format: format)
            Issue.record("expected a refusal")
        } catch {
            #expect(error.code == "unknown_field")
            #expect(error.field == "parameters.boots")
            #expect(error.description.contains("parameters.boots"))
        }
    }

    @Test func generationIsNotPartOfAStandaloneFile() {
        do {
            _ = try ConfigFile.parse("generation: 3\nrun: stop\nmode: standard\nthresCoef: 20\n", format: .yaml)
            Issue.record("expected a refusal")
        } catch {
            #expect(error.field == "generation")
        }
    }

    @Test func badValueIsRefusedWithFieldAndReason() {
        do {
            _ = try ConfigFile.parse("run: run\nmode: standard\nthresCoef: 150\n", format: .yaml)
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
            run: run
            mode: customized
            thresCoef: -1
            parameters: {boost: 1}
            """
        // Flow mappings are outside the subset: that comes first.
        #expect(throws: ConfigFileError.self) { try ConfigFile.parse(text, format: .yaml) }
        let block = """
            run: run
            mode: customized
            thresCoef: -1
            parameters:
              boost: 0
              decay: 0
              minPages: 500
              maxPages: 100
              sleepMsec: 10
            """
        do {
            _ = try ConfigFile.parse(block, format: .yaml)
            Issue.record("expected a refusal")
        } catch {
            #expect(error.issues.map(\.field).contains("thresCoef"))
            #expect(error.issues.map(\.field).contains("parameters.minPages"))
            #expect(error.description.contains("minPages 500 is greater than maxPages 100"))
        }
    }

    @Test func wrongTypeNamesTheField() {
        do {
            _ = try ConfigFile.parse("run: run\nmode: standard\nthresCoef: lots\n", format: .yaml)
            Issue.record("expected a refusal")
        } catch {
            #expect(error.field == "thresCoef")
            #expect(error.code == "invalid_type")
        }
    }

    @Test func unknownEnumValueNamesTheAllowedOnes() {
        do {
            _ = try ConfigFile.parse("run: sometimes\nmode: standard\nthresCoef: 20\n", format: .yaml)
            Issue.record("expected a refusal")
        } catch {
            #expect(error.field == "run")
            #expect(error.message.contains("stop, run, prune, unmanaged"))
        }
    }

    @Test func malformedJSON() {
        do {
            _ = try ConfigFile.parse("{\"run\": ", format: .json)
            Issue.record("expected a refusal")
        } catch {
            #expect(error.code == "malformed_json")
        }
    }

    @Test func emptyFile() {
        for format in [ConfigFile.Format.yaml, .json] {
            do {
                _ = try ConfigFile.parse("# nothing\n", format: format)
                Issue.record("expected a refusal")
            } catch {
                #expect(error.code == "empty" || error.code == "malformed_json")
            }
        }
    }

    @Test func filesByExtensionAndContent() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ksmfleet-cf-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let y = dir.appendingPathComponent("c.yml").path
        try Self.yaml.write(toFile: y, atomically: true, encoding: .utf8)
        #expect(try ConfigFile.load(path: y) == Self.expected)
        let j = dir.appendingPathComponent("c.conf").path
        try #"{"run":"stop","mode":"standard","thresCoef":20}"#.write(toFile: j, atomically: true, encoding: .utf8)
        #expect(try ConfigFile.load(path: j).run == .stop)
        #expect(
            try ConfigFile.value(path: j)
                == .object(["run": .string("stop"), "mode": .string("standard"), "thresCoef": .int(20)]))
        do {
            _ = try ConfigFile.load(path: dir.appendingPathComponent("missing.yaml").path)
            Issue.record("expected a refusal")
        } catch {
            #expect(error.code == "unreadable")
            #expect(error.description.contains("missing.yaml"))
        }
        // A bad YAML file names its path and line.
        let bad = dir.appendingPathComponent("bad.yaml").path
        try "run: run\nmode: [a, b]\n".write(toFile: bad, atomically: true, encoding: .utf8)
        do {
            _ = try ConfigFile.load(path: bad)
            Issue.record("expected a refusal")
        } catch {
            #expect(error.line == 2)
            #expect(error.description.hasPrefix(bad + ": line 2: "))
        }
    }
}

@Suite("YAML subset reader")
struct YAMLSubsetTests {
    @Test func scalars() throws {
        let v = try YAMLSubset.parse(
            """
            i: 42
            neg: -7
            plus: +3
            f: 2.5
            e: 1e3
            t: true
            F: False
            n: null
            tilde: ~
            empty:
            s: hello world
            dq: "a \\"quoted\\" # not a comment\\n"
            sq: 'it''s'
            url: http://example.invalid/x#frag
            ver: 1.2.3
            """)
        #expect(
            v
                == .object([
                    "i": .int(42), "neg": .int(-7), "plus": .int(3), "f": .double(2.5), "e": .double(1000),
                    "t": .bool(true), "F": .bool(false), "n": .null, "tilde": .null, "empty": .null,
                    "s": .string("hello world"), "dq": .string("a \"quoted\" # not a comment\n"),
                    "sq": .string("it's"), "url": .string("http://example.invalid/x#frag"), "ver": .string("1.2.3"),
                ]))
    }

    @Test func nestingAndSequences() throws {
        let v = try YAMLSubset.parse(
            """
            ---
            a:
              b:
                c: 1
              d: x
            list:
              - 1
              - two   # comment
            sameIndent:
            - a
            - "b"
            last: 0
            ...
            ignored: [after, the, end]
            """)
        #expect(
            v
                == .object([
                    "a": .object(["b": .object(["c": .int(1)]), "d": .string("x")]),
                    "list": .array([.int(1), .string("two")]),
                    "sameIndent": .array([.string("a"), .string("b")]),
                    "last": .int(0),
                ]))
    }

    @Test func commentsAndBlankLines() throws {
        let v = try YAMLSubset.parse("\n# top\n\nk: v # trailing\n   # indented comment\n\r\nk2: 'x # y'\n")
        #expect(v == .object(["k": .string("v"), "k2": .string("x # y")]))
    }

    @Test func apostropheInAPlainValueIsNotAQuote() throws {
        #expect(try YAMLSubset.parse("k: it's fine # c\n") == .object(["k": .string("it's fine")]))
    }

    @Test func scalarDocumentAndEmptyDocument() throws {
        #expect(try YAMLSubset.parse("42\n") == .int(42))
        #expect(try YAMLSubset.parse("# nothing\n") == .null)
    }

    static let errorCases: [(String, Int, String)] = [
        ("a: 1\n\tb: 2\n", 2, "tab"),
        ("a: {b: 1}\n", 1, "flow"),
        ("a: [1, 2]\n", 1, "flow"),
        ("a: &x 1\n", 1, "anchors"),
        ("a: *x\n", 1, "aliases"),
        ("a: !!int 1\n", 1, "tags"),
        ("a: |\n  text\n", 1, "block scalars"),
        ("a: 1\na: 2\n", 2, "duplicate key 'a' (first on line 1)"),
        ("a: 1\n  b: 2\n", 2, "indentation"),
        ("a:\n    b: 1\n  c: 2\n", 3, "indentation"),
        ("a: \"open\n", 1, "unterminated"),
        ("a: 'x' y\n", 1, "after the quoted string"),
        ("a: b: c\n", 1, "quote the value"),
        ("list:\n  - a: 1\n", 2, "sequences of mappings"),
        ("list:\n  - - 1\n", 2, "nested sequence"),
        ("a: 1\n---\nb: 2\n", 2, "several documents"),
        ("just some\ntext\n", 2, "several lines"),
        ("a: 99999999999999999999\n", 1, "out of range"),
        ("a: .inf\n", 1, "infinite"),
        ("k: v\n- item\n", 2, "sequence item"),
        ("%YAML 1.2\na: 1\n", 1, "directives"),
        ("a: \"\\q\"\n", 1, "escape"),
    ]

    @Test(arguments: errorCases)
    func errorsNameTheLine(text: String, line: Int, fragment: String) {
        do {
            let v = try YAMLSubset.parse(text)
            Issue.record("expected an error for \(text.debugDescription), got \(v)")
        } catch {
            #expect(error.line == line, "\(error)")
            #expect(error.message.contains(fragment), "\(error)")
            #expect(error.description.hasPrefix("line \(line): "))
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

    @Test func yamlExampleIsValid() throws {
        let c = try ConfigFile.load(path: Self.examples + "/standalone.yaml")
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
