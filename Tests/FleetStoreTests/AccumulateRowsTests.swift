import Foundation
import KSMCore
import TestSupport
import Testing

@testable import FleetStore

/// A report's figures from rollup rows (`accumulate`, `accumulateMonths`) are the same doubles on
/// both engines: both fold the rows they read (`accumulateRows`), SQLite's off the statement,
/// PostgreSQL's sent as arrays per node (`postgresRollupRows`), but PostgreSQL sums them in SQL
/// where no group series comes from them (`accumulateSums`). All are held here to one fold
/// written out in the test, on random rows whose sums depend on the order they are added in
/// (magnitudes from 1 to 2^60), with missing buckets, recorded gaps, NULL peaks, nodes the report
/// does not want and rows outside the range.
@Suite struct AccumulateRowsTests {
    static let day = 86_400
    static let start = 1_767_225_600  // 2026-01-01

    struct Row {
        var node: String
        var start: Int
        var stats: BucketStats
        var gaps: [Interval]
    }

    static func randomStats(_ r: inout SeededRandom) -> BucketStats {
        func value() -> Double {
            Double(r.next() % 1_000_000) * pow(2, Double(r.next() % 40)) / Double(1 + r.next() % 7)
        }
        return BucketStats(
            dataSeconds: value(), samples: Int(r.next() % 100), savedByteSeconds: value(),
            peakSavedBytes: r.next() % 4 == 0 ? nil : Int64(r.next() % (1 << 40)), cpuSeconds: value(),
            peakCPUPercent: r.next() % 4 == 0 ? nil : Double(r.next() % 10_000) / 7, fullScans: Int64(r.next() % 50),
            runningSeconds: value(), stoppedSeconds: value(), prunedSeconds: value(), unmanagedSeconds: value(),
            profitByteSeconds: value() - value(), profitSeconds: value())
    }

    /// Rows of `nodes` at `length`-second buckets from `start`, `buckets` of them, some missing,
    /// some with gaps inside them.
    static func randomRows(_ r: inout SeededRandom, nodes: [String], length: Int, buckets: Int) -> [Row] {
        var rows: [Row] = []
        for node in nodes {
            for b in 0..<buckets where r.next() % 5 != 0 {
                let s = start + b * length
                var gaps: [Interval] = []
                if r.next() % 4 == 0 {
                    let from = Double(s) + Double(r.next() % UInt64(length / 2))
                    gaps.append(Interval(from, from + Double(1 + r.next() % UInt64(length / 4))))
                }
                rows.append(Row(node: node, start: s, stats: randomStats(&r), gaps: gaps))
            }
        }
        return rows
    }

    static func insert(_ db: FleetDatabase, table: String, _ rows: [Row], nodes: [String]) async throws {
        try await db.write { db in
            try insertBareNodes(db, nodes)
            // Written in reverse: no engine hands them over in bucket order by accident.
            for row in rows.reversed() {
                let s = row.stats
                try db.execute(
                    sql: """
                        INSERT INTO \(table) (node_id, bucket_start, data_seconds, samples, saved_byte_seconds, saved_avg,
                          saved_peak, cpu_seconds, cpu_pct_avg, cpu_pct_peak, full_scans, running_seconds, stopped_seconds,
                          pruned_seconds, unmanaged_seconds, profit_byte_seconds, profit_seconds, gaps)
                        VALUES (?, ?, ?, ?, ?, 0, ?, ?, 0, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                        """,
                    arguments: [
                        row.node, Int64(row.start), s.dataSeconds, Int64(s.samples), s.savedByteSeconds, s.peakSavedBytes,
                        s.cpuSeconds, s.peakCPUPercent, s.fullScans, s.runningSeconds, s.stoppedSeconds, s.prunedSeconds,
                        s.unmanagedSeconds, s.profitByteSeconds, s.profitSeconds, FleetDatabase.encodeGaps(row.gaps),
                    ])
            }
        }
    }

    /// Accumulators the report had before this source (its other sources' figures), so that how
    /// a source's sum is merged matters too.
    static func startingAccumulators(_ r: inout SeededRandom, wanted: [String]) -> [String: NodeAccumulator] {
        var acc: [String: NodeAccumulator] = [:]
        for node in wanted { acc[node] = NodeAccumulator(stats: randomStats(&r), covered: []) }
        return acc
    }

