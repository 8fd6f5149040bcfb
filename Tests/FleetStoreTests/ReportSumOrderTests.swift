import Foundation
import KSMCore
import TestSupport
import Testing

@testable import FleetStore

/// Reports add month rows in node id and month order (`accumulateMonths`), whatever order the
/// engine would hand them over in: a node's figures add its months in month order, a group's
/// month series adds its nodes in id order. Doubles added in another order are other doubles.
/// The rows here are written in reverse (PostgreSQL's sequential scan returns them so), and the
/// node that sorts first has the highest monthly average (SQLite's `rollup_month_start` index
/// returns it last), with values whose sums depend on the order (2^53 + 1 + 1 is 2^53 added
/// from the left, 2^53 + 2 added from the right).
@Suite struct MonthRowOrderTests {
    static let jan = 1_767_225_600  // 2026-01-01
    static let feb = 1_769_904_000
    static let mar = 1_772_323_200
    static let apr = 1_775_001_600

    @Test func monthRowsAreAddedInNodeAndMonthOrder() async throws {
        let (db, dir) = try makeDatabase()
        defer { try? FileManager.default.removeItem(at: dir) }
        let big = 9_007_199_254_740_992.0  // 2^53
        // (node, month, saved byte-seconds, data seconds), written in this order: reversed.
        let rows: [(String, Int, Double, Double)] = [
            ("n-c", Self.jan, 2, 10), ("n-b", Self.jan, 2, 10),
            ("n-a", Self.mar, 5, 1), ("n-a", Self.feb, 5, 1), ("n-a", Self.jan, big, big),
        ]
        try await db.write { db in
            // The nodes, as registration writes them (reports read the rows of known nodes).
            try insertBareNodes(db, ["n-a", "n-b", "n-c"])
            for (node, month, saved, data) in rows {
                try db.execute(
                    sql: """
                        INSERT INTO rollup_month (node_id, bucket_start, data_seconds, samples, saved_byte_seconds,
                          saved_avg, cpu_seconds, cpu_pct_avg, full_scans, running_seconds, stopped_seconds,
                          pruned_seconds, unmanaged_seconds, profit_byte_seconds, profit_seconds)
                        VALUES (?, ?, ?, 1, ?, ?, 0, 0, 0, ?, 0, 0, 0, 0, 0)
                        """, arguments: [node, Int64(month), data, saved, saved / data, data])
            }
        }
        let (acc, series) = try await db.read { db in
            var acc: [String: NodeAccumulator] = ["n-a": .init(), "n-b": .init(), "n-c": .init()]
            var series: [String: [Double: Double]] = [:]
            try FleetDatabase.accumulateMonths(
                db, range: Interval(Double(Self.jan), Double(Self.apr)), into: &acc,
                groups: ["n-a": "fleet", "n-b": "fleet", "n-c": "fleet"], series: &series)
            return (acc, series)
        }
        // n-a's months in month order: 2^53 first, then 1 and 1, each lost to rounding.
        let monthOrder = (big + 1) + 1
        #expect(monthOrder != (1 + 1) + big, "the values must tell the orders apart")
        #expect(acc["n-a"]?.stats.dataSeconds == monthOrder)
        #expect(acc["n-a"]?.stats.runningSeconds == monthOrder)
        // January's fleet series: n-a, n-b, n-c, each over January's length.
        let length = Double(Self.feb - Self.jan)
        let idOrder = ((0 + big / length) + 2 / length) + 2 / length
        #expect(idOrder != ((0 + 2 / length) + 2 / length) + big / length, "the values must tell the orders apart")
        #expect(series["fleet"]?[Double(Self.jan)] == idOrder)
        #expect(series["fleet"]?[Double(Self.feb)] == 5 / (Double(Self.mar - Self.feb)))
    }
}

