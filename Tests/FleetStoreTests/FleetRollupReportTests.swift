import FleetAPI
import Foundation
import GRDB
import KSMCore
import TestSupport
import Testing

@testable import FleetStore

/// 2026-11-02T00:00:00Z.
private let t0: Double = 1_793_577_600
private let hour = 3600.0
private let day = 86400.0

/// Reports that read the fleet's hourly series from `rollup_fleet_hour` (maintained beside
/// `rollup_hour`) against the same reports summing `rollup_hour` per request, as they did before
/// that table: the two must be the same to the last bit, on random fleets over several days with
/// gaps, late samples, deletions, a purge and retention, whether the rollup service has
/// recomputed the fleet hours yet or not.
@Suite struct FleetRollupReportTests {
    /// A random fleet over `days` days: nodes on three racks, samples every 1 to 15 minutes with
    /// silences, saved bytes in whole pages.
    static func fill(_ f: ReportFixture, seed: UInt64, days: Int) async throws -> [String] {
        var rng = SeededRandom(seed: seed)
        var ids: [String] = []
        for i in 0..<Int.random(in: 3...7, using: &rng) {
            let registeredAt = t0 + Double(Int.random(in: -2...Int(Double(days) * 0.6), using: &rng)) * day / 2
            let id = try await f.node(
                "r\(seed)-\(i)", labels: ["rack": ["a", "b", "c"][Int.random(in: 0..<3, using: &rng)]],
                registeredAt: registeredAt)
            ids.append(id)
            var samples: [ReportSample] = []
            var t = (registeredAt + Double(Int.random(in: 0...200, using: &rng))).rounded(.down)
            var saved = Int64.random(in: 0...(1 << 34), using: &rng)
            let step = Double(Int.random(in: 60...900, using: &rng))
            let end = t0 + Double(days) * day
            while t < end {
                saved = max(0, saved + Int64.random(in: -(1 << 29)...(1 << 29), using: &rng)) / 4096 * 4096
                samples.append(
                    ReportSample(
                        at: t, savedBytes: saved, cpuSeconds: Double(samples.count) * 0.7, cpuPercent: 1.5,
                        fullScans: Int64(samples.count), phase: .running))
                t += step
                if Int.random(in: 0..<40, using: &rng) == 0 { t += Double(Int.random(in: 600...(3 * 86400), using: &rng)) }
            }
            // Late samples: the last part first, then the rest (hours recomputed when they arrive).
            let cut = samples.count * Int.random(in: 1...3, using: &rng) / 4
            try await f.pushSamples(id, Array(samples[cut...]))
            _ = try await f.db.rollupCatchUp(now: Date(timeIntervalSince1970: end))
            try await f.pushSamples(id, Array(samples[..<cut]))
        }
        return ids
    }

    /// Every grouping over periods from an hour to more than a week, edges on and off the hour.
    static func expectSameReports(_ f: ReportFixture, days: Int, now: Double, _ note: String) async throws {
        let end = t0 + Double(days) * day
        let periods: [(Double, Double)] = [
            (end - hour - 1234, end - 1234), (end - day, end), (end - day - 1800, end - 600),
            (t0 + 3 * day + 77, t0 + 6 * day + 5000), (t0, end), (t0 + 1800, end - 1800),
        ]
        for (a, b) in periods {
            for (by, label) in [(ReportGrouping.node, nil), (.label, "rack"), (.day, nil)] as [(ReportGrouping, String?)] {
                func report(_ fleetRollup: Bool) async throws -> SavingsReport {
                    try await f.db.savingsReport(
                        since: Date(timeIntervalSince1970: a), until: Date(timeIntervalSince1970: b), by: by,
                        label: label, policy: .default, now: Date(timeIntervalSince1970: now), exactPeaks: true,
                        fleetRollup: fleetRollup)
                }
                let fast = try await report(true)
                let reference = try await report(false)
                #expect(fast == reference, "\(note): \(by) \(a - t0)…\(b - t0)")
                #expect(fast.rows.count == reference.rows.count)
            }
        }
    }

