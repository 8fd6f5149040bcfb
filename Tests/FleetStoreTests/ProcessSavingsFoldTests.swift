import FleetAPI
import Foundation
import KSMCore
import TestSupport
import Testing

@testable import FleetStore

/// The process report's rows of a plan are the same on both engines: SQLite folds the rows it
/// reads (`sqliteProcessSavingsRows`), PostgreSQL adds them up in SQL
/// (`postgresProcessSavingsRows`). Both are held here to one fold written out in the test, on day
/// and month rows written straight into the tables: whole-number sums past 2^53, whose double
/// sums would depend on the order they are added in (the report's are exact), peaks and latest
/// reports tied within a part and across parts, kinds the report does not know, names that differ
/// only in case, and random plans.
@Suite struct ProcessSavingsFoldTests {
    static let day: Int64 = 86_400
    static let start: Int64 = 1_767_225_600  // 2026-01-01

    struct Row {
        var node: String, start: Int64, kind: String, name: String, reports: Int64, peak: Int64, peakAt: Int64
        var last: Int64, lastAt: Int64, processes: Int64, sum: Double
    }

    static func randomRow(_ r: inout SeededRandom, node: String, start: Int64, kind: String, name: String) -> Row {
        // Few peak and report-time values within a bucket, so that ties happen; lastAt sometimes
        // one value for every row, so that ties happen across rows and parts.
        let peak = Int64([4096, 8192, 8192, 1 << 30][Int(r.next() % 4)])
        let lastAt = r.next() % 4 == 0 ? 1_800_000_000_000 : start * 1000 + Int64(r.next() % 3) * 1000
        // A whole number (a sum of byte counts), up to about 2^60.
        let sum = (Double(r.next() % 1_000_000) * pow(2, Double(r.next() % 41))).rounded()
        return Row(
            node: node, start: start, kind: kind, name: name, reports: Int64(1 + r.next() % 50), peak: peak,
            // Not in time order across rows (the report takes the earliest of the tied peaks').
            peakAt: start * 1000 + Int64(r.next() % 3) * 1000 - Int64(r.next() % 3) * 40 * day * 1000, last: Int64(r.next() % 5) * 4096, lastAt: lastAt,
            processes: Int64(1 + r.next() % 4), sum: sum)
    }

    /// Rows of a node the `nodes` table does not hold (neither engine counts them).
    static let gone = "n-gone"

    static func insert(_ db: FleetDatabase, nodes: [String], days: [Row], months: [Row]) async throws {
        try await db.write { db in
            try insertBareNodes(db, nodes.filter { $0 != Self.gone }) { "name of \($0)" }
            // Written in reverse: no engine hands them over in time order by accident.
            for (table, column, rows) in [("process_savings_day", "day_start", days), ("process_savings_month", "month_start", months)] {
                for row in rows.reversed() {
                    try db.execute(
                        sql: """
                            INSERT INTO \(table) (node_id, \(column), kind, name, reports, peak_merged_bytes, peak_at,
                              last_merged_bytes, last_at, processes, sum_merged_bytes)
                            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                            """,
                        arguments: [
                            row.node, row.start, row.kind, row.name, row.reports, row.peak, row.peakAt, row.last,
                            row.lastAt, row.processes, row.sum,
                        ])
                }
            }
        }
    }

    /// The report as the test defines it: per group the rows of the plan's parts (head days,
    /// months, tail days) in time order; the average from the exact sum of the merged bytes
    /// (`exact`), or from their double sum in time order (not exact).
    static func reference(
        days: [Row], months: [Row], plan: ProcessSavingsPlan, nodeId: String?, limit: Int, exact: Bool = true
    ) -> [ProcessSavingsRow] {
        struct Key: Hashable { var node: String, kind: String, name: String }
        struct Fold {
            var rows: [Row] = []
        }
        var folds: [Key: Fold] = [:]
        var order: [Key] = []
        let parts: [[Row]] = [
            days.filter { plan.head.contains($0.start) }, months.filter { plan.months.contains($0.start) },
            days.filter { plan.tail.contains($0.start) },
        ]
        for part in parts {
            for row in part.sorted(by: { $0.start < $1.start })
            where ProcessGroupKind(rawValue: row.kind) != nil && (nodeId == nil || row.node == nodeId) && row.node != gone {
                let key = Key(node: row.node, kind: row.kind, name: row.name)
                if folds[key] == nil { order.append(key) }
                folds[key, default: Fold()].rows.append(row)
            }
        }
        var out: [ProcessSavingsRow] = []
        for key in order {
            let f = folds[key]!
            let peak = f.rows.map(\.peak).max()!
            let peakAt = f.rows.filter { $0.peak == peak }.map(\.peakAt).min()!
            let lastAt = f.rows.map(\.lastAt).max()!
            let latest = f.rows.last { $0.lastAt == lastAt }!  // the rows are in time order
            let total = exact
                ? Double(f.rows.reduce(Int128(0)) { $0 + Int128($1.sum) }) : f.rows.dropFirst().reduce(f.rows[0].sum) { $0 + $1.sum }
            let reports = f.rows.reduce(0) { $0 + $1.reports }
            out.append(
                ProcessSavingsRow(
                    nodeId: key.node, nodeName: "name of \(key.node)", kind: ProcessGroupKind(rawValue: key.kind)!,
                    name: key.name, reports: Int(reports), peakMergedBytes: peak, peakAt: Time.date(peakAt),
                    avgMergedBytes: total / Double(max(reports, 1)), lastMergedBytes: latest.last,
                    lastAt: Time.date(lastAt), processes: Int(latest.processes)))
        }
        out.sort { a, b in
            if a.peakMergedBytes != b.peakMergedBytes { return a.peakMergedBytes > b.peakMergedBytes }
            for (x, y) in [(a.nodeId, b.nodeId), (a.kind.rawValue, b.kind.rawValue), (a.name, b.name)] where x != y {
                return x.utf8.lexicographicallyPrecedes(y.utf8)
            }
            return false
        }
        return Array(out.prefix(limit))
    }

