import FleetAPI
@testable import FleetStore
import Foundation
import KSMCore
import TestSupport
import Testing

/// How long a fleet-wide `apply` takes, on the engine of the run. Not a check (no timed
/// assertion): it runs only when `KSMFLEET_APPLY_BENCH` names a node count, and prints the times.
///
///   KSMFLEET_APPLY_BENCH=10000 swift test --skip-build --filter ApplyBenchTests
///   KSMFLEET_APPLY_BENCH=10000 KSMFLEET_TEST_POSTGRES=$(cat /tmp/pg/url) swift test --skip-build --filter ApplyBenchTests
@Suite struct ApplyBenchTests {
    static let count = Int(ProcessInfo.processInfo.environment["KSMFLEET_APPLY_BENCH"] ?? "") ?? 0

    @Test(.enabled(if: count > 0, "a benchmark: set KSMFLEET_APPLY_BENCH to a node count"))
    func fleetWideApply() async throws {
        let (db, dir) = try makeDatabase()
        defer {
            try? db.close()
            try? FileManager.default.removeItem(at: dir)
        }
        let count = Self.count
        // The nodes are inserted with SQL (registering 10,000 nodes one by one takes minutes on
        // PostgreSQL); each gets what registration gives: the standard config at generation 1.
        let config = try StoredJSON.encode(KSMConfig.standardDefault.normalized())
        let now = Time.ms(Date())
        try await db.write { db in
            try db.execute(
                sql: """
                    WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < ?)
                    INSERT INTO nodes (id, name, machine_id, kernel, mem_total_bytes, numa_nodes, ksm_features,
                      agent_version, page_size, registered_at)
                    SELECT 'n-bench-' || i, 'bench-' || i, 'm-bench-' || i, '6.8.0', 17179869184, 1,
                      '["run","pages_to_scan"]', 'bench', 4096, ? FROM s
                    """, arguments: [count, now])
            try db.execute(
                sql: """
                    INSERT INTO node_configs (node_id, generation, kick_counter, config_json, updated_at, updated_by)
                    SELECT id, 1, 0, ?, ?, 'registration' FROM nodes
                    """, arguments: [config, now])
        }
        let ids = try await db.nodes().map(\.id)
        #expect(ids.count == count)

        let clock = ContinuousClock()
        var start = clock.now
        let dry = try await db.apply(ConfigPatch(run: .run), to: ids, dryRun: true)
        let dryTime = clock.now - start
        start = clock.now
        let run = try await db.apply(ConfigPatch(run: .run), to: ids, dryRun: false)
        let runTime = clock.now - start
        start = clock.now
        let stop = try await db.apply(ConfigPatch(run: .stop, thresCoef: 25), to: ids, dryRun: false)
        let stopTime = clock.now - start
        #expect(dry.allSatisfy { $0.status == .wouldChange })
        #expect(run.allSatisfy { $0.status == .changed && $0.generation == 2 })
        #expect(stop.allSatisfy { $0.status == .changed && $0.generation == 3 })
        let engine = TestStore.isPostgres ? "PostgreSQL" : "SQLite"
        print(
            "ApplyBenchTests: \(engine), \(count) nodes: dry run \(dryTime), apply (run) \(runTime), apply again (stop, thresCoef) \(stopTime)"
        )
    }
}
