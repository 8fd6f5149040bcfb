import Foundation
import TestSupport
import Testing

@testable import FleetStore

/// The config notices' own scanner against Foundation's `JSONDecoder` (`ConfigChangeNotice.decoded`):
/// random payloads in PostgreSQL's spacing and compact, escaped minimally or with every non-ASCII
/// character as `\u` (surrogate pairs included), keys in any order, and broken ones.
@Suite struct NoticeScannerTests {
    static let pieces: [String] = [
        "a", "Z", "0", "-", " ", "\"", "\\", "/", "\n", "\t", "\u{01}", "\u{1F}", "é", "€", "😀", "\u{7F}", "{", "}",
        ":", ",", "n-1dd0a1c44928",
        #"{"mode":"standard","parameters":{"boost":0,"maxPages":100},"run":"stop","thresCoef":20}"#,
    ]

    func randomString(_ rng: inout SeededRandom) -> String {
        (0..<Int.random(in: 0...6, using: &rng)).map { _ in Self.pieces.randomElement(using: &rng)! }.joined()
    }

    /// JSON string syntax: PostgreSQL's (quote, backslash and control characters escaped, the rest
    /// as is) or ASCII only (everything else as \u, astral characters as surrogate pairs).
    func quoted(_ s: String, asciiOnly: Bool, _ rng: inout SeededRandom) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += Bool.random(using: &rng) ? "\\n" : "\\u000a"
            case "\t": out += "\\t"
            case "/": out += Bool.random(using: &rng) ? "\\/" : "/"
            default:
                if u.value < 0x20 || (asciiOnly && u.value > 0x7E) {
                    for unit in String(u).utf16 { out += String(format: "\\u%04X", unit) }
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        return out + "\""
    }

    func randomPayload(_ rng: inout SeededRandom) -> String {
        let asciiOnly = Bool.random(using: &rng)
        let spaced = Bool.random(using: &rng)
        func number() -> String {
            switch Int.random(in: 0..<5, using: &rng) {
            case 0: return "\(Int64.max)"
            case 1: return "\(Int64.min)"
            case 2: return "0"
            case 3: return "null"
            default: return "\(Int64.random(in: -1_000_000...1_000_000_000, using: &rng))"
            }
        }
        let sep = spaced ? " : " : ":"
        let comma = spaced ? ", " : ","
        if Int.random(in: 0..<3, using: &rng) == 0 {
            // The grouped form (0015): a config and its nodes.
            // A node's generation and kick counter are never null (NOT NULL columns).
            func whole() -> String {
                let n = number()
                return n == "null" ? "\(Int64.random(in: 0...9, using: &rng))" : n
            }
            var entries: [String] = []
            for _ in 0..<Int.random(in: 0...4, using: &rng) {
                let values = [quoted(randomString(&rng), asciiOnly: asciiOnly, &rng), whole(), whole()]
                entries.append("[" + values.joined(separator: comma) + "]")
            }
            var fields: [(String, String)] = [("u", "[" + entries.joined(separator: comma) + "]")]
            if Int.random(in: 0..<4, using: &rng) > 0 {
                fields.append(("c", Bool.random(using: &rng) ? quoted(randomString(&rng), asciiOnly: asciiOnly, &rng) : "null"))
            }
            fields.shuffle(using: &rng)
            return "{" + fields.map { "\"\($0.0)\"\(sep)\($0.1)" }.joined(separator: comma) + "}"
        }
        var fields: [(String, String)] = [("n", quoted(randomString(&rng), asciiOnly: asciiOnly, &rng))]
        if Int.random(in: 0..<5, using: &rng) == 0 {
            // A token change (0019); with null, a change without a generation.
            fields.append(("token", ["true", "true", "null"].randomElement(using: &rng)!))
        } else if Bool.random(using: &rng) {
            fields.append(("deleted", ["true", "false", "null"].randomElement(using: &rng)!))
        } else {
            fields.append(("g", number()))
            if Bool.random(using: &rng) { fields.append(("k", number())) }
            if Int.random(in: 0..<4, using: &rng) > 0 {
                fields.append(("c", Bool.random(using: &rng) ? quoted(randomString(&rng), asciiOnly: asciiOnly, &rng) : "null"))
            }
        }
        fields.shuffle(using: &rng)
        return "{" + fields.map { "\"\($0.0)\"\(sep)\($0.1)" }.joined(separator: comma) + "}"
    }

    @Test func theScannerReadsWhatJSONDecoderReads() async throws {
        var rng = SeededRandom(seed: 0x5EED_0002)
        var scanned = 0
        for round in 0..<20_000 {
            if round % 100 == 0 { await Task.yield() }  // CPU-bound: leave the pool to suites in parallel
            let payload = randomPayload(&rng)
            let reference = ConfigChangeNotice.decoded(payload)
            #expect(reference != nil, "the reference refused a well-formed payload: \(payload)")
            let fast = NoticeScanner.scan(payload)
            #expect(fast != nil, "the scanner left a payload as PostgreSQL writes it to JSONDecoder: \(payload)")
            if fast != nil { scanned += 1 }
            let parsed = ConfigChangeNotice.parse(payload)
            #expect(parsed == reference, "round \(round): \(payload)")
            if parsed != reference { return }
        }
        #expect(scanned == 20_000)
    }

