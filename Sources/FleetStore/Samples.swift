import FleetAPI
import Foundation
import GRDB
import GRDBSQLite
import KSMCore

extension FleetDatabase {
    /// Stores a batch of samples for a live node (`ON CONFLICT DO NOTHING` on (node_id, seq), so replays
    /// and duplicates are stored once) and updates the node's last-seen time and, from the newest
    /// sample, its phase and applied generation. Returns only after the commit: the
    /// acknowledgement may be trusted by the agent.
    ///
    /// Batches that arrive while the writer is busy are committed together (group commit, see
    /// `SampleGroupCommit`): each keeps its own savepoint, so one batch's failure (its node was
    /// deleted meanwhile) costs the others nothing.
    /// `json` may carry each sample's JSON as received (same order), saving the re-encoding.
    public func insertSamples(
        nodeId: String, _ samples: [StatusSample], json: [String]? = nil, receivedAt: Date = Date()
    ) async throws -> SampleBatchAck {
        // Encode outside the write transaction: the writer is the one shared resource.
        let rows: [(StatusSample, String)]
        if let json, json.count == samples.count {
            rows = Array(zip(samples, json))
        } else {
            rows = try samples.map { ($0, try StoredJSON.encode($0)) }
        }
        return try await sampleWriter.submit(
            PendingSampleBatch(nodeId: nodeId, rows: rows, receivedAt: Time.ms(receivedAt)))
    }

    /// Writes one batch inside the current transaction (the group commit's savepoint).
    static func writeSampleBatch(_ db: StoreDB, _ batch: PendingSampleBatch) throws -> SampleBatchAck {
        let nodeId = batch.nodeId
        let rows = batch.rows
        let received = batch.receivedAt
        let statements: any SampleStatements =
            if let sqlite = db.sqlite { SQLiteSampleStatements(db: sqlite) } else { PlainSampleStatements(db: db) }
        guard let previousHighest = try statements.lastSeq(nodeId) else { throw StoreError.nodeNotFound(nodeId) }
        var stored = 0
        for (s, json) in rows {
            let inserted = try statements.insert(nodeId: nodeId, s, json: json, receivedAt: received)
            stored += inserted
            // Who benefits: only for a sample that was new (a replay must not count twice).
            if inserted > 0, s.processes != nil {
                try Self.writeProcessReport(db, nodeId: nodeId, sample: s)
            }
        }
        let highest = try statements.maxSeq(nodeId) ?? -1
        // The node's state comes from the newest sample it ever sent: an old batch replayed
        // out of order must not roll the phase back.
        if let (newest, json) = rows.max(by: { $0.0.seq < $1.0.seq }), newest.seq >= (previousHighest ?? Int64.min) {
            try statements.updateNode(nodeId, newest: newest, json: json, highestSeq: highest, receivedAt: received)
        } else {
            try statements.touchNode(nodeId, highestSeq: highest >= 0 ? highest : nil, receivedAt: received)
        }
        return SampleBatchAck(highestSeq: highest, stored: stored, duplicates: rows.count - stored)
    }
}

/// The statements of a sample batch, the same SQL on both engines; SQLite binds them with its
/// C API (`SQLiteSampleStatements`), PostgreSQL through `StoreDB` (`PlainSampleStatements`).
protocol SampleStatements {
    /// nil: no live node; `.some(nil)`: a node without samples yet.
    func lastSeq(_ nodeId: String) throws -> Int64??
    /// 1 when stored, 0 for a duplicate (node, seq).
    func insert(nodeId: String, _ s: StatusSample, json: String, receivedAt: Int64) throws -> Int
    func maxSeq(_ nodeId: String) throws -> Int64?
    func updateNode(_ nodeId: String, newest: StatusSample, json: String, highestSeq: Int64, receivedAt: Int64) throws
    func touchNode(_ nodeId: String, highestSeq: Int64?, receivedAt: Int64) throws
}

enum SampleSQL {
    static let lastSeq = "SELECT last_seq FROM nodes WHERE id = ? AND deleted_at IS NULL"
    static let insert = """
        INSERT INTO samples (node_id, seq, taken_at, received_at, phase, phase_reason, run,
          pages_to_scan, sleep_millisecs, pages_shared, pages_sharing, pages_unshared, pages_volatile,
          full_scans, stable_node_chains, stable_node_dups, ksm_zero_pages, general_profit, mem_total_kb,
          mem_available_kb, anon_pages_kb, page_size, saved_bytes, ksmd_cpu_percent, ksmd_cpu_seconds,
          applied_generation, apply_error, sample_json, ends_data)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT DO NOTHING
        """
    static let maxSeq = "SELECT MAX(seq) FROM samples WHERE node_id = ?"
    static let updateNode = """
        UPDATE nodes SET last_seen_at = ?, phase = ?, phase_reason = ?, applied_generation = ?,
          apply_error = ?, last_seq = ?, last_sample_json = ?, page_size = ?
        WHERE id = ?
        """
    static let touchNode = "UPDATE nodes SET last_seen_at = ?, last_seq = ? WHERE id = ?"
}

