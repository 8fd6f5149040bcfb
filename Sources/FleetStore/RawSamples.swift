import Foundation
import GRDB
import GRDBSQLite
import KSMCore
import PostgresNIO

extension FleetDatabase {
    /// The columns a node's figures need besides time, saving and end of data, in the order both
    /// readers take them (`RawSampleCursor`, `RawSampleSink`).
    static let rawSampleFigureColumns = ["ksmd_cpu_seconds", "ksmd_cpu_percent", "full_scans", "phase", "general_profit"]

    /// Every wanted node's raw samples with `taken_at` in [from, to) (ms), split by node, each
    /// node's in time order (`sampleOrder`; the `taken_at` index: a range, not a scan of every
    /// node's samples). `full`: with the CPU, scan, phase and profit columns a node's figures
    /// need; otherwise only what peaks need (time, saving, end of data).
    ///
    /// The edge hours of a 24-hour report over 1,000 nodes are about 100,000 rows, and the cost
    /// per row of each engine's general row path was most of such a report (docs/benchmarks.md):
    /// - SQLite: the rows are read straight off the statement (`RawSampleCursor`), no row object;
    /// - PostgreSQL: one row per node, its samples' columns as arrays (`RawSampleSink`), since
    ///   postgres-nio makes a row and a cell per column for every row it reads;
    /// - both: whole hours from their packs (`RawHourPack`, one row an hour) where they are
    ///   current, when `packs` (the reports' fast path; not the reference reports, nor the rollup
    ///   service making them).
    static func rawSamples(
        _ db: StoreDB, from: Int64, to: Int64, full: Bool, packs: Bool, wanted: @escaping (String) -> Bool
    ) throws -> SamplesByNode {
        var byNode = SamplesByNode()
        // Whole hours in one blob each where their pack is current (`hourPacks`), the rows of the
        // rest; in time order, so each node's list stays in it.
        var rawFrom = from
        if packs {
            for (hour, data) in try hourPacks(db, from: from, to: to) {
                let hourMs = hour * 1000
                let (segmentFrom, segmentTo) = (max(from, hourMs), min(to, hourMs + 3_600_000))
                if rawFrom < segmentFrom {
                    try rawRows(db, from: rawFrom, to: segmentFrom, full: full, wanted: wanted, into: &byNode)
                }
                try data.withUnsafeBytes {
                    try RawHourPack.decode(
                        $0, hourMs: hourMs, fromMs: segmentFrom, toMs: segmentTo, full: full, wanted: wanted, into: &byNode)
                }
                rawFrom = segmentTo
            }
        }
        if rawFrom < to { try rawRows(db, from: rawFrom, to: to, full: full, wanted: wanted, into: &byNode) }
        return byNode
    }

    /// The current packs (`RawHourPack`) of the hours that [from, to) (ms) reaches, by hour
    /// (unix seconds), in time order. A pack is current while its hour's `peak_version` is the
    /// one it was made from and the hour is not dirty: every change of the hour's rows (a
    /// rollup pass that rewrote one of its node rows, a deletion, a purge) makes it dirty and
    /// then gives it a new version. Not from the first hour a sample not rolled up yet reaches
    /// (stored after the report's catch-up, or through another replica): the pack was made
    /// without it. Retention deletes the packs of the hours it cut into; a pack of such an hour
    /// stored anyway (made on a snapshot from before the cut, stored after it: retention does not
    /// change the version) is not used either, by the cut recorded with the deletion.
    ///
    /// Only hours of which the range holds at least `packMinimumMs` of its engine.
    static func hourPacks(_ db: StoreDB, from: Int64, to: Int64) throws -> [(Int64, Data)] {
        guard from < to else { return [] }
        let hourMs: Int64 = 3_600_000
        var first = Int64(ReportTime.hourStart(Double(from) / 1000)) * 1000
        if min(first + hourMs, to) - from < packMinimumMs(db.engine) { first += hourMs }
        var last = Int64(ReportTime.hourStart(Double(to - 1) / 1000)) * 1000
        if to - max(last, from) < packMinimumMs(db.engine) { last -= hourMs }
        let (lo, hi) = (first / 1000, last / 1000 + 3600)
        guard lo < hi else { return [] }
        let packs: [(Int64, Data)] = try StoreRow.fetchAll(
            db,
            sql: """
                SELECT p.bucket_start, p.data FROM raw_hour_pack p
                JOIN rollup_fleet_hour f ON f.bucket_start = p.bucket_start AND f.peak_version = p.peak_version
                WHERE p.bucket_start >= ? AND p.bucket_start < ?
                  AND NOT EXISTS (SELECT 1 FROM rollup_fleet_dirty d WHERE d.bucket_start = p.bucket_start)
                  AND p.bucket_start * 1000 >= COALESCE((SELECT value FROM rollup_state WHERE key = ?), 0)
                ORDER BY p.bucket_start
                """, arguments: [lo, hi, samplesCutKey]
        ).map { r in (r[0], r[1]) }
        // Asked only when there are packs (each query is a round trip on PostgreSQL; edges with
        // none, such as the hour under way, are the common case).
        guard !packs.isEmpty, let t = try firstUnrolledSample(db) else { return packs }
        let reached = Int64(ReportTime.hourStart(t))
        return packs.filter { $0.0 < reached }
    }

