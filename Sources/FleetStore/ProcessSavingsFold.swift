import FleetAPI
import Foundation
import GRDB
import GRDBSQLite
import KSMCore

extension FleetDatabase {
    /// `processSavingsRows` on SQLite: the plan's rows read node by node (the `nodes` key, then
    /// each table's primary key: no sort) and folded in Swift (`ProcessSavingsFold`), as the SQL
    /// does on PostgreSQL: reports and merged bytes summed exactly; the peak at its earliest
    /// report; the figures of the latest report, of the latest row when reports of one
    /// millisecond fall in two rows.
    ///
    /// A report over 30 days or a year reads a month's worth of edge days (4 groups × 1,000 nodes
    /// × 28 days: 112,000 rows): SQLite grouped them by a sort of every row and summed them with
    /// its aggregates (docs/benchmarks.md).
    static func sqliteProcessSavingsRows(_ db: StoreDB, plan: ProcessSavingsPlan, nodeId: String?, limit: Int) throws
        -> [ProcessSavingsRow]
    {
        let grdb = db.sqlite!
        let kinds = "(\(ProcessGroupKind.allCases.map { "'\($0.rawValue)'" }.joined(separator: ", ")))"
        let node = nodeId == nil ? "" : " AND n.id = ?"
        let columns = """
            n.id, n.name, d.kind, d.name, d.reports, d.peak_merged_bytes, d.peak_at, d.last_merged_bytes, d.last_at,
              d.processes, d.sum_merged_bytes
            """
        var fold = ProcessSavingsFold()
        func read(_ sql: String, _ range: Range<Int64>) throws {
            guard !range.isEmpty else { return }
            let statement = try db.reusableStatement(grdb, sql: sql)
            var arguments: StatementArguments = [range.lowerBound, range.upperBound]
            if let nodeId { arguments += [nodeId] }
            let rows = try ProcessRowCursor(statement, arguments: arguments, fold: fold)
            while try rows.next() != nil {}
            fold = rows.fold
            fold.endPart()
        }
        let days = """
            SELECT \(columns)
            FROM nodes n CROSS JOIN process_savings_day d ON d.node_id = n.id
            WHERE d.day_start >= ? AND d.day_start < ? AND d.kind IN \(kinds)\(node)
            ORDER BY n.id, d.day_start
            """
        // `+` keeps SQLite off the month_start index: the primary key (node, kind, name, month)
        // hands each node's months over without a sort.
        let months = """
            SELECT \(columns)
            FROM nodes n CROSS JOIN process_savings_month d ON d.node_id = n.id
            WHERE +d.month_start >= ? AND +d.month_start < ? AND d.kind IN \(kinds)\(node)
            ORDER BY n.id, d.kind, d.name, d.month_start
            """
        try read(days, plan.head)
        try read(months, plan.months)
        try read(days, plan.tail)
        if let column = fold.outOfRange {
            // As PostgreSQL's statement fails ("bigint out of range"): no report with a figure
            // made up.
            throw DatabaseError(
                resultCode: .SQLITE_RANGE,
                message: "process savings rows out of range: a group's \(column) does not fit a 64-bit integer (a damaged row)")
        }
        return fold.rows(limit: limit)
    }
}

/// The groups of a process report being added up (`sqliteProcessSavingsRows`): the rows of one
/// part of the period (head days, months, tail days) come node by node, each node's in time
/// order (the parts in time order too: the latest report's figures are the last row's); a row
/// is matched to its group among its node's by the bytes of its kind and name, no string made
/// per row.
struct ProcessSavingsFold {
    struct Group {
        var nodeId: String
        var nodeName: String?
        var kind: [UInt8]
        var name: [UInt8]
        var reports: Int64 = 0
        var peak: Int64 = .min
        var peakAt: Int64 = .max
        var last: Int64 = 0
        var lastAt: Int64 = .min
        var processes: Int64 = 0
        /// The sum of the rows' `sum_merged_bytes`, exact (`exact`).
        var total: Int128 = 0
    }

    private(set) var groups: [Group] = []
    /// The first column a row held a value the fold cannot add up (a count past `Int64`, a sum
    /// outside `BIGINT`'s range, where PostgreSQL's statement fails): only a damaged row does.
    private(set) var outOfRange: String?
    /// Each node's groups (indices into `groups`), and the node being read.
    private var byNode: [String: [Int]] = [:]
    private var nodeBytes: [UInt8]?
    private var nodeId = ""
    private var nodeName: String?
    private var nodeGroups: [Int] = []

