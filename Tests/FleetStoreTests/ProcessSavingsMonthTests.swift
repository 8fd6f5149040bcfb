import FleetAPI
import Foundation
import KSMCore
import TestSupport
import Testing

@testable import FleetStore

/// The process report read from month rows and edge days (`process_savings_month`, 0042) against
/// the merge it replaced: every day row of the period added up in Swift.
@Suite("Process savings by month")
struct ProcessSavingsMonthTests {
    /// The shared SplitMix64 (`SeededRandom`): the same reports for a seed on every run.
    struct Rng {
        var random: SeededRandom
        init(state: UInt64) { random = SeededRandom(seed: state) }
        mutating func next() -> UInt64 { random.next() }
        mutating func int(_ range: ClosedRange<Int>) -> Int {
            range.lowerBound + Int(next() % UInt64(range.upperBound - range.lowerBound + 1))
        }
        mutating func pick<T>(_ values: [T]) -> T { values[int(0...(values.count - 1))] }
    }

    struct DayRow: Sendable {
        var node: String, start: Int64, kind: String, name: String, reports: Int, peak: Int64, peakAt: Int64
        var last: Int64, lastAt: Int64, processes: Int, sum: Double
    }

    static func rows(_ db: FleetDatabase, _ table: String, _ start: String) async throws -> [DayRow] {
        try await db.read { db in
            try StoreRow.fetchAll(
                db,
                sql: """
                    SELECT node_id, \(start) AS start, kind, name, reports, peak_merged_bytes, peak_at, last_merged_bytes,
                      last_at, processes, sum_merged_bytes FROM \(table) ORDER BY start, node_id, kind, name
                    """
            ).map { r in
                DayRow(
                    node: r["node_id"], start: r["start"], kind: r["kind"], name: r["name"], reports: r["reports"],
                    peak: r["peak_merged_bytes"], peakAt: r["peak_at"], last: r["last_merged_bytes"],
                    lastAt: r["last_at"], processes: r["processes"], sum: r["sum_merged_bytes"])
            }
        }
    }

    /// The report as the code before 0042 computed it (kept as the reference): every day row of
    /// the UTC days overlapping the period, in day order, merged in Swift.
    static func reference(
        _ days: [DayRow], names: [String: String], nodeId: String?, since: Date, until: Date, limit: Int
    ) -> [ProcessSavingsRow] {
        let from = Int64(since.timeIntervalSince1970.rounded(.down))
        let fromDay = from - ((from % 86400) + 86400) % 86400
        let to = Int64(until.timeIntervalSince1970.rounded(.up))
        struct Key: Hashable {
            var node: String, kind: String, name: String
        }
        var rows: [Key: (row: ProcessSavingsRow, sum: Double)] = [:]
        for r in days where r.start >= fromDay && r.start < to && (nodeId == nil || r.node == nodeId) {
            guard let kind = ProcessGroupKind(rawValue: r.kind) else { continue }
            let key = Key(node: r.node, kind: r.kind, name: r.name)
            let peakAt = Time.date(r.peakAt)
            let lastAt = Time.date(r.lastAt)
            if var (row, total) = rows[key] {
                row.reports += r.reports
                if r.peak > row.peakMergedBytes {
                    row.peakMergedBytes = r.peak
                    row.peakAt = peakAt
                }
                if lastAt >= row.lastAt {
                    row.lastAt = lastAt
                    row.lastMergedBytes = r.last
                    row.processes = r.processes
                }
                total += r.sum
                row.avgMergedBytes = total / Double(max(row.reports, 1))
                rows[key] = (row, total)
            } else {
                let row = ProcessSavingsRow(
                    nodeId: r.node, nodeName: names[r.node], kind: kind, name: r.name, reports: r.reports,
                    peakMergedBytes: r.peak, peakAt: peakAt, avgMergedBytes: r.sum / Double(max(r.reports, 1)),
                    lastMergedBytes: r.last, lastAt: lastAt, processes: r.processes)
                rows[key] = (row, r.sum)
            }
        }
        let sorted = rows.values.map(\.row).sorted {
            if $0.peakMergedBytes != $1.peakMergedBytes { return $0.peakMergedBytes > $1.peakMergedBytes }
            if $0.nodeId != $1.nodeId { return $0.nodeId < $1.nodeId }
            return ($0.kind.rawValue, $0.name) < ($1.kind.rawValue, $1.name)
        }
        return Array(sorted.prefix(max(limit, 0)))
    }

