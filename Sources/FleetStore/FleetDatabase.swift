import FleetAPI
import Foundation
import GRDB
import KSMCore
import Logging

/// The server's database (the `AppDatabase` of STYLE.md): owns a WAL `DatabasePool`, applies the
/// embedded migrations at open and exposes intention-named async methods. Callers never see SQL.
///
/// All writes go through the pool's single writer connection, one transaction per call (sample
/// batches that arrive together share one, see `SampleGroupCommit`), so a sample batch is
/// acknowledged only after its commit.
///
/// Durability: GRDB opens the pool in WAL mode with `synchronous=NORMAL`. A commit then appends
/// the transaction to the `-wal` file with write(2) before `write {}` returns; only the fsync is
/// deferred to checkpoints. A `kill -9` of the server leaves those pages in the kernel's page
/// cache, so every acknowledged commit is still in the WAL when the next process opens the
/// database (FleetServerTests checks this with a real subprocess). What NORMAL can lose is the
/// last commits on a power failure or kernel crash, which is an accepted trade for ingest speed.
public final class FleetDatabase: Sendable {
    /// The writer and readers. Internal so that other FleetStore files (rollups, reports) can add
    /// their own intention-named methods in extensions.
    let pool: DatabasePool
    /// Sample batches go through it: concurrent pushes share one commit.
    let sampleWriter: SampleGroupCommit
    let checkpointer: WALCheckpointer
    public let path: String
    let logger: Logger

    /// Opens (creating if needed) the database file at `path` and brings its schema up to date
    /// in one transaction. Throws `StoreError.databaseTooNew` for a database written by a newer
    /// server.
    public init(path: String, logger: Logger = FleetDatabase.quietLogger) throws {
        self.path = path
        self.logger = logger
        var config = Configuration()
        config.label = "ksmfleet"
        // Another process (a backup, the CLI on the same host) may briefly hold the write lock.
        config.busyMode = .timeout(10)
        config.maximumReaderCount = 8
        // Checkpoints come from `WALCheckpointer` while samples stream in; SQLite's own (in
        // the committing writer) only when that one falls behind.
        config.prepareDatabase { db in
            try db.execute(sql: "PRAGMA wal_autocheckpoint = \(WALCheckpointer.writerAutocheckpointPages)")
        }
        pool = try DatabasePool(path: path, configuration: config)
        checkpointer = WALCheckpointer(path: path)
        sampleWriter = SampleGroupCommit(pool: pool, checkpointer: checkpointer, write: FleetDatabase.writeSampleBatch)
        try migrate()
    }

    /// The default logger: notices and up (tests and tools open databases often).
    public static var quietLogger: Logger {
        var logger = Logger(label: "ksmfleet.store")
        logger.logLevel = .notice
        return logger
    }

    /// Applies the embedded migrations that the database lacks, all in one transaction.
    private func migrate() throws {
        let path = self.path
        let logger = self.logger
        let applied: [String] = try pool.write { db in
            try db.execute(
                sql: """
                    CREATE TABLE IF NOT EXISTS schema_migrations (
                      version INTEGER PRIMARY KEY NOT NULL, name TEXT NOT NULL, applied_at INTEGER NOT NULL)
                    """)
            let current = try Int.fetchOne(db, sql: "SELECT MAX(version) FROM schema_migrations") ?? 0
            if current > latestSchemaVersion {
                throw StoreError.databaseTooNew(path: path, database: current, supported: latestSchemaVersion)
            }
            var names: [String] = []
            for m in allMigrations where m.number > current {
                try db.execute(sql: m.sql)
                try db.execute(
                    sql: "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    arguments: [m.number, m.name, Time.ms(Date())])
                names.append(m.name)
            }
            return names
        }
        if !applied.isEmpty {
            logger.info(
                "applied schema migrations",
                metadata: ["migrations": "\(applied.joined(separator: ", "))", "path": "\(path)"])
        }
    }

    /// The schema version recorded in the database.
    public func schemaVersion() async throws -> Int {
        try await pool.read { db in try Int.fetchOne(db, sql: "SELECT MAX(version) FROM schema_migrations") ?? 0 }
    }

    /// True when the database answers a query (for `/readyz`).
    public func ping() async -> Bool {
        do {
            return try await pool.read { db in try Int.fetchOne(db, sql: "SELECT 1") } == 1
        } catch {
            return false
        }
    }

    /// Closes the pool (tests that reopen the same file; the server simply exits).
    public func close() throws {
        checkpointer.close()
        try pool.close()
    }
}

/// Unix milliseconds, the time unit of the schema.
enum Time {
    static func ms(_ date: Date) -> Int64 { Int64((date.timeIntervalSince1970 * 1000).rounded()) }
    static func date(_ ms: Int64) -> Date { Date(timeIntervalSince1970: Double(ms) / 1000) }
    static func date(_ ms: Int64?) -> Date? { ms.map { date($0) } }
}

/// JSON as stored in TEXT columns (the wire encoding: ISO 8601 dates, sorted keys).
enum StoredJSON {
    static func encode<T: Encodable>(_ value: T) throws -> String {
        String(decoding: try StrictJSON.encoder().encode(value), as: UTF8.self)
    }
    static func decode<T: Decodable>(_ type: T.Type, _ text: String) throws -> T {
        try StrictJSON.decoder().decode(type, from: Data(text.utf8))
    }
}
