@testable import FleetStore
import Foundation
import KSMCore
import Testing
import TestSupport

/// A rollup row's gaps read by hand (`GapText`) against the JSON decoder that read them before:
/// the same intervals to the bit, for what `encodeGaps` writes and for any other text.
@Suite struct GapTextTests {
    static func bits(_ gaps: [Interval]) -> [UInt64] {
        gaps.flatMap { [$0.from.bitPattern, $0.to.bitPattern] }
    }

    @Test func whatEncodeGapsWritesReadsAsJSONDoes() throws {
        var rng = SeededRandom(seed: 7)
        var handRead = 0
        for _ in 0..<3_000 {
            let gaps = (0..<Int.random(in: 1...6, using: &rng)).map { _ -> Interval in
                // Times in seconds with milliseconds, small numbers, zero and negatives (a clock
                // before 1970), and whole seconds (written without a point).
                let from: Double
                switch Int.random(in: 0..<4, using: &rng) {
                case 0: from = Double(Int64.random(in: 1_700_000_000_000...1_900_000_000_000, using: &rng)) / 1000
                case 1: from = Double(Int.random(in: 0...99_999, using: &rng)) / 1000
                case 2: from = -Double(Int.random(in: 0...9_999_999, using: &rng)) / 1000
                default: from = Double(Int.random(in: 0...2_000_000_000, using: &rng))
                }
                return Interval(from, from + Double(Int.random(in: 0...3_600_000, using: &rng)) / 1000)
            }
            let text = try #require(FleetDatabase.encodeGaps(gaps))
            let read = FleetDatabase.decodeGaps(text)
            #expect(Self.bits(read) == Self.bits(FleetDatabase.decodeGapsAsJSON(text)), "\(text)")
            if GapText.parse(text) != nil { handRead += 1 }
        }
        #expect(handRead == 3_000, "every text encodeGaps writes is read by hand")
    }

    @Test(arguments: [
        "[]", "[[1,2]]", "[[0,0.5],[-0,1]]", "[[-1.25,3]]", "[[1793577600.123,1793577660]]",
        // Shapes the hand reader leaves to the JSON decoder, which must still give what it gave.
        " [[1,2]]", "[[1, 2]]", "[[1,2] ]", "[[1e3,2]]", "[[1.5E-2,2]]", "[[01,2]]", "[[.5,2]]", "[[1.,2]]",
        "[[+1,2]]", "[[1,2,3]]", "[[1]]", "[[1,2],[3]]", "[[1,2],]", "[[1,2]", "[1,2]", "", "null", "[[\"1\",2]]",
        "[[1,2]]x", "[[-,2]]", "[[1.5.5,2]]", "[[1,2]][[3,4]]",
        // Past a double: the decoder refuses what overflows or underflows (Double(_:) gives inf
        // or 0); at the 20-digit bounds, still read by hand.
        "[[1" + String(repeating: "0", count: 320) + ",2]]", "[[0." + String(repeating: "0", count: 330) + "1,2]]",
        "[[12345678901234567890.12345678901234567890,2]]", "[[123456789012345678901,2]]",
    ])
    func anyTextReadsAsJSONDoes(_ text: String) {
        #expect(Self.bits(FleetDatabase.decodeGaps(text)) == Self.bits(FleetDatabase.decodeGapsAsJSON(text)))
    }

    @Test func theHandReaderStopsAtTwentyDigits() {
        #expect(GapText.parse("[[12345678901234567890.12345678901234567890,2]]") != nil)
        #expect(GapText.parse("[[123456789012345678901,2]]") == nil)
        #expect(GapText.parse("[[0.123456789012345678901,2]]") == nil)
    }

    @Test func noTextIsNoGap() {
        #expect(FleetDatabase.decodeGaps(nil).isEmpty)
    }
}