    /// The least part of an hour read from its pack rather than its rows (`hourPacks`). A pack is
    /// decoded whole.
    /// - PostgreSQL: 10 minutes. A pack costs about a twentieth of its samples' rows per sample,
    ///   but it is sent whole; in an A/B, reports over 7 days whose only pack was reached by a
    ///   5-minute margin were 6-20 ms slower with it read.
    /// - SQLite: any part. A row read through the `taken_at` index cost about 40 times a sample
    ///   decoded from a pack, so even the sweep's 5-minute margins (12,000 rows for 1,000 nodes)
    ///   cost more as rows than the whole hour's pack (docs/benchmarks.md).
    static func packMinimumMs(_ engine: StoreEngine) -> Int64 { engine == .postgres ? 10 * 60_000 : 0 }

    /// `rawSamples` from the rows of `samples`, added to `byNode`.
    static func rawRows(
        _ db: StoreDB, from: Int64, to: Int64, full: Bool, wanted: @escaping (String) -> Bool, into byNode: inout SamplesByNode
    ) throws {
        if let session = db.postgres {
            // Grouping an hour of 1,000 nodes' samples by node takes a 29 MB hash: the callers'
            // transactions set `reportWorkMemory` (a report, the peak pass).
            // The arrays of one group are filled from the same rows in the same order (aligned);
            // each node's samples are put in time order by the sink.
            let columns = ["taken_at", "seq", "saved_bytes", "ends_data"] + (full ? rawSampleFigureColumns : [])
            let sql = """
                SELECT node_id, \(columns.map { "array_agg(\($0))" }.joined(separator: ", ")) FROM samples
                WHERE taken_at >= ? AND taken_at < ? GROUP BY node_id
                """
            let sink = RawSampleSink(full: full, wanted: wanted, byNode: byNode)
            try session.each(sql, [from, to]) { row in try sink.add(row) }
            byNode = sink.byNode
            return
        }
        let sql = """
            SELECT node_id, taken_at, saved_bytes, ends_data\(full ? ", " + rawSampleFigureColumns.joined(separator: ", ") : "") FROM samples
            \(db.indexedBy("samples_taken_at")) WHERE taken_at >= ? AND taken_at < ? ORDER BY \(db.sampleOrder)
            """
        let cursor = try RawSampleCursor(
            try db.reusableStatement(db.sqlite!, sql: sql), arguments: [from, to], full: full, wanted: wanted, byNode: byNode)
        try cursor.forEach { slot, sample in
            if let slot { cursor.byNode.lists[slot].append(sample) }
        }
        byNode = cursor.byNode
    }
}

/// Raw sample rows (`FleetDatabase.rawSamples`) read with `sqlite3_column_*` from the statement
/// GRDB steps: the slot of the row's node in `byNode` (looked up by the id's bytes; nil: a node
/// not wanted, whose other columns are not read) and a `ReportSample` per row, no row object.
final class RawSampleCursor: DatabaseCursor {
    typealias Element = (Int?, ReportSample)
    let _statement: Statement
    var _isDone = false
    let full: Bool
    let wanted: (String) -> Bool
    var byNode: SamplesByNode

