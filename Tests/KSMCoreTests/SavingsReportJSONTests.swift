import FleetAPI
import Foundation
import KSMCore
import Testing
import TestSupport

/// `SavingsReport.json()` writes the report member by member: the same bytes as
/// `StrictJSON.encoder()` (JSONEncoder) and `SortedJSONEncoder`, on random reports whose rows
/// leave out optionals, carry every double form, escapes in keys and names, gaps either side of
/// 1970, and phase keys that are not phases (sorted by their bytes as JSONEncoder sorts them).
@Suite struct SavingsReportJSONTests {
    @Test(arguments: 0..<60)
    func randomReportsAsJSONEncoder(seed: UInt64) throws {
        let g = RandomJSONParts(rng: SeededRandom(seed: seed &* 104_729 &+ 17))
        func row() -> SavingsRow {
            var r = g.savingsRow()
            if g.int(0...3) == 0 {
                // Any keys, not only the phases: the writer sorts what it is given.
                r.phaseHours = Dictionary(
                    (0..<g.int(0...5)).map { _ in (g.string(), g.double()) }, uniquingKeysWith: { a, _ in a })
            }
            return r
        }
        let report = SavingsReport(
            since: g.date(), until: g.date(), by: ReportGrouping.allCases[g.int(0...ReportGrouping.allCases.count - 1)],
            label: g.maybe { g.string() }, generatedAt: g.date(), rows: (0..<g.int(0...40)).map { _ in row() },
            total: row(), maxGapSeconds: g.double())
        let written = try report.json()
        SortedJSONEncoderTests.expectSameBytes(try StrictJSON.encoder().encode(report), written, "json(), seed \(seed)")
        #expect(try SortedJSONEncoder().encode(report) == written)
    }

    /// NaN or an infinity anywhere: the error JSONEncoder throws, with its path, as before.
    @Test func aValueJSONCannotSayThrowsAsTheEncoder() throws {
        let g = RandomJSONParts(rng: SeededRandom(seed: 5))
        var rows = (0..<3).map { _ in g.savingsRow() }
        rows[1].savedGiBHours = .nan
        var report = SavingsReport(
            since: g.date(), until: g.date(), by: .node, label: nil, generatedAt: g.date(), rows: rows,
            total: g.savingsRow(), maxGapSeconds: 300)
        let path = SortedJSONEncoderTests.invalidValuePath
        let expected = path { try StrictJSON.encoder().encode(report) }
        #expect(expected == ["rows", "Index 1", "savedGiBHours"])
        #expect(path { try report.json() } == expected)
        report.rows[1].savedGiBHours = 1
        report.total.phaseHours["Running"] = -.infinity
        #expect(path { try report.json() } == path { try StrictJSON.encoder().encode(report) })
        #expect(path { try report.json() } == ["total", "phaseHours", "Running"])
        report.total.phaseHours["Running"] = 2
        report.maxGapSeconds = .infinity
        #expect(path { try report.json() } == ["maxGapSeconds"])
    }
}
