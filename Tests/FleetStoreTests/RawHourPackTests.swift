import KSMCore
import TestSupport
import Testing

@testable import FleetStore

/// An hour's raw samples in one blob (`RawHourPack`) give back exactly what a read of the rows
/// gives: every column (absent ones absent), extreme values, samples sharing an instant, in
/// their order, only the samples of the range and nodes asked for, and without the optional
/// columns when the read does not want them.
@Suite struct RawHourPackTests {
    static let hourMs: Int64 = 1_796_122_800_000

    static func randomNodes(_ rng: inout SeededRandom) -> [(String, [ReportSample])] {
        let extremes: [Int64] = [0, 1, -1, .max, .min, .max - 1, .min + 1, 1 << 40]
        var nodes: [(String, [ReportSample])] = []
        for n in 0..<Int.random(in: 1...40, using: &rng) {
            var samples: [ReportSample] = []
            // From before the hour to after it: the encoder keeps the hour's only.
            var ms = hourMs - Int64.random(in: 0...200_000, using: &rng)
            for _ in 0..<Int.random(in: 0...150, using: &rng) {
                ms += Int64.random(in: 0...60_000, using: &rng)  // 0: two samples at one instant
                func int() -> Int64 {
                    Bool.random(using: &rng)
                        ? extremes[Int.random(in: 0..<extremes.count, using: &rng)]
                        : Int64.random(in: -5_000_000_000...5_000_000_000, using: &rng)
                }
                func double() -> Double? {
                    switch Int.random(in: 0..<4, using: &rng) {
                    case 0: return nil
                    case 1:
                        let odd: [Double] = [
                            0, -0.0, .greatestFiniteMagnitude, .leastNonzeroMagnitude, 1e-300, .nan, .infinity,
                            Double(bitPattern: 0x7ff8_0000_0000_1234),
                        ]
                        return odd[Int.random(in: 0..<odd.count, using: &rng)]
                    default: return Double.random(in: -1e6...1e9, using: &rng)
                    }
                }
                samples.append(
                    ReportSample(
                        at: Double(ms) / 1000, savedBytes: int(), cpuSeconds: double(), cpuPercent: double(),
                        fullScans: int(), phase: KSMPhase.allCases.randomElement(using: &rng)!,
                        netProfit: Bool.random(using: &rng) ? nil : int(), endsData: Int.random(in: 0..<6, using: &rng) == 0))
            }
            nodes.append(("node-\(n)-\(String(repeating: "é", count: Int.random(in: 0...3, using: &rng)))", samples))
        }
        return nodes
    }

    /// What a read of [from, to) of the `wanted` nodes gives, from the original samples.
    static func expected(
        _ nodes: [(String, [ReportSample])], from: Int64, to: Int64, full: Bool, wanted: Set<String>
    ) -> [String: [ReportSample]] {
        var out: [String: [ReportSample]] = [:]
        for (id, samples) in nodes where wanted.contains(id) {
            let kept = samples.compactMap { s -> ReportSample? in
                let ms = Int64((s.at * 1000).rounded())
                guard ms >= max(from, hourMs), ms < min(to, hourMs + 3_600_000) else { return nil }
                return full ? s : ReportSample(at: s.at, savedBytes: s.savedBytes, endsData: s.endsData)
            }
            if !kept.isEmpty { out[id] = kept }
        }
        return out
    }

    @Test(arguments: [UInt64(1), 2, 3, 4, 5, 6, 7, 8])
    func aPackGivesBackTheSamplesOfTheRangeAndNodesAskedFor(seed: UInt64) throws {
        var rng = SeededRandom(seed: seed)
        let nodes = Self.randomNodes(&rng)
        let pack = RawHourPack.encode(nodes, fromMs: Self.hourMs, toMs: Self.hourMs + 3_600_000)
        for _ in 0..<10 {
            let from = Self.hourMs + Int64.random(in: -100_000...3_000_000, using: &rng)
            let to = from + Int64.random(in: 0...4_000_000, using: &rng)
            let full = Bool.random(using: &rng)
            let wanted = Set(nodes.map(\.0).filter { _ in Int.random(in: 0..<4, using: &rng) > 0 })
            var byNode = SamplesByNode()
            try pack.withUnsafeBytes {
                try RawHourPack.decode(
                    $0, hourMs: Self.hourMs, fromMs: from, toMs: to, full: full, wanted: { wanted.contains($0) },
                    into: &byNode)
            }
            var got: [String: [ReportSample]] = [:]
            for (id, list) in byNode.sorted where !list.isEmpty { got[id] = list }
            let want = Self.expected(nodes, from: from, to: to, full: full, wanted: wanted)
            #expect(got.keys.sorted() == want.keys.sorted())
            for (id, list) in want {
                // Bit for bit: -0.0 and 0 differ, as do NaN payloads.
                let a = got[id] ?? []
                #expect(a.count == list.count, "\(id)")
                for (x, y) in zip(a, list) {
                    #expect(x.at.bitPattern == y.at.bitPattern && x.savedBytes == y.savedBytes, "\(id)")
                    #expect(x.cpuSeconds?.bitPattern == y.cpuSeconds?.bitPattern, "\(id)")
                    #expect(x.cpuPercent?.bitPattern == y.cpuPercent?.bitPattern, "\(id)")
                    #expect(
                        x.fullScans == y.fullScans && x.phase == y.phase && x.netProfit == y.netProfit
                            && x.endsData == y.endsData, "\(id)")
                }
            }
        }
    }

    @Test func aPackCutShortOrOfAnotherFormatIsRefused() throws {
        var rng = SeededRandom(seed: 9)
        let nodes = Self.randomNodes(&rng).filter { !$0.1.isEmpty }
        let pack = RawHourPack.encode(nodes, fromMs: Self.hourMs, toMs: Self.hourMs + 3_600_000)
        #expect(pack.count > 100)
        // Inside the first id, and one byte short of the end (inside the last sample).
        for cut in [2, 3, pack.count - 1] {
            var byNode = SamplesByNode()
            #expect(throws: RawHourPack.Malformed.self) {
                try Array(pack.prefix(cut)).withUnsafeBytes {
                    try RawHourPack.decode(
                        $0, hourMs: Self.hourMs, fromMs: 0, toMs: .max, full: true, wanted: { _ in true }, into: &byNode)
                }
            }
        }
        // Bytes that are not a pack are refused or read, never trap (a count or a length out of
        // reach, a varint too long).
        for _ in 0..<2_000 {
            var junk = [RawHourPack.format] + (0..<Int.random(in: 0...40, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            if Bool.random(using: &rng) { junk += [UInt8](repeating: 0xff, count: 12) }
            var byNode = SamplesByNode()
            _ = try? junk.withUnsafeBytes {
                try RawHourPack.decode(
                    $0, hourMs: Self.hourMs, fromMs: 0, toMs: .max, full: true, wanted: { _ in true }, into: &byNode)
            }
        }
        var other = pack
        other[0] = RawHourPack.format + 1
        var byNode = SamplesByNode()
        #expect(throws: RawHourPack.Malformed.self) {
            try other.withUnsafeBytes {
                try RawHourPack.decode(
                    $0, hourMs: Self.hourMs, fromMs: 0, toMs: .max, full: true, wanted: { _ in true }, into: &byNode)
            }
        }
    }
}
