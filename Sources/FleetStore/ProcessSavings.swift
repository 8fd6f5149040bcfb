import FleetAPI
import Foundation
import KSMCore

extension FleetDatabase {
    /// Records the process report a newly stored sample carries: the node's newest report (when
    /// this one is not older than the one kept) and each listed group's figures of that UTC day.
    /// Called inside the sample batch's transaction, only for samples that were new (a replay
    /// must not count twice).
    static func writeProcessReport(_ db: StoreDB, nodeId: String, sample: StatusSample) throws {
        guard var report = sample.processes else { return }
        // Bounded whatever an agent sends: the top groups, names as long as any real one.
        report.groups = Array(report.groups.prefix(ProcessReport.maxGroups))
        for i in report.groups.indices where report.groups[i].name.count > ProcessReport.maxNameLength {
            report.groups[i].name = String(report.groups[i].name.prefix(ProcessReport.maxNameLength))
        }
        let at = Time.ms(sample.takenAt)
        try db.cachedStatement(
            sql: """
                UPDATE nodes SET processes_json = ?, processes_at = ?
                WHERE id = ? AND (processes_at IS NULL OR processes_at <= ?)
                """
        ).execute(arguments: [try StoredJSON.encode(report), at, nodeId, at])
        let seconds = Int64(sample.takenAt.timeIntervalSince1970.rounded(.down))
        let day = seconds - ((seconds % 86400) + 86400) % 86400
        let month = Int64(ReportTime.monthStart(Double(day)))
        // The same upsert for the day's row and the month's, so that a month row is always the
        // aggregate of its day rows: reports and sums added, the largest peak at the earliest time
        // it was reported (whatever order samples arrive in), the latest report's figures.
        func upsert(_ table: String, _ start: String) throws -> StoreStatement {
            try db.cachedStatement(
                sql: """
                    INSERT INTO \(table) AS d (node_id, \(start), kind, name, reports, peak_merged_bytes, peak_at,
                      last_merged_bytes, last_at, processes, sum_merged_bytes)
                    VALUES (?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT (node_id, \(start), kind, name) DO UPDATE SET
                      reports = d.reports + 1,
                      peak_at = CASE WHEN excluded.peak_merged_bytes > d.peak_merged_bytes
                          OR (excluded.peak_merged_bytes = d.peak_merged_bytes AND excluded.peak_at < d.peak_at)
                        THEN excluded.peak_at ELSE d.peak_at END,
                      peak_merged_bytes = \(db.greatest("d.peak_merged_bytes", "excluded.peak_merged_bytes")),
                      last_merged_bytes = CASE WHEN excluded.last_at >= d.last_at THEN excluded.last_merged_bytes
                        ELSE d.last_merged_bytes END,
                      processes = CASE WHEN excluded.last_at >= d.last_at THEN excluded.processes ELSE d.processes END,
                      last_at = \(db.greatest("d.last_at", "excluded.last_at")),
                      sum_merged_bytes = d.sum_merged_bytes + excluded.sum_merged_bytes
                    """)
        }
        let upserts = [(try upsert("process_savings_day", "day_start"), day),
                       (try upsert("process_savings_month", "month_start"), month)]
        for g in report.groups {
            let bytes = g.mergedBytes(pageSize: sample.pageSize)
            for (statement, start) in upserts {
                try statement.execute(arguments: [
                    nodeId, start, g.kind.rawValue, g.name, bytes, at, bytes, at, g.processes, Double(bytes),
                ])
            }
        }
    }

    /// `rollup_state` key: the latest cut before which retention deleted `process_savings_day`
    /// rows (unix seconds), recorded in the transaction that deletes them.
    static let processCutKey = "process_savings_cut"

    /// Who benefited over a period: per node and group, the peak, mean and last merged bytes of
    /// the UTC days that overlap [since, until), largest peak first, at most `limit` rows.
    ///
    /// Read as the day rows of the period would add up (the peak at its earliest report, the
    /// figures of the latest report, reports and sums added), but a month whose days all count
    /// is read from its `process_savings_month` row: the calendar months inside the period, and
    /// a first or last month the period cuts when the day table holds no row of it outside the
    /// period (a period ending now: no later days yet), provided retention has cut none of its
    /// days (the month starts at or after the recorded cut; an older month's remaining days are
    /// read one by one). The rest comes from the day rows.
    public func processSavings(nodeId: String?, since: Date, until: Date, limit: Int = 1000) async throws
        -> [ProcessSavingsRow]
    {
        let from = Int64(since.timeIntervalSince1970.rounded(.down))
        let fromDay = from - ((from % 86400) + 86400) % 86400
        let to = Int64(until.timeIntervalSince1970.rounded(.up))
        // The day rows of the period: day_start in [fromDay, to), i.e. in [fromDay, toDay).
        let toDay = to - ((to % 86400) + 86400) % 86400 + (to % 86400 == 0 ? 0 : 86400)
        guard limit > 0, fromDay < toDay else { return [] }
        return try await read { db in
            try db.reportWorkMemory()
            let cut = try Self.stateValue(db, Self.processCutKey)
            let plan = try ProcessSavingsPlan(fromDay: fromDay, toDay: toDay, cut: cut) { lo, hi in
                // Any day row of [lo, hi) (of the node asked for)?
                var sql = "SELECT 1 FROM process_savings_day WHERE day_start >= ? AND day_start < ?"
                var arguments: StoreArguments = [lo, hi]
                if let nodeId {
                    sql += " AND node_id = ?"
                    arguments += [nodeId]
                }
                return try Int.fetchOne(db, sql: sql + " LIMIT 1", arguments: arguments) != nil
            }
            return try Self.processSavingsRows(db, plan: plan, nodeId: nodeId, limit: limit)
        }
    }

