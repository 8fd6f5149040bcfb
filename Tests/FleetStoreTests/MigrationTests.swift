import FleetStore
import Foundation
import GRDB
import Testing

@testable import FleetStore

@Suite struct MigrationTests {
    @Test func migrationsApplyOnAFreshDatabase() async throws {
        let (db, dir) = try makeDatabase()
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
        let (db, dir) = try makeDatabase()
        defer { try? FileManager.default.removeItem(at: dir) }
        _ = try await registerNode(db)
        try db.close()
        let again = try FleetDatabase(path: dir.appending(path: "ksmfleet.sqlite").path)
        #expect(try await again.schemaVersion() == latestSchemaVersion)
        #expect(try await again.nodes().count == 1)
        let rows = try await again.pool.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM schema_migrations") }
        #expect(rows == allMigrations.count)
    }

    @Test func aNewerDatabaseIsRefusedWithAClearMessage() async throws {
        let (db, dir) = try makeDatabase()
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
}
