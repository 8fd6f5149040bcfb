import Foundation
import GRDB
import GRDBSQLite
import KSMCore
import PostgresNIO

/// One node's rollup row as a report reads it.
struct RollupRow {
    var nodeId: String
    var start: Int64
    var stats: BucketStats
    var gaps: String?
}

extension FleetDatabase {
    /// The rollup rows of `table` with `bucket_start` in [from, to), every node's in bucket order,
    /// nodes in the bytes order of their ids, on SQLite: the `nodes` table walked by its key and
    /// each node's rows found by the rollup table's primary key (`CROSS JOIN`: no sort, and no
    /// skip-scan of every node's other rows), read off the statement (`RollupRowCursor`).
    ///
    /// A year's report reads about 52,000 such rows over 1,000 nodes (the days and hours at the
    /// edges of its whole months): SQLite's own `SUM`s over them cost about 1 µs a row, and
    /// sorting the month rows that its `bucket_start` index found cost as much as reading them
    /// (docs/benchmarks.md).
    static func sqliteRollupRows(_ db: StoreDB, table: String, from: Int64, to: Int64) throws -> RollupRowCursor {
        let sql = """
            SELECT n.id, m.bucket_start, m.data_seconds, m.samples, m.saved_byte_seconds, m.saved_peak, m.cpu_seconds,
              m.cpu_pct_peak, m.full_scans, m.running_seconds, m.stopped_seconds, m.pruned_seconds, m.unmanaged_seconds,
              m.profit_byte_seconds, m.profit_seconds, m.gaps
            FROM nodes n CROSS JOIN \(table) m ON m.node_id = n.id
            WHERE m.bucket_start >= ? AND m.bucket_start < ? ORDER BY n.id, m.bucket_start
            """
        return try RollupRowCursor(try db.reusableStatement(db.sqlite!, sql: sql), arguments: [from, to])
    }

    /// Adds one node's rows of one rollup source (in bucket order) to its accumulator, as the
    /// SQL of `accumulate` does on PostgreSQL: the figures summed over the rows in bucket order
    /// (as `SUM` adds them) and then merged; covered time is [first, last + length) clipped to
    /// `range`, less the buckets missing in between and the rows' recorded gaps.
    struct NodeRollupFold {
        var stats = BucketStats()
        var first: Int64 = 0
        var last: Int64 = 0
        var missing: [Interval] = []
        var gaps: [Interval] = []

        init(_ row: RollupRow) {
            first = row.start
            last = row.start
            stats.merge(row.stats)
            if let g = row.gaps { gaps.append(contentsOf: FleetDatabase.decodeGaps(g)) }
        }

        mutating func add(_ row: RollupRow, length: Int64) {
            if row.start - last > length { missing.append(Interval(Double(last + length), Double(row.start))) }
            last = row.start
            stats.merge(row.stats)
            if let g = row.gaps { gaps.append(contentsOf: FleetDatabase.decodeGaps(g)) }
        }

        func finish(into acc: inout NodeAccumulator, range: Interval, length: Int64) {
            acc.stats.merge(stats)
            let clipped = Interval(max(Double(first), range.from), min(Double(last + length), range.to))
            acc.covered.append(contentsOf: ReportMath.complement(of: missing + gaps, within: clipped))
        }
    }

    /// The rollup rows of `table` with `bucket_start` in [from, to), every node's in bucket order,
    /// nodes in the bytes order of their ids, on either engine: SQLite's off the statement
    /// (`sqliteRollupRows`), PostgreSQL's as arrays per node put in that order
    /// (`postgresRollupRows`).
    static func rollupRows(_ db: StoreDB, table: String, from: Int64, to: Int64) throws -> RollupRowSource {
        if let session = db.postgres {
            return RollupRowSource(nodes: try postgresRollupRows(session, table: table, from: from, to: to))
        }
        return RollupRowSource(cursor: try sqliteRollupRows(db, table: table, from: from, to: to))
    }