/// A label group's day series adds its nodes in id order (`accumulateSeries`, from the rows),
/// however the node → group map was built: SQLite once walked the map's JSON in its text's
/// order, which was the dictionary's own (it differs from one dictionary to the next), so two
/// reports of the same rows could give a group other doubles.
@Suite struct GroupSeriesOrderTests {
    @Test func aGroupsSeriesAddsItsNodesInIdOrderWhateverTheMapsOrder() async throws {
        let (db, dir) = try makeDatabase()
        defer { try? FileManager.default.removeItem(at: dir) }
        let big = 9_007_199_254_740_992.0  // 2^53
        let day = 1_767_225_600
        // n-a saved 2^53 byte-seconds, n-b and n-c one each: 2^53 + 1 + 1 is 2^53 added from the
        // left, 2^53 + 2 from the right.
        let saved: [String: Double] = ["n-a": big, "n-b": 1, "n-c": 1]
        try await db.write { db in
            // The nodes (a report reads the rows of the nodes it knows).
            try insertBareNodes(db, Array(saved.keys) + (0..<40).map { "node-\($0)" })
            for (node, s) in saved {
                try db.execute(
                    sql: """
                        INSERT INTO rollup_day (node_id, bucket_start, data_seconds, samples, saved_byte_seconds,
                          saved_avg, cpu_seconds, cpu_pct_avg, full_scans, running_seconds, stopped_seconds,
                          pruned_seconds, unmanaged_seconds, profit_byte_seconds, profit_seconds)
                        VALUES (?, ?, 86400, 1, ?, ?, 0, 0, 0, 86400, 0, 0, 0, 0, 0)
                        """, arguments: [node, Int64(day), s, s / 86_400])
            }
            // Other nodes' days before it (as any fleet's rollups after a while): with the
            // statistics below, SQLite plans what it plans for a real fleet, walking the map first.
            var rows: [StoreArguments] = []
            for n in 0..<40 {
                for d in 1...60 {
                    rows.append([
                        "node-\(n)", Int64(day - d * 86_400), 86_400.0, 1, 1e12, 1e7, 0.0, 0.0, 0, 86_400.0, 0.0, 0.0,
                        0.0, 0.0, 0.0,
                    ])
                }
            }
            try db.executeValues(
                """
                INSERT INTO rollup_day (node_id, bucket_start, data_seconds, samples, saved_byte_seconds, saved_avg,
                  cpu_seconds, cpu_pct_avg, full_scans, running_seconds, stopped_seconds, pruned_seconds,
                  unmanaged_seconds, profit_byte_seconds, profit_seconds)
                """, rows)
        }
        try await db.refreshPlannerStatistics()
        let idOrder = ((big + 1) + 1) / 86_400
        #expect(idOrder != ((1 + 1) + big) / 86_400, "the values must tell the orders apart")
        // Maps of the same pairs built in every insertion order and at several capacities:
        // dictionaries whose own orders differ.
        let ids = ["n-a", "n-b", "n-c"]
        let orders = [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]]
        for capacity in [0, 3, 17, 64, 1000] {
            for order in orders {
                var groups = [String: String](minimumCapacity: capacity)
                for i in order { groups[ids[i]] = "g" }
                groups["n-z"] = "other"
                let map = groups
                let series = try await db.read { db in
                    var series: [String: [Double: Double]] = [:]
                    try FleetDatabase.accumulateSeries(
                        db, level: .day, range: Interval(Double(day), Double(day + 86_400)), groups: map, series: &series, fleetRollup: true)
                    return series
                }
                #expect(series["g"]?[Double(day)] == idOrder, "capacity \(capacity), order \(order)")
            }
        }
    }
}

/// Reports fold their nodes in the bytes order of their names (`reportNodes`): a by-node report's
/// rows come in that order and its total, and each label group's, adds them in that order. On
/// PostgreSQL a name's order follows the column's collation, the database's by default: under
/// one that looks past punctuation (glibc's en_US, ICU's `ka-shifted`) `web1` sorts before
/// `web-2`, in bytes (SQLite's, and the C collation the test server uses) after it.
@Suite struct ReportNodeOrderTests {
    @Test func nodesComeInTheBytesOrderOfTheirNamesWhateverTheCollation() async throws {
        let (db, dir) = try makeDatabase()
        defer { try? FileManager.default.removeItem(at: dir) }
        if db.engine == .postgres {
            try await db.write { db in
                try db.execute(
                    sql: "CREATE COLLATION IF NOT EXISTS ksmfleet_test_shifted (provider = icu, locale = 'en-u-ka-shifted')")
                try db.execute(sql: "ALTER TABLE nodes ALTER COLUMN name TYPE TEXT COLLATE ksmfleet_test_shifted")
            }
        }
        let names = ["web1", "web-2", "web-10", "db.a", "db-b", "web2"]
        for (i, host) in names.enumerated() {
            let enrollment = try await db.createEnrollmentToken(description: nil, expiresAt: nil)
            _ = try await db.register(
                registerRequest("m-\(i)", host: host), enrollmentTokenHash: Secrets.hash(enrollment.token ?? ""),
                nodeTokenHash: Secrets.hash("kn_\(i)"))
        }
        let read = try await db.read { db in
            try FleetDatabase.reportNodes(db, period: Interval(0, 4e9)).map(\.name)
        }
        let bytes = names.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        #expect(read == bytes)
        #expect(bytes.firstIndex(of: "web-2")! < bytes.firstIndex(of: "web1")!)
    }
}

