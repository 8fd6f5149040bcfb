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

    /// Writes one batch inside the current transaction (the group commit's savepoint, or the
    /// transaction itself for a batch alone).
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
        // The node's state comes from the newest sample it ever sent: an old batch replayed
        // out of order must not roll the phase back, nor a sample sent again under the newest
        // seq (a duplicate, not stored) replace the state of the one that was.
        var newest = rows.max(by: { $0.0.seq < $1.0.seq })
        if let n = newest, n.0.seq <= (previousHighest ?? Int64.min) { newest = nil }
        let highest = try statements.finish(nodeId, newest: newest, receivedAt: received) ?? -1
        return SampleBatchAck(highestSeq: highest, stored: stored, duplicates: rows.count - stored)
    }
}

extension FleetDatabase {
    /// Most rows a batch written alone in one statement (`writeLoneSampleBatch`) may hold: an
    /// agent's normal push is one sample, a few after a short outage; a longer backlog goes the
    /// group's way (`writeSampleGroup`), whose statement texts the placeholder cache already holds.
    /// The statement of one sample (40 arguments) runs prepared, planned once per connection
    /// (`PreparedStatements.maxArguments`); those of 2 to 8 are planned at each use, rare as they
    /// are (0.5 ms of PostgreSQL's planning, measured in docs/benchmarks.md).
    static let loneStatementRows = 8

    /// Whether `writeLoneSampleBatch` writes `batch`: not an empty one (it only touches the node),
    /// one with a process report (those write the report's rows too) nor a long backlog.
    static func writesInOneStatement(_ batch: PendingSampleBatch) -> Bool {
        (1...loneStatementRows).contains(batch.rows.count) && batch.rows.allSatisfy { $0.0.processes == nil }
    }

    /// Writes one batch (without process reports, `writesInOneStatement`) in a single statement,
    /// outside a transaction block on PostgreSQL (`PostgresEngine.writeStatementSync`): one round
    /// trip where `writeSampleBatch` in its transaction takes five (BEGIN, the node's last seq, the
    /// INSERT, the node's UPDATE, COMMIT), most of what PostgreSQL ran for a fleet's pushes. The
    /// same outcome as `writeSampleBatch`: data-modifying CTEs share the statement's snapshot, so
    /// the highest seq is the larger of the rows stored before and the ones inserted now.
    static func writeLoneSampleBatch(_ db: StoreDB, _ batch: PendingSampleBatch) throws -> SampleBatchAck {
        let nodeId = batch.nodeId
        precondition(writesInOneStatement(batch))
        // The node's state comes from the newest sample, unless the node sent a newer one before
        // (as `writeSampleBatch`: the first of equal seqs).
        let (newest, newestJSON) = batch.rows.max(by: { $0.0.seq < $1.0.seq })!
        var arguments: StoreArguments = [newest.seq, nodeId]
        for (s, json) in batch.rows {
            arguments += SampleSQL.insertArguments(nodeId: nodeId, s, json: json, receivedAt: batch.receivedAt)
        }
        arguments += [
            batch.receivedAt, newest.phase.rawValue, newest.phaseReason, newest.appliedGeneration, newest.applyError,
            newestJSON, newest.pageSize, nodeId, nodeId,
        ]
        guard let row = try StoreRow.fetchOne(db, sql: SampleSQL.loneBatches[batch.rows.count - 1], arguments: arguments),
            (row[0] as Int64) > 0
        else { throw StoreError.nodeNotFound(nodeId) }
        let stored = Int(row[1] as Int64)
        return SampleBatchAck(highestSeq: row[2] as Int64? ?? -1, stored: stored, duplicates: batch.rows.count - stored)
    }
}

extension FleetDatabase {
    /// Writes a group of batches (PostgreSQL) in a few statements instead of five per batch:
    /// which nodes are live, every row in multi-row INSERTs, every node's update in multi-row
    /// UPDATEs. The same outcome as writing the batches one after the other (`writeSampleBatch`):
    /// a row in two batches is stored for the first, a node's state comes from its newest
    /// sample unless that is older than what it sent before; a batch's ack gives its node's
    /// highest seq after the whole group. Returns nil, with nothing written, when a statement
    /// failed without ending the transaction: the group is then written batch by batch, where a
    /// failing batch fails alone.
    static func writeSampleGroup(_ db: StoreDB, _ batches: [PendingSampleBatch]) throws -> SampleGroupCommit.GroupResults? {
        try db.execute(sql: "SAVEPOINT sample_group")
        do {
            let results = try writeSampleGroupRows(db, batches)
            try db.execute(sql: "RELEASE SAVEPOINT sample_group")
            return results
        } catch {
            guard db.isInsideTransaction else { throw error }  // the engine runs the whole group again
            try db.execute(sql: "ROLLBACK TO SAVEPOINT sample_group")
            try db.execute(sql: "RELEASE SAVEPOINT sample_group")
            return nil
        }
    }

