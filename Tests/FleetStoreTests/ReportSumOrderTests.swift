import Foundation
import KSMCore
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

/// A label group's day series adds its nodes in id order (`accumulateSeries`), however the
/// node → group map was built: SQLite walks the map's JSON in its text's order, which was the
/// dictionary's own (it differs from one dictionary to the next), so two reports of the same
/// rows could give a group other doubles.
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