/// The fleet's and the label groups' sums over the nodes' rows of one bucket add them in one
/// order on both engines (`StoreDB.bucketRowOrder`): that of the covering index
/// `rollup_<level>_start`, by average saving, as SQLite reads them. PostgreSQL added them in node
/// id order, so the same rows gave the two engines other doubles, and `migrate-data` copied sums
/// PostgreSQL would not have computed. Here the node first by id saves 2^53 byte-seconds and has
/// the highest average, so it comes last in the index: 1 + 1 + 2^53 is 2^53 + 2, while
/// 2^53 + 1 + 1 (node id order) is 2^53.
@Suite struct BucketRowOrderTests {
    static let hour = 1_767_225_600  // 2026-01-01 00:00
    static let big = 9_007_199_254_740_992.0  // 2^53
    static let saved: [(node: String, saved: Double)] = [("n-a", big), ("n-b", 1), ("n-c", 1)]
    /// 1 + 1 + 2^53, each divided by `length` first when it is given.
    static func indexOrder(over length: Double = 1) -> Double { ((1 / length + 1 / length) + big / length) }
    static func idOrder(over length: Double = 1) -> Double { ((big / length + 1 / length) + 1 / length) }

    static func insert(_ db: StoreDB, table: String, start: Int, length: Double, node: String, saved: Double) throws {
        try db.execute(
            sql: """
                INSERT INTO \(table) (node_id, bucket_start, data_seconds, samples, saved_byte_seconds,
                  saved_avg, cpu_seconds, cpu_pct_avg, full_scans, running_seconds, stopped_seconds,
                  pruned_seconds, unmanaged_seconds, profit_byte_seconds, profit_seconds)
                VALUES (?, ?, ?, 1, ?, ?, 0, ?, 0, ?, 0, 0, 0, 0, 0)
                """, arguments: [node, Int64(start), length, saved, saved / length, saved / length, length])
    }

    @Test func bucketSumsAddTheRowsInTheIndexsOrderOnBothEngines() async throws {
        let (db, dir) = try makeDatabase()
        defer { try? FileManager.default.removeItem(at: dir) }
        #expect(Self.indexOrder() != Self.idOrder(), "the values must tell the orders apart")
        #expect(Self.indexOrder(over: 3600) != Self.idOrder(over: 3600), "the values must tell the orders apart")
        #expect(Self.indexOrder() / 86_400 != Self.idOrder() / 86_400, "the values must tell the orders apart")
        try await db.write { db in
            for (node, saved) in Self.saved {
                try Self.insert(db, table: "rollup_hour", start: Self.hour, length: 3600, node: node, saved: saved)
                try Self.insert(db, table: "rollup_day", start: Self.hour, length: 86_400, node: node, saved: saved)
            }
            // Other nodes' earlier rows, as in any fleet after a while, and the planner's
            // statistics of them: SQLite then plans as it does for a real fleet.
            for n in 0..<40 {
                for h in 1...48 {
                    try Self.insert(db, table: "rollup_hour", start: Self.hour - h * 3600, length: 3600, node: "node-\(n)", saved: 1e12)
                }
            }
            _ = try FleetDatabase.flushFleetHours(db, limit: 1000)
        }
        try await db.refreshPlannerStatistics()
        let hour = Int64(Self.hour)
        let labels = ["n-a": ["rack": "r1"], "n-b": ["rack": "r1"], "n-c": ["rack": "r1"]]
        let (stored, summed, byLabel, hourSeries, daySeries) = try await db.read { db in
            let stored = try Double.fetchOne(
                db, sql: "SELECT saved_byte_seconds FROM rollup_fleet_hour WHERE bucket_start = ?", arguments: [hour])
            let summed = try FleetDatabase.fleetHourSum(db, hour: hour)
            let byLabel = try FleetDatabase.labelHourSums(db, from: hour, to: hour + 3600, keys: ["rack"], labels: labels)
            let fleet = ["n-a": "fleet", "n-b": "fleet", "n-c": "fleet"]
            var hourSeries: [String: [Double: Double]] = [:]
            try FleetDatabase.accumulateSeries(
                db, level: .hour, range: Interval(Double(hour), Double(hour + 3600)), groups: fleet,
                series: &hourSeries, fleetRollup: false)
            var daySeries: [String: [Double: Double]] = [:]
            try FleetDatabase.accumulateSeries(
                db, level: .day, range: Interval(Double(hour), Double(hour + 86_400)), groups: fleet,
                series: &daySeries, fleetRollup: true)
            return (stored, summed, byLabel, hourSeries, daySeries)
        }
        #expect(stored == Self.indexOrder(), "the stored fleet hour")
        #expect(summed == Self.indexOrder(), "the fleet hour summed")
        #expect(byLabel[hour]?["rack"]?["r1"] == Self.indexOrder(), "the label group's hour")
        #expect(hourSeries["fleet"]?[Double(hour)] == Self.indexOrder() / 3600, "the fleet's hour series")
        #expect(daySeries["fleet"]?[Double(hour)] == Self.indexOrder() / 86_400, "the fleet's day series")
        // The dashboard's chart adds the rows' averages (saved and CPU %) in the same order.
        let chart = try await db.fleetSeries(
            since: Date(timeIntervalSince1970: Double(hour)), until: Date(timeIntervalSince1970: Double(hour + 3600)),
            level: .hour)
        #expect(chart.count == 1)
        #expect(chart.first?.savedBytes == Self.indexOrder(over: 3600), "the chart's saved bytes")
        #expect(chart.first?.cpuPercent == Self.indexOrder(over: 3600), "the chart's CPU %")
        #expect(chart.first?.nodes == 3)
    }

