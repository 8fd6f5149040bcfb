import Foundation
import Testing

@testable import FleetStore

/// The store's SQLite statements come from the connection's cache (`StoreDB.reusableStatement`):
/// a query asked again while a cursor of the same text is open must get a statement of its own,
/// or it would rebind, step or reset the cursor's. Runs on SQLite (`makeSQLiteDatabase`); on
/// PostgreSQL nothing is cached.
@Suite struct StatementCacheTests {
    static let byId = "SELECT id FROM nodes WHERE id > ? ORDER BY id"

    /// Four registered nodes; their ids in order.
    func fourNodes() async throws -> (FleetDatabase, URL, [String]) {
        let (db, dir) = try makeSQLiteDatabase()
        var ids: [String] = []
        for i in 0..<4 { ids.append(try await registerNode(db, machine: "m-\(i)", nodeToken: "kn_\(i)").node.id) }
        return (db, dir, ids.sorted())
    }

    @Test func aQueryInsideItsOwnCursorLoopLeavesTheCursorAlone() async throws {
        let (db, dir, ids) = try await fourNodes()
        defer { try? FileManager.default.removeItem(at: dir) }
        let outer: [String] = try await db.read { sdb in
            let cursor = try StoreRow.fetchCursor(sdb, sql: Self.byId, arguments: [""])
            var outer: [String] = []
            // Bounded: a cursor restarted by the inner queries would never end.
            while outer.count < 10, let row = try cursor.next() {
                outer.append(row["id"])
                // The same text with other arguments, while the cursor is mid-way.
                #expect(try StoreRow.fetchAll(sdb, sql: Self.byId, arguments: [""]).map { $0["id"] as String } == ids)
                #expect(try String.fetchOne(sdb, sql: Self.byId, arguments: [ids[3]]) == nil)
            }
            return outer
        }
        #expect(outer == ids, "every row once, in order")
    }

    @Test func aCursorMadeButNotYetSteppedKeepsItsArguments() async throws {
        let (db, dir, ids) = try await fourNodes()
        defer { try? FileManager.default.removeItem(at: dir) }
        let rows: [String] = try await db.read { sdb in
            let cursor = try StoreRow.fetchCursor(sdb, sql: Self.byId, arguments: [""])
            // Before the cursor's first step: the same text, bound to the last id (no rows).
            #expect(try StoreRow.fetchOne(sdb, sql: Self.byId, arguments: [ids[3]]) == nil)
            var rows: [String] = []
            while let row = try cursor.next() { rows.append(row["id"]) }
            return rows
        }
        #expect(rows == ids)
    }

    @Test func aFinishedCursorReleasedLaterDoesNotRestartANewerOne() async throws {
        let (db, dir, ids) = try await fourNodes()
        defer { try? FileManager.default.removeItem(at: dir) }
        let rows: [String] = try await db.read { sdb in
            var first: StoreCursor? = try StoreRow.fetchCursor(sdb, sql: Self.byId, arguments: [""])
            while try first?.next() != nil {}
            let second = try StoreRow.fetchCursor(sdb, sql: Self.byId, arguments: [""])
            var rows: [String] = []
            rows.append(try #require(try second.next())["id"])
            first = nil  // GRDB resets a cursor's statement when the cursor goes
            while let row = try second.next() { rows.append(row["id"]) }
            return rows
        }
        #expect(rows == ids, "no row twice, none missing")
    }

    @Test func scriptsOfSeveralStatementsStillRun() async throws {
        let (db, dir) = try makeSQLiteDatabase()
        defer { try? FileManager.default.removeItem(at: dir) }
        let count: Int? = try await db.write { sdb in
            try sdb.execute(sql: "CREATE TEMP TABLE t (x INTEGER); INSERT INTO t VALUES (1); INSERT INTO t VALUES (2)")
            try sdb.execute(sql: "INSERT INTO t VALUES (?)", arguments: [3])
            try sdb.execute(sql: "INSERT INTO t VALUES (?)", arguments: [4])
            return try Int.fetchOne(sdb, sql: "SELECT COUNT(*) FROM t")
        }
        #expect(count == 4)
    }
}