    private static func writeSampleGroupRows(_ db: StoreDB, _ batches: [PendingSampleBatch]) throws
        -> SampleGroupCommit.GroupResults
    {
        // Live nodes and the highest seq each had before this group.
        var previous: [String: Int64?] = [:]
        let ids = Array(Set(batches.map(\.nodeId)))
        for row in try StoreRow.fetchAll(
            db, sql: "SELECT id, last_seq FROM nodes WHERE deleted_at IS NULL AND \(db.inJSONArray("id"))",
            arguments: [StoredJSON.strings(ids)])
        {
            previous[row[0] as String] = .some(row[1] as Int64?)
        }
        struct Key: Hashable {
            var node: String
            var seq: Int64
        }
        // Every row of the live nodes' batches, first occurrences first (as batch by batch).
        var rows: [StoreArguments] = []
        var firstIn: [Key: Int] = [:]  // (node, seq) → the batch that stores it, if new
        for (b, batch) in batches.enumerated() where previous[batch.nodeId] != nil {
            for (s, json) in batch.rows {
                let key = Key(node: batch.nodeId, seq: s.seq)
                if firstIn[key] == nil { firstIn[key] = b }
                rows.append(SampleSQL.insertArguments(nodeId: batch.nodeId, s, json: json, receivedAt: batch.receivedAt))
            }
        }
        var inserted: Set<Key> = []
        try db.executeValues(
            "INSERT INTO samples (\(SampleSQL.insertColumns))", rows, tail: "ON CONFLICT DO NOTHING RETURNING node_id, seq",
            chunk: 256
        ) { row in inserted.insert(Key(node: row[0], seq: row[1])) }
        // Who benefits: only for a sample that was new (a replay must not count twice).
        var stored = Array(repeating: 0, count: batches.count)
        for (b, batch) in batches.enumerated() where previous[batch.nodeId] != nil {
            for (s, _) in batch.rows {
                let key = Key(node: batch.nodeId, seq: s.seq)
                guard firstIn[key] == b, inserted.contains(key) else { continue }
                firstIn[key] = -1  // counted once, also when a batch holds it twice
                stored[b] += 1
                if s.processes != nil { try Self.writeProcessReport(db, nodeId: batch.nodeId, sample: s) }
            }
        }
        // Each node's newest sample in the group (the first batch's of a seq sent twice: the
        // stored one), kept when newer than what it sent before; its last-seen time from its
        // latest batch.
        var newest: [String: (StatusSample, String)] = [:]
        var seen: [String: Int64] = [:]
        for batch in batches where previous[batch.nodeId] != nil {
            seen[batch.nodeId] = max(seen[batch.nodeId] ?? Int64.min, batch.receivedAt)
            for (s, json) in batch.rows where s.seq > (newest[batch.nodeId]?.0.seq ?? Int64.min) {
                newest[batch.nodeId] = (s, json)
            }
        }
        var updates: [StoreArguments] = []
        var touches: [StoreArguments] = []
        for (id, at) in seen.sorted(by: { $0.key < $1.key }) {
            if let (s, json) = newest[id], s.seq > ((previous[id] ?? nil) ?? Int64.min) {
                updates.append([id, at, s.phase.rawValue, s.phaseReason, s.appliedGeneration, s.applyError, json, s.pageSize])
            } else {
                touches.append([id, at])
            }
        }
        var highest: [String: Int64] = [:]
        let record: (StoreRow) throws -> Void = { row in highest[row[0] as String] = row[1] as Int64? }
        // Casts: a VALUES column of NULLs only is text.
        try db.executeValues(
            """
            UPDATE nodes SET last_seen_at = v.column2::bigint, phase = v.column3::text, phase_reason = v.column4::text,
              applied_generation = v.column5::bigint, apply_error = v.column6::text, last_sample_json = v.column7::text,
              page_size = v.column8::bigint, last_seq = (SELECT MAX(seq) FROM samples WHERE node_id = nodes.id) FROM (
            """, updates, tail: ") AS v WHERE nodes.id = v.column1 RETURNING nodes.id, nodes.last_seq", chunk: 256,
            each: record)
        try db.executeValues(
            """
            UPDATE nodes SET last_seen_at = v.column2::bigint,
              last_seq = (SELECT MAX(seq) FROM samples WHERE node_id = nodes.id) FROM (
            """, touches, tail: ") AS v WHERE nodes.id = v.column1 RETURNING nodes.id, nodes.last_seq", chunk: 512,
            each: record)
        return batches.enumerated().map { b, batch in
            guard previous[batch.nodeId] != nil else { return .failure(StoreError.nodeNotFound(batch.nodeId)) }
            return .success(
                SampleBatchAck(
                    highestSeq: highest[batch.nodeId] ?? -1, stored: stored[b], duplicates: batch.rows.count - stored[b]))
        }
    }
}

