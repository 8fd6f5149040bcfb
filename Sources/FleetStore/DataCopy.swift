import Foundation
import GRDB
import PostgresNIO

// Moving an installation from SQLite to PostgreSQL (`ksmfleet-server migrate-data`): every
// table's rows, copied as they are, from one consistent snapshot of the SQLite file (the server
// may keep running: WAL lets a reader keep its snapshot while the writer goes on) into an empty
// PostgreSQL database, in one transaction there (all or nothing).

/// One table's part of a data copy.
public struct TableCopy: Sendable, Equatable {
    public var table: String
    public var rows: Int
}

/// Why a data copy did not happen (nothing was written then).
public enum DataCopyError: Error, Equatable, CustomStringConvertible {
    /// The copy goes from a SQLite store to a PostgreSQL one.
    case unsupportedEngines(source: StoreEngine, target: StoreEngine)
    /// The target already holds data (table → rows, at least 1): copying into it would mix two
    /// installations.
    case targetNotEmpty([String: Int])
    /// A source table the target's schema lacks (the target's server is older).
    case missingTable(String)
    /// A source column the target's table lacks.
    case missingColumn(table: String, column: String)
    /// The target did not end up with the rows copied (a trigger or a constraint changed them).
    case countMismatch(table: String, copied: Int, found: Int)

    public var description: String {
        switch self {
        case .unsupportedEngines(let source, let target):
            return "copying data goes from a SQLite store to a PostgreSQL one, not from \(source) to \(target)"
        case .targetNotEmpty(let tables):
            let list = tables.sorted { $0.key < $1.key }.map { "\($0.key) (\($0.value == 1 ? "1 row" : "rows"))" }
            return
                "the target database is not empty: \(list.joined(separator: ", ")); migrate into a new, empty database (CREATE DATABASE …), nothing was written"
        case .missingTable(let table):
            return "the target database has no table \(table): its schema is older than the source's"
        case .missingColumn(let table, let column):
            return "the target table \(table) has no column \(column): its schema is older than the source's"
        case .countMismatch(let table, let copied, let found):
            return "\(table): \(copied) rows copied but \(found) found afterwards; nothing was written"
        }
    }
}

extension FleetDatabase {
    /// Copies every table of `source` (a SQLite store) into `target` (a PostgreSQL store whose
    /// schema is up to date, as opening it makes it) and returns the rows copied per table, in
    /// the order copied. The target must be empty (`DataCopyError.targetNotEmpty`).
    ///
    /// The source is read in one read transaction (one snapshot, while its server may keep
    /// writing), row by row; the target is written in one transaction, `batchRows` rows per
    /// INSERT. Columns are copied by name, samples with their SQLite rowids (the rollup
    /// watermark counts them), and every identity sequence is moved past the highest copied
    /// value. `progress(table, rows so far)` is called every `progressEvery` rows and at each
    /// table's end.
    public static func copyData(
        from source: FleetDatabase, to target: FleetDatabase, batchRows: Int = 500, progressEvery: Int = 100_000,
        progress: @escaping @Sendable (String, Int) -> Void = { _, _ in }
    ) async throws -> [TableCopy] {
        guard case .sqlite(let pool, _) = source.backend, case .postgres(let engine) = target.backend else {
            throw DataCopyError.unsupportedEngines(source: source.engine, target: target.engine)
        }
        // The PostgreSQL transaction runs on the engine's write thread and reads SQLite from
        // there (both block that thread, never a Swift concurrency one).
        return try await engine.write { targetDB in
            try pool.read { sourceDB in
                try DataCopy(
                    source: StoreDB(.sqlite(sourceDB)), target: targetDB, batchRows: batchRows,
                    progressEvery: progressEvery, progress: progress
                ).run()
            }
        }
    }
}

extension FleetDatabase {
    /// Gathers PostgreSQL's planner statistics for every table (`ANALYZE`), as PostgreSQL advises
    /// after a bulk load such as `copyData`, rather than waiting for autovacuum to get to the
    /// tables (long reports timed right after a copy took 2–3× longer without). Nothing on SQLite.
    public func analyze() async throws {
        guard case .postgres(let engine) = backend else { return }
        try await engine.write { db in try db.execute(sql: "ANALYZE") }
    }

    /// An error as an operator should read it: PostgreSQL's own message and SQLSTATE
    /// (postgres-nio's errors print only a generic text), never a bound value or a password.
    public static func describe(_ error: any Error) -> String {
        if error is PostgresError || error is PSQLError { return PostgresEngine.describe(error) }
        return "\(error)"
    }
}