    /// `accumulate`'s sums, holes and gaps from the rows themselves (`rollupRows`,
    /// `NodeRollupFold`), the same fold on both engines. With `groups` (node id → group key),
    /// also each group's series over the buckets (bucket start → the sum of its nodes'
    /// `saved_byte_seconds` over the bucket's length, the nodes added in id order as the rows
    /// come).
    static func accumulateRows(
        _ db: StoreDB, level: RollupLevel, range: Interval, into acc: inout [String: NodeAccumulator],
        groups: [String: String]? = nil, series: inout [String: [Double: Double]]
    ) throws {
        let length = Int64(level.seconds)
        let rows = try rollupRows(db, table: level.table, from: Int64(range.from), to: Int64(range.to))
        var current: (id: String, group: String?, fold: NodeRollupFold)?
        var sums: [String: [Int64: Double]] = [:]
        func finish() {
            if let (id, _, fold) = current { fold.finish(into: &acc[id]!, range: range, length: length) }
        }
        while let row = try rows.next() {
            if let c = current, c.id == row.nodeId {
                current!.fold.add(row, length: length)
            } else {
                finish()
                current = acc[row.nodeId] == nil ? nil : (row.nodeId, groups?[row.nodeId], NodeRollupFold(row))
            }
            if let g = current?.group { sums[g, default: [:]][row.start, default: 0] += row.stats.savedByteSeconds }
        }
        finish()
        for (g, buckets) in sums {
            for (b, sum) in buckets { series[g, default: [:]][Double(b)] = sum / level.seconds }
        }
    }
}

/// Rollup rows in node and bucket order (`FleetDatabase.rollupRows`): off SQLite's statement,
/// or from PostgreSQL's rows of each node.
final class RollupRowSource {
    private let cursor: RollupRowCursor?
    private let nodes: [[RollupRow]]
    private var node = 0
    private var row = 0

    init(cursor: RollupRowCursor) {
        self.cursor = cursor
        nodes = []
    }

    init(nodes: [[RollupRow]]) {
        cursor = nil
        self.nodes = nodes
    }

    func next() throws -> RollupRow? {
        if let cursor { return try cursor.next() }
        while node < nodes.count {
            if row < nodes[node].count {
                row += 1
                return nodes[node][row - 1]
            }
            node += 1
            row = 0
        }
        return nil
    }
}

/// Rollup rows (`FleetDatabase.sqliteRollupRows`) read with `sqlite3_column_*` from the
/// statement GRDB steps, no row object: the node id is made a String once per node (rows come
/// node by node), the figures straight into `BucketStats`.
final class RollupRowCursor: DatabaseCursor {
    typealias Element = RollupRow
    let _statement: Statement
    var _isDone = false
    private var idBytes: [UInt8] = []
    private var id = ""

    init(_ statement: Statement, arguments: StatementArguments) throws {
        _statement = statement
        try statement.setArguments(arguments)
    }

    func _element(sqliteStatement s: SQLiteStatement) -> RollupRow {
        let count = Int(sqlite3_column_bytes(s, 0))
        if let p = sqlite3_column_text(s, 0) {
            let bytes = UnsafeBufferPointer(start: p, count: count)
            if !bytes.elementsEqual(idBytes) {
                idBytes = Array(bytes)
                id = String(decoding: bytes, as: UTF8.self)
            }
        }
        let start = sqlite3_column_int64(s, 1)
        func null(_ i: Int32) -> Bool { sqlite3_column_type(s, i) == SQLITE_NULL }
        let stats = BucketStats(
            dataSeconds: sqlite3_column_double(s, 2), samples: Int(sqlite3_column_int64(s, 3)),
            savedByteSeconds: sqlite3_column_double(s, 4), peakSavedBytes: null(5) ? nil : sqlite3_column_int64(s, 5),
            cpuSeconds: sqlite3_column_double(s, 6), peakCPUPercent: null(7) ? nil : sqlite3_column_double(s, 7),
            fullScans: sqlite3_column_int64(s, 8), runningSeconds: sqlite3_column_double(s, 9),
            stoppedSeconds: sqlite3_column_double(s, 10), prunedSeconds: sqlite3_column_double(s, 11),
            unmanagedSeconds: sqlite3_column_double(s, 12), profitByteSeconds: sqlite3_column_double(s, 13),
            profitSeconds: sqlite3_column_double(s, 14))
        var gaps: String?
        if !null(15), let p = sqlite3_column_text(s, 15) {
            gaps = String(decoding: UnsafeBufferPointer(start: p, count: Int(sqlite3_column_bytes(s, 15))), as: UTF8.self)
        }
        return RollupRow(nodeId: id, start: start, stats: stats, gaps: gaps)
    }
}