/// The statements of a sample batch. SQLite binds them with its C API (`SQLiteSampleStatements`);
/// PostgreSQL runs them through `StoreDB` (`PlainSampleStatements`), the node's update and its
/// highest seq in one statement (each statement is a round trip there).
protocol SampleStatements {
    /// nil: no live node; `.some(nil)`: a node without samples yet.
    func lastSeq(_ nodeId: String) throws -> Int64??
    /// 1 when stored, 0 for a duplicate (node, seq).
    func insert(nodeId: String, _ s: StatusSample, json: String, receivedAt: Int64) throws -> Int
    /// Stores the node's last-seen time and highest seq, and from `newest` (nil: the batch
    /// holds nothing newer than what the node sent before) its phase and applied generation.
    /// Returns the node's highest stored seq.
    func finish(_ nodeId: String, newest: (StatusSample, String)?, receivedAt: Int64) throws -> Int64?
}

enum SampleSQL {
    static let lastSeq = "SELECT last_seq FROM nodes WHERE id = ? AND deleted_at IS NULL"
    static let insertColumns = """
        node_id, seq, taken_at, received_at, phase, phase_reason, run,
          pages_to_scan, sleep_millisecs, pages_shared, pages_sharing, pages_unshared, pages_volatile,
          full_scans, stable_node_chains, stable_node_dups, ksm_zero_pages, general_profit, mem_total_kb,
          mem_available_kb, anon_pages_kb, page_size, saved_bytes, ksmd_cpu_percent, ksmd_cpu_seconds,
          applied_generation, apply_error, sample_json, ends_data
        """
    static let insert = """
        INSERT INTO samples (\(insertColumns))
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT DO NOTHING
        """
    /// The values of one `insert` row, in its column order.
    static func insertArguments(nodeId: String, _ s: StatusSample, json: String, receivedAt: Int64) -> StoreArguments {
        let st = s.status
        return [
            nodeId, s.seq, Time.ms(s.takenAt), receivedAt, s.phase.rawValue, s.phaseReason, st.run,
            st.pagesToScan, st.sleepMillisecs, st.pagesShared, st.pagesSharing, st.pagesUnshared, st.pagesVolatile,
            st.fullScans, st.stableNodeChains, st.stableNodeDups, st.ksmZeroPages, st.generalProfit,
            s.memory.memTotalKB, s.memory.memAvailableKB, s.memory.anonPagesKB, s.pageSize, s.savedBytes,
            s.ksmdCPUPercent, s.ksmdCPUSeconds, s.appliedGeneration, s.applyError, json,
            Int64(s.agentStopped == true ? 1 : 0),
        ]
    }
    /// The PostgreSQL types of `insertColumns`, in order: a VALUES list outside an INSERT's own
    /// VALUES does not take its columns' types, and a NULL there would be text.
    static let insertTypes = [
        "text", "bigint", "bigint", "bigint", "text", "text",
    ] + Array(repeating: "bigint", count: 17) + [
        "double precision", "double precision", "bigint", "text", "text", "bigint",
    ]
    /// `writeLoneSampleBatch`'s statement for a batch of `rows` rows. Arguments: the batch's
    /// newest seq and the node's id; each row's `insertArguments`; the time received, the newest
    /// sample's phase, reason, applied generation, apply error, JSON and page size; the node's id
    /// twice. Returns one row: whether the node is live (1 or 0), the rows stored, the node's
    /// highest seq.
    static let loneBatches = (1...FleetDatabase.loneStatementRows).map(loneBatch)
    static func loneBatch(rows: Int) -> String {
        precondition(insertTypes.count == 29)
        let tuple = "(" + insertTypes.map { "?::\($0)" }.joined(separator: ", ") + ")"
        // Each column of the node's state is the newest sample's when `newer`, else kept.
        let kept = [
            ("phase", "text"), ("phase_reason", "text"), ("applied_generation", "bigint"), ("apply_error", "text"),
            ("last_sample_json", "text"), ("page_size", "bigint"),
        ].map { column, type in "\(column) = CASE WHEN node.newer THEN ?::\(type) ELSE nodes.\(column) END" }
        return """
            WITH node AS (
              SELECT last_seq IS NULL OR ?::bigint > last_seq AS newer FROM nodes WHERE id = ? AND deleted_at IS NULL
            ), inserted AS (
              INSERT INTO samples (\(insertColumns))
              SELECT * FROM (VALUES \(repeatElement(tuple, count: rows).joined(separator: ", "))) AS v
              WHERE EXISTS (SELECT 1 FROM node)
              ON CONFLICT DO NOTHING RETURNING seq
            ), updated AS (
              UPDATE nodes SET last_seen_at = ?::bigint, \(kept.joined(separator: ", ")),
                last_seq = GREATEST((SELECT MAX(seq) FROM samples WHERE node_id = ?), (SELECT MAX(seq) FROM inserted))
              FROM node WHERE nodes.id = ?
              RETURNING nodes.last_seq
            )
            SELECT (SELECT count(*) FROM node), (SELECT count(*) FROM inserted), (SELECT last_seq FROM updated)
            """
    }
    static let maxSeq = "SELECT MAX(seq) FROM samples WHERE node_id = ?"
    static let updateNode = """
        UPDATE nodes SET last_seen_at = ?, phase = ?, phase_reason = ?, applied_generation = ?,
          apply_error = ?, last_seq = ?, last_sample_json = ?, page_size = ?
        WHERE id = ?
        """
    static let touchNode = "UPDATE nodes SET last_seen_at = ?, last_seq = ? WHERE id = ?"
    /// `updateNode` and `touchNode` with the highest seq found in the same statement (one round
    /// trip on PostgreSQL; the subquery sees this transaction's inserts).
    static let highest = "(SELECT MAX(seq) FROM samples WHERE node_id = ?)"
    static let updateNodeReturning = """
        UPDATE nodes SET last_seen_at = ?, phase = ?, phase_reason = ?, applied_generation = ?,
          apply_error = ?, last_seq = \(highest), last_sample_json = ?, page_size = ?
        WHERE id = ? RETURNING last_seq
        """
    static let touchNodeReturning = "UPDATE nodes SET last_seen_at = ?, last_seq = \(highest) WHERE id = ? RETURNING last_seq"
}