    /// The report's rows of a plan: folded in Swift on SQLite (`sqliteProcessSavingsRows`), in
    /// SQL on PostgreSQL (`postgresProcessSavingsRows`); the same figures either way
    /// (`ProcessSavingsFoldTests`).
    static func processSavingsRows(_ db: StoreDB, plan: ProcessSavingsPlan, nodeId: String?, limit: Int) throws
        -> [ProcessSavingsRow]
    {
        db.engine == .sqlite
            ? try sqliteProcessSavingsRows(db, plan: plan, nodeId: nodeId, limit: limit)
            : try postgresProcessSavingsRows(db, plan: plan, nodeId: nodeId, limit: limit)
    }

    /// The sums exact (see `ProcessSavingsFold`); the peak at its earliest report; the latest
    /// report's figures (of the later part on a tie).
    static func postgresProcessSavingsRows(_ db: StoreDB, plan: ProcessSavingsPlan, nodeId: String?, limit: Int) throws
        -> [ProcessSavingsRow]
    {
        // The day rows of the period outside the months read whole (two ranges, either may be
        // empty), and the months: each as a condition on a table aliased `d` / `m`, with its
        // arguments.
        let days = "((d.day_start >= ? AND d.day_start < ?) OR (d.day_start >= ? AND d.day_start < ?))"
        let dayArgs: StoreArguments = [plan.head.lowerBound, plan.head.upperBound, plan.tail.lowerBound, plan.tail.upperBound]
        let months = "m.month_start >= ? AND m.month_start < ?"
        let monthArgs: StoreArguments = [plan.months.lowerBound, plan.months.upperBound]
        var filter = " AND d.kind IN (\(ProcessGroupKind.allCases.map { "'\($0.rawValue)'" }.joined(separator: ", ")))"
        var filterArgs: StoreArguments = []
        if let nodeId {
            filter += " AND d.node_id = ?"
            filterArgs = [nodeId]
        }
        let monthFilter = filter.replacingOccurrences(of: "d.", with: "m.")
        // Of one group `t` (the rows of the outer query): its parts (day and month rows) of the
        // period, as (value, start) of `column` where `condition` holds.
        func parts(_ column: String, where condition: String) -> (sql: String, arguments: StoreArguments) {
            (
                """
                SELECT d.\(column) AS v, d.day_start AS start FROM process_savings_day d
                  WHERE d.node_id = t.node_id AND \(days) AND d.kind = t.kind AND d.name = t.name
                    AND d.\(condition)
                UNION ALL
                SELECT m.\(column), m.month_start FROM process_savings_month m
                  WHERE m.node_id = t.node_id AND m.kind = t.kind AND m.name = t.name AND \(months)
                    AND m.\(condition)
                """, { var a = dayArgs; a += monthArgs; return a }()
            )
        }
        // The peak at its earliest report (peak_at order is time order, the parts being disjoint
        // spans of time); the last report's figures (ties, reports of one millisecond in two
        // parts: the later part's, as adding the days in order keeps the last one).
        let peakAt = parts("peak_at", where: "peak_merged_bytes = t.peak")
        let last = parts("last_merged_bytes", where: "last_at = t.last_at")
        let processes = parts("processes", where: "last_at = t.last_at")
        // Largest peak first, then by node, kind and name in byte order (PostgreSQL's text order
        // depends on the database's collation; SQLite's fold sorts by bytes).
        func order(_ p: String) -> String {
            let text = { (c: String) in db.byteOrder("\(p)\(c)") }
            return "\(p)peak DESC, \(text("node_id")), \(text("kind")), \(text("name"))"
        }
        // The sums are exact (`ProcessSavingsFold.exact`), so the rows are added in whatever order
        // the plan of the moment reads them (a hash aggregate here, no sort).
        let rows = """
            SELECT d.node_id, d.kind, d.name, d.reports, d.peak_merged_bytes AS peak, d.last_at,
              CAST(d.sum_merged_bytes AS BIGINT) AS total
            FROM process_savings_day d
            """
        let sql = """
            SELECT t.node_id, t.node_name, t.kind, t.name, t.reports, t.peak,
              (SELECT MIN(x.v) FROM (\(peakAt.sql)) x) AS peak_at,
              (SELECT x.v FROM (\(last.sql)) x ORDER BY x.start DESC LIMIT 1) AS last_merged_bytes,
              t.last_at,
              (SELECT x.v FROM (\(processes.sql)) x ORDER BY x.start DESC LIMIT 1) AS processes,
              t.total
            FROM (
              SELECT g.*, n.name AS node_name FROM (
              SELECT node_id, kind, name, CAST(SUM(reports) AS BIGINT) AS reports, MAX(peak) AS peak,
                MAX(last_at) AS last_at, CAST(SUM(total) AS DOUBLE PRECISION) AS total
              FROM (
                \(rows) WHERE d.day_start >= ? AND d.day_start < ?\(filter)
                UNION ALL
                \(rows) WHERE d.day_start >= ? AND d.day_start < ?\(filter)
                UNION ALL
                SELECT m.node_id, m.kind, m.name, m.reports, m.peak_merged_bytes, m.last_at,
                  CAST(m.sum_merged_bytes AS BIGINT)
                FROM process_savings_month m WHERE \(months)\(monthFilter)
              ) AS u
              GROUP BY node_id, kind, name
              ) AS g JOIN nodes n ON n.id = g.node_id
              ORDER BY \(order("g.")) LIMIT ?
            ) AS t
            ORDER BY \(order("t."))
            """
        var arguments = peakAt.arguments
        let headArgs: StoreArguments = [plan.head.lowerBound, plan.head.upperBound]
        let tailArgs: StoreArguments = [plan.tail.lowerBound, plan.tail.upperBound]
        for more in [
            last.arguments, processes.arguments, headArgs, filterArgs, tailArgs, filterArgs, monthArgs, filterArgs, [limit],
        ] {
            arguments += more
        }
        return try StoreRow.fetchAll(db, sql: sql, arguments: arguments).compactMap { r in
            guard let kind = ProcessGroupKind(rawValue: r["kind"]) else { return nil }
            let reports: Int = r["reports"]
            let total: Double = r["total"]
            return ProcessSavingsRow(
                nodeId: r["node_id"], nodeName: r["node_name"], kind: kind, name: r["name"], reports: reports,
                peakMergedBytes: r["peak"], peakAt: Time.date(r["peak_at"] as Int64),
                avgMergedBytes: total / Double(max(reports, 1)), lastMergedBytes: r["last_merged_bytes"],
                lastAt: Time.date(r["last_at"] as Int64), processes: r["processes"])
        }
    }
}

