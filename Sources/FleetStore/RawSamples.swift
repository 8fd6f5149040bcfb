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
    /// - both: whole hours, and slices of the hour under way, from their packs (`RawHourPack`,
    ///   one row an hour or ten minutes) where they are current (`packPieces`), when `packs` (the
    ///   reports' fast path; not the reference reports, nor the rollup service making them).
    static func rawSamples(
        _ db: StoreDB, from: Int64, to: Int64, full: Bool, packs: Bool, wanted: @escaping (String) -> Bool
    ) throws -> SamplesByNode {
        var byNode = SamplesByNode()
        // The parts read from packs, the rows of the rest; in time order, so each node's list
        // stays in it.
        var rawFrom = from
        if packs {
            for piece in try packPieces(db, from: from, to: to) {
                if rawFrom < piece.from {
                    try rawRows(db, from: rawFrom, to: piece.from, full: full, wanted: wanted, into: &byNode)
                }
                try piece.data.withUnsafeBytes {
                    try RawHourPack.decode(
                        $0, hourMs: piece.baseMs, fromMs: piece.from, toMs: piece.to, full: full, wanted: wanted, into: &byNode)
                }
                rawFrom = piece.to
            }
        }
        if rawFrom < to { try rawRows(db, from: rawFrom, to: to, full: full, wanted: wanted, into: &byNode) }
        return byNode
    }

    /// A pack read for part of a range: its samples taken in [from, to) (ms); `baseMs`, the start
    /// of the pack's hour or slice.
    struct PackPiece {
        var baseMs: Int64
        var from: Int64
        var to: Int64
        var data: Data
    }

    /// The parts of [from, to) (ms) to read from packs, in time order, each from one pack:
    /// - **Hours** (`raw_hour_pack`): current while the hour's `peak_version` is the one the pack
    ///   was made from and the hour is not dirty. Every change of the hour's rows (a rollup pass
    ///   that rewrote one of its node rows, a deletion, a purge) makes it dirty and then gives it
    ///   a new version.
    /// - **Slices** of ten minutes (`raw_slice_pack`, `slicePackPass`), for the hour under way
    ///   and hours not packed yet: current while the slice's version is the one its pack was made
    ///   at. Every rollup pass that rolls up a sample taken in the slice, and a purge, moves it.
    /// - **Both**: not from the first hour or slice a sample not rolled up yet reaches (stored
    ///   after the report's catch-up, or through another replica): the pack was made without it.
    ///   Retention deletes the packs it cut into; one of them stored anyway (made on a snapshot
    ///   from before the cut, stored after it: retention does not change versions) is not used
    ///   either, by the cut recorded with the deletion.
    /// - Only packs of which the range holds at least `packMinimumMs` of its engine. Where a
    ///   slice and its hour both could serve, the slices are read while they cover the rest of
    ///   the hour in the range; otherwise the hour, decoded once.
    static func packPieces(_ db: StoreDB, from: Int64, to: Int64) throws -> [PackPiece] {
        guard from < to else { return [] }
        // The starts (unix seconds) of the packs of `length` ms that the range holds enough of.
        func reach(_ length: Int64) -> (Int64, Int64) {
            let minimum = packMinimumMs(db.engine, of: length)
            var first = from / length * length
            if min(first + length, to) - from < minimum { first += length }
            var last = (to - 1) / length * length
            if to - max(last, from) < minimum { last -= length }
            return (first / 1000, last / 1000 + 1)
        }
        let (hourLo, hourHi) = reach(3_600_000)
        let (sliceLo, sliceHi) = reach(sliceSeconds * 1000)
        guard hourLo < hourHi || sliceLo < sliceHi else { return [] }
        let cut = "COALESCE((SELECT value FROM rollup_state WHERE key = ?), 0)"
        let found: [(start: Int64, end: Int64, data: Data)] = try StoreRow.fetchAll(
            db,
            sql: """
                SELECT p.bucket_start, p.bucket_start + 3600, p.data FROM raw_hour_pack p
                JOIN rollup_fleet_hour f ON f.bucket_start = p.bucket_start AND f.peak_version = p.peak_version
                WHERE p.bucket_start >= ? AND p.bucket_start < ?
                  AND NOT EXISTS (SELECT 1 FROM rollup_fleet_dirty d WHERE d.bucket_start = p.bucket_start)
                  AND p.bucket_start * 1000 >= \(cut)
                UNION ALL
                SELECT s.slice_start, s.slice_start + \(sliceSeconds), s.data FROM raw_slice_pack s
                WHERE s.slice_start >= ? AND s.slice_start < ? AND s.pack_version = s.version
                  AND s.slice_start * 1000 >= \(cut)
                """, arguments: [hourLo, hourHi, samplesCutKey, sliceLo, sliceHi, samplesCutKey]
        ).map { r in ((r[0] as Int64) * 1000, (r[1] as Int64) * 1000, r[2]) }
        // Asked only when there are packs (each query is a round trip on PostgreSQL; edges with
        // none are the common case on PostgreSQL).
        guard !found.isEmpty else { return [] }
        let unrolled = try firstUnrolledSampleMs(db) ?? .max
        let packs = found.filter { $0.end <= unrolled }
        let hourMs: Int64 = 3_600_000
        var pieces: [PackPiece] = []
        var p = from
        while p < to {
            let covering = packs.filter { $0.start <= p && p < $0.end }
            let hour = covering.first { $0.end - $0.start == hourMs }
            // The slices from p on, one after the other, up to q, within p's hour.
            var sliceRun: [(start: Int64, end: Int64, data: Data)] = []
            var q = p
            while q < to, let s = packs.first(where: { $0.end - $0.start < hourMs && $0.start <= q && q < $0.end }) {
                sliceRun.append(s)
                q = s.end
                if q % hourMs == 0 { break }
            }
            if let hour, q < min(to, hour.end) {
                pieces.append(PackPiece(baseMs: hour.start, from: p, to: min(to, hour.end), data: hour.data))
                p = min(to, hour.end)
            } else if !sliceRun.isEmpty {
                for s in sliceRun where p < to {
                    pieces.append(PackPiece(baseMs: s.start, from: p, to: min(to, s.end), data: s.data))
                    p = min(to, s.end)
                }
            } else {
                // Rows up to the next pack, if any.
                guard let next = packs.map(\.start).filter({ $0 > p }).min(), next < to else { break }
                p = next
            }
        }
        return pieces
    }

    /// The least part of a pack `length` ms long read from it rather than its rows (`packPieces`).
    /// A pack is decoded whole.
    /// - PostgreSQL: a sixth (10 minutes of an hour). A pack costs about a twentieth of its
    ///   samples' rows per sample, but it is sent whole; in an A/B, reports over 7 days whose only
    ///   pack was reached by a 5-minute margin were 6-20 ms slower with it read.
    /// - SQLite: any part. A row read through the `taken_at` index cost about 40 times a sample
    ///   decoded from a pack, so even the sweep's 5-minute margins (12,000 rows for 1,000 nodes)
    ///   cost more as rows than the whole hour's pack (docs/benchmarks.md).
    static func packMinimumMs(_ engine: StoreEngine, of length: Int64) -> Int64 { engine == .postgres ? length / 6 : 0 }

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

/// PostgreSQL arrays of one or two dimensions (a two-dimensional one read row after row) in the
/// binary format postgres-nio receives results in: ndim, has-nulls flag, element type, then per
/// dimension its length and lower bound, then per element its length (-1: NULL) and bytes.
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
        guard ndim == 1 || ndim == 2 else { throw Malformed(what: "\(ndim) dimensions") }
        // A two-dimensional array (`array_agg` of arrays) is read row after row, as one list.
        var count = 1
        for _ in 0..<ndim {
            guard let length = bytes.readInteger(as: Int32.self), bytes.readInteger(as: Int32.self) != nil, length >= 0 else {
                throw Malformed(what: "a short header")
            }
            count *= Int(length)
        }
        return count
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
