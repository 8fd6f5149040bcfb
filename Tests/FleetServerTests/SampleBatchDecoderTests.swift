import FleetAPI
import FleetServer
import FleetTestSupport
import Foundation
import KSMCore
import Testing

/// The hand-written `SampleBatch` decoder must give exactly what `StrictJSON` gives: the same
/// batch for every input it takes, the same error (code, field, message) for every input it
/// refuses, and the fast path must really take what agents send.
@Suite struct SampleBatchDecoderTests {
    // MARK: equal results on generated batches

    @Test func agentEncodedBatchesTakeTheFastPathAndDecodeAsStrictJSONDoes() async throws {
        var rng = SplitMix(seed: 0x5EED_0001)
        for round in 0..<300 {
            await Task.yield()  // CPU-bound: leave the cooperative pool to the suites in parallel
            let samples = (0..<rng.int(0...20)).map { _ in Gen.sample(&rng) }
            let data = try StrictJSON.encoder().encode(SampleBatch(samples: samples))
            let strict = try StrictJSON.decode(SampleBatch.self, from: data)
            let fast = try #require(SampleBatchDecoder.fastDecode(data), "round \(round): fast path refused \(text(data))")
            #expect(fast.batch == strict, "round \(round)")
            #expect(fast.batch == SampleBatch(samples: samples), "round \(round)")
            try checkRanges(fast, data)
        }
    }

    @Test func handWrittenBatchesDecodeAsStrictJSONDoes() async throws {
        // Random key order, whitespace, optional fields absent or null, escapes and unicode in
        // strings, numbers at the Int64 limits and in every JSON number form, dates with and
        // without fractional seconds and offsets.
        var rng = SplitMix(seed: 0x5EED_0002)
        var fastCount = 0
        for round in 0..<400 {
            await Task.yield()  // CPU-bound: leave the cooperative pool to the suites in parallel
            let count = rng.int(0...12)
            let data = Data(Gen.batchJSON(&rng, count: count).utf8)
            let strict = try StrictJSON.decode(SampleBatch.self, from: data)
            if let fast = SampleBatchDecoder.fastDecode(data) {
                fastCount += 1
                #expect(fast.batch == strict, "round \(round): \(text(data))")
                #expect(fast.batch.samples.count == count)
                try checkRanges(fast, data)
            }
            #expect(try SampleBatchDecoder.decode(data).batch == strict)
        }
        // Everything generated here is plain enough for the fast path.
        #expect(fastCount == 400)
    }

    /// A node's newest sample as the store keeps it (one object, as the agent sent it) reads as
    /// `StrictJSON` reads it; what is not one plain object is left to `StrictJSON`.
    @Test func oneSampleDecodesAsStrictJSONDoes() async throws {
        var rng = SplitMix(seed: 0x5EED_0005)
        var fastCount = 0
        for round in 0..<400 {
            await Task.yield()  // CPU-bound: leave the cooperative pool to the suites in parallel
            let text =
                rng.bool()
                ? String(decoding: try StrictJSON.encoder().encode(Gen.sample(&rng)), as: UTF8.self)
                : Gen.sampleJSON(&rng)
            let strict = try StrictJSON.decode(StatusSample.self, from: Data(text.utf8))
            if let fast = SampleBatchDecoder.fastSample(text) {
                fastCount += 1
                #expect(fast == strict, "round \(round): \(text)")
            }
        }
        #expect(fastCount == 400)
        let one = String(decoding: try StrictJSON.encoder().encode(Fixtures.sample(1)), as: UTF8.self)
        #expect(SampleBatchDecoder.fastSample(" \(one)\n") == Fixtures.sample(1))
        for odd in [one + " x", "[\(one)]", "", "{}", #"{"samples":[\#(one)]}"#, String(one.dropLast())] {
            #expect(SampleBatchDecoder.fastSample(odd) == nil, "\(odd)")
        }
    }

    @Test func takenAtMatchesFoundationToTheBit() async throws {
        var rng = SplitMix(seed: 0x5EED_0003)
        for _ in 0..<2000 {
            await Task.yield()  // CPU-bound: leave the cooperative pool to the suites in parallel
            let date = Gen.dateText(&rng)
            let json = Data(#"{"samples":[\#(Gen.minimalSample(seq: 1, takenAt: date))]}"#.utf8)
            let strict = try StrictJSON.decode(SampleBatch.self, from: json)
            let fast = try #require(SampleBatchDecoder.fastDecode(json), "\(date)")
            #expect(
                fast.batch.samples[0].takenAt.timeIntervalSinceReferenceDate.bitPattern
                    == strict.samples[0].takenAt.timeIntervalSinceReferenceDate.bitPattern, "\(date)")
        }
    }

