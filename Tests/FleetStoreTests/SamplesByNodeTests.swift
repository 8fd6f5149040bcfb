import KSMCore
import TestSupport
import Testing

@testable import FleetStore

/// Raw samples are split by node with the id's bytes as SQLite hands them over
/// (`SamplesByNode.slot(utf8:count:if:)`): the same slots as looking the id up as a String,
/// whatever the ids and their order, through the table's growth.
@Suite struct SamplesByNodeTests {
    @Test(arguments: [UInt64(1), 2, 3]) func byteLookupsGiveTheStringLookupsSlots(seed: UInt64) {
        var rng = SeededRandom(seed: seed)
        // Ids of many lengths (empty, short, long, non-ASCII), some sharing prefixes.
        var ids = ["", "n", "n-", "é", "bench-00001", "bench-000010", String(repeating: "x", count: 80)]
        for i in 0..<300 { ids.append("n-\(Int.random(in: 0...1_000_000, using: &rng))-\(i)") }
        let refused = Set(ids.filter { _ in Int.random(in: 0..<5, using: &rng) == 0 })
        let wanted = { (id: String) in !refused.contains(id) }
        var byBytes = SamplesByNode()
        var byString = SamplesByNode()
        var calls = 0
        for _ in 0..<5_000 {
            var id = ids[Int.random(in: 0..<ids.count, using: &rng)]
            let a = id.withUTF8 { u in
                byBytes.slot(utf8: u.baseAddress, count: u.count) { calls += 1; return wanted($0) }
            }
            let b = byString.slot(id, if: wanted)
            #expect(a == b, "\(id)")
            #expect(a == nil || !refused.contains(id))
        }
        #expect(calls <= ids.count, "each id is checked once")
    }
}
