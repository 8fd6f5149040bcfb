import FleetAPI
import Foundation
import KSMCore
import Testing
import TestSupport

/// `SortedJSONEncoder` writes what `StrictJSON.encoder()` (Foundation's JSONEncoder, sorted keys,
/// ISO 8601 dates) writes, byte for byte: on random values of the API's biggest replies, on
/// random JSON trees, and on a probe that takes every path of the `Encoder` protocol.
@Suite struct SortedJSONEncoderTests {
    static func expectSame<T: Encodable>(_ value: T, _ note: @autoclosure () -> String = "") throws {
        expectSameBytes(try StrictJSON.encoder().encode(value), try SortedJSONEncoder().encode(value), "\(T.self) \(note())")
    }

    /// Records where `written` first differs from JSONEncoder's `reference`, with both around it.
    /// The coding path of the `EncodingError.invalidValue` that `encode` throws, nil when it
    /// throws none (or another error).
    static func invalidValuePath(_ encode: () throws -> Any) -> [String]? {
        do {
            _ = try encode()
        } catch EncodingError.invalidValue(_, let context) {
            return context.codingPath.map(\.stringValue)
        } catch {}
        return nil
    }

    static func expectSameBytes(_ reference: Data, _ written: [UInt8], _ note: String) {
        guard Array(reference) != written else { return }
        let a = String(decoding: reference, as: UTF8.self)
        let b = String(decoding: written, as: UTF8.self)
        let at = zip(a, b).prefix { $0 == $1 }.count
        Issue.record(
            "\(note): differs at character \(at):\n JSONEncoder: …\(a.dropFirst(max(0, at - 60)).prefix(140))\n written:     …\(b.dropFirst(max(0, at - 60)).prefix(140))"
        )
    }

    @Test(arguments: 0..<40)
    func savingsReportsAndHistoriesAsJSONEncoder(seed: UInt64) throws {
        let g = RandomJSONParts(rng: SeededRandom(seed: seed &* 7919 &+ 1))
        let rows = (0..<g.int(0...6)).map { _ in g.savingsRow() }
        let report = SavingsReport(
            since: g.date(), until: g.date(), by: ReportGrouping.allCases.randomElement(using: &g.rng)!,
            label: g.maybe { g.string() }, generatedAt: g.date(), rows: rows, total: g.savingsRow(),
            maxGapSeconds: g.double())
        try Self.expectSame(report, "seed \(seed)")
        let history = HistoryResponse(
            nodeId: g.string(), name: g.string(), since: g.date(), until: g.date(),
            resolution: HistoryResolution.allCases.randomElement(using: &g.rng)!,
            samples: g.maybe { (0..<g.int(0...4)).map { _ in g.historySample() } },
            omittedSamples: g.maybe { g.int(0...100_000) },
            buckets: g.maybe { (0..<g.int(0...4)).map { _ in g.historyBucket() } },
            gaps: (0..<g.int(0...3)).map { _ in TimeRange(from: g.date(), to: g.date()) },
            existence: g.maybe { TimeRange(from: g.date(), to: g.date()) })
        try Self.expectSame(history, "seed \(seed)")
        try Self.expectSame(NodeConfig(generation: Int64(g.int(0...1_000_000)), kickCounter: 3, config: .standardDefault))
    }

    @Test(arguments: 0..<60)
    func randomJSONTreesAsJSONEncoder(seed: UInt64) throws {
        let g = RandomJSONParts(rng: SeededRandom(seed: seed &+ 101))
        try Self.expectSame(g.tree(depth: 4), "seed \(seed)")
    }

    @Test func everyEncoderPathAsJSONEncoder() throws {
        let g = RandomJSONParts(rng: SeededRandom(seed: 42))
        for i in 0..<200 {
            try Self.expectSame(Probe(g), "probe \(i)")
        }
        // Scalars and empty containers at the top.
        try Self.expectSame(1.5)
        try Self.expectSame("a/b")
        try Self.expectSame([Double?]())
        try Self.expectSame([String: Int]())
        try Self.expectSame(Date(timeIntervalSince1970: -1.5))
        try Self.expectSame(Date(timeIntervalSince1970: 253_402_300_799.9))
    }

    @Test func strictJSONsRefusalsToo() throws {
        // JSONEncoder refuses what JSON cannot say: so does the sorted encoder.
        for bad in [Double.nan, .infinity, -.infinity] {
            #expect(throws: EncodingError.self) { try SortedJSONEncoder().encode(["x": bad]) }
            #expect(throws: EncodingError.self) { try StrictJSON.encoder().encode(["x": bad]) }
        }
        // The error names where the value is, as JSONEncoder does.
        struct Row: Encodable { var values: [Double] }
        struct Rows: Encodable { var rows: [Row] }
        let bad = Rows(rows: [Row(values: [1]), Row(values: [2, .nan])])
        func path(_ encode: () throws -> Void) -> [String] {
            do {
                try encode()
            } catch EncodingError.invalidValue(_, let context) {
                return context.codingPath.map(\.stringValue)
            } catch {}
            return ["no invalidValue error"]
        }
        let expected = path { _ = try StrictJSON.encoder().encode(bad) }
        #expect(expected.count == 4)
        #expect(path { _ = try SortedJSONEncoder().encode(bad) } == expected)
        #expect(throws: EncodingError.self) { try SortedJSONEncoder().encode(Empty()) }
        #expect(throws: EncodingError.self) { try StrictJSON.encoder().encode(Empty()) }
    }