    @Test(arguments: [UInt64(1), 2, 3, 4, 5, 6]) func fleetRollupReportsAreTheReferenceReports(seed: UInt64) async throws {
        let days = 10
        let f = try ReportFixture()
        let ids = try await Self.fill(f, seed: seed, days: days)
        let now = t0 + Double(days) * day + 1
        // Hours rolled up but their fleet rows not yet recomputed: reports sum those hours themselves.
        var passes = 0
        while try await f.db.rollupPass(now: Date(timeIntervalSince1970: now)).more && passes < 100 { passes += 1 }
        let dirty = try await f.db.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM rollup_fleet_dirty") }
        #expect((dirty ?? 0) > 0, "seed \(seed): the triggers mark the hours they change")
        try await Self.expectSameReports(f, days: days, now: now, "seed \(seed), fleet hours dirty")
        // Recomputed by the rollup service.
        _ = try await f.db.rollupCatchUp(now: Date(timeIntervalSince1970: now))
        let left = try await f.db.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM rollup_fleet_dirty") }
        #expect(left == 0)
        try await Self.expectSameReports(f, days: days, now: now, "seed \(seed), fleet hours recomputed")
        // Exact fleet peaks stored for some hours (newest first), then for every hour.
        try await f.db.fleetPeakPass(now: Date(timeIntervalSince1970: now), limit: 7)
        #expect(try await Self.knownPeaks(f) == 7)
        try await Self.expectSameReports(f, days: days, now: now, "seed \(seed), some fleet peaks stored")
        let stored = try await Self.storeAllPeaks(f, now: now)
        #expect(stored > 24, "seed \(seed): every hour with data in reach of the raw samples")
        #expect(try await Self.count(f, "SELECT COUNT(*) FROM rollup_label_hour WHERE label_key = 'rack'") >= stored)
        try await Self.expectSameReports(f, days: days, now: now, "seed \(seed), fleet peaks stored")
        // A node moves to another rack: every stored label peak is forgotten until recomputed.
        _ = try await f.db.setLabels(nodeId: ids[2], ["rack": "z"])
        #expect(try await Self.count(f, "SELECT COUNT(*) FROM rollup_fleet_hour WHERE labels_known = 1") == 0)
        try await Self.expectSameReports(f, days: days, now: now, "seed \(seed), labels changed")
        _ = try await Self.storeAllPeaks(f, now: now)
        #expect(try await Self.count(f, "SELECT COUNT(*) FROM rollup_fleet_hour WHERE labels_known = 1") == stored)
        try await Self.expectSameReports(f, days: days, now: now, "seed \(seed), label peaks stored again")
        // A purge, a deletion and retention change hour rows behind the rollup pass's back.
        try await f.db.deleteNode(nodeId: ids[0], purgeHistory: true, now: Date(timeIntervalSince1970: now))
        try await f.db.deleteNode(nodeId: ids[1], purgeHistory: false, now: Date(timeIntervalSince1970: now - 7200))
        _ = try await f.db.retentionPass(
            samplesBefore: Date(timeIntervalSince1970: t0 + 2 * day),
            rollupsBefore: Date(timeIntervalSince1970: t0 + day + 5 * hour))
        try await Self.expectSameReports(f, days: days, now: now + 60, "seed \(seed), after purge and retention")
        _ = try await f.db.rollupCatchUp(now: Date(timeIntervalSince1970: now + 60))
        try await Self.expectSameReports(f, days: days, now: now + 60, "seed \(seed), recomputed again")
        _ = try await Self.storeAllPeaks(f, now: now + 60)
        // Hours after the retention cut (and its margin) get their peaks again.
        let afterCut = try await Self.count(
            f, "SELECT COUNT(*) FROM rollup_fleet_hour WHERE peak_known = 1 AND bucket_start >= \(Int64(t0 + 2 * day + hour))")
        #expect(afterCut > 24, "seed \(seed)")
        try await Self.expectSameReports(f, days: days, now: now + 60, "seed \(seed), peaks stored again")
    }

    static func count(_ f: ReportFixture, _ sql: String) async throws -> Int {
        try await f.db.read { db in try Int.fetchOne(db, sql: sql) } ?? 0
    }

    static func knownPeaks(_ f: ReportFixture) async throws -> Int {
        try await f.db.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM rollup_fleet_hour WHERE peak_known = 1") } ?? 0
    }

    /// Runs the peak pass until it has nothing left; returns how many hours hold a known peak.
    static func storeAllPeaks(_ f: ReportFixture, now: Double) async throws -> Int {
        for _ in 0..<100 where try await f.db.fleetPeakPass(now: Date(timeIntervalSince1970: now), limit: 50) > 0 {}
        return try await knownPeaks(f)
    }