/// Through `StoreDB` (PostgreSQL).
struct PlainSampleStatements: SampleStatements {
    let db: StoreDB

    func lastSeq(_ nodeId: String) throws -> Int64?? {
        guard let row = try StoreRow.fetchOne(db, sql: SampleSQL.lastSeq, arguments: [nodeId]) else { return nil }
        return .some(row[0] as Int64?)
    }
    func insert(nodeId: String, _ s: StatusSample, json: String, receivedAt: Int64) throws -> Int {
        let st = s.status
        let arguments: StoreArguments = [
            nodeId, s.seq, Time.ms(s.takenAt), receivedAt, s.phase.rawValue, s.phaseReason, st.run,
            st.pagesToScan, st.sleepMillisecs, st.pagesShared, st.pagesSharing, st.pagesUnshared, st.pagesVolatile,
            st.fullScans, st.stableNodeChains, st.stableNodeDups, st.ksmZeroPages, st.generalProfit,
            s.memory.memTotalKB, s.memory.memAvailableKB, s.memory.anonPagesKB, s.pageSize, s.savedBytes,
            s.ksmdCPUPercent, s.ksmdCPUSeconds, s.appliedGeneration, s.applyError, json,
            Int64(s.agentStopped == true ? 1 : 0),
        ]
        try db.execute(sql: SampleSQL.insert, arguments: arguments)
        return db.changesCount
    }
    func maxSeq(_ nodeId: String) throws -> Int64? {
        try Int64.fetchOne(db, sql: SampleSQL.maxSeq, arguments: [nodeId])
    }
    func updateNode(_ nodeId: String, newest: StatusSample, json: String, highestSeq: Int64, receivedAt: Int64) throws {
        try db.execute(
            sql: SampleSQL.updateNode,
            arguments: [
                receivedAt, newest.phase.rawValue, newest.phaseReason, newest.appliedGeneration, newest.applyError,
                highestSeq, json, newest.pageSize, nodeId,
            ])
    }
    func touchNode(_ nodeId: String, highestSeq: Int64?, receivedAt: Int64) throws {
        try db.execute(sql: SampleSQL.touchNode, arguments: [receivedAt, highestSeq, nodeId])
    }
}

/// Bound with the C API: building `StatementArguments` (29 boxed values a row) cost more than
/// SQLite's own work for the row, and an agent's normal batch is one sample, so the per-batch
/// statements cost as much as its row.
struct SQLiteSampleStatements: SampleStatements {
    let db: Database

    func lastSeq(_ nodeId: String) throws -> Int64?? {
        var lastSeq = RawRow(try db.cachedStatement(sql: SampleSQL.lastSeq).sqliteStatement)
        lastSeq.bind(1, nodeId)
        return try lastSeq.firstInt64(db)
    }
    func insert(nodeId: String, _ s: StatusSample, json: String, receivedAt: Int64) throws -> Int {
        let st = s.status
        var row = RawRow(try db.cachedStatement(sql: SampleSQL.insert).sqliteStatement)
        row.bind(1, nodeId)
        row.bind(2, s.seq)
        row.bind(3, Time.ms(s.takenAt))
        row.bind(4, receivedAt)
        row.bind(5, s.phase.rawValue)
        row.bind(6, s.phaseReason)
        row.bind(7, st.run)
        row.bind(8, st.pagesToScan)
        row.bind(9, st.sleepMillisecs)
        row.bind(10, st.pagesShared)
        row.bind(11, st.pagesSharing)
        row.bind(12, st.pagesUnshared)
        row.bind(13, st.pagesVolatile)
        row.bind(14, st.fullScans)
        row.bind(15, st.stableNodeChains)
        row.bind(16, st.stableNodeDups)
        row.bind(17, st.ksmZeroPages)
        row.bind(18, st.generalProfit)
        row.bind(19, s.memory.memTotalKB)
        row.bind(20, s.memory.memAvailableKB)
        row.bind(21, s.memory.anonPagesKB)
        row.bind(22, s.pageSize)
        row.bind(23, s.savedBytes)
        row.bind(24, s.ksmdCPUPercent)
        row.bind(25, s.ksmdCPUSeconds)
        row.bind(26, s.appliedGeneration)
        row.bind(27, s.applyError)
        row.bind(28, json)
        row.bind(29, Int64(s.agentStopped == true ? 1 : 0))
        try row.step(db)
        return db.changesCount
    }
    func maxSeq(_ nodeId: String) throws -> Int64? {
        var maxSeq = RawRow(try db.cachedStatement(sql: SampleSQL.maxSeq).sqliteStatement)
        maxSeq.bind(1, nodeId)
        return try maxSeq.firstInt64(db).flatMap { $0 }
    }
    func updateNode(_ nodeId: String, newest: StatusSample, json: String, highestSeq: Int64, receivedAt: Int64) throws {
        var update = RawRow(try db.cachedStatement(sql: SampleSQL.updateNode).sqliteStatement)
        update.bind(1, receivedAt)
        update.bind(2, newest.phase.rawValue)
        update.bind(3, newest.phaseReason)
        update.bind(4, newest.appliedGeneration)
        update.bind(5, newest.applyError)
        update.bind(6, highestSeq)
        update.bind(7, json)
        update.bind(8, newest.pageSize)
        update.bind(9, nodeId)
        try update.step(db)
    }
    func touchNode(_ nodeId: String, highestSeq: Int64?, receivedAt: Int64) throws {
        var update = RawRow(try db.cachedStatement(sql: SampleSQL.touchNode).sqliteStatement)
        update.bind(1, receivedAt)
        update.bind(2, highestSeq)
        update.bind(3, nodeId)
        try update.step(db)
    }
}