    // MARK: the same errors

    @Test func errorsAreStrictJSONsErrors() throws {
        let good = goodBatchText(count: 5)
        let cases: [(String, String, String?)] = [
            // (mutated body, expected code, expected field)
            (good.replacingOccurrences(of: #""pagesSharing""#, with: #""pagesSharng""#), "unknown_field", "samples[0].status.pagesSharng"),
            (replaceNth(good, #""pagesSharing""#, 3, #""pagesSharng""#), "unknown_field", "samples[3].status.pagesSharng"),
            (replaceNth(good, #""memFreeKB""#, 2, #""memFree""#), "unknown_field", "samples[2].memory.memFree"),
            (replaceNth(good, #""phaseReason""#, 4, #""reason""#), "unknown_field", "samples[4].reason"),
            (good.replacingOccurrences(of: #"{"samples""#, with: #"{"extra":1,"samples""#), "unknown_field", "extra"),
            (replaceNth(good, #""seq":"#, 1, #""sequence":"#), "unknown_field", "samples[1].sequence"),
            (replaceNth(good, #""pageSize":4096,"#, 2, ""), "missing_field", "samples[2].pageSize"),
            (replaceNth(good, #""fullScans":7"#, 0, #""smartScan":1"#), "missing_field", "samples[0].status.fullScans"),
            (replaceNth(good, #""memTotalKB":16000000,"#, 3, ""), "missing_field", "samples[3].memory.memTotalKB"),
            (#"{}"#, "missing_field", "samples"),
            (replaceNth(good, #""pageSize":4096"#, 1, #""pageSize":"4096""#), "invalid_type", "samples[1].pageSize"),
            (replaceNth(good, #""pageSize":4096"#, 1, #""pageSize":null"#), "invalid_type", "samples[1].pageSize"),
            (replaceNth(good, #""run":1"#, 2, #""run":1.5"#), "invalid_value", "samples[2].status.run"),
            (replaceNth(good, #""seq":"#, 0, #""seq":1,"seq":"#), "duplicate_field", "samples[0].seq"),
            (replaceNth(good, #""seq":1,"#, 0, #""seq":9223372036854775808,"#), "", nil),  // overflow (any error)
            (replaceNth(good, #""seq":2,"#, 0, #""seq":-9223372036854775809,"#), "", nil),
            (replaceNth(good, #""ksmdCPUPercent":3.5"#, 0, #""ksmdCPUPercent":"3.5""#), "invalid_type", "samples[0].ksmdCPUPercent"),
            (replaceNth(good, #""applyError":null"#, 0, #""applyError":5"#), "invalid_type", "samples[0].applyError"),
            (#"{"samples":{}}"#, "invalid_type", "samples"),
            (#"{"samples":null}"#, "invalid_type", "samples"),
            (#"{"samples":[1]}"#, "invalid_type", "samples[0]"),
            (replaceNth(good, #""phase":"Running""#, 3, #""phase":"Runing""#), "invalid_value", "samples[3].phase"),
            (replaceNth(good, #""phase":"Running""#, 3, #""phase":"running""#), "invalid_value", "samples[3].phase"),
            // StrictJSON names the field of a bad date.
            (replaceNth(good, #"T10:00:01Z"#, 0, "T10:00:01"), "invalid_value", "samples[1].takenAt"),
            (replaceNth(good, #"2026-11-23T10:00:02Z"#, 0, "2026-11-23 10:00:02Z"), "invalid_value", "samples[2].takenAt"),
            (replaceNth(good, #"2026-11-23T10:00:02Z"#, 0, "yesterday"), "invalid_value", "samples[2].takenAt"),
            (replaceNth(good, #"T10:00:03Z"#, 0, "T10:00:03+18:01"), "invalid_value", "samples[3].takenAt"),
            (replaceNth(good, #"T10:00:03Z"#, 0, "T10:00:03.1234567891Z"), "invalid_value", "samples[3].takenAt"),
            (String(good.dropLast()), "malformed_json", nil),
            (good + "x", "malformed_json", nil),
            (good.replacingOccurrences(of: #","takenAt""#, with: #",,"takenAt""#), "malformed_json", nil),
            ("", "malformed_json", nil),
            ("[]", "invalid_type", nil),
        ]
        for (body, code, field) in cases {
            let data = Data(body.utf8)
            let strictError = #expect(throws: InputError.self, "\(body)") {
                try StrictJSON.decode(SampleBatch.self, from: data)
            }
            #expect(SampleBatchDecoder.fastDecode(data) == nil, "fast path took \(body)")
            let ourError = #expect(throws: InputError.self) { try SampleBatchDecoder.decode(data) }
            #expect(ourError == strictError, "\(body)")
            if !code.isEmpty {
                #expect(ourError?.code == code, "\(body)")
                #expect(ourError?.field == field, "\(body)")
            }
        }
    }

    @Test func unusualButValidInputGoesThroughStrictJSON() throws {
        let good = goodBatchText(count: 3)
        let bodies = [
            good.replacingOccurrences(of: #""phaseReason""#, with: #""phase\u0052eason""#),  // escaped key
            replaceNth(good, #""pageSize":4096"#, 0, #""pageSize":4.096e3"#),  // integer written as a float
            replaceNth(good, #""phase":"Running""#, 0, #""phase":"Runn\u0069ng""#),  // escaped enum value
        ]
        for body in bodies {
            let data = Data(body.utf8)
            #expect(SampleBatchDecoder.fastDecode(data) == nil, "\(body)")
            let strict = Result { () throws(InputError) in try StrictJSON.decode(SampleBatch.self, from: data) }
            let ours = Result { () throws(InputError) in try SampleBatchDecoder.decode(data).batch }
            #expect(strict == ours, "\(body)")
        }
    }

    /// Random byte edits of good batches: whatever the fast path takes, StrictJSON takes and
    /// decodes the same; whatever it refuses, `decode` answers exactly as StrictJSON.
    @Test func randomEditsNeverMakeTheFastPathDisagree() async throws {
        var rng = SplitMix(seed: 0x5EED_0004)
        let alphabet = Array(#"{}[]:,"\ -.0123456789eEnultrsfaxZT+"#.utf8) + [0x0A, 0xC3, 0xA9, 0xFF]
        var taken = 0
        for round in 0..<3000 {
            await Task.yield()  // CPU-bound: leave the cooperative pool to the suites in parallel
            var bytes = Array(Gen.batchJSON(&rng, count: rng.int(1...3)).utf8)
            for _ in 0..<rng.int(1...3) {
                let at = rng.int(0...(bytes.count - 1))
                switch rng.int(0...2) {
                case 0: bytes.remove(at: at)
                case 1: bytes.insert(alphabet[rng.int(0...(alphabet.count - 1))], at: at)
                default: bytes[at] = alphabet[rng.int(0...(alphabet.count - 1))]
                }
            }
            let data = Data(bytes)
            let strict = Result { () throws(InputError) in try StrictJSON.decode(SampleBatch.self, from: data) }
            if let fast = SampleBatchDecoder.fastDecode(data) {
                taken += 1
                #expect(strict == .success(fast.batch), "round \(round): \(text(data))")
            }
            let ours = Result { () throws(InputError) in try SampleBatchDecoder.decode(data).batch }
            #expect(ours == strict, "round \(round): \(text(data))")
        }
        // Some edits keep the batch valid (inside strings, digits): the comparison is not empty.
        #expect(taken > 100)
    }

    // MARK: helpers

    func text(_ data: Data) -> String { String(decoding: data, as: UTF8.self) }

    /// Each range is exactly one sample's JSON object.
    func checkRanges(_ decoded: SampleBatchDecoder.Decoded, _ data: Data) throws {
        let ranges = try #require(decoded.sampleRanges)
        #expect(ranges.count == decoded.batch.samples.count)
        for (json, sample) in zip(SampleBatchDecoder.sampleJSON(data, ranges), decoded.batch.samples) {
            #expect(json.first == "{" && json.last == "}")
            #expect(try StrictJSON.decoder().decode(StatusSample.self, from: Data(json.utf8)) == sample)
        }
    }

    func goodBatchText(count: Int) -> String {
        let samples = (0..<count).map { k in
            #"{"seq":\#(k + 1),"takenAt":"2026-11-23T10:00:0\#(k)Z","#
                + #""status":{"run":1,"pagesToScan":100,"sleepMillisecs":20,"pagesShared":10,"pagesSharing":90,"#
                + #""pagesUnshared":5,"pagesVolatile":3,"fullScans":7},"#
                + #""memory":{"memTotalKB":16000000,"memAvailableKB":2500000,"memFreeKB":1000,"buffersKB":1,"cachedKB":2,"anonPagesKB":3},"#
                + #""pageSize":4096,"ksmdCPUPercent":3.5,"phase":"Running","phaseReason":"Running: below","applyError":null}"#
        }
        return #"{"samples":["# + samples.joined(separator: ",") + "]}"
    }

    /// Replaces the `n`th (0-based) occurrence of `target`.
    func replaceNth(_ s: String, _ target: String, _ n: Int, _ with: String) -> String {
        var search = s.startIndex..<s.endIndex
        var k = 0
        while let r = s.range(of: target, range: search) {
            if k == n { return s.replacingCharacters(in: r, with: with) }
            k += 1
            search = r.upperBound..<s.endIndex
        }
        Issue.record("no occurrence \(n) of \(target)")
        return s
    }
}

extension Result where Failure == InputError {
    init(_ body: () throws(InputError) -> Success) {
        do { self = .success(try body()) } catch { self = .failure(error) }
    }
}

struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func int(_ r: ClosedRange<Int>) -> Int { Int.random(in: r, using: &self) }
    mutating func bool() -> Bool { Bool.random(using: &self) }
}

/// Generators of samples and of their JSON.
enum Gen {
    static let limits: [Int64] = [0, 1, -1, Int64.max, Int64.min, Int64.max - 1, Int64.min + 1, 4096, 1 << 53, -(1 << 53) - 1]

    static func int64(_ rng: inout SplitMix) -> Int64 {
        switch rng.int(0...3) {
        case 0: return limits[rng.int(0...(limits.count - 1))]
        case 1: return Int64.random(in: Int64.min...Int64.max, using: &rng)
        default: return Int64.random(in: 0...10_000_000, using: &rng)
        }
    }

    static func double(_ rng: inout SplitMix) -> Double {
        switch rng.int(0...4) {
        case 0: return [0, -0.0, 1, 3.5, 1e300, -1e-300, 0.1, 123456789012345680, .leastNonzeroMagnitude, .greatestFiniteMagnitude][rng.int(0...9)]
        case 1: return Double(bitPattern: rng.next() & 0x7FEF_FFFF_FFFF_FFFF)  // any finite positive
        case 2: return Double(rng.int(0...100_000)) / 1000
        default: return Double.random(in: 0...100, using: &rng)
        }
    }

    static let pieces = [
        "MemAvailable", " 81 % ", "is above", "\"quoted\"", "back\\slash", "tab\there", "new\nline", "é", "日本語",
        "🙂", "/slash/", "\u{1}", "\u{7F}", "ksmd", "ü", "𝄞", "\r", "\u{0}",
    ]

    static func string(_ rng: inout SplitMix) -> String {
        (0..<rng.int(0...5)).map { _ in pieces[rng.int(0...(pieces.count - 1))] }.joined()
    }

    static func sample(_ rng: inout SplitMix) -> StatusSample {
        func opt<T>(_ rng: inout SplitMix, _ make: (inout SplitMix) -> T) -> T? { rng.bool() ? make(&rng) : nil }
        let status = KSMStatus(
            run: Int(int64(&rng)), pagesToScan: Int(int64(&rng)), sleepMillisecs: Int(int64(&rng)),
            pagesShared: int64(&rng), pagesSharing: int64(&rng), pagesUnshared: int64(&rng),
            pagesVolatile: int64(&rng), fullScans: int64(&rng),
            mergeAcrossNodes: opt(&rng) { Int(int64(&$0)) }, maxPageSharing: opt(&rng) { Int(int64(&$0)) },
            stableNodeChains: opt(&rng) { int64(&$0) }, stableNodeDups: opt(&rng) { int64(&$0) },
            useZeroPages: opt(&rng) { Int(int64(&$0)) }, ksmZeroPages: opt(&rng) { int64(&$0) },
            generalProfit: opt(&rng) { int64(&$0) }, pagesScanned: opt(&rng) { int64(&$0) },
            pagesSkipped: opt(&rng) { int64(&$0) }, smartScan: opt(&rng) { Int(int64(&$0)) },
            advisorMode: opt(&rng) { string(&$0) }, advisorTargetScanTime: opt(&rng) { int64(&$0) },
            advisorMinPagesToScan: opt(&rng) { int64(&$0) }, advisorMaxPagesToScan: opt(&rng) { int64(&$0) },
            advisorMaxCPU: opt(&rng) { int64(&$0) })
        let memory = MemorySnapshot(
            memTotalKB: int64(&rng), memAvailableKB: int64(&rng), memFreeKB: int64(&rng), buffersKB: int64(&rng),
            cachedKB: int64(&rng), anonPagesKB: int64(&rng))
        // Whole seconds: the agent's encoder writes no fraction.
        let takenAt = Date(timeIntervalSince1970: Double(Int64.random(in: -2_208_988_800...253_402_300_799, using: &rng)))
        return StatusSample(
            seq: int64(&rng), takenAt: takenAt, status: status, memory: memory, pageSize: Int(int64(&rng)),
            ksmdCPUPercent: opt(&rng) { double(&$0) }, ksmdCPUSeconds: opt(&rng) { double(&$0) },
            phase: KSMPhase.allCases[rng.int(0...3)], phaseReason: string(&rng),
            appliedGeneration: opt(&rng) { int64(&$0) }, applyError: opt(&rng) { string(&$0) },
            droppedSamples: opt(&rng) { int64(&$0) }, processes: opt(&rng) { processReport(&$0) })
    }

    /// A process report as the agent sends it with every Nth sample.
    static func processReport(_ rng: inout SplitMix) -> ProcessReport {
        func opt<T>(_ rng: inout SplitMix, _ make: (inout SplitMix) -> T) -> T? { rng.bool() ? make(&rng) : nil }
        let groups = (0..<rng.int(0...4)).map { _ in
            ProcessGroupSavings(
                kind: ProcessGroupKind.allCases[rng.int(0...(ProcessGroupKind.allCases.count - 1))], name: string(&rng),
                processes: Int(int64(&rng)), mergingPages: int64(&rng), zeroPages: int64(&rng), rmapItems: int64(&rng),
                profitBytes: opt(&rng) { int64(&$0) })
        }
        return ProcessReport(
            perProcessStats: rng.bool(), processesScanned: Int(int64(&rng)), mergeableProcesses: Int(int64(&rng)),
            mergingProcesses: Int(int64(&rng)), rmapItems: int64(&rng), mergingPages: int64(&rng),
            anonHugePagesKB: opt(&rng) { int64(&$0) }, anonymousKB: opt(&rng) { int64(&$0) },
            transparentHugePages: opt(&rng) { string(&$0) }, truncated: rng.bool(), scanMillis: double(&rng),
            groups: groups)
    }

    // Hand-written JSON.

    static func ws(_ rng: inout SplitMix) -> String {
        rng.int(0...3) == 0 ? [" ", "\n", "\t", "\r\n", "  "][rng.int(0...4)] : ""
    }

    /// A JSON string literal with escapes chosen at random (some characters escaped although
    /// they need not be, `\u` escapes including surrogate pairs).
    static func stringLiteral(_ rng: inout SplitMix, _ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += rng.bool() ? "\\n" : "\\u000a"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            case "/": out += rng.bool() ? "\\/" : "/"
            default:
                if scalar.value < 0x20 || (scalar.value > 0x7F && rng.int(0...2) == 0) {
                    for unit in String(scalar).utf16 { out += "\\u" + String(format: rng.bool() ? "%04x" : "%04X", unit) }
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }

    static func intText(_ rng: inout SplitMix) -> String { String(int64(&rng)) }

    static func doubleText(_ rng: inout SplitMix) -> String {
        switch rng.int(0...6) {
        case 0: return String(rng.int(0...1_000_000))
        case 1: return "-" + String(rng.int(0...1000)) + "." + String(rng.int(0...99999))
        case 2: return String(rng.int(1...9)) + "." + String(rng.int(0...999)) + ["e", "E"][rng.int(0...1)] + ["", "+", "-"][rng.int(0...2)] + String(rng.int(0...300))
        case 3: return String(UInt64.random(in: 0...UInt64.max, using: &rng))  // > 15 digits, not exact as Double
        case 4: return "0." + String(repeating: "0", count: rng.int(0...20)) + String(rng.next())
        case 5: return "\(double(&rng))"
        default: return "-0"
        }
    }

    static func dateText(_ rng: inout SplitMix) -> String {
        let year = rng.int(1900...9999)
        let month = rng.int(1...12)
        let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
        let days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]
        var s = String(
            format: "%04d-%02d-%02dT%02d:%02d:%02d", year, month, rng.int(1...days), rng.int(0...23), rng.int(0...59),
            rng.int(0...59))
        if rng.bool() { s += "." + (0..<rng.int(1...9)).map { _ in String(rng.int(0...9)) }.joined() }
        switch rng.int(0...3) {
        case 0: s += String(format: "+%02d:%02d", rng.int(0...17), rng.int(0...59))
        case 1: s += String(format: "-%02d:%02d", rng.int(0...17), rng.int(0...59))
        default: s += "Z"
        }
        return s
    }

    /// One object from (key, value) members, in random order, with random whitespace.
    static func object(_ rng: inout SplitMix, _ members: [(String, String)]) -> String {
        var m = members
        m.shuffle(using: &rng)
        let body = m.map { k, v in ws(&rng) + "\"\(k)\"" + ws(&rng) + ":" + ws(&rng) + v + ws(&rng) }.joined(separator: ",")
        return "{" + body + (m.isEmpty ? ws(&rng) : "") + "}"
    }

    /// Optional members: absent, null or a value.
    static func optional(_ rng: inout SplitMix, _ key: String, _ members: inout [(String, String)], _ value: String) {
        switch rng.int(0...2) {
        case 0: break
        case 1: members.append((key, "null"))
        default: members.append((key, value))
        }
    }

    static func sampleJSON(_ rng: inout SplitMix) -> String {
        var status: [(String, String)] = [
            "run", "pagesToScan", "sleepMillisecs", "pagesShared", "pagesSharing", "pagesUnshared", "pagesVolatile",
            "fullScans",
        ].map { ($0, intText(&rng)) }
        for key in [
            "mergeAcrossNodes", "maxPageSharing", "stableNodeChains", "stableNodeDups", "useZeroPages", "ksmZeroPages",
            "generalProfit", "pagesScanned", "pagesSkipped", "smartScan", "advisorTargetScanTime",
            "advisorMinPagesToScan", "advisorMaxPagesToScan", "advisorMaxCPU",
        ] {
            optional(&rng, key, &status, intText(&rng))
        }
        optional(&rng, "advisorMode", &status, stringLiteral(&rng, string(&rng)))
        let memory: [(String, String)] = ["memTotalKB", "memAvailableKB", "memFreeKB", "buffersKB", "cachedKB", "anonPagesKB"]
            .map { ($0, intText(&rng)) }
        var sample: [(String, String)] = [
            ("seq", intText(&rng)), ("takenAt", "\"" + dateText(&rng) + "\""), ("status", object(&rng, status)),
            ("memory", object(&rng, memory)), ("pageSize", intText(&rng)),
            ("phase", "\"" + KSMPhase.allCases[rng.int(0...3)].rawValue + "\""),
            ("phaseReason", stringLiteral(&rng, string(&rng))),
        ]
        optional(&rng, "ksmdCPUPercent", &sample, doubleText(&rng))
        optional(&rng, "ksmdCPUSeconds", &sample, doubleText(&rng))
        optional(&rng, "appliedGeneration", &sample, intText(&rng))
        optional(&rng, "applyError", &sample, stringLiteral(&rng, string(&rng)))
        optional(&rng, "droppedSamples", &sample, intText(&rng))
        return object(&rng, sample)
    }

    static func batchJSON(_ rng: inout SplitMix, count: Int) -> String {
        let items = (0..<count).map { _ in ws(&rng) + sampleJSON(&rng) + ws(&rng) }.joined(separator: ",")
        return ws(&rng) + "{" + ws(&rng) + "\"samples\"" + ws(&rng) + ":" + ws(&rng) + "[" + items + (count == 0 ? ws(&rng) : "") + "]" + ws(&rng) + "}" + ws(&rng)
    }

    static func minimalSample(seq: Int, takenAt: String) -> String {
        #"{"seq":\#(seq),"takenAt":"\#(takenAt)","status":{"run":0,"pagesToScan":0,"sleepMillisecs":0,"pagesShared":0,"pagesSharing":0,"pagesUnshared":0,"pagesVolatile":0,"fullScans":0},"memory":{"memTotalKB":0,"memAvailableKB":0,"memFreeKB":0,"buffersKB":0,"cachedKB":0,"anonPagesKB":0},"pageSize":4096,"phase":"Stopped","phaseReason":""}"#
    }
}
