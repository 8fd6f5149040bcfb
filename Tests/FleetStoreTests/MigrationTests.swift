import FleetStore
import Foundation
import GRDB
import Testing

@testable import FleetStore

@Suite struct MigrationTests {
    @Test func migrationsApplyOnAFreshDatabase() async throws {
        let (db, dir) = try makeSQLiteDatabase()
        defer { try? FileManager.default.removeItem(at: dir) }
        #expect(latestSchemaVersion >= 1)
        #expect(try await db.schemaVersion() == latestSchemaVersion)
        let tables = try await db.pool.read { db in
            try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table'")
        }
        for t in ["nodes", "node_configs", "samples", "enrollment_tokens", "settings", "audit_log", "schema_migrations"] {
            #expect(tables.contains(t), "table \(t) missing")
        }
        let mode = try await db.pool.read { db in try String.fetchOne(db, sql: "PRAGMA journal_mode") }
        #expect(mode == "wal")
    }

    @Test func reopeningAppliesNothingTwice() async throws {
        let (db, dir) = try makeSQLiteDatabase()
        defer { try? FileManager.default.removeItem(at: dir) }
        _ = try await registerNode(db)
        try db.close()
        let again = try FleetDatabase(path: dir.appending(path: "ksmfleet.sqlite").path)
        #expect(try await again.schemaVersion() == latestSchemaVersion)
        #expect(try await again.nodes().count == 1)
        let rows = try await again.pool.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM schema_migrations") }
        #expect(rows == allMigrations.count)
    }

    /// A migration missing below the highest one recorded (it landed after a higher-numbered
    /// one) is applied at the next start, not skipped because the database looks up to date.
    @Test func aMigrationMissingBelowTheLatestIsApplied() async throws {
        let (db, dir) = try makeSQLiteDatabase()
        defer { try? FileManager.default.removeItem(at: dir) }
        let missing = try #require(allMigrations.first { $0.name.contains("process_savings_month") })
        try await db.pool.write { db in
            try db.execute(sql: "DROP TABLE process_savings_month")
            try db.execute(sql: "DELETE FROM schema_migrations WHERE version = ?", arguments: [missing.number])
        }
        // The precondition of the case: the highest recorded version is still the latest, so a
        // runner that compares with it alone finds nothing to apply.
        #expect(try await db.schemaVersion() == latestSchemaVersion)
        try db.close()
        let again = try FleetDatabase(path: dir.appending(path: "ksmfleet.sqlite").path)
        let (rows, tables) = try await again.pool.read { db in
            (
                try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM schema_migrations"),
                try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM sqlite_master WHERE name = 'process_savings_month'")
            )
        }
        #expect(rows == allMigrations.count)
        #expect(tables == 1, "\(missing.name) applied again")
    }

    @Test func aNewerDatabaseIsRefusedWithAClearMessage() async throws {
        let (db, dir) = try makeSQLiteDatabase()
        defer { try? FileManager.default.removeItem(at: dir) }
        let newer = latestSchemaVersion + 1
        try await db.pool.write { db in
            try db.execute(
                sql: "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, 'from_the_future', 0)",
                arguments: [newer])
        }
        try db.close()
        let path = dir.appending(path: "ksmfleet.sqlite").path
        do {
            _ = try FleetDatabase(path: path)
            Issue.record("a database with schema \(newer) was opened by a build that knows \(latestSchemaVersion)")
        } catch let error as StoreError {
            #expect(error == .databaseTooNew(path: path, database: newer, supported: latestSchemaVersion))
            #expect(error.description.contains("newer"))
            #expect(error.description.contains("version \(newer)"))
        }
    }

    /// 0020_credentials rebuilds audit_log (node_id nullable, credential and source columns):
    /// a database written before it keeps its audit rows, and its admin token hash still verifies.
    @Test func aDatabaseFromBeforeCredentialsKeepsItsAuditTrailAndAdminToken() async throws {
        let dir = FileManager.default.temporaryDirectory.appending(path: "ksmfleet-mig-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appending(path: "ksmfleet.sqlite").path
        let token = "ka_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
        do {
            let old = try DatabaseQueue(path: path)
            try await old.write { db in
                try db.execute(
                    sql: "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY NOT NULL, name TEXT NOT NULL, applied_at INTEGER NOT NULL)")
                for m in allMigrations where m.number <= 4 {
                    try db.execute(sql: m.sql)
                    try db.execute(
                        sql: "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, 0)",
                        arguments: [m.number, m.name])
                }
                try db.execute(
                    sql: """
                        INSERT INTO audit_log (at, actor, node_id, action, generation, before_json, after_json)
                        VALUES (1000, 'dashboard', 'n-000000000001', 'patch', 2, '{"a":1}', '{"a":2}')
                        """)
                // The hash the hand-written SHA-256 stored for `token`.
                try db.execute(
                    sql: "INSERT INTO settings (key, value) VALUES ('admin_token_hash', ?)",
                    arguments: ["877071f650b3a2ea60dfc6a721e9cd7003f211ecac0b5667cc1b061167f6866f"])
            }
            try old.close()
        }
        let db = try FleetDatabase(path: path)
        defer { try? db.close() }
        #expect(try await db.schemaVersion() == latestSchemaVersion)
        let rows = try await db.auditLog(nodeId: "n-000000000001")
        #expect(rows.count == 1)
        #expect(rows.first?.credential == "dashboard" && rows.first?.credentialId == nil && rows.first?.source == nil)
        #expect(rows.first?.before == #"{"a":1}"# && rows.first?.after == #"{"a":2}"# && rows.first?.generation == 2)
        let stored = try #require(try await db.adminTokenHash())
        #expect(Secrets.verify(token, storedHash: stored))
        // A fleet-wide record (no node) fits the rebuilt table.
        try await db.recordAudit(action: "login", who: AuditWho(name: "alice", credentialId: "c-1", source: "10.0.0.1"))
        let login = try #require(try await db.auditLog(AuditFilter(action: "login")).first)
        #expect(login.nodeId == nil && login.credential == "alice" && login.source == "10.0.0.1")
    }
}