extension FleetDatabase {
    /// Tables `migrate-data` leaves empty, for the rollup service to fill again (`DataCopy.remade`).
    public static var tablesRemadeAfterCopy: [String] { DataCopy.remade.sorted() }
}

/// One copy: the SQLite snapshot and the PostgreSQL transaction.
struct DataCopy {
    let source: StoreDB
    let target: StoreDB
    let batchRows: Int
    let progressEvery: Int
    let progress: (String, Int) -> Void

    /// Tables that triggers fill from other tables' changes (rollup_hour → rollup_fleet_dirty,
    /// rollup_day → rollup_fleet_day_dirty): emptied and copied last, so that they end up equal
    /// to the source whether triggers fired during the copy or not.
    static let filledByTriggers: Set<String> = ["rollup_fleet_dirty", "rollup_fleet_day_dirty"]
    /// Tables not copied: the rollup service makes their rows again on the target. The packs of
    /// raw samples (`RawHourPack`, of hours and of slices) hold the rows in SQLite's read order
    /// (taken_at, then rowid), PostgreSQL reads them by taken_at, then seq; and they are as large
    /// as a quarter of the samples, which are copied anyway. (A slice without its row gets one
    /// again only from a sample rolled up in it: until the hour's own pack, it is read as rows.)
    static let remade: Set<String> = ["raw_hour_pack", "raw_slice_pack"]
    /// Postgres accepts at most 65535 parameters per statement.
    static let maxParameters = 65535

    func run() throws -> [TableCopy] {
        let sourceTables = try String.fetchAll(
            source,
            sql: """
                SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'
                  AND name <> 'schema_migrations' ORDER BY name
                """)
        let targetTables = Set(
            try String.fetchAll(
                target,
                sql: """
                    SELECT table_name FROM information_schema.tables
                    WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' AND table_name <> 'schema_migrations'
                    """))
        for table in sourceTables where !targetTables.contains(table) { throw DataCopyError.missingTable(table) }
        let copied = sourceTables.filter { !Self.remade.contains($0) }

        // An empty target only: checked inside the transaction that writes it.
        var occupied: [String: Int] = [:]
        for table in targetTables.sorted() {
            let q = StoreDB.quoted(table)
            if let n = try Int.fetchOne(target, sql: "SELECT COUNT(*) FROM (SELECT 1 FROM \(q) LIMIT 2) AS t"), n > 0 {
                occupied[table] = n
            }
        }
        guard occupied.isEmpty else { throw DataCopyError.targetNotEmpty(occupied) }

        // Triggers and foreign keys are skipped where allowed (a superuser: replica mode, for
        // this transaction only): the rows are copied as they were, nothing needs recomputing.
        // Otherwise they fire; the order below keeps foreign keys satisfied, and the tables
        // triggers fill are made equal to the source at the end.
        if try String.fetchOne(target, sql: "SELECT current_setting('is_superuser')") == "on" {
            try target.execute(sql: "SET LOCAL session_replication_role = replica")
        }

        var copies: [TableCopy] = []
        for table in try copyOrder(copied) {
            if Self.filledByTriggers.contains(table) {
                try target.execute(sql: "DELETE FROM \(StoreDB.quoted(table))")
            }
            copies.append(TableCopy(table: table, rows: try copy(table)))
        }

        try advanceIdentitySequences()

        // The target holds what was copied, table by table.
        for c in copies {
            let found = try Int.fetchOne(target, sql: "SELECT COUNT(*) FROM \(StoreDB.quoted(c.table))") ?? 0
            if found != c.rows { throw DataCopyError.countMismatch(table: c.table, copied: c.rows, found: found) }
        }
        // The fleet's and the label groups' hourly sums are copied as they are: both engines add
        // an hour's rows in one order (`StoreDB.bucketRowOrder`), so they are what PostgreSQL
        // would compute.
        return copies
    }