/// Which rows a process report over the days [fromDay, toDay) reads: the months `months` from
/// `process_savings_month`, the days `head` and `tail` (before and after them; either may be
/// empty) from `process_savings_day`. A month is read whole only when every day row it holds
/// counts: it lies inside the period, or the day table holds none of its rows outside the period
/// (`hasDays(lo, hi)`: any day row in [lo, hi)); and retention has cut none of its days (it
/// starts at or after `cut`, the latest retention cut: a month row keeps the figures of days
/// deleted since, so a month partly cut is read from its remaining days).
struct ProcessSavingsPlan: Equatable {
    var months: Range<Int64>
    var head: Range<Int64>
    var tail: Range<Int64>

    init(fromDay: Int64, toDay: Int64, cut: Int64?, hasDays: (Int64, Int64) throws -> Bool) rethrows {
        func monthStart(_ t: Int64) -> Int64 { Int64(ReportTime.monthStart(Double(t))) }
        func nextMonth(_ t: Int64) -> Int64 { Int64(ReportTime.nextMonthStart(Double(t))) }
        let first = monthStart(fromDay)
        let last = monthStart(toDay - 1)
        var lo = first
        var hi = nextMonth(last)
        if let cut, cut > lo { lo = monthStart(cut) == cut ? cut : nextMonth(cut) }
        // The months the period cuts, read whole only when their rows outside it are none.
        func wholeOutside(_ m: Int64) throws -> Bool {
            let end = nextMonth(m)
            if m < fromDay, try hasDays(m, min(fromDay, end)) { return false }
            if end > toDay, try hasDays(max(toDay, m), end) { return false }
            return true
        }
        if lo == first, first < fromDay || nextMonth(first) > toDay, try !wholeOutside(first) { lo = nextMonth(first) }
        if hi > toDay, last >= lo, last != first || lo != first, try !wholeOutside(last) { hi = last }
        if lo >= hi {
            months = fromDay..<fromDay
            head = fromDay..<toDay
            tail = toDay..<toDay
        } else {
            months = lo..<hi
            head = fromDay..<max(fromDay, lo)
            tail = min(max(hi, fromDay), toDay)..<toDay
        }
    }
}