    struct Empty: Encodable {
        func encode(to encoder: any Encoder) throws {}
    }

    /// A value that takes every kind of container the protocol offers.
    struct Probe: Encodable {
        enum Shape: Encodable {
            case none
            case circle(radius: Double)
            case box(Int, label: String?)
        }

        struct Twice: Encodable {
            var a: Int
            var b: String
            enum K1: String, CodingKey { case a, shared }
            enum K2: String, CodingKey { case b, shared }
            // Two keyed containers on one encoder write one object; a key set twice keeps the last.
            func encode(to encoder: any Encoder) throws {
                var c1 = encoder.container(keyedBy: K1.self)
                try c1.encode(a, forKey: .a)
                try c1.encode("first", forKey: .shared)
                var c2 = encoder.container(keyedBy: K2.self)
                try c2.encode(b, forKey: .b)
                try c2.encode("second", forKey: .shared)
            }
        }

        struct Nested: Encodable {
            var values: [Double]
            var deep: [String: [Int64]]
            enum K: String, CodingKey { case values, deep, inner, list, zed }
            func encode(to encoder: any Encoder) throws {
                var c = encoder.container(keyedBy: K.self)
                var list = c.nestedUnkeyedContainer(forKey: .list)
                for v in values { try list.encode(v) }
                var inner = c.nestedContainer(keyedBy: K.self, forKey: .inner)
                try inner.encode(deep, forKey: .deep)
                try inner.encodeNil(forKey: .zed)
                var sup = c.superEncoder(forKey: .zed).singleValueContainer()
                try sup.encode(values.count)
                var sup2 = c.superEncoder().unkeyedContainer()
                try sup2.encode(true)
                var nestedList = list.nestedUnkeyedContainer()
                try nestedList.encodeNil()
                var nestedObject = list.nestedContainer(keyedBy: K.self)
                try nestedObject.encode(Float(0.25), forKey: .values)
                var sup3 = list.superEncoder().container(keyedBy: K.self)
                try sup3.encode(UInt8(7), forKey: .zed)
            }
        }

        var shape: Shape
        var small: [Int8]
        var big: [UInt64]
        var ints: [Int16?]
        var wide: Int32
        var unsigned: [UInt]
        var floats: [Float]
        var optionals: [Double?]
        var text: [String: String]
        var byNumber: [Int: String]
        var dates: [Date]
        var data: Data
        var url: URL
        var decimal: Decimal
        var twice: Twice
        var nested: Nested
        var empty: Empty
        var emptyList: [Empty]
        var flag: Bool

        init(_ g: RandomJSONParts) {
            switch g.int(0...2) {
            case 0: shape = .none
            case 1: shape = .circle(radius: g.double())
            default: shape = .box(g.int(-5...5), label: g.maybe { g.string() })
            }
            small = [Int8.min, Int8.max, Int8(truncatingIfNeeded: g.int(-200...200))]
            big = [UInt64.max, UInt64(Int64.max) + 1, UInt64(g.int(0...1_000_000)), 0]
            ints = [Int16.min, nil, Int16(truncatingIfNeeded: g.int(-70_000...70_000))]
            wide = Int32(truncatingIfNeeded: g.int(Int.min...Int.max))
            unsigned = [UInt(g.int(0...Int.max)), UInt.max]
            floats = [Float(g.double()), 1, -0.0, Float.leastNonzeroMagnitude, Float.greatestFiniteMagnitude]
                .filter(\.isFinite)
            optionals = [g.double(), nil, g.double()]
            text = Dictionary(uniqueKeysWithValues: (0..<g.int(0...4)).map { i in (g.string() + "\(i)", g.string()) })
            byNumber = [g.int(-9...9): g.string(), 100: "x"]
            dates = (0..<3).map { _ in g.date() }
            data = Data((0..<g.int(0...9)).map { _ in UInt8(g.int(0...255)) })
            url = URL(string: "https://example.com/a b/\(g.int(0...99))?q=1&r=/".addingPercentEncoding(withAllowedCharacters: .urlQueryAllowed)!)!
            decimal = Decimal(g.int(-1_000_000...1_000_000)) / 1000
            twice = Twice(a: g.int(-3...3), b: g.string())
            nested = Nested(values: (0..<g.int(0...3)).map { _ in g.double() }, deep: ["k": [Int64.min, Int64.max], "": []])
            empty = Empty()
            emptyList = [Empty(), Empty()]
            flag = g.int(0...1) == 1
        }
    }
}

/// Random parts of API values: doubles of every form JSONEncoder writes (integral, tiny, huge,
/// negative zero, random bit patterns), strings with every escape, dates either side of 1970.
final class RandomJSONParts {
    var rng: SeededRandom
    init(rng: SeededRandom) { self.rng = rng }