    /// SQLite's migration 0049 adds the stored fleet hours again left to right (`ksm_sum`): a
    /// server built against SQLite 3.43 or later stored compensated sums. A stored hour without
    /// rows keeps its value.
    @Test(.enabled(if: !TestStore.isPostgres, "SQLite's migration (only the SQLite pass runs it)"))
    func sqliteStoredSumsAreAddedAgainLeftToRight() async throws {
        let (db, dir) = try makeDatabase()
        defer { try? FileManager.default.removeItem(at: dir) }
        let hour = Int64(Self.hour)
        let empty = hour - 3600
        let migration = try #require(allMigrations.first { $0.name.hasSuffix("fleet_hour_left_to_right") })
        let (stored, kept) = try await db.write { db in
            for (node, saved) in Self.saved {
                try Self.insert(db, table: "rollup_hour", start: Self.hour, length: 3600, node: node, saved: saved)
            }
            _ = try FleetDatabase.flushFleetHours(db, limit: 1000)
            // What an earlier server stored: another sum of the same rows, and an hour whose rows
            // are gone.
            try db.execute(
                sql: "UPDATE rollup_fleet_hour SET saved_byte_seconds = ? WHERE bucket_start = ?",
                arguments: [Self.idOrder(), hour])
            try db.execute(
                sql: "INSERT INTO rollup_fleet_hour (bucket_start, saved_byte_seconds) VALUES (?, 7)", arguments: [empty])
            try db.executeScript(migration.sql)
            let fetch = { (h: Int64) in
                try Double.fetchOne(db, sql: "SELECT saved_byte_seconds FROM rollup_fleet_hour WHERE bucket_start = ?", arguments: [h])
            }
            return (try fetch(hour), try fetch(empty))
        }
        #expect(stored == Self.indexOrder())
        #expect(kept == 7)
    }

    /// PostgreSQL's migration 0013 computes the stored fleet hours again in the index's order
    /// (they were added in node id order) and leaves the label groups' sums to be computed again.
    @Test(.enabled(if: TestStore.isPostgres, "PostgreSQL's migration (only the PostgreSQL pass runs it)"))
    func postgresStoredSumsAreAddedAgainInTheIndexsOrder() async throws {
        let (db, dir) = try makeDatabase()
        defer { try? FileManager.default.removeItem(at: dir) }
        let hour = Int64(Self.hour)
        let migration = try #require(allPostgresMigrations.first { $0.name.hasSuffix("bucket_row_order") })
        let (stored, labelsKnown) = try await db.write { db in
            for (node, saved) in Self.saved {
                try Self.insert(db, table: "rollup_hour", start: Self.hour, length: 3600, node: node, saved: saved)
            }
            _ = try FleetDatabase.flushFleetHours(db, limit: 1000)
            // What an earlier PostgreSQL server stored: the rows added in node id order.
            try db.execute(
                sql: "UPDATE rollup_fleet_hour SET saved_byte_seconds = ?, label_sums_known = 1 WHERE bucket_start = ?",
                arguments: [Self.idOrder(), hour])
            try db.executeScript(migration.sql)
            let stored = try Double.fetchOne(
                db, sql: "SELECT saved_byte_seconds FROM rollup_fleet_hour WHERE bucket_start = ?", arguments: [hour])
            let known = try Int64.fetchOne(
                db, sql: "SELECT label_sums_known FROM rollup_fleet_hour WHERE bucket_start = ?", arguments: [hour])
            return (stored, known)
        }
        #expect(stored == Self.indexOrder())
        #expect(labelsKnown == 0)
    }
}
