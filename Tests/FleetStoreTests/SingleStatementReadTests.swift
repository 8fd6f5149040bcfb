import Foundation
import TestSupport
import Testing

@testable import FleetStore

/// `FleetDatabase.readStatement`: a read of one query, which on PostgreSQL runs outside a
/// transaction block (one round trip instead of BEGIN, the query and COMMIT); a long-poll's first
/// read goes through it.
@Suite("single-statement reads")
struct SingleStatementReadTests {
    static let postgresOnly: Comment =
        "PostgreSQL only (SQLite reads in a transaction either way): runs on the PostgreSQL pass of make test (KSMFLEET_TEST_POSTGRES)"

    @Test("the same rows as a read transaction, on either engine")
    func sameRowsAsARead() async throws {
        let (db, dir) = try makeDatabase()
        defer {
            try? db.close()
            try? FileManager.default.removeItem(at: dir)
        }
        let node = try await registerNode(db).node.id
        let sql = "SELECT c.generation, c.config_json FROM node_configs c WHERE c.node_id = ?"
        let inTransaction = try await db.read { sdb in try StoreRow.fetchAll(sdb, sql: sql, arguments: [node]).map(Self.text) }
        let alone = try await db.readStatement { sdb in try StoreRow.fetchAll(sdb, sql: sql, arguments: [node]).map(Self.text) }
        #expect(alone == inTransaction && alone.count == 1)
        // The long-poll's reads.
        let config = try #require(try await db.config(nodeId: node))
        #expect(try await db.config(nodeId: node, unlessGeneration: config.generation) == .unchanged(generation: config.generation))
        #expect(try await db.config(nodeId: node, unlessGeneration: config.generation + 1) == .config(config))
        #expect(try await db.config(nodeId: "no-such-node", unlessGeneration: nil) == nil)
    }

    static func text(_ row: StoreRow) -> String { "\(row[0] as Int64) \(row[1] as String)" }

    @Test("PostgreSQL: the query runs outside the read transaction's BEGIN")
    func outsideATransactionBlock() async throws {
        guard let server = TestStore.postgresURL else { try Test.cancel(Self.postgresOnly) }
        let db = try FleetDatabase.open(try TestStore.createDatabase(on: server))
        defer { try? db.close() }
        // A read transaction is REPEATABLE READ (its BEGIN says so); a statement outside any
        // block runs in the server's default, READ COMMITTED, which a single statement does not
        // tell apart: it sees one snapshot either way.
        let sql = "SELECT current_setting('transaction_isolation')"
        #expect(try await db.readStatement { sdb in try String.fetchOne(sdb, sql: sql) } == "read committed")
        #expect(try await db.read { sdb in try String.fetchOne(sdb, sql: sql) } == "repeatable read")
    }

    @Test("PostgreSQL: a second statement, one that is not a query, or a write inside a query throws and changes nothing")
    func oneQueryOnly() async throws {
        guard let server = TestStore.postgresURL else { try Test.cancel(Self.postgresOnly) }
        let db = try FleetDatabase.open(try TestStore.createDatabase(on: server))
        defer { try? db.close() }
        let node = try await registerNode(db).node.id
        let second = await #expect(throws: PostgresError.self) {
            try await db.readStatement { sdb in
                _ = try Int64.fetchOne(sdb, sql: "SELECT 1")
                return try Int64.fetchOne(sdb, sql: "SELECT 2")
            }
        }
        #expect("\(second.map { "\($0)" } ?? "")".contains("one query"))
        await #expect(throws: PostgresError.self) {
            try await db.readStatement { sdb in try sdb.execute(sql: "UPDATE nodes SET name = 'renamed' WHERE id = ?", arguments: [node]) }
        }
        // A write inside a query's text passes the text check; the reader connection refuses it.
        let hidden = await #expect(throws: PostgresError.self) {
            try await db.readStatement { sdb in
                try String.fetchOne(
                    sdb, sql: "WITH x AS (UPDATE nodes SET name = 'renamed' WHERE id = ? RETURNING id) SELECT id FROM x",
                    arguments: [node])
            }
        }
        #expect("\(hidden.map { "\($0)" } ?? "")".contains("read-only"))
        #expect(try await db.node(idOrName: node)?.name != "renamed")
        // The connections are fine afterwards, in and out of transactions.
        for _ in 0..<10 {
            #expect(try await db.readStatement { sdb in try Int64.fetchOne(sdb, sql: "  WITH x AS (SELECT 7 AS v) SELECT v FROM x") } == 7)
            #expect(try await db.read { sdb in try Int64.fetchOne(sdb, sql: "SELECT 8") } == 8)
        }
    }
}