/// Binds one row of a prepared INSERT with the SQLite C API and runs it. The statement belongs to
/// GRDB's statement cache; it is left reset, as GRDB expects to find it. GRDB's statement hooks do
/// not see these inserts: nothing observes `samples` (no ValueObservation); if something ever
/// does, call `db.notifyChanges(in: Table("samples"))` after the batch.
struct RawRow {
    private let statement: OpaquePointer
    /// The first failed bind of the current row (SQLITE_NOMEM, SQLITE_TOOBIG, …): `step` throws
    /// it instead of inserting a row with the previous row's value left bound.
    private var bindError: Int32 = SQLITE_OK
    /// `SQLITE_TRANSIENT`: SQLite copies the bytes before `bind` returns.
    private static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

    init(_ statement: OpaquePointer) { self.statement = statement }

    private mutating func check(_ code: Int32) {
        if code != SQLITE_OK && bindError == SQLITE_OK { bindError = code }
    }
    mutating func bind(_ index: Int32, _ value: Int64?) {
        check(value.map { sqlite3_bind_int64(statement, index, $0) } ?? sqlite3_bind_null(statement, index))
    }
    mutating func bind(_ index: Int32, _ value: Int?) { bind(index, value.map { Int64($0) }) }
    mutating func bind(_ index: Int32, _ value: Double?) {
        check(value.map { sqlite3_bind_double(statement, index, $0) } ?? sqlite3_bind_null(statement, index))
    }
    mutating func bind(_ index: Int32, _ value: String?) {
        guard var value else { check(sqlite3_bind_null(statement, index)); return }
        let statement = self.statement
        let code = value.withUTF8 { bytes in
            // Sample bodies are limited to a few MiB, far below Int32.max.
            sqlite3_bind_text(
                statement, index, UnsafeRawPointer(bytes.baseAddress ?? UnsafePointer(bitPattern: 1)!)
                    .assumingMemoryBound(to: CChar.self), Int32(clamping: bytes.count), Self.transient)
        }
        check(code)
    }

    /// Runs the bound row; throws SQLite's error with its message (a failed bind included).
    mutating func step(_ db: Database) throws {
        try checkBinds()
        let code = sqlite3_step(statement)
        sqlite3_reset(statement)
        guard code == SQLITE_DONE else { throw Self.error(code, db) }
    }

    /// Runs a bound query of one integer column: nil when it returns no row, else the first
    /// row's value (`.some(nil)` for NULL).
    mutating func firstInt64(_ db: Database) throws -> Int64?? {
        try checkBinds()
        let code = sqlite3_step(statement)
        defer { sqlite3_reset(statement) }
        switch code {
        case SQLITE_ROW:
            return .some(sqlite3_column_type(statement, 0) == SQLITE_NULL ? nil : sqlite3_column_int64(statement, 0))
        case SQLITE_DONE:
            return nil
        default:
            throw Self.error(code, db)
        }
    }

    private mutating func checkBinds() throws {
        guard bindError != SQLITE_OK else { return }
        let code = bindError
        bindError = SQLITE_OK
        sqlite3_reset(statement)
        throw DatabaseError(resultCode: ResultCode(rawValue: code), message: "binding a sample row failed")
    }

    private static func error(_ code: Int32, _ db: Database) -> DatabaseError {
        DatabaseError(resultCode: ResultCode(rawValue: code), message: String(cString: sqlite3_errmsg(db.sqliteConnection)))
    }
}