    /// Label reports up to 24 h long read the stored hour peaks of the label's groups, and a label
    /// change makes them unknown.
    @Test func labelReportsReadTheStoredGroupPeaks() async throws {
        let f = try ReportFixture()
        let a = try await f.node("peak-a", labels: ["rack": "r1"], registeredAt: t0 - day)
        let b = try await f.node("peak-b", labels: ["rack": "r2"], registeredAt: t0 - day)
        for (id, pages) in [(a, 100), (b, 300)] {
            try await f.pushSamples(
                id, stride(from: t0 - 6 * hour, to: t0, by: 60).map { ReportSample(at: $0, savedBytes: Int64(pages) * 4096, phase: .running) })
        }
        let now = t0 + 600
        _ = try await f.db.rollupCatchUp(now: Date(timeIntervalSince1970: now))
        #expect(try await Self.storeAllPeaks(f, now: now) == 6)
        func peaks() async throws -> [String: Double?] {
            let r = try await f.db.savingsReport(
                since: Date(timeIntervalSince1970: t0 - 5 * hour - 1800), until: Date(timeIntervalSince1970: now), by: .label,
                label: "rack", policy: .default, now: Date(timeIntervalSince1970: now), exactPeaks: true, fleetRollup: true)
            var out: [String: Double?] = [:]
            for row in r.rows { out[row.key] = row.peakSavedBytes }
            out["fleet"] = r.total.peakSavedBytes
            return out
        }
        #expect(try await peaks() == ["r1": 100 * 4096, "r2": 300 * 4096, "fleet": 400 * 4096])
        try await f.db.write { db in
            try db.execute(
                sql: "UPDATE rollup_label_hour SET saved_peak = ? WHERE bucket_start = ? AND label_value = 'r1'",
                arguments: [1 << 40, Int64(t0 - 3 * hour)])
        }
        #expect(try await peaks()["r1"] == Double(1 << 40), "the stored peak of r1 is read, not swept")
        // b joins r1: the stored label peaks are forgotten, the report sweeps (and the fake is gone).
        _ = try await f.db.setLabels(nodeId: b, ["rack": "r1"])
        #expect(try await peaks() == ["r1": 400 * 4096, "fleet": 400 * 4096])
        #expect(try await Self.storeAllPeaks(f, now: now) == 6)
        #expect(try await peaks() == ["r1": 400 * 4096, "fleet": 400 * 4096])
    }

    /// The reports up to 24 h long read the stored hour peaks (a wrong stored value shows), and
    /// a change to an hour's rows makes its peak unknown again until the pass recomputes it.
    @Test func reportsReadTheStoredHourPeaks() async throws {
        let f = try ReportFixture()
        let id = try await f.node("peak-a", labels: [:], registeredAt: t0 - day)
        let samples = stride(from: t0 - 6 * hour, to: t0, by: 60).map { t in
            ReportSample(at: t, savedBytes: Int64((t - t0) / 60 + 400) * 4096, phase: .running)
        }
        try await f.pushSamples(id, samples)
        let now = t0 + 600
        _ = try await f.db.rollupCatchUp(now: Date(timeIntervalSince1970: now))
        #expect(try await Self.storeAllPeaks(f, now: now) == 6)
        func fleetPeak() async throws -> Double? {
            try await f.db.savingsReport(
                since: Date(timeIntervalSince1970: t0 - 5 * hour - 1800), until: Date(timeIntervalSince1970: now), by: .node,
                label: nil, policy: .default, now: Date(timeIntervalSince1970: now), exactPeaks: true, fleetRollup: true
            ).total.peakSavedBytes
        }
        // The highest value: the last sample (t0 - 60, 399 pages), in the last whole hour.
        #expect(try await fleetPeak() == 399 * 4096)
        try await f.db.write { db in
            try db.execute(sql: "UPDATE rollup_fleet_hour SET saved_peak = ? WHERE bucket_start = ?", arguments: [1 << 40, Int64(t0 - 3 * hour)])
        }
        #expect(try await fleetPeak() == Double(1 << 40), "the stored peak of 03:00-04:00 before t0 is read, not swept")
        // A late sample in that hour: its rows change, the stored peak is forgotten.
        try await f.pushSamples(id, [ReportSample(at: t0 - 3 * hour + 30, savedBytes: 1 << 32, phase: .running)])
        _ = try await f.db.rollupCatchUp(now: Date(timeIntervalSince1970: now))
        #expect(try await Self.knownPeaks(f) < 6)
        #expect(try await fleetPeak() == Double(1 << 32))
        #expect(try await Self.storeAllPeaks(f, now: now) == 6)
        #expect(try await fleetPeak() == Double(1 << 32))
    }
}