    @Test(arguments: [1, 2, 3])
    func bothEnginesAddUpAPlansRowsAsTheTestDoes(seed: UInt64) async throws {
        let (db, dir) = try makeDatabase()
        defer { try? FileManager.default.removeItem(at: dir) }
        var r = SeededRandom(seed: seed)
        // Ids whose byte order is not their order of registration; one not ASCII.
        let nodes = ["n-b", "n-a", "N-c", "n-\u{e9}", "n-a1", "n-0", Self.gone]
        let groups: [(String, String)] = [
            ("vm", "web-1"), ("vm", "Web-1"), ("container", "db"), ("command", "java"), ("command", "\u{e9}t\u{e9}"),
            ("unit", "a"), ("not-a-kind", "x"),
        ]
        // Day rows over 2026-01-01 … 2026-04-10, month rows of January to April (their figures
        // need not match the days: the plan says which are read).
        var days: [Row] = []
        var months: [Row] = []
        var monthStarts: [Int64] = []
        var m = Double(Self.start)
        for _ in 0..<4 {
            monthStarts.append(Int64(m))
            m = ReportTime.nextMonthStart(m)
        }
        for node in nodes {
            for (kind, name) in groups where r.next() % 5 != 0 {
                for d in 0..<100 where r.next() % 3 != 0 {
                    days.append(Self.randomRow(&r, node: node, start: Self.start + Int64(d) * Self.day, kind: kind, name: name))
                }
                for s in monthStarts where r.next() % 4 != 0 {
                    months.append(Self.randomRow(&r, node: node, start: s, kind: kind, name: name))
                }
            }
        }
        try await Self.insert(db, nodes: nodes, days: days, months: months)

        var exactDiffers = false
        for round in 0..<40 {
            let fromDay = Self.start + Int64(r.next() % 60) * Self.day
            let toDay = fromDay + Int64(1 + r.next() % 60) * Self.day
            let choice = r.next() % 3
            // A retention cut now and then: the months it cuts are read from their days.
            let cut: Int64? = r.next() % 3 == 0 ? Self.start + Int64(r.next() % 100) * Self.day + 5 : nil
            let plan = ProcessSavingsPlan(fromDay: fromDay, toDay: toDay, cut: cut) { _, _ in choice == 0 }
            let nodeId: String? = r.next() % 4 == 0 ? nodes[Int(r.next() % UInt64(nodes.count))] : nil
            let limit = [1, 5, 1000, Int(1 + r.next() % 30)][Int(r.next() % 4)]
            let got = try await db.read { db in
                try FleetDatabase.processSavingsRows(db, plan: plan, nodeId: nodeId, limit: limit)
            }
            let want = Self.reference(days: days, months: months, plan: plan, nodeId: nodeId, limit: limit)
            #expect(got == want, "seed \(seed) round \(round): \(plan) node \(nodeId ?? "all") limit \(limit)")
            if got != want { return }
            let all = Self.reference(days: days, months: months, plan: plan, nodeId: nil, limit: 1000)
            if Self.reference(days: days, months: months, plan: plan, nodeId: nil, limit: 1000, exact: false) != all {
                exactDiffers = true
            }
        }
        #expect(exactDiffers, "the values must make a double sum differ from the exact one")
        #expect(days.contains { $0.node == Self.gone }, "rows of a node not in the nodes table are there to skip")
        #expect(days.contains { ProcessGroupKind(rawValue: $0.kind) == nil }, "rows of an unknown kind are there to skip")
    }

    /// A row whose sum or count does not fit a 64-bit integer (only a damaged row holds one)
    /// fails the report on both engines, as PostgreSQL's casts do, instead of a made-up figure.
    @Test(arguments: ["sum", "reports"])
    func aFigureOutOfRangeFailsTheReportOnBothEngines(what: String) async throws {
        let (db, dir) = try makeDatabase()
        defer { try? FileManager.default.removeItem(at: dir) }
        var r = SeededRandom(seed: 9)
        var a = Self.randomRow(&r, node: "n-a", start: Self.start, kind: "vm", name: "web")
        var b = Self.randomRow(&r, node: "n-a", start: Self.start + Self.day, kind: "vm", name: "web")
        switch what {
        case "sum": a.sum = 0x1p63
        default: (a.reports, b.reports) = (Int64.max / 2 + 1, Int64.max / 2 + 1)
        }
        try await Self.insert(db, nodes: ["n-a"], days: [a, b], months: [])
        // Other days exist: the two days are read as days.
        let plan = ProcessSavingsPlan(fromDay: Self.start, toDay: Self.start + 2 * Self.day, cut: nil) { _, _ in true }
        await #expect(throws: (any Error).self, "\(what)") {
            try await db.read { db in try FleetDatabase.processSavingsRows(db, plan: plan, nodeId: nil, limit: 10) }
        }
        // Just inside the range, the report is made.
        if what == "sum" {
            let (db2, dir2) = try makeDatabase()
            defer { try? FileManager.default.removeItem(at: dir2) }
            a.sum = 0x1p63 - 1024
            try await Self.insert(db2, nodes: ["n-a"], days: [a, b], months: [])
            let rows = try await db2.read { db in try FleetDatabase.processSavingsRows(db, plan: plan, nodeId: nil, limit: 10) }
            #expect(rows.count == 1)
        }
    }
}
