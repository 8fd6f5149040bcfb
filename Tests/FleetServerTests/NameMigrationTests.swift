import FleetStore
import Foundation
import GRDB
import Testing

/// Migration 0010 on a database from before names were checked: names lowered, and live nodes
/// that shared a name made unique (the oldest keeps it), so the unique index can exist.
@Suite struct NameMigrationTests {
    @Test func sharedNamesBecomeUniqueTheOldestKeepingIt() async throws {
        let dir = FileManager.default.temporaryDirectory.appending(path: "ksmfleet-names-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appending(path: "ksmfleet.sqlite").path
        let queue = try DatabaseQueue(path: path)
        try await queue.write { db in
            try db.execute(
                sql: "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY NOT NULL, name TEXT NOT NULL, applied_at INTEGER NOT NULL)")
            for m in allMigrations where m.number <= 4 {
                try db.execute(sql: m.sql)
                try db.execute(
                    sql: "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, 0)",
                    arguments: [m.number, m.name])
            }
            let rows: [(String, String, Int64, Int64?)] = [
                ("n-000000000001", "Web-1", 1000, nil), ("n-000000000002", "web-1", 2000, nil),
                ("n-000000000003", "WEB-1", 500, 600), ("n-000000000004", "db", 100, nil),
            ]
            for (id, name, at, deleted) in rows {
                try db.execute(
                    sql: """
                        INSERT INTO nodes (id, name, machine_id, kernel, mem_total_bytes, numa_nodes, agent_version,
                          registered_at, token_hash, deleted_at)
                        VALUES (?, ?, ?, '6.8', 1, 1, 't', ?, ?, ?)
                        """,
                    arguments: [id, name, "m-" + id, at, deleted == nil ? "h-" + id : nil, deleted])
            }
        }
        try queue.close()
        let db = try FleetDatabase(path: path)
        #expect(try await db.schemaVersion() == latestSchemaVersion)
        let names = Dictionary(uniqueKeysWithValues: try await db.nodes(includeDeleted: true).map { ($0.id, $0.name) })
        #expect(names["n-000000000001"] == "web-1")
        #expect(names["n-000000000002"] == "web-1-000000000002")
        #expect(names["n-000000000003"] == "web-1", "a deleted node's name is not in the way")
        #expect(names["n-000000000004"] == "db")
        #expect(try await db.node(idOrName: "WEB-1")?.id == "n-000000000001")
        // Tokens issued before the migration count from their node's last news for rotation.
        #expect(try await db.nodeCredential(forTokenHash: "h-n-000000000001")?.issuedAt != nil)
    }
}
