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
            // hour; PostgreSQL: autovacuum, and `analyzeGrownTables` while a table doubles).
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

    /// On a new PostgreSQL database the tables were never analyzed, and a statement prepared while
    /// `nodes` was empty keeps a generic plan that prices every index alike: the machine look-up
    /// read the whole `nodes_live_name_bytes` index, filtering on the machine (1.9 ms at 5,000
    /// nodes), until autovacuum's first analyze, up to a minute later. The background pass
    /// analyzes each table that doubled since its statistics, which makes every connection plan
    /// again. Fails without the pass: the cached plan stays the index-wide read.
    @Test func aNewDatabasesGrownTablesAreAnalyzed() async throws {
        let (db, dir) = try makeDatabase()
        defer { try? FileManager.default.removeItem(at: dir) }
        guard db.engine == .postgres else {
            // SQLite keeps its statistics otherwise (`refreshPlannerStatistics`).
            #expect(try await db.analyzeGrownTables().isEmpty)
            return
        }
        // Nothing has grown yet: no table of a new database has 32 pages.
        #expect(try await db.analyzeGrownTables().map(\.name) == [])
        // Only the pass may analyze the table here (autovacuum would after 5,000 inserts).
        try await db.write { db in try db.execute(sql: "ALTER TABLE nodes SET (autovacuum_enabled = false)") }
        let lookup = "SELECT id, token_hash FROM nodes WHERE machine_id = $1 AND deleted_at IS NULL"
        try await db.write { db in
            // Prepared on the empty table, run past PostgreSQL's five custom plans: the generic
            // plan is cached on this (the writer's) connection.
            try db.execute(sql: "PREPARE machine_lookup_plan(text) AS " + lookup)
            for _ in 0..<7 { _ = try StoreRow.fetchAll(db, sql: "EXECUTE machine_lookup_plan('m-none')") }
        }
        try await db.write { db in try insertManyBareNodes(db, (0..<5_000).map { "n-\(String(format: "%012x", $0))" }) }
        let before = try await db.write { db in
            try StoreRow.fetchAll(db, sql: "EXPLAIN (COSTS OFF) EXECUTE machine_lookup_plan('m-n-000000000077')")
                .map { $0[0] as String }.joined(separator: "; ")
        }
        // The defect this guards against: the empty table's plan, kept as the table grew.
        #expect(!before.contains("nodes_live_machine_id"), "the plan was already good before any analyze: \(before)")
        // While another transaction holds the lock ANALYZE takes (autovacuum may), the pass
        // skips the table (SKIP_LOCKED) for the next one, without waiting or failing.
        let other = try FleetDatabase.open(try TestStore.location(for: dir))
        async let held: Void = other.write { db in
            try db.execute(sql: "LOCK TABLE nodes IN SHARE UPDATE EXCLUSIVE MODE")
            try db.execute(sql: "SELECT pg_sleep(3)")
        }
        let lockSeen = ContinuousClock.now + .seconds(20)
        while try await db.write({ db in
            try Int64.fetchOne(
                db,
                sql: """
                    SELECT count(*) FROM pg_locks
                    WHERE relation = 'nodes'::regclass AND mode = 'ShareUpdateExclusiveLock' AND granted
                    """) ?? 0
        }) == 0 {
            guard ContinuousClock.now < lockSeen else { Issue.record("the other transaction never took the lock"); break }
            try await Task.sleep(for: .milliseconds(20))
        }
        let whileHeld = try await db.analyzeGrownTables()
        try await held
        try other.close()
        #expect(!whileHeld.contains { $0.name == "nodes" }, "\(whileHeld)")
        let analyzed = try await db.analyzeGrownTables()
        let nodes = try #require(analyzed.first { $0.name == "nodes" }, "\(analyzed)")
        #expect(nodes.pagesKnown == 0 && nodes.pages >= 32, "\(nodes)")
        let (after, found, known): (String, String?, Int64) = try await db.write { db in
            defer { try? db.execute(sql: "DEALLOCATE machine_lookup_plan") }
            let plan = try StoreRow.fetchAll(db, sql: "EXPLAIN (COSTS OFF) EXECUTE machine_lookup_plan('m-n-000000000077')")
                .map { $0[0] as String }.joined(separator: "; ")
            let found = try StoreRow.fetchAll(db, sql: "EXECUTE machine_lookup_plan('m-n-000000000077')").first?["id"] as String?
            let known = try Int64.fetchOne(db, sql: "SELECT relpages::bigint FROM pg_class WHERE relname = 'nodes'") ?? 0
            return (plan, found, known)
        }
        #expect(after.contains("Index Cond: (machine_id = $1)") && after.contains("nodes_live_machine_id"), "before: \(before); after: \(after)")
        #expect(found == "n-000000000077")
        #expect(known == nodes.pages, "the statistics now know the table's pages")
        // Analyzed once for this growth: the next pass finds nothing doubled.
        #expect(try await db.analyzeGrownTables().map(\.name) == [])
    }
}