    @Test(arguments: [1, 2, 3])
    func aSourcesFiguresAreItsRowsSummedInBucketOrder(seed: UInt64) async throws {
        let (db, dir) = try makeDatabase()
        defer { try? FileManager.default.removeItem(at: dir) }
        var r = SeededRandom(seed: seed)
        let nodes = (0..<12).map { "n-\(String(format: "%012x", $0 * 7919))" }
        let wanted = Array(nodes.dropLast(2))
        let rows = Self.randomRows(&r, nodes: nodes, length: Self.day, buckets: 40)
        try await Self.insert(db, table: "rollup_day", rows, nodes: nodes)
        // A range inside the rows: some before it and after it are not the source's.
        let range = Interval(Double(Self.start + 3 * Self.day), Double(Self.start + 35 * Self.day))
        let before = Self.startingAccumulators(&r, wanted: wanted)

        var expected = before
        for node in wanted {
            let mine = rows.filter { $0.node == node && Double($0.start) >= range.from && Double($0.start) < range.to }
                .sorted { $0.start < $1.start }
            guard let first = mine.first, let last = mine.last else { continue }
            var sum = BucketStats()
            var holes: [Interval] = []
            for (i, row) in mine.enumerated() {
                sum.merge(row.stats)
                if i > 0, row.start - mine[i - 1].start > Self.day {
                    holes.append(Interval(Double(mine[i - 1].start + Self.day), Double(row.start)))
                }
            }
            holes += mine.flatMap(\.gaps)
            expected[node]!.stats.merge(sum)
            let span = Interval(max(Double(first.start), range.from), min(Double(last.start + Self.day), range.to))
            expected[node]!.covered.append(contentsOf: ReportMath.complement(of: holes, within: span))
        }
        // Each group's day series: its nodes' saved byte-seconds added in node id order (bytes),
        // over the day's length.
        let groups = Dictionary(uniqueKeysWithValues: wanted.enumerated().map { ($1, "g\($0 % 3)") })
        var groupSums: [String: [Double: Double]] = [:]
        for node in wanted.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }) {
            for row in rows where row.node == node && Double(row.start) >= range.from && Double(row.start) < range.to {
                groupSums[groups[node]!, default: [:]][Double(row.start), default: 0] += row.stats.savedByteSeconds
            }
        }
        let expectedSeries = groupSums.mapValues { $0.mapValues { $0 / Double(Self.day) } }
        var reversedSums: [String: [Double: Double]] = [:]
        for node in wanted.sorted(by: { $1.utf8.lexicographicallyPrecedes($0.utf8) }) {
            for row in rows where row.node == node && Double(row.start) >= range.from && Double(row.start) < range.to {
                reversedSums[groups[node]!, default: [:]][Double(row.start), default: 0] += row.stats.savedByteSeconds
            }
        }
        #expect(reversedSums != groupSums, "the values must make the order of the nodes matter")
        let (got, series) = try await db.read { db in
            var acc = before
            var series: [String: [Double: Double]] = [:]
            try FleetDatabase.accumulate(db, level: .day, range: range, into: &acc, groups: groups, series: &series)
            return (acc, series)
        }
        #expect(series == expectedSeries)
        // Without groups (a report by node): on PostgreSQL summed in SQL (`accumulateSums`).
        let alone = try await db.read { db in
            var acc = before
            var series: [String: [Double: Double]] = [:]
            try FleetDatabase.accumulate(db, level: .day, range: range, into: &acc, groups: nil, series: &series)
            return acc
        }
        for (label, got) in [("with groups", got), ("without groups", alone)] {
            #expect(Set(got.keys) == Set(wanted), "\(label)")
            for node in wanted {
                #expect(got[node]?.stats == expected[node]?.stats, "\(label): \(node)")
                #expect(got[node]?.covered == expected[node]?.covered, "\(label): \(node)")
            }
        }
        // The values tell the orders apart: summed from the last row, some figure differs.
        var differs = false
        for node in wanted {
            var reversed = BucketStats()
            for row in rows.filter({ $0.node == node && Double($0.start) >= range.from && Double($0.start) < range.to })
                .sorted(by: { $0.start > $1.start })
            {
                reversed.merge(row.stats)
            }
            var other = before[node]!.stats
            other.merge(reversed)
            if other != expected[node]!.stats { differs = true }
        }
        #expect(differs, "the rows' values must make the order of the sum matter")
    }

    /// The edges the random rows rarely make: a node with one row in the range, a wanted node
    /// whose rows all lie outside it, node ids of other lengths than the rest (bytes order), a
    /// range of no length, and a range past every row.
    @Test func edgesOneRowNoRowsEmptyRange() async throws {
        let (db, dir) = try makeDatabase()
        defer { try? FileManager.default.removeItem(at: dir) }
        var r = SeededRandom(seed: 9)
        let day = Self.day
        let bulk = (0..<4).map { "n-\(String(format: "%012x", $0 * 65_537))" }
        let single = "n-1", outside = "n-ffffffffffffff"
        let nodes = bulk + [single, outside]
        var rows = Self.randomRows(&r, nodes: bulk, length: day, buckets: 20)
        let lone = Row(
            node: single, start: Self.start + 10 * day, stats: Self.randomStats(&r),
            gaps: [Interval(Double(Self.start + 10 * day + 600), Double(Self.start + 10 * day + 1200))])
        rows.append(lone)
        for b in [1, 2, 18, 19] {
            rows.append(Row(node: outside, start: Self.start + b * day, stats: Self.randomStats(&r), gaps: []))
        }
        try await Self.insert(db, table: "rollup_day", rows, nodes: nodes)
        let groups = Dictionary(uniqueKeysWithValues: nodes.enumerated().map { ($1, "g\($0 % 2)") })
        let before = Self.startingAccumulators(&r, wanted: nodes)
        func run(_ range: Interval, groups: [String: String]?) async throws -> ([String: NodeAccumulator], [String: [Double: Double]]) {
            try await db.read { db in
                var acc = before
                var series: [String: [Double: Double]] = [:]
                try FleetDatabase.accumulate(db, level: .day, range: range, into: &acc, groups: groups, series: &series)
                return (acc, series)
            }
        }
        for g in [groups, nil] as [[String: String]?] {
            let label = g == nil ? "without groups" : "with groups"
            let range = Interval(Double(Self.start + 3 * day), Double(Self.start + 17 * day))
            let (got, series) = try await run(range, groups: g)
            // The lone row: its figures once, its day less its gap covered.
            var one = before[single]!
            one.stats.merge(lone.stats)
            let s = Double(lone.start)
            one.covered.append(contentsOf: ReportMath.complement(of: lone.gaps, within: Interval(s, s + Double(day))))
            #expect(got[single]?.stats == one.stats, "\(label)")
            #expect(got[single]?.covered == one.covered, "\(label)")
            // Rows only outside the range: the node's figures are what they were, nothing covered.
            #expect(got[outside]?.stats == before[outside]?.stats, "\(label)")
            #expect(got[outside]?.covered == before[outside]?.covered, "\(label)")
            if g != nil {
                #expect(series[groups[single]!]?[s] != nil, "the lone row is in its group's series")
                #expect(!series.values.contains { $0.keys.contains { $0 < range.from || $0 >= range.to } })
            }
            // A range of no length, and one past every row: nothing changes, no series.
            for empty in [Interval(range.from, range.from), Interval(Double(Self.start + 40 * day), Double(Self.start + 50 * day))] {
                let (same, none) = try await run(empty, groups: g)
                #expect(none.isEmpty, "\(label): \(empty)")
                for node in nodes {
                    #expect(same[node]?.stats == before[node]?.stats, "\(label): \(empty) \(node)")
                    #expect(same[node]?.covered == before[node]?.covered, "\(label): \(empty) \(node)")
                }
            }
        }
    }

    @Test(arguments: [4, 5])
    func monthRowsAreMergedOneByOneInNodeAndMonthOrder(seed: UInt64) async throws {
        let (db, dir) = try makeDatabase()
        defer { try? FileManager.default.removeItem(at: dir) }
        var r = SeededRandom(seed: seed)
        let nodes = (0..<8).map { "n-\(String(format: "%012x", $0 * 104_729))" }
        let wanted = Array(nodes.dropFirst())
        // Calendar months of 2026.
        var months: [Int] = []
        var m = Double(Self.start)
        for _ in 0..<12 {
            months.append(Int(m))
            m = ReportTime.nextMonthStart(m)
        }
        var rows: [Row] = []
        for node in nodes {
            for s in months where r.next() % 5 != 0 {
                let gaps = r.next() % 3 == 0 ? [Interval(Double(s + 3600), Double(s + 7200))] : []
                rows.append(Row(node: node, start: s, stats: Self.randomStats(&r), gaps: gaps))
            }
        }
        try await Self.insert(db, table: "rollup_month", rows, nodes: nodes)
        let range = Interval(Double(months[1]), Double(months[10]))
        let before = Self.startingAccumulators(&r, wanted: wanted)
        // Groups of several nodes: their series add the nodes' rows in id order (bytes).
        let groups = Dictionary(uniqueKeysWithValues: wanted.enumerated().map { ($1, "g\($0 % 2)") })

        var expected = before
        var expectedSeries: [String: [Double: Double]] = [:]
        for node in wanted.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }) {
            for row in rows.filter({ $0.node == node && Double($0.start) >= range.from && Double($0.start) < range.to })
                .sorted(by: { $0.start < $1.start })
            {
                let s = Double(row.start)
                let next = ReportTime.nextMonthStart(s)
                expected[node]!.stats.merge(row.stats)
                expected[node]!.covered.append(
                    contentsOf: ReportMath.complement(of: row.gaps, within: Interval(s, min(next, range.to))))
                expectedSeries[groups[node]!, default: [:]][s, default: 0] += row.stats.savedByteSeconds / (next - s)
            }
        }
        let (got, series) = try await db.read { db in
            var acc = before
            var series: [String: [Double: Double]] = [:]
            try FleetDatabase.accumulateMonths(db, range: range, into: &acc, groups: groups, series: &series)
            return (acc, series)
        }
        for node in wanted {
            #expect(got[node]?.stats == expected[node]?.stats, "\(node)")
            #expect(got[node]?.covered == expected[node]?.covered, "\(node)")
        }
        #expect(series == expectedSeries)
        var reversedSeries: [String: [Double: Double]] = [:]
        for node in wanted.sorted(by: { $1.utf8.lexicographicallyPrecedes($0.utf8) }) {
            for row in rows where row.node == node && Double(row.start) >= range.from && Double(row.start) < range.to {
                let s = Double(row.start)
                reversedSeries[groups[node]!, default: [:]][s, default: 0] +=
                    row.stats.savedByteSeconds / (ReportTime.nextMonthStart(s) - s)
            }
        }
        #expect(reversedSeries != expectedSeries, "the values must make the order of the nodes matter")
    }
}
