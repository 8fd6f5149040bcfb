import Foundation
import GRDB
import GRDBSQLite
import KSMCore
import PostgresNIO

extension FleetDatabase {
    /// Every wanted node's raw samples with `taken_at` in [from, to) (ms), split by node, each
    /// node's in time order (`sampleOrder`; the `taken_at` index: a range, not a scan of every
    /// node's samples). `full`: with the CPU, scan, phase and profit columns a node's figures
    /// need; otherwise only what peaks need (time, saving, end of data).
    ///
    /// On SQLite the rows are read straight off the statement (`RawSampleCursor`): the edge hours
    /// of a 24-hour report over 1,000 nodes are about 100,000 rows, and through row objects the
    /// retains and releases per column cost more than SQLite's own read (docs/benchmarks.md).
    static func rawSamples(
        _ db: StoreDB, from: Int64, to: Int64, full: Bool, wanted: @escaping (String) -> Bool
    ) throws -> SamplesByNode {
        let columns = "node_id, taken_at, saved_bytes, ends_data" + (full ? RawSampleCursor.figureColumns : "")
        let sql = """
            SELECT \(columns) FROM samples \(db.indexedBy("samples_taken_at"))
            WHERE taken_at >= ? AND taken_at < ? ORDER BY \(db.sampleOrder)
            """
        var byNode = SamplesByNode()
        if let sqlite = db.sqlite {
            let cursor = try RawSampleCursor(try sqlite.cachedStatement(sql: sql), arguments: [from, to], full: full)
            try cursor.forEach { id, sample in
                if let i = byNode.slot(id, if: wanted) { byNode.lists[i].append(sample) }
            }
            return byNode
        }
        guard let session = db.postgres else { fatalError("rawSamples: an engine that is neither SQLite nor PostgreSQL") }
        // On PostgreSQL each row is decoded as postgres-nio reads it, by position into the sample
        // (not through an engine-neutral row: a value array and two strings per row).
        let sink = RawSampleSink(full: full, wanted: wanted)
        try session.each(sql, [from, to]) { row in try sink.add(row) }
        byNode = sink.byNode
        return byNode
    }
}

/// Raw sample rows (`FleetDatabase.rawSamples`) read with `sqlite3_column_*` from the statement
/// GRDB steps: a node id and a `ReportSample` per row, no row object.
final class RawSampleCursor: DatabaseCursor {
    typealias Element = (String, ReportSample)
    /// After `node_id, taken_at, saved_bytes, ends_data`, for `full`.
    static let figureColumns = ", ksmd_cpu_seconds, ksmd_cpu_percent, full_scans, phase, general_profit"
    let _statement: Statement
    var _isDone = false
    let full: Bool

    init(_ statement: Statement, arguments: StatementArguments, full: Bool) throws {
        _statement = statement
        self.full = full
        try statement.setArguments(arguments)
    }

    func _element(sqliteStatement s: SQLiteStatement) -> (String, ReportSample) {
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
        return (text(0), sample)
    }
}

/// Raw sample rows (`FleetDatabase.rawSamples`) decoded from postgres-nio's rows by position.
/// Used from postgres-nio's event loop while the reading thread waits for the statement's end.
private final class RawSampleSink: @unchecked Sendable {
    var byNode = SamplesByNode()
    let full: Bool
    let wanted: (String) -> Bool

    init(full: Bool, wanted: @escaping (String) -> Bool) {
        self.full = full
        self.wanted = wanted
    }

    func add(_ row: PostgresRow) throws {
        if full {
            let (id, at, saved, ends, cpuSeconds, cpuPercent, scans, phase, profit) = try row.decode(
                (String, Int64, Int64, Int64, Double?, Double?, Int64?, String, Int64?).self)
            guard let i = byNode.slot(id, if: wanted) else { return }
            var sample = ReportSample(at: Double(at) / 1000, savedBytes: saved, endsData: ends != 0)
            sample.cpuSeconds = cpuSeconds
            sample.cpuPercent = cpuPercent
            sample.fullScans = scans ?? 0
            sample.phase = KSMPhase(rawValue: phase) ?? .stopped
            sample.netProfit = profit
            byNode.lists[i].append(sample)
        } else {
            let (id, at, saved, ends) = try row.decode((String, Int64, Int64, Int64).self)
            guard let i = byNode.slot(id, if: wanted) else { return }
            byNode.lists[i].append(ReportSample(at: Double(at) / 1000, savedBytes: saved, endsData: ends != 0))
        }
    }
}
