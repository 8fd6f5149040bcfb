import Foundation
import Testing

@testable import FleetStore

/// The server keeps SQLite's planner statistics (`refreshPlannerStatistics`): without them the
/// reports' per-node sums read the rollup rows through the `bucket_start` index and sort them all
/// for the grouping; with them each node's range of the primary key is read in order. The
/// readers that were open before the refresh must see the new statistics too.
@Suite struct PlannerStatisticsTests {
    /// The per-node sums `accumulate` runs over a period's day rows.
    static let perNodeSums = """
        EXPLAIN QUERY PLAN SELECT node_id, SUM(data_seconds), SUM(saved_byte_seconds), MIN(bucket_start), COUNT(*)
        FROM rollup_day WHERE bucket_start >= 1700006400 AND bucket_start < 1700870400 GROUP BY node_id
        """

    static func plan(_ db: FleetDatabase) async throws -> String {
        try await db.read { db in
            try StoreRow.fetchAll(db, sql: perNodeSums).map { $0[3] as String }.joined(separator: "; ")
        }
    }

    @Test func theReportsPlanComesFromStatisticsTheServerKeeps() async throws {
        let (db, dir) = try makeSQLiteDatabase()
        defer { try? FileManager.default.removeItem(at: dir) }
        // 40 nodes × 60 days of day rows: many rows per node, as any fleet's rollups after a while.
        try await db.write { db in
            var rows: [StoreArguments] = []
            for n in 0..<40 {
                for d in 0..<60 {
                    rows.append([
                        "node-\(n)", Int64(1_700_006_400 + d * 86_400), 86_400.0, 1440, 1e12, 1e7, 0.0, 0.0,
                        0.5, 1, 86_400.0, 0.0, 0.0, 0.0, 0.0, 0.0,
                    ])
                }
            }
            try db.executeValues(
                """
                INSERT INTO rollup_day (node_id, bucket_start, data_seconds, samples, saved_byte_seconds, saved_avg,
                  cpu_seconds, cpu_pct_avg, cpu_pct_peak, full_scans, running_seconds, stopped_seconds,
                  pruned_seconds, unmanaged_seconds, profit_byte_seconds, profit_seconds)
                """, rows)
        }
        let before = try await Self.plan(db)
        #expect(before.contains("USE TEMP B-TREE FOR GROUP BY"), "\(before)")
        #expect(try await db.refreshPlannerStatistics())
        // The same reader connection (the pool's only one so far) unless the refresh replaced it.
        let after = try await Self.plan(db)
        #expect(after.contains("USING PRIMARY KEY (ANY(node_id)"), "\(after)")
        #expect(!after.contains("TEMP B-TREE"), "\(after)")
    }
}
