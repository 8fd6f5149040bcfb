import Foundation
import Testing
import TestSupport

@testable import FleetStore

/// A registration of a machine no live node has looks for the machine's newest deleted node.
/// Without an index for deleted rows that read the whole nodes table for every new node: a
/// registration cost in proportion to the fleet (server CPU 0.75 → 3.2 ms a registration from 0
/// to 17,500 nodes on SQLite; on PostgreSQL 309 → 128 registrations a second, with the replica's
/// one writer connection held through each scan). Migration 0053 (postgres 0022) is the index.
@Suite struct RegistrationPlanTests {
    @Test func theNewestDeletedNodeOfAMachineIsLookedUpByTheIndex() async throws {
        let (db, dir) = try makeDatabase()
        defer { try? FileManager.default.removeItem(at: dir) }
        let ids = (0..<2_000).map { "n-\(String(format: "%012x", $0))" }
        try await db.write { db in
            try insertManyBareNodes(db, ids)
            // Three deleted nodes of one machine, a live one of it, and deleted nodes of others.
            try db.execute(sql: "UPDATE nodes SET machine_id = 'm-x', deleted_at = 30 WHERE id = ?", arguments: [ids[10]])
            try db.execute(sql: "UPDATE nodes SET machine_id = 'm-x', deleted_at = 50 WHERE id = ?", arguments: [ids[11]])
            try db.execute(sql: "UPDATE nodes SET machine_id = 'm-x', deleted_at = 40 WHERE id = ?", arguments: [ids[12]])
            try db.execute(sql: "UPDATE nodes SET machine_id = 'm-x' WHERE id = ?", arguments: [ids[13]])
            try db.execute(sql: "UPDATE nodes SET deleted_at = 60 WHERE id IN (?, ?)", arguments: [ids[20], ids[21]])
        }
        let sql = FleetDatabase.newestDeletedOfMachineSQL
        let (newest, none, plan): (String?, String?, String) = try await db.write { db in
            let newest = try String.fetchOne(db, sql: sql, arguments: ["m-x"])
            let none = try String.fetchOne(db, sql: sql, arguments: ["m-\(ids[5])"])
            // With the planner's statistics, as the server keeps them (SQLite: at start and every
            // hour; PostgreSQL: autovacuum).
            try db.execute(sql: "ANALYZE nodes")
            if db.engine == .sqlite {
                let plan = try StoreRow.fetchAll(db, sql: "EXPLAIN QUERY PLAN " + sql, arguments: ["m-x"])
                    .map { $0[3] as String }.joined(separator: "; ")
                return (newest, none, plan)
            }
            // The plan PostgreSQL caches for the prepared statement after its first five runs.
            try db.execute(sql: "SET LOCAL plan_cache_mode = force_generic_plan")
            try db.execute(sql: "PREPARE deleted_of_machine_plan(text) AS " + sql.replacingOccurrences(of: "?", with: "$1"))
            defer { try? db.execute(sql: "DEALLOCATE deleted_of_machine_plan") }
            let plan = try StoreRow.fetchAll(db, sql: "EXPLAIN (COSTS OFF) EXECUTE deleted_of_machine_plan('m-x')")
                .map { $0[0] as String }.joined(separator: "; ")
            return (newest, none, plan)
        }
        #expect(newest == ids[11], "the newest deleted node of the machine, not its live one nor an older one")
        #expect(none == nil)
        #expect(plan.contains("nodes_deleted_machine_id"), "\(plan)")
        // Read in the index's order: no sort of the machine's deleted rows, no scan of the table.
        #expect(!plan.contains("TEMP B-TREE") && !plan.contains("Sort"), "\(plan)")
        #expect(!plan.contains("SCAN nodes") && !plan.contains("Seq Scan") && !plan.contains("Bitmap"), "\(plan)")
    }
}