/// Through `StoreDB` (PostgreSQL).
struct PlainSampleStatements: SampleStatements {
    let db: StoreDB

    func lastSeq(_ nodeId: String) throws -> Int64?? {
        guard let row = try StoreRow.fetchOne(db, sql: SampleSQL.lastSeq, arguments: [nodeId]) else { return nil }
        return .some(row[0] as Int64?)
    }
    func insert(nodeId: String, _ s: StatusSample, json: String, receivedAt: Int64) throws -> Int {
        let arguments = SampleSQL.insertArguments(nodeId: nodeId, s, json: json, receivedAt: receivedAt)
        try db.execute(sql: SampleSQL.insert, arguments: arguments)
        return db.changesCount
    }
    func finish(_ nodeId: String, newest: (StatusSample, String)?, receivedAt: Int64) throws -> Int64? {
        guard let (s, json) = newest else {
            return try Int64.fetchOne(db, sql: SampleSQL.touchNodeReturning, arguments: [receivedAt, nodeId, nodeId])
        }
        return try Int64.fetchOne(
            db, sql: SampleSQL.updateNodeReturning,
            arguments: [
                receivedAt, s.phase.rawValue, s.phaseReason, s.appliedGeneration, s.applyError, nodeId, json, s.pageSize,
                nodeId,
            ])
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
    func finish(_ nodeId: String, newest: (StatusSample, String)?, receivedAt: Int64) throws -> Int64? {
        let highest = try maxSeq(nodeId)
        if let (s, json) = newest {
            try updateNode(nodeId, newest: s, json: json, highestSeq: highest, receivedAt: receivedAt)
        } else {
            try touchNode(nodeId, highestSeq: highest, receivedAt: receivedAt)
        }
        return highest
    }
    func maxSeq(_ nodeId: String) throws -> Int64? {
        var maxSeq = RawRow(try db.cachedStatement(sql: SampleSQL.maxSeq).sqliteStatement)
        maxSeq.bind(1, nodeId)
        return try maxSeq.firstInt64(db).flatMap { $0 }
    }
    func updateNode(_ nodeId: String, newest: StatusSample, json: String, highestSeq: Int64?, receivedAt: Int64) throws {
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