    init(
        _ statement: Statement, arguments: StatementArguments, full: Bool, wanted: @escaping (String) -> Bool,
        byNode: SamplesByNode
    ) throws {
        _statement = statement
        self.byNode = byNode
        self.full = full
        self.wanted = wanted
        try statement.setArguments(arguments)
    }

    func _element(sqliteStatement s: SQLiteStatement) -> (Int?, ReportSample) {
        guard let slot = byNode.slot(utf8: sqlite3_column_text(s, 0), count: Int(sqlite3_column_bytes(s, 0)), if: wanted) else {
            return (nil, ReportSample(at: 0, savedBytes: 0))
        }
        func int(_ i: Int32) -> Int64? { sqlite3_column_type(s, i) == SQLITE_NULL ? nil : sqlite3_column_int64(s, i) }
        func double(_ i: Int32) -> Double? {
            sqlite3_column_type(s, i) == SQLITE_NULL ? nil : sqlite3_column_double(s, i)
        }
        func text(_ i: Int32) -> String {
            guard let p = sqlite3_column_text(s, i) else { return "" }
            return String(decoding: UnsafeBufferPointer(start: p, count: Int(sqlite3_column_bytes(s, i))), as: UTF8.self)
        }
        var sample = ReportSample(
            at: Double(sqlite3_column_int64(s, 1)) / 1000, savedBytes: sqlite3_column_int64(s, 2),
            endsData: (int(3) ?? 0) != 0)
        if full {
            sample.cpuSeconds = double(4)
            sample.cpuPercent = double(5)
            sample.fullScans = int(6) ?? 0
            sample.phase = KSMPhase(rawValue: text(7)) ?? .stopped
            sample.netProfit = int(8)
        }
        return (slot, sample)
    }
}

/// Raw sample rows (`FleetDatabase.rawSamples`) from PostgreSQL, a node's columns as arrays.
/// Used from postgres-nio's event loop while the reading thread waits for the statement's end.
private final class RawSampleSink: @unchecked Sendable {
    var byNode: SamplesByNode
    let full: Bool
    let wanted: (String) -> Bool

    init(full: Bool, wanted: @escaping (String) -> Bool, byNode: SamplesByNode) {
        self.byNode = byNode
        self.full = full
        self.wanted = wanted
    }

    func add(_ row: PostgresRow) throws {
        var cells = row.makeIterator()
        func next() throws -> PostgresCell {
            guard let cell = cells.next() else { throw PostgresArray.Malformed(what: "a row with fewer columns than read") }
            return cell
        }
        let idCell = try next()
        guard let slot = byNode.slot(try idCell.decode(String.self), if: wanted) else { return }
        let at = try PostgresArray.ints(try next())
        let seq = try PostgresArray.ints(try next())
        let saved = try PostgresArray.ints(try next())
        let ends = try PostgresArray.ints(try next())
        let n = at.count
        guard seq.count == n, saved.count == n, ends.count == n else { throw PostgresArray.Malformed(what: "arrays of unequal length") }
        var samples: [ReportSample] = []
        samples.reserveCapacity(n)
        for i in 0..<n {
            samples.append(ReportSample(at: Double(at[i] ?? 0) / 1000, savedBytes: saved[i] ?? 0, endsData: (ends[i] ?? 0) != 0))
        }
        if full {
            let cpuSeconds = try PostgresArray.doubles(try next())
            let cpuPercent = try PostgresArray.doubles(try next())
            let scans = try PostgresArray.ints(try next())
            let phases = try PostgresArray.texts(try next())
            let profit = try PostgresArray.ints(try next())
            guard cpuSeconds.count == n, cpuPercent.count == n, scans.count == n, phases.count == n, profit.count == n else {
                throw PostgresArray.Malformed(what: "arrays of unequal length")
            }
            for i in 0..<n {
                samples[i].cpuSeconds = cpuSeconds[i]
                samples[i].cpuPercent = cpuPercent[i]
                samples[i].fullScans = scans[i] ?? 0
                samples[i].phase = KSMPhase(rawValue: phases[i] ?? "") ?? .stopped
                samples[i].netProfit = profit[i]
            }
        }
        // Time order, as `sampleOrder` (taken_at, then seq); the arrays often come in it already.
        func before(_ a: Int, _ b: Int) -> Bool {
            let (x, y) = (at[a] ?? 0, at[b] ?? 0)
            return x != y ? x < y : (seq[a] ?? 0) < (seq[b] ?? 0)
        }
        if n < 2 || (1..<n).allSatisfy({ !before($0, $0 - 1) }) {
            byNode.lists[slot].append(contentsOf: samples)
        } else {
            byNode.lists[slot].append(contentsOf: (0..<n).sorted(by: before).map { samples[$0] })
        }
    }
}