    /// The grouped form as PostgreSQL writes it is read by the scanner itself, to these values.
    @Test func theGroupedFormIsScanned() {
        let one = #"{"c" : "{\"run\":\"run\"}", "u" : [["n-1", 2, 0], ["n-2", 9223372036854775807, 3]]}"#
        #expect(NoticeScanner.scan(one) != nil)
        #expect(
            ConfigChangeNotice.parse(one) == [
                ConfigChangeNotice(nodeId: "n-1", deleted: false, generation: 2, kickCounter: 0, configJSON: #"{"run":"run"}"#),
                ConfigChangeNotice(
                    nodeId: "n-2", deleted: false, generation: Int64.max, kickCounter: 3, configJSON: #"{"run":"run"}"#),
            ])
        let none = #"{"c" : null, "u" : [["n-1", 2, 0]]}"#
        #expect(NoticeScanner.scan(none) != nil)
        #expect(
            ConfigChangeNotice.parse(none) == [
                ConfigChangeNotice(nodeId: "n-1", deleted: false, generation: 2, kickCounter: 0, configJSON: nil)
            ])
        #expect(NoticeScanner.scan(#"{"u" : []}"#) != nil)
        #expect(ConfigChangeNotice.parse(#"{"u" : []}"#) == [])
        // Not the grouped form: refused by the scanner, then by JSONDecoder.
        for odd in [#"{"c" : null, "u" : [["n-1", 2]]}"#, #"{"n" : "a", "u" : []}"#, #"{"u" : [["n-1", 2, 0, 1]]}"#] {
            #expect(ConfigChangeNotice.parse(odd) == nil, "\(odd)")
        }
    }

    /// A token change as the trigger of postgres migration 0019 writes it: the scanner's own, a
    /// notice of nothing but the token; with anything else beside it, unreadable either way.
    @Test func theTokenFormIsScanned() {
        let payload = #"{"n" : "n-1", "token" : true}"#
        #expect(NoticeScanner.scan(payload) != nil)
        let notices = ConfigChangeNotice.parse(payload)
        #expect(
            notices == [
                ConfigChangeNotice(
                    nodeId: "n-1", deleted: false, generation: nil, kickCounter: 0, configJSON: nil, tokenChanged: true)
            ])
        #expect(ConfigChangeNotice.decoded(payload) == notices)
        // Nothing a config change would carry.
        #expect(notices?.first?.config == nil)
        for odd in [
            #"{"n" : "n-1", "token" : false}"#, #"{"n" : "n-1", "token" : true, "g" : 2}"#, #"{"token" : true}"#,
            #"{"n" : "n-1", "token" : true, "deleted" : true}"#, #"{"c" : null, "u" : [], "token" : true}"#,
        ] {
            #expect(ConfigChangeNotice.parse(odd) == nil, "\(odd)")
        }
        // A config change is not a token change.
        #expect(ConfigChangeNotice.parse(#"{"n" : "n-1", "g" : 2, "token" : null}"#)?.first?.tokenChanged == false)
    }

    @Test func brokenPayloadsAreReadAsJSONDecoderReadsThem() async {
        var rng = SeededRandom(seed: 0x5EED_0003)
        let odd = [
            #"{"n" : "a", "g" : 2.0}"#, #"{"n" : "a", "g" : 1e3}"#, #"{"n" : "a", "g" : 01}"#, #"{"n" : "a", "g" : -}"#,
            #"{"n" : "a", "g" : 9223372036854775808}"#, #"{"n" : "a", "x" : 1}"#, #"{"n" : "a", "n" : "b"}"#,
            #"{"n" : null}"#, #"{"g" : 1}"#, #"{}"#, #"[]"#, #"{"n" : "\ud83d"}"#, #"{"n" : "\ude00"}"#,
            #"{"n" : "a\q"}"#, "{\"n\" : \"a\u{01}\"}", #"{"n" : "a"} x"#, #"{"n" : "a",}"#, #"{"n" : "a" "g" : 1}"#,
            #"{"n" : "a", "deleted" : "yes"}"#, #"{"n" : "a", "deleted" : tru}"#, " {\"n\" : \"a\"} \n",
            #"{"c" : null, "u" : [["a", 1]]}"#, #"{"c" : null, "u" : [["a", 1, 0, 2]]}"#,
            #"{"c" : null, "u" : [["a", null, 0]]}"#, #"{"c" : null, "u" : [["a", 1, 0],]}"#,
            #"{"c" : null, "u" : [["a", 1, 0]"#, #"{"c" : null, "u" : [[1, 1, 0]]}"#, #"{"c" : null, "u" : [[]]}"#,
            #"{"c" : null, "u" : []}"#, #"{"u" : null}"#, #"{"n" : "a", "u" : [["b", 1, 0]]}"#,
            #"{"g" : 1, "u" : [["b", 1, 0]]}"#, #"{"deleted" : false, "u" : []}"#, #"{"u" : [["b", 1, 0]], "u" : []}"#,
            #"{"c" : "x", "u" : {"n" : "a"}}"#, #"{"c" : "x", "u" : [["a", 1.5, 0]]}"#,
        ]
        for payload in odd {
            #expect(ConfigChangeNotice.parse(payload) == ConfigChangeNotice.decoded(payload), "\(payload)")
        }
        for round in 0..<20_000 {
            if round % 100 == 0 { await Task.yield() }
            var bytes = Array(randomPayload(&rng).utf8)
            switch Int.random(in: 0..<3, using: &rng) {
            case 0: bytes = Array(bytes.prefix(Int.random(in: 0..<bytes.count, using: &rng)))
            case 1: bytes[Int.random(in: 0..<bytes.count, using: &rng)] = UInt8.random(in: 0x20...0x7E, using: &rng)
            default: bytes.remove(at: Int.random(in: 0..<bytes.count, using: &rng))
            }
            let payload = String(decoding: bytes, as: UTF8.self)
            let parsed = ConfigChangeNotice.parse(payload)
            let reference = ConfigChangeNotice.decoded(payload)
            #expect(parsed == reference, "\(payload)")
            if parsed != reference { return }
        }
    }
}