    /// The month rows a table of day rows adds up to: reports and sums added, the largest peak
    /// at its earliest report, the latest report's figures.
    static func months(of days: [DayRow]) -> [String: DayRow] {
        var out: [String: DayRow] = [:]
        for d in days {
            let month = Int64(ReportTime.monthStart(Double(d.start)))
            let key = "\(d.node)|\(month)|\(d.kind)|\(d.name)"
            guard var m = out[key] else {
                var m = d
                m.start = month
                out[key] = m
                continue
            }
            m.reports += d.reports
            m.sum += d.sum
            if d.peak > m.peak || (d.peak == m.peak && d.peakAt < m.peakAt) {
                m.peak = d.peak
                m.peakAt = d.peakAt
            }
            if d.lastAt >= m.lastAt {
                m.last = d.last
                m.lastAt = d.lastAt
                m.processes = d.processes
            }
            out[key] = m
        }
        return out
    }

    static func expectMonthsAddUp(_ db: FleetDatabase, notBefore cut: Int64? = nil, _ comment: Comment) async throws {
        let days = try await rows(db, "process_savings_day", "day_start")
        let stored = try await rows(db, "process_savings_month", "month_start")
        let expected = months(of: days.filter { cut == nil || Int64(ReportTime.monthStart(Double($0.start))) >= cut! })
        var found: [String: DayRow] = [:]
        for m in stored { found["\(m.node)|\(m.start)|\(m.kind)|\(m.name)"] = m }
        #expect(found.count == expected.count, comment)
        for (key, e) in expected {
            guard let f = found[key] else {
                Issue.record("month row \(key) missing; \(comment)")
                continue
            }
            #expect(
                f.reports == e.reports && f.peak == e.peak && f.peakAt == e.peakAt && f.last == e.last
                    && f.lastAt == e.lastAt && f.processes == e.processes && f.sum == e.sum,
                "\(key): stored \(f), days add up to \(e); \(comment)")
        }
    }

    static let kinds: [ProcessGroupKind] = [.vm, .container, .command]
    static let names = ["web-1", "Web-1", "db", "java", "a"]

    /// Samples of `nodes` nodes, each with a process report, spread over `days` days from `start`
    /// (seconds), peaks drawn from few values so that ties happen.
    static func samples(_ rng: inout Rng, start: Int64, days: Int, count: Int) -> [StatusSample] {
        (0..<count).map { i in
            var s = sample(Int64(i + 1))
            let t = Double(start) + Double(rng.int(0...(days * 86400 - 1))) + Double(rng.int(0...999)) / 1000
            s.takenAt = Date(timeIntervalSince1970: t)
            let groups = (0..<rng.int(1...3)).map { _ in
                ProcessGroupSavings(
                    kind: rng.pick(kinds), name: rng.pick(names), processes: rng.int(1...4),
                    mergingPages: Int64(rng.pick([0, 10, 20, 20, 30, 50])), zeroPages: Int64(rng.int(0...1)),
                    rmapItems: 0, profitBytes: nil)
            }
            // One report lists a group once (the agent groups by kind and name).
            var seen = Set<String>()
            let unique = groups.filter { seen.insert("\($0.kind)|\($0.name)").inserted }
            s.processes = ProcessReport(
                perProcessStats: true, processesScanned: 10, mergeableProcesses: unique.count,
                mergingProcesses: unique.count, rmapItems: 0, mergingPages: 0, groups: unique)
            return s
        }
    }

    /// Random periods: edges anywhere in a month, whole months and years, single days, periods
    /// before, around and after the data.
    static func period(_ rng: inout Rng, start: Int64, days: Int) -> (Date, Date) {
        let lo = start - 40 * 86400
        let hi = start + Int64(days + 40) * 86400
        switch rng.int(0...5) {
        case 0:  // a single day, maybe not from midnight
            let d = lo + Int64(rng.int(0...Int((hi - lo) / 86400))) * 86400 + Int64(rng.pick([0, 0, 3600, 86399]))
            return (Date(timeIntervalSince1970: Double(d)), Date(timeIntervalSince1970: Double(d + 86400)))
        case 1:  // whole calendar months
            var a = Int64(ReportTime.monthStart(Double(lo + Int64(rng.int(0...Int(hi - lo))))))
            let b = Int64(ReportTime.monthStart(Double(a + Int64(rng.int(0...200)) * 86400)))
            if a == b { a = Int64(ReportTime.monthStart(Double(a - 1))) }
            return (Date(timeIntervalSince1970: Double(a)), Date(timeIntervalSince1970: Double(b)))
        case 2:  // a year and more, around the data
            return (Date(timeIntervalSince1970: Double(start - 400 * 86400)), Date(timeIntervalSince1970: Double(hi + 86400)))
        case 3:  // ends after the data (a report up to now)
            let a = lo + Int64(rng.int(0...Int(hi - lo)))
            return (Date(timeIntervalSince1970: Double(a) + 0.25), Date(timeIntervalSince1970: Double(hi + 86400 * 3)))
        default:  // anywhere, fractional edges
            let a = Double(lo) + Double(rng.int(0...Int(hi - lo))) + 0.5
            let b = a + Double(rng.int(1...(days + 20))) * 86400 * Double(rng.int(1...10)) / 10 + 0.25
            return (Date(timeIntervalSince1970: a), Date(timeIntervalSince1970: b))
        }
    }

    static func expectReportsMatch(
        _ db: FleetDatabase, _ rng: inout Rng, nodes: [String], start: Int64, days: Int, rounds: Int, _ label: String
    ) async throws {
        let dayRows = try await rows(db, "process_savings_day", "day_start")
        var names: [String: String] = [:]
        for n in try await db.nodes(includeDeleted: true) { names[n.id] = n.name }
        for round in 0..<rounds {
            let (since, until) = period(&rng, start: start, days: days)
            let nodeId: String? = rng.int(0...3) == 0 ? (rng.int(0...4) == 0 ? "n-nobody" : rng.pick(nodes)) : nil
            let limit = rng.pick([1, 3, 10, 1000, rng.int(1...40)])
            let got = try await db.processSavings(nodeId: nodeId, since: since, until: until, limit: limit)
            let want = reference(dayRows, names: names, nodeId: nodeId, since: since, until: until, limit: limit)
            #expect(
                got == want,
                "\(label) round \(round): \(since)..<\(until) node \(nodeId ?? "all") limit \(limit): \(got.count) rows, reference \(want.count)"
            )
            if got != want { return }
        }
    }

    /// Three seeds at once, each on a database of its own (`make test` runs tests one at a time;
    /// one after the other they took 13 s of the PostgreSQL pass, waiting on round trips).
    @Test func theMonthsAndEdgeDaysReadLikeEveryDay() async throws {
        try await forEachSeedAtOnce([1, 2, 3], Self.monthsAndEdgeDays(seed:))
    }

    static func monthsAndEdgeDays(seed: UInt64) async throws {
        let (db, dir) = try makeDatabase()
        defer { try? FileManager.default.removeItem(at: dir) }
        var rng = Rng(state: seed)
        var nodes: [String] = []
        for i in 0..<3 { nodes.append(try await registerNode(db, machine: "m-\(i)", nodeToken: "kn_test\(i)").node.id) }
        // 2023-11-20 to 2024-04-08: a year's end, a leap February.
        let start: Int64 = 1_700_438_400
        let days = 140
        for node in nodes {
            var all = Self.samples(&rng, start: start, days: days, count: 120)
            // Out of order, in batches; some batches replayed (stored once).
            for i in all.indices.reversed() { all.swapAt(i, rng.int(0...i)) }
            var i = 0
            while i < all.count {
                let batch = Array(all[i..<min(all.count, i + rng.int(1...12))])
                _ = try await db.insertSamples(nodeId: node, batch)
                if rng.int(0...3) == 0 { _ = try await db.insertSamples(nodeId: node, batch) }
                i += batch.count
            }
        }
        try await Self.expectMonthsAddUp(db, "seed \(seed) after the writes")
        try await Self.expectReportsMatch(db, &rng, nodes: nodes, start: start, days: days, rounds: 150, "seed \(seed)")

        // Retention in the middle of a month: that month's remaining days are read day by day
        // (its month row is gone), the months after from their rows.
        let cut = start + Int64(rng.int(20...100)) * 86400 + Int64(rng.int(0...86399))
        let r = try await db.retentionPass(
            samplesBefore: Date(timeIntervalSince1970: 0), rollupsBefore: Date(timeIntervalSince1970: Double(cut)))
        #expect(r.processDays > 0 && r.processMonths > 0)
        let cutMonth = Int64(ReportTime.monthStart(Double(cut)))
        try await Self.expectMonthsAddUp(db, notBefore: cutMonth + (cutMonth == cut ? 0 : 1), "seed \(seed) after the cut")
        #expect(try await Self.rows(db, "process_savings_month", "month_start").allSatisfy { $0.start >= cut })
        try await Self.expectReportsMatch(db, &rng, nodes: nodes, start: start, days: days, rounds: 100, "seed \(seed) cut")

        // A late sample of a day already cut comes back as a day row (and a month row of its
        // own): the report still reads it as the days add up.
        var late = Self.samples(&rng, start: cutMonth, days: 1, count: 1)[0]
        late.seq = 10_000
        _ = try await db.insertSamples(nodeId: nodes[0], [late])
        try await Self.expectReportsMatch(db, &rng, nodes: nodes, start: start, days: days, rounds: 60, "seed \(seed) late")

        // Purge: the node's month rows go with its day rows.
        try await db.deleteNode(nodeId: nodes[1], purgeHistory: true)
        let left = try await Self.rows(db, "process_savings_month", "month_start")
        #expect(!left.isEmpty && !left.contains { $0.node == nodes[1] })
        try await Self.expectReportsMatch(db, &rng, nodes: nodes, start: start, days: days, rounds: 60, "seed \(seed) purge")
    }

    /// Two reports of one day with the same peak, the later one arriving first: the day and the
    /// month keep the earliest time of the peak, as a merge of the days in order would.
    @Test func aPeakReachedTwiceIsDatedAtItsFirstReportWhateverTheArrivalOrder() async throws {
        let (db, dir) = try makeDatabase()
        defer { try? FileManager.default.removeItem(at: dir) }
        let node = try await registerNode(db).node.id
        var first = ProcessSavingsStoreTests.withReport(1, [(.vm, "web-1", 100)])
        var second = ProcessSavingsStoreTests.withReport(2, [(.vm, "web-1", 100)])
        first.takenAt = Date(timeIntervalSince1970: 1_700_006_400)
        second.takenAt = Date(timeIntervalSince1970: 1_700_010_000)
        _ = try await db.insertSamples(nodeId: node, [second])
        _ = try await db.insertSamples(nodeId: node, [first])
        let month = try #require(try await Self.rows(db, "process_savings_month", "month_start").first)
        #expect(month.peakAt == 1_700_006_400_000 && month.lastAt == 1_700_010_000_000 && month.reports == 2)
        let row = try #require(
            try await db.processSavings(
                nodeId: node, since: Date(timeIntervalSince1970: 1_690_000_000),
                until: Date(timeIntervalSince1970: 1_710_000_000)
            ).first)
        #expect(row.peakAt == first.takenAt)
    }

    /// The migration fills the month table from the day rows already stored.
    @Test func theMigrationBackfillsTheMonthsFromTheDays() async throws {
        let (db, dir) = try makeDatabase()
        defer { try? FileManager.default.removeItem(at: dir) }
        var rng = Rng(state: 7)
        let node = try await registerNode(db).node.id
        _ = try await db.insertSamples(nodeId: node, Self.samples(&rng, start: 1_700_438_400, days: 90, count: 80))
        let before = try await Self.rows(db, "process_savings_month", "month_start")
        // The month table emptied and rebuilt by the migration's own statements.
        let migration = try #require(
            (db.engine == .sqlite ? allMigrations : allPostgresMigrations).first { $0.name.hasSuffix("process_savings_month") })
        try await db.write { db in
            try db.execute(sql: "DROP TABLE process_savings_month")
            try db.executeScript(migration.sql)
        }
        try await Self.expectMonthsAddUp(db, "after the backfill")
        let after = try await Self.rows(db, "process_savings_month", "month_start")
        #expect(after.count == before.count && after.count > 2)
    }

    @Test func thePlanReadsMonthsOnlyWhereEveryDayOfThemCounts() throws {
        let jan: Int64 = 1_704_067_200  // 2024-01-01
        let feb: Int64 = 1_706_745_600
        let mar: Int64 = 1_709_251_200
        let apr: Int64 = 1_711_929_600
        let day: Int64 = 86400
        let none: (Int64, Int64) -> Bool = { _, _ in false }
        let some: (Int64, Int64) -> Bool = { _, _ in true }
        // Mid-January to mid-March: February whole; the edges day by day when other days exist.
        var p = ProcessSavingsPlan(fromDay: jan + 14 * day, toDay: mar + 9 * day, cut: nil, hasDays: some)
        #expect(p.months == feb..<mar && p.head == jan + 14 * day..<feb && p.tail == mar..<mar + 9 * day)
        // No day rows outside the period: January and March read whole.
        p = ProcessSavingsPlan(fromDay: jan + 14 * day, toDay: mar + 9 * day, cut: nil, hasDays: none)
        #expect(p.months == jan..<apr && p.head.isEmpty && p.tail.isEmpty)
        // A cut inside February: February's remaining days one by one, March from its row.
        p = ProcessSavingsPlan(fromDay: jan, toDay: apr, cut: feb + 3 * day + 5, hasDays: none)
        #expect(p.months == mar..<apr && p.head == jan..<mar && p.tail.isEmpty)
        // One day inside a month: its days.
        p = ProcessSavingsPlan(fromDay: feb + 3 * day, toDay: feb + 4 * day, cut: nil, hasDays: some)
        #expect(p.months.isEmpty && p.head == feb + 3 * day..<feb + 4 * day && p.tail.isEmpty)
    }
}