    /// Referenced tables before the tables that reference them (foreign keys of the target),
    /// else by name; the tables triggers fill come last.
    func copyOrder(_ tables: [String]) throws -> [String] {
        var dependsOn: [String: Set<String>] = [:]
        let rows = try StoreRow.fetchAll(
            target,
            sql: """
                SELECT a.relname AS referencing, b.relname AS referenced FROM pg_constraint c
                JOIN pg_class a ON a.oid = c.conrelid JOIN pg_class b ON b.oid = c.confrelid
                JOIN pg_namespace n ON n.oid = a.relnamespace
                WHERE c.contype = 'f' AND n.nspname = current_schema()
                """)
        for row in rows {
            let from: String = row["referencing"]
            let to: String = row["referenced"]
            if from != to { dependsOn[from, default: []].insert(to) }
        }
        let present = Set(tables)
        var order: [String] = []
        var placed: Set<String> = []
        var rest = tables.filter { !Self.filledByTriggers.contains($0) }
        while !rest.isEmpty {
            // A cycle (none in the schema) falls back to the name order.
            let ready = rest.filter { t in
                dependsOn[t, default: []].allSatisfy { placed.contains($0) || !present.contains($0) }
            }
            let next = ready.first ?? rest[0]
            order.append(next)
            placed.insert(next)
            rest.removeAll { $0 == next }
        }
        return order + tables.filter { Self.filledByTriggers.contains($0) }
    }

    /// Copies one table; returns its rows.
    func copy(_ table: String) throws -> Int {
        let sourceColumns = try String.fetchAll(
            source, sql: "SELECT name FROM pragma_table_info(?) ORDER BY cid", arguments: [table])
        let targetRows = try StoreRow.fetchAll(
            target,
            sql: """
                SELECT column_name, is_identity FROM information_schema.columns
                WHERE table_schema = current_schema() AND table_name = ? ORDER BY ordinal_position
                """, arguments: [table])
        let targetColumns = targetRows.map { $0["column_name"] as String }
        for column in sourceColumns where !targetColumns.contains(column) {
            throw DataCopyError.missingColumn(table: table, column: column)
        }
        // PostgreSQL's explicit `rowid` (samples) takes SQLite's implicit one; other columns the
        // source lacks keep their defaults.
        let withoutRowid =
            (try Int.fetchOne(
                source, sql: "SELECT COUNT(*) FROM sqlite_master WHERE name = ? AND sql LIKE '%WITHOUT ROWID%'",
                arguments: [table]) ?? 0) > 0
        var columns = sourceColumns
        if targetColumns.contains("rowid") && !sourceColumns.contains("rowid") && !withoutRowid {
            columns.insert("rowid", at: 0)
        }
        let hasIdentity = targetRows.contains { ($0["is_identity"] as String?) == "YES" }

        let quotedTable = StoreDB.quoted(table)
        let columnList = columns.map(StoreDB.quoted).joined(separator: ", ")
        let perStatement = max(1, min(batchRows, Self.maxParameters / max(1, columns.count)))
        let tuple = "(" + Array(repeating: "?", count: columns.count).joined(separator: ", ") + ")"
        func insert(rows: Int) -> String {
            "INSERT INTO \(quotedTable) (\(columnList)) \(hasIdentity ? "OVERRIDING SYSTEM VALUE " : "")VALUES "
                + Array(repeating: tuple, count: rows).joined(separator: ", ")
        }
        let fullBatch = insert(rows: perStatement)

        var copied = 0
        var pending: [SQLValue] = []
        pending.reserveCapacity(perStatement * columns.count)
        var pendingRows = 0
        func flush() throws {
            guard pendingRows > 0 else { return }
            try target.execute(
                sql: pendingRows == perStatement ? fullBatch : insert(rows: pendingRows),
                arguments: StoreArguments(values: pending))
            copied += pendingRows
            if copied / progressEvery != (copied - pendingRows) / progressEvery { progress(table, copied) }
            pending.removeAll(keepingCapacity: true)
            pendingRows = 0
        }
        // A real cursor on SQLite: the table is streamed, never held whole.
        let cursor = try StoreRow.fetchCursor(source, sql: "SELECT \(columnList) FROM \(quotedTable)")
        while let row = try cursor.next() {
            pending += row.values
            pendingRows += 1
            if pendingRows == perStatement { try flush() }
        }
        try flush()
        progress(table, copied)
        return copied
    }

    /// Moves every identity column's sequence past the highest value copied, so that the next
    /// insert gets a new number (samples.rowid, audit_log.id).
    func advanceIdentitySequences() throws {
        let identities = try StoreRow.fetchAll(
            target,
            sql: """
                SELECT table_name, column_name FROM information_schema.columns
                WHERE table_schema = current_schema() AND is_identity = 'YES'
                """)
        for identity in identities {
            let table: String = identity["table_name"]
            let column: String = identity["column_name"]
            try target.execute(
                sql: """
                    SELECT setval(pg_get_serial_sequence(?, ?), COALESCE(MAX(\(StoreDB.quoted(column))), 0) + 1, false)
                    FROM \(StoreDB.quoted(table))
                    """, arguments: [StoreDB.quoted(table), column])
        }
    }
}
