import FleetAPI
import Foundation
import KSMCore
import Testing
import TestSupport

/// `HistoryResponse.json()` writes the history member by member: the same bytes as
/// `StrictJSON.encoder()` (JSONEncoder) and `SortedJSONEncoder`, on random histories of buckets
/// and of raw samples that leave out optionals, carry every double form, escapes in names, dates
/// either side of 1970, and phase keys that are not phases (sorted by their bytes).
@Suite struct HistoryResponseJSONTests {
    @Test(arguments: 0..<60)
    func randomHistoriesAsJSONEncoder(seed: UInt64) throws {
        let g = RandomJSONParts(rng: SeededRandom(seed: seed &* 7_727 &+ 3))
        func bucket() -> HistoryBucket {
            var b = g.historyBucket()
            b.phaseSeconds = Dictionary(
                (0..<g.int(0...5)).map { _ in (g.int(0...1) == 0 ? g.string() : "Running", g.double()) },
                uniquingKeysWith: { a, _ in a })
            return b
        }
        let history = HistoryResponse(
            nodeId: g.string(), name: g.string(), since: g.date(), until: g.date(),
            resolution: HistoryResolution.allCases[g.int(0...HistoryResolution.allCases.count - 1)],
            samples: g.maybe { (0..<g.int(0...30)).map { _ in g.historySample() } },
            omittedSamples: g.maybe { g.int(0...100_000) },
            buckets: g.maybe { (0..<g.int(0...30)).map { _ in bucket() } },
            gaps: (0..<g.int(0...4)).map { _ in TimeRange(from: g.date(), to: g.date()) },
            existence: g.maybe { TimeRange(from: g.date(), to: g.date()) })
        let written = try history.json()
        SortedJSONEncoderTests.expectSameBytes(try StrictJSON.encoder().encode(history), written, "json(), seed \(seed)")
        #expect(try SortedJSONEncoder().encode(history) == written)
    }

    /// NaN or an infinity anywhere: the error JSONEncoder throws, with its path, as before.
    @Test func aValueJSONCannotSayThrowsAsTheEncoder() throws {
        let g = RandomJSONParts(rng: SeededRandom(seed: 9))
        var history = HistoryResponse(
            nodeId: "n-1", name: "web-1", since: g.date(), until: g.date(), resolution: .hour, samples: nil,
            buckets: (0..<3).map { _ in g.historyBucket() }, gaps: [], existence: nil)
        let path = SortedJSONEncoderTests.invalidValuePath
        history.buckets?[1].savedByteHours = .nan
        #expect(path { try history.json() } == path { try StrictJSON.encoder().encode(history) })
        #expect(path { try history.json() } == ["buckets", "Index 1", "savedByteHours"])
        history.buckets?[1].savedByteHours = 1
        history.buckets?[2].phaseSeconds["Running"] = .infinity
        #expect(path { try history.json() } == ["buckets", "Index 2", "phaseSeconds", "Running"])
        history.buckets = nil
        history.samples = [g.historySample()]
        history.samples?[0].ksmdCPUPercent = -.infinity
        #expect(path { try history.json() } == path { try StrictJSON.encoder().encode(history) })
        #expect(path { try history.json() } == ["samples", "Index 0", "ksmdCPUPercent"])
    }
}
