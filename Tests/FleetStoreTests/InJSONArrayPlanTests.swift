import Foundation
import Testing
import TestSupport

@testable import FleetStore

/// `inJSONArray` reaches the column's index on both engines, whatever plan PostgreSQL caches for a
/// prepared statement. With `IN (SELECT value FROM json_array_elements_text(…))` PostgreSQL takes
/// the function for 100 rows, and its generic plan for 10,000 nodes hashed a scan of the whole
/// table: the group commit's node check read every node for a batch's few ids (1.4 ms a call).
@Suite struct InJSONArrayPlanTests {
    @Test func aFewIdsAmongTenThousandNodesAreLookedUpByTheIndex() async throws {
        let (db, dir) = try makeDatabase()
        defer { try? FileManager.default.removeItem(at: dir) }
        let ids = (0..<10_000).map { "n-\(String(format: "%012x", $0))" }
        try await db.write { db in
            try insertManyBareNodes(db, ids)
        }
        // The node check of the group commit, as `writeSampleGroupRows` writes it.
        let plan: String = try await db.write { db in
            let sql = "SELECT id, last_seq FROM nodes WHERE deleted_at IS NULL AND \(db.inJSONArray("id"))"
            let wanted = "[\"\(ids[17])\",\"\(ids[4242])\",\"\(ids[9999])\"]"
            let found = try StoreRow.fetchAll(db, sql: sql, arguments: [wanted]).map { $0[0] as String }
            #expect(Set(found) == [ids[17], ids[4242], ids[9999]])
            if db.engine == .sqlite {
                return try StoreRow.fetchAll(db, sql: "EXPLAIN QUERY PLAN " + sql, arguments: [wanted])
                    .map { $0[3] as String }.joined(separator: "; ")
            }
            // The plan PostgreSQL caches for a prepared statement after its first five runs.
            try db.execute(sql: "ANALYZE nodes")
            try db.execute(sql: "SET LOCAL plan_cache_mode = force_generic_plan")
            try db.execute(sql: "PREPARE in_json_array_plan(text) AS " + sql.replacingOccurrences(of: "?", with: "$1"))
            defer { try? db.execute(sql: "DEALLOCATE in_json_array_plan") }
            return try StoreRow.fetchAll(db, sql: "EXPLAIN (COSTS OFF) EXECUTE in_json_array_plan('\(wanted)')")
                .map { $0[0] as String }.joined(separator: "; ")
        }
        if db.engine == .sqlite {
            #expect(plan.contains("SEARCH nodes USING"), "\(plan)")
        } else {
            #expect(plan.contains("Index Scan using nodes_pkey"), "\(plan)")
        }
        #expect(!plan.contains("SCAN nodes") && !plan.contains("Seq Scan on nodes"), "\(plan)")
    }

    /// `StoredJSON.strings` writes the bytes `StoredJSON.encode` writes for an array of strings,
    /// on random ones with every character JSON escapes.
    @Test(arguments: 0..<20) func stringsAsTheEncoderWritesThem(seed: UInt64) throws {
        var rng = SeededRandom(seed: seed &+ 101)
        let pool: [Character] = ["a", "0", "-", " ", "\"", "\\", "/", "\n", "\t", "\u{0}", "\u{1F}", "é", "€", "😀", "\u{2028}"]
        let values = (0..<Int.random(in: 0...30, using: &rng)).map { _ in
            String((0..<Int.random(in: 0...10, using: &rng)).map { _ in pool.randomElement(using: &rng)! })
        }
        #expect(StoredJSON.strings(values) == (try StoredJSON.encode(values)), "seed \(seed)")
    }
}