/// Timing of the process report on 1,000 nodes x 365 days x 4 groups, only when
/// KSMFLEET_PROCESS_BENCH is set (SQLite; on PostgreSQL with KSMFLEET_TEST_POSTGRES too):
/// `KSMFLEET_PROCESS_BENCH=1 swift test --skip-build --filter ProcessSavingsBench`.
@Suite("Process savings timing", .enabled(if: ProcessInfo.processInfo.environment["KSMFLEET_PROCESS_BENCH"] != nil))
struct ProcessSavingsBench {
    @Test func aYearOfAThousandNodes() async throws {
        let (db, dir) = try makeDatabase()
        defer { try? FileManager.default.removeItem(at: dir) }
        let gib: Int64 = 1 << 30
        let end: Int64 = 1_795_003_200  // 2026-11-19 00:00 UTC: the data's last day is the 18th
        let start = end - 365 * 86400
        var t = Date()
        try await db.write { db in
            try db.execute(
                sql: """
                    INSERT INTO process_savings_day (node_id, day_start, kind, name, reports, peak_merged_bytes, peak_at,
                      last_merged_bytes, last_at, processes, sum_merged_bytes)
                    WITH RECURSIVE n(i) AS (SELECT CAST(0 AS BIGINT) UNION ALL SELECT i + 1 FROM n WHERE i < 999),
                      d(j) AS (SELECT CAST(0 AS BIGINT) UNION ALL SELECT j + 1 FROM d WHERE j < 364),
                      g(k) AS (SELECT CAST(0 AS BIGINT) UNION ALL SELECT k + 1 FROM g WHERE k < 3),
                      v AS (SELECT i, j, k, \(start) + j * 86400 AS day,
                        (k + 1) * \(gib / 8) + (i % 7) * \(gib / 64) + ((j * 7919 + k) % 1000) * 4096 AS merged
                        FROM n, d, g)
                    SELECT 'n-bench' || i, day, 'vm', 'vm-' || (i % 40) || '-' || k, 24, merged + \(gib / 32),
                      (day + 3600 * (k + 1)) * 1000, merged, (day + 86000) * 1000, 1, merged * 24.0
                    FROM v
                    """)
            try db.execute(sql: "DROP TABLE process_savings_month")
            let migration = try #require(
                (db.engine == .sqlite ? allMigrations : allPostgresMigrations).first {
                    $0.name.hasSuffix("process_savings_month")
                })
            try db.executeScript(migration.sql)
            try db.execute(sql: "ANALYZE")
        }
        print("filled 1.46 M day rows and their months in \(Date().timeIntervalSince(t)) s")
        let until = Date(timeIntervalSince1970: Double(end - 43200))
        let shapes: [(String, Date, Date, String?, Int)] = [
            ("365 d to now, top 100", until.addingTimeInterval(-365 * 86400), until, nil, 100),
            ("365 d to now, top 1000", until.addingTimeInterval(-365 * 86400), until, nil, 1000),
            ("mid-month to mid-month (15 + 15 edge days), top 100",
             Date(timeIntervalSince1970: 1_768_521_600), Date(timeIntervalSince1970: 1_784_160_000), nil, 100),
            ("365 d to now, one node", until.addingTimeInterval(-365 * 86400), until, "n-bench7", 1000),
        ]
        for (name, since, until, node, limit) in shapes {
            var times: [Double] = []
            var rows: [ProcessSavingsRow] = []
            for _ in 0..<5 {
                t = Date()
                rows = try await db.processSavings(nodeId: node, since: since, until: until, limit: limit)
                times.append(Date().timeIntervalSince(t))
            }
            times.sort()
            print("new \(db.engine) \(name): median \(Int(times[2] * 1000)) ms, min \(Int(times[0] * 1000)) ms, \(rows.count) rows")
            // The merge it replaced (the day rows of the period, fetched and merged in Swift), once.
            t = Date()
            let from = Int64(since.timeIntervalSince1970.rounded(.down))
            let days = try await db.read { db in
                try StoreRow.fetchAll(
                    db,
                    sql: """
                        SELECT node_id, day_start AS start, kind, name, reports, peak_merged_bytes, peak_at,
                          last_merged_bytes, last_at, processes, sum_merged_bytes FROM process_savings_day
                        WHERE day_start >= ? AND day_start < ? \(node == nil ? "" : "AND node_id = '\(node!)'")
                        """, arguments: [from - from % 86400, Int64(until.timeIntervalSince1970.rounded(.up))]
                ).map { r in
                    ProcessSavingsMonthTests.DayRow(
                        node: r["node_id"], start: r["start"], kind: r["kind"], name: r["name"], reports: r["reports"],
                        peak: r["peak_merged_bytes"], peakAt: r["peak_at"], last: r["last_merged_bytes"],
                        lastAt: r["last_at"], processes: r["processes"], sum: r["sum_merged_bytes"])
                }.sorted { $0.start < $1.start }
            }
            let old = ProcessSavingsMonthTests.reference(
                days, names: [:], nodeId: node, since: since, until: until, limit: limit)
            print("old \(db.engine) \(name): \(Int(Date().timeIntervalSince(t) * 1000)) ms")
            #expect(old == rows, "\(name)")
        }
    }
}