    /// Adds the statement's current row (the columns of `sqliteProcessSavingsRows`).
    mutating func add(_ s: SQLiteStatement) {
        func bytes(_ i: Int32) -> UnsafeBufferPointer<UInt8> {
            UnsafeBufferPointer(start: sqlite3_column_text(s, i), count: Int(sqlite3_column_bytes(s, i)))
        }
        let id = bytes(0)
        if nodeBytes.map({ !Self.equal($0, id) }) ?? true {
            if nodeBytes != nil { byNode[nodeId] = nodeGroups }
            nodeBytes = Array(id)
            nodeId = String(decoding: id, as: UTF8.self)
            nodeName = sqlite3_column_type(s, 1) == SQLITE_NULL ? nil : String(decoding: bytes(1), as: UTF8.self)
            nodeGroups = byNode[nodeId] ?? []
        }
        let kind = bytes(2)
        let name = bytes(3)
        var index = -1
        for g in nodeGroups where Self.equal(groups[g].kind, kind) && Self.equal(groups[g].name, name) {
            index = g
            break
        }
        if index < 0 {
            index = groups.count
            groups.append(Group(nodeId: nodeId, nodeName: nodeName, kind: Array(kind), name: Array(name)))
            nodeGroups.append(index)
        }
        let peak = sqlite3_column_int64(s, 5)
        let peakAt = sqlite3_column_int64(s, 6)
        let lastAt = sqlite3_column_int64(s, 8)
        let sum = sqlite3_column_double(s, 10)
        let (reports, overflow) = groups[index].reports.addingReportingOverflow(sqlite3_column_int64(s, 4))
        if overflow { outOfRange = outOfRange ?? "reports" }
        groups[index].reports = reports
        if peak > groups[index].peak {
            groups[index].peak = peak
            groups[index].peakAt = peakAt
        } else if peak == groups[index].peak, peakAt < groups[index].peakAt {
            groups[index].peakAt = peakAt
        }
        // Rows come in time order: on a tie the later row's figures.
        if lastAt >= groups[index].lastAt {
            groups[index].lastAt = lastAt
            groups[index].last = sqlite3_column_int64(s, 7)
            groups[index].processes = sqlite3_column_int64(s, 9)
        }
        if let exact = Self.exact(sum) {
            groups[index].total += exact
        } else {
            outOfRange = outOfRange ?? "sum_merged_bytes"
        }
    }

    static func equal(_ a: [UInt8], _ b: UnsafeBufferPointer<UInt8>) -> Bool {
        a.count == b.count && a.withUnsafeBufferPointer { a in a.count == 0 || memcmp(a.baseAddress!, b.baseAddress!, a.count) == 0 }
    }

    /// A stored `sum_merged_bytes` as the whole number it is: the sum of whole byte counts, kept
    /// as a double (exact up to 2^53, and a whole number above). Summed as integers, a group's
    /// total is the same whatever order the rows come in: PostgreSQL adds them as `BIGINT`s into
    /// a `NUMERIC` (`CAST(… AS BIGINT)` rounds half to even, as here), and both round the exact
    /// total to the nearest double. (A year of 60-second reports of a group merging 17 GiB passes
    /// 2^53, where double sums would depend on their order.) Nil outside `BIGINT`'s range
    /// (PostgreSQL's cast fails there too: only a damaged row holds such a value).
    static func exact(_ value: Double) -> Int128? {
        let rounded = value.rounded(.toNearestOrEven)
        // -2^63 ... 2^63 (exclusive), the doubles a BIGINT holds.
        guard rounded >= -0x1p63, rounded < 0x1p63 else { return nil }
        return Int128(rounded)
    }

    /// The part read is over (a statement's rows).
    mutating func endPart() {
        if nodeBytes != nil { byNode[nodeId] = nodeGroups }
        nodeBytes = nil
        nodeId = ""
        nodeGroups = []
    }

    /// The report's rows: largest peak first, then by node, kind and name in bytes order; at most
    /// `limit`.
    func rows(limit: Int) -> [ProcessSavingsRow] {
        let order = groups.indices.sorted { a, b in
            let x = groups[a]
            let y = groups[b]
            if x.peak != y.peak { return x.peak > y.peak }
            if !x.nodeId.utf8.elementsEqual(y.nodeId.utf8) { return x.nodeId.utf8.lexicographicallyPrecedes(y.nodeId.utf8) }
            if x.kind != y.kind { return x.kind.lexicographicallyPrecedes(y.kind) }
            return x.name.lexicographicallyPrecedes(y.name)
        }
        return order.prefix(max(limit, 0)).compactMap { i in
            let g = groups[i]
            guard let kind = ProcessGroupKind(rawValue: String(decoding: g.kind, as: UTF8.self)) else { return nil }
            return ProcessSavingsRow(
                nodeId: g.nodeId, nodeName: g.nodeName, kind: kind, name: String(decoding: g.name, as: UTF8.self),
                reports: Int(g.reports), peakMergedBytes: g.peak, peakAt: Time.date(g.peakAt),
                avgMergedBytes: Double(g.total) / Double(max(g.reports, 1)), lastMergedBytes: g.last,
                lastAt: Time.date(g.lastAt), processes: Int(g.processes))
        }
    }
}

/// Steps a statement of `sqliteProcessSavingsRows` and hands each row to the fold, straight from
/// the statement (`sqlite3_column_*`), no row object.
final class ProcessRowCursor: DatabaseCursor {
    typealias Element = Void
    let _statement: Statement
    var _isDone = false
    /// Held here while the rows are read (one access to it a row).
    private(set) var fold: ProcessSavingsFold

    init(_ statement: Statement, arguments: StatementArguments, fold: ProcessSavingsFold) throws {
        _statement = statement
        self.fold = fold
        try statement.setArguments(arguments)
    }

    func _element(sqliteStatement s: SQLiteStatement) {
        fold.add(s)
    }
}