/// One-dimensional PostgreSQL arrays in the binary format postgres-nio receives results in:
/// ndim, has-nulls flag, element type, then per dimension its length and lower bound, then
/// per element its length (-1: NULL) and bytes.
enum PostgresArray {
    struct Malformed: Error, CustomStringConvertible {
        var what: String
        var description: String { "PostgreSQL array: \(what)" }
    }

    /// Reads the header; returns the element count, `bytes` then at the first element.
    static func header(_ cell: PostgresCell, _ type: PostgresDataType, _ name: String, _ bytes: inout ByteBuffer) throws -> Int {
        guard cell.dataType == type else { throw Malformed(what: "\(cell.columnName) is \(cell.dataType), not \(name)") }
        guard cell.format == .binary else { throw Malformed(what: "\(cell.columnName) not in binary format") }
        guard let ndim = bytes.readInteger(as: Int32.self), bytes.readInteger(as: Int32.self) != nil,
            bytes.readInteger(as: UInt32.self) != nil
        else { throw Malformed(what: "a short header") }
        if ndim == 0 { return 0 }
        guard ndim == 1, let count = bytes.readInteger(as: Int32.self), bytes.readInteger(as: Int32.self) != nil, count >= 0 else {
            throw Malformed(what: "\(ndim) dimensions")
        }
        return Int(count)
    }

    /// The elements, each read by `read` from the bytes after its length (no slice per element);
    /// nil for NULL.
    static func elements<T>(
        _ cell: PostgresCell, _ type: PostgresDataType, _ name: String,
        _ read: (inout ByteBuffer, Int32) throws -> T
    ) throws -> [T?] {
        guard var b = cell.bytes else { return [] }
        let count = try header(cell, type, name, &b)
        var out: [T?] = []
        out.reserveCapacity(count)
        for _ in 0..<count {
            guard let length = b.readInteger(as: Int32.self) else { throw Malformed(what: "a short element") }
            out.append(length < 0 ? nil : try read(&b, length))
        }
        return out
    }

    /// The elements of an array of 8-byte values, each given to `make`.
    static func fixed8<T>(
        _ cell: PostgresCell, _ type: PostgresDataType, _ name: String, _ make: (UInt64) -> T
    ) throws -> [T?] {
        try elements(cell, type, name) { b, length in
            guard length == 8, let v = b.readInteger(as: UInt64.self) else { throw Malformed(what: "a \(name) element of \(length) bytes") }
            return make(v)
        }
    }

    /// BIGINT[] (8-byte big-endian elements).
    static func ints(_ cell: PostgresCell) throws -> [Int64?] {
        try fixed8(cell, .int8Array, "bigint[]") { Int64(bitPattern: $0) }
    }

    /// DOUBLE PRECISION[] (8-byte big-endian IEEE 754 elements).
    static func doubles(_ cell: PostgresCell) throws -> [Double?] {
        try fixed8(cell, .float8Array, "double precision[]") { Double(bitPattern: $0) }
    }

    /// TEXT[] (UTF-8 elements).
    static func texts(_ cell: PostgresCell) throws -> [String?] {
        try elements(cell, .textArray, "text[]") { b, length in
            guard let text = b.readString(length: Int(length)) else { throw Malformed(what: "a short element") }
            return text
        }
    }
}