    func int(_ r: ClosedRange<Int>) -> Int { Int.random(in: r, using: &rng) }

    func maybe<T>(_ make: () -> T) -> T? { int(0...2) == 0 ? nil : make() }

    func double() -> Double {
        switch int(0...7) {
        case 0: return Double(int(-1_000_000...1_000_000))
        case 1: return Double(int(-1_000_000...1_000_000)) / 1000
        case 2:
            while true {
                let d = Double(bitPattern: rng.next())
                if d.isFinite { return d }
            }
        case 3: return [0.0, -0.0, 1e16, 1e21, 1e-7, .leastNonzeroMagnitude, .greatestFiniteMagnitude, 2.5e-5][int(0...7)]
        case 4: return Double.random(in: 0...1e20, using: &rng)
        case 5: return Double(int(0...Int.max))
        default: return Double.random(in: -1000...1000, using: &rng)
        }
    }

    func string() -> String {
        let pool: [Character] = [
            "a", "Z", "0", " ", "\"", "\\", "/", "\n", "\r", "\t", "\u{8}", "\u{C}", "\u{0}", "\u{1}", "\u{1F}", "\u{7F}",
            "é", "ß", "€", "\u{2028}", "\u{2029}", "😀", "👩‍👩‍👧", "\u{FEFF}", "{", "}", ":", ",", "<", "&",
        ]
        return String((0..<int(0...12)).map { _ in pool[int(0...pool.count - 1)] })
    }

    func date() -> Date {
        switch int(0...3) {
        case 0: return Date(timeIntervalSince1970: Double(int(0...4_000_000_000)))
        case 1: return Date(timeIntervalSince1970: Double.random(in: -3e9...2e10, using: &rng))
        case 2: return Date(timeIntervalSince1970: Double(int(1_700_000_000...1_900_000_000)) + 0.999)
        default: return Date(timeIntervalSince1970: Double(int(-62_000_000_000...250_000_000_000)))
        }
    }

    func savingsRow() -> SavingsRow {
        SavingsRow(
            key: string(), name: maybe { string() }, deleted: maybe { int(0...1) == 1 }, nodes: int(0...100_000),
            avgSavedBytes: maybe { double() }, peakSavedBytes: maybe { double() },
            peakBasis: maybe { PeakBasis.allCases[int(0...PeakBasis.allCases.count - 1)] }, savedGiBHours: double(),
            ksmdCPUHours: double(), avgKsmdCPUCores: maybe { double() }, efficiencyGiBPerCore: maybe { double() },
            avgNetProfitBytes: maybe { double() },
            phaseHours: Dictionary(uniqueKeysWithValues: ["Running", "Stopped", "Pruned", "Unmanaged"].filter { _ in int(0...1) == 1 }.map { ($0, double()) }),
            dataHours: double(), periodHours: double(), coverage: maybe { double() },
            gaps: (0..<int(0...3)).map { _ in TimeRange(from: date(), to: date()) })
    }

    func historySample() -> HistorySample {
        HistorySample(
            seq: Int64(int(0...Int.max)), takenAt: date(), phase: KSMPhase.allCases[int(0...KSMPhase.allCases.count - 1)],
            phaseReason: string(), run: int(0...2), pagesToScan: int(0...100_000), sleepMillisecs: int(0...1000),
            pagesShared: Int64(int(0...Int.max)), pagesSharing: Int64(int(0...1 << 40)), pagesUnshared: Int64(int(0...9)),
            pagesVolatile: Int64(int(0...9)), fullScans: Int64(int(0...9)), savedBytes: Int64(int(Int.min...Int.max)),
            generalProfit: maybe { Int64(int(Int.min...Int.max)) }, memTotalBytes: Int64(int(0...Int.max)),
            memAvailableBytes: Int64(int(0...Int.max)), ksmdCPUPercent: maybe { double() }, ksmdCPUSeconds: maybe { double() },
            appliedGeneration: maybe { Int64(int(0...99)) }, applyError: maybe { string() })
    }

    func historyBucket() -> HistoryBucket {
        HistoryBucket(
            start: date(), end: date(), dataSeconds: double(), samples: int(0...999), avgSavedBytes: double(),
            peakSavedBytes: Int64(int(Int.min...Int.max)), savedByteHours: double(), avgKsmdCPUPercent: double(),
            peakKsmdCPUPercent: maybe { double() }, ksmdCPUSeconds: double(), fullScans: Int64(int(0...99)),
            runningSeconds: double(), phaseSeconds: ["Running": double()], avgNetProfitBytes: maybe { double() })
    }

    func tree(depth: Int) -> JSONValue {
        switch depth == 0 ? int(0...4) : int(0...6) {
        case 0: return .null
        case 1: return .bool(int(0...1) == 1)
        case 2: return .int(Int64(int(Int.min...Int.max)))
        case 3: return .double(double())
        case 4: return .string(string())
        case 5: return .array((0..<int(0...4)).map { _ in tree(depth: depth - 1) })
        default:
            var object: [String: JSONValue] = [:]
            for _ in 0..<int(0...5) { object[string()] = tree(depth: depth - 1) }
            return .object(object)
        }
    }
}