extension FleetDatabase {
    /// The rollup rows of `table` with `bucket_start` in [from, to) on PostgreSQL, every node's
    /// in bucket order, nodes in the bytes order of their ids (as `sqliteRollupRows` hands them
    /// over on SQLite). PostgreSQL sends one row per node: its buckets' integer columns as one
    /// two-dimensional array, their double columns as another, their gaps as a third
    /// (`RollupRowArrays`). A year's report reads about 11,000 month rows and 50,000 hour and day
    /// rows: postgres-nio's cell per value (16 per row) cost more than the report's own work on
    /// them, and an array per column more of PostgreSQL's time than the rows
    /// (docs/benchmarks.md).
    static func postgresRollupRows(_ session: PostgresSession, table: String, from: Int64, to: Int64) throws
        -> [[RollupRow]]
    {
        let sink = RollupRowArrays()
        try session.each(
            """
            SELECT node_id, array_agg(ARRAY[\(RollupRowArrays.ints.joined(separator: ", "))]),
              array_agg(ARRAY[\(RollupRowArrays.doubles.joined(separator: ", "))]), array_agg(gaps)
            FROM \(table) WHERE bucket_start >= ? AND bucket_start < ? GROUP BY node_id
            """, [from, to]
        ) { row in try sink.add(row) }
        return sink.rows()
    }
}

/// Rollup rows from PostgreSQL (`FleetDatabase.postgresRollupRows`): per node, its buckets'
/// integer columns (`ints`, one row of the two-dimensional array a bucket) and double columns
/// (`doubles`),
/// and their gaps, filled from the same rows in the same order (one aggregate pass), read from
/// their binary form (`PostgresArray`); the node's rows are then put in bucket order, the nodes
/// in the bytes order of their ids. Used from postgres-nio's event loop while the reading thread waits
/// for the statement's end.
final class RollupRowArrays: @unchecked Sendable {
    static let ints = ["bucket_start", "samples", "saved_peak", "full_scans"]
    static let doubles = [
        "data_seconds", "saved_byte_seconds", "cpu_seconds", "cpu_pct_peak", "running_seconds", "stopped_seconds",
        "pruned_seconds", "unmanaged_seconds", "profit_byte_seconds", "profit_seconds",
    ]
    private var nodes: [(id: String, rows: [RollupRow])] = []

    func add(_ row: PostgresRow) throws {
        var cells = row.makeIterator()
        func next() throws -> PostgresCell {
            guard let cell = cells.next() else { throw PostgresArray.Malformed(what: "a row with fewer columns than read") }
            return cell
        }
        let id = try next().decode(String.self)
        let ints = try PostgresArray.ints(try next())
        let doubles = try PostgresArray.doubles(try next())
        let gaps = try PostgresArray.texts(try next())
        let n = gaps.count
        guard ints.count == n * Self.ints.count, doubles.count == n * Self.doubles.count else {
            throw PostgresArray.Malformed(what: "arrays of unequal length")
        }
        var rows: [RollupRow] = []
        rows.reserveCapacity(n)
        for i in 0..<n {
            let a = i * Self.ints.count
            let d = i * Self.doubles.count
            func double(_ k: Int) -> Double { doubles[d + k] ?? 0 }
            let stats = BucketStats(
                dataSeconds: double(0), samples: Int(ints[a + 1] ?? 0), savedByteSeconds: double(1),
                peakSavedBytes: ints[a + 2], cpuSeconds: double(2), peakCPUPercent: doubles[d + 3],
                fullScans: ints[a + 3] ?? 0, runningSeconds: double(4), stoppedSeconds: double(5),
                prunedSeconds: double(6), unmanagedSeconds: double(7), profitByteSeconds: double(8),
                profitSeconds: double(9))
            rows.append(RollupRow(nodeId: id, start: ints[a] ?? 0, stats: stats, gaps: gaps[i]))
        }
        // A node has one row per bucket: the starts are distinct.
        if !zip(rows, rows.dropFirst()).allSatisfy({ $0.start < $1.start }) { rows.sort { $0.start < $1.start } }
        nodes.append((id, rows))
    }

    /// Each node's rows, nodes in the bytes order of their ids.
    func rows() -> [[RollupRow]] {
        nodes.sorted { $0.id.utf8.lexicographicallyPrecedes($1.id.utf8) }.map(\.rows)
    }
}
