import FleetAPI
import Foundation
import KSMCore
import Testing
import TestSupport

/// `ApplyResponse.json()` writes a fleet-wide change's answer member by member: the same bytes as
/// `StrictJSON.encoder()` (JSONEncoder) and `SortedJSONEncoder`, on random answers that leave out
/// optionals, carry escapes in every string and generations of every size.
@Suite struct ApplyResponseJSONTests {
    @Test(arguments: 0..<40)
    func randomAnswersAsJSONEncoder(seed: UInt64) throws {
        let g = RandomJSONParts(rng: SeededRandom(seed: seed &* 6_151 &+ 11))
        func generation() -> Int64 {
            [0, 1, Int64(g.int(2...1_000_000)), Int64.max, Int64.min, -Int64(g.int(1...1000))][g.int(0...5)]
        }
        let results = (0..<g.int(0...40)).map { _ in
            ApplyResult(
                status: g.int(0...1) == 0 ? "changed" : g.string(), nodeId: g.string(), name: g.maybe { g.string() },
                generation: g.maybe { generation() }, changes: (0..<g.int(0...4)).map { _ in g.string() },
                error: g.maybe { APIErrorBody.Detail(code: g.string(), message: g.string(), field: g.maybe { g.string() }) })
        }
        let answer = ApplyResponse(results: results, dryRun: g.int(0...1) == 0)
        let written = try answer.json()
        SortedJSONEncoderTests.expectSameBytes(try StrictJSON.encoder().encode(answer), written, "json(), seed \(seed)")
        #expect(try SortedJSONEncoder().encode(answer) == written)
    }
}
