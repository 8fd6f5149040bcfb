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
/// Bytes of a page, a Double: the expected peaks below are dictionaries of `Double?`, which
/// integer literals times 4096 made take 25 s to type-check.
private let page = 4096.0

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
    /// The reference sweeps every raw sample of a period of any length (while they are kept).
    /// Reports reading stored hour peaks must be the reference to the last bit when every hour's
    /// peaks are stored (`allPeaksStored`) or the period is short enough for the sweep budget
    /// whatever is stored; otherwise each row is the reference's row where its peak is exact, and
    /// where the budget refused the sweep, the row of the reference without exact peaks (the
    /// rollup lower bound).
    static func expectSameReports(
        _ f: ReportFixture, days: Int, now: Double, _ note: String, allPeaksStored: Bool = false
    ) async throws {
        let end = t0 + Double(days) * day
        let periods: [(Double, Double)] = [
            (end - hour - 1234, end - 1234), (end - day, end), (end - day - 1800, end - 600),
            (t0 + 3 * day + 77, t0 + 6 * day + 5000), (t0, end), (t0 + 1800, end - 1800),
        ]
        for (a, b) in periods {
            for (by, label) in [(ReportGrouping.node, nil), (.label, "rack"), (.day, nil)] as [(ReportGrouping, String?)] {
                func report(_ fleetRollup: Bool, exactPeaks: Bool = true) async throws -> SavingsReport {
                    try await f.db.savingsReport(
                        since: Date(timeIntervalSince1970: a), until: Date(timeIntervalSince1970: b), by: by,
                        label: label, policy: .default, now: Date(timeIntervalSince1970: now), exactPeaks: exactPeaks,
                        fleetRollup: fleetRollup)
                }
                let fast = try await report(true)
                let reference = try await report(false)
                if let label {
                    // The groups' series themselves (peaks show them only where no member's own
                    // peak is higher): stored fleet and label sums where stored, else summed.
                    func series(_ fleetRollup: Bool) async throws -> [String: [Double: Double]] {
                        try await f.db.read { db in
                            try FleetDatabase.nodeInputs(
                                db, period: Interval(a, b), policy: .default, now: now, groups: { $0.labels[label] ?? "" },
                                label: label, fleetRollup: fleetRollup
                            ).series
                        }
                    }
                    #expect(try await series(true) == series(false), "\(note): \(label) series \(a - t0)…\(b - t0)")
                }
                if by == .day {
                    // The by-day total is the by-node total (its peak aside: read per day), up to
                    // rounding: the two add the same rows in other orders.
                    let total = fast.total
                    let byNode = try await f.db.savingsReport(
                        since: Date(timeIntervalSince1970: a), until: Date(timeIntervalSince1970: b), by: .node,
                        label: nil, policy: .default, now: Date(timeIntervalSince1970: now), exactPeaks: true,
                        fleetRollup: true
                    ).total
                    let what: Comment = "\(note): by-day total \(a - t0)…\(b - t0)"
                    func close(_ x: Double?, _ y: Double?) -> Bool {
                        guard let x, let y else { return x == nil && y == nil }
                        return abs(x - y) <= 1e-9 * max(abs(x), abs(y), 1)
                    }
                    #expect(total.nodes == byNode.nodes && total.gaps == byNode.gaps, what)
                    #expect(close(total.periodHours, byNode.periodHours) && close(total.coverage, byNode.coverage), what)
                    #expect(close(total.avgSavedBytes, byNode.avgSavedBytes) && close(total.savedGiBHours, byNode.savedGiBHours), what)
                    #expect(close(total.dataHours, byNode.dataHours) && close(total.ksmdCPUHours, byNode.ksmdCPUHours), what)
                    #expect(close(total.avgKsmdCPUCores, byNode.avgKsmdCPUCores), what)
                    #expect(total.phaseHours.keys == byNode.phaseHours.keys, what)
                    for (k, v) in total.phaseHours { #expect(close(v, byNode.phaseHours[k]), what) }
                }
                #expect(fast.rows.count == reference.rows.count)
                let what: Comment = "\(note): \(by) \(a - t0)…\(b - t0)"
                if allPeaksStored || Int((b - a) / hour) + 2 <= PeakSweepBudget.defaultHours {
                    #expect(fast == reference, what)
                    continue
                }
                let lower = try await report(false, exactPeaks: false)
                let rows = (fast.rows + [fast.total], reference.rows + [reference.total], lower.rows + [lower.total])
                guard rows.0.count == rows.1.count, rows.0.count == rows.2.count else {
                    Issue.record("rows differ in number: \(what)")
                    continue
                }
                for i in rows.0.indices {
                    #expect(rows.0[i] == (rows.0[i].peakBasis == .samples ? rows.1[i] : rows.2[i]), what)
                }
                #expect(fast.generatedAt == reference.generatedAt)
            }
        }
    }

    /// Six random fleets, each on its own database, at once: `make test` runs tests one at a
    /// time, and one after the other these took 94 s of the PostgreSQL pass (the test process
    /// decoding rows in a debug build; 13 s on SQLite). Most expectations name their seed.
    @Test func fleetRollupReportsAreTheReferenceReports() async throws {
        try await forEachSeedAtOnce([1, 2, 3, 4, 5, 6], Self.referenceReports(seed:))
    }

    static func referenceReports(seed: UInt64) async throws {
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
        // Recomputed by the rollup service: the fleet hours, then the fleet days.
        _ = try await f.db.rollupCatchUp(now: Date(timeIntervalSince1970: now))
        let left = try await f.db.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM rollup_fleet_dirty") }
        #expect(left == 0)
        // The last hour's slices packed (the fast reports read them from here on).
        try await f.db.slicePackPass(now: Date(timeIntervalSince1970: now), limit: 100)
        #expect(try await Self.currentSlices(f) == Self.packableSlices(f, now: now), "seed \(seed)")
        // The label groups' sums of each hour are computed by their own pass.
        #expect(try await Self.count(f, "SELECT COUNT(*) FROM rollup_fleet_hour WHERE label_sums_known = 1") == 0)
        try await Self.expectSameReports(f, days: days, now: now, "seed \(seed), some label sums stored")
        #expect(try await f.db.flushLabelSums() > 0)
        #expect(try await Self.count(f, "SELECT COUNT(*) FROM rollup_fleet_hour WHERE label_sums_known = 0") == 0)
        #expect(try await Self.count(f, "SELECT COUNT(DISTINCT bucket_start) FROM rollup_label_sum WHERE label_key = 'rack'") > 24)
        #expect(try await Self.count(f, "SELECT COUNT(*) FROM rollup_fleet_day_dirty") > 0, "seed \(seed): days marked")
        try await Self.expectSameReports(f, days: days, now: now, "seed \(seed), fleet hours recomputed, days dirty")
        #expect(try await f.db.flushFleetDays(batch: 3, now: Date(timeIntervalSince1970: now + day)) > days / 2)
        #expect(try await Self.count(f, "SELECT COUNT(*) FROM rollup_fleet_day_dirty") == 0)
        #expect(try await Self.count(f, "SELECT COUNT(*) FROM rollup_fleet_day") > days / 2)
        try await Self.expectSameReports(f, days: days, now: now, "seed \(seed), fleet hours and days recomputed")
        // Exact fleet peaks stored for some hours (newest first), then for every hour.
        try await f.db.fleetPeakPass(now: Date(timeIntervalSince1970: now), limit: 7)
        #expect(try await Self.knownPeaks(f) == 7)
        try await Self.expectSameReports(f, days: days, now: now, "seed \(seed), some fleet peaks stored")
        let stored = try await Self.storeAllPeaks(f, now: now)
        #expect(stored > 24, "seed \(seed): every hour with data in reach of the raw samples")
        #expect(try await Self.count(f, "SELECT COUNT(*) FROM rollup_label_hour WHERE label_key = 'rack'") >= stored)
        try await Self.expectSameReports(f, days: days, now: now, "seed \(seed), fleet peaks stored", allPeaksStored: true)
        // A node moves to another rack: every stored label peak is forgotten until recomputed.
        _ = try await f.db.setLabels(nodeId: ids[2], ["rack": "z"])
        #expect(try await Self.count(f, "SELECT COUNT(*) FROM rollup_fleet_hour WHERE labels_known = 1") == 0)
        #expect(try await Self.count(f, "SELECT COUNT(*) FROM rollup_fleet_hour WHERE label_sums_known = 1") == 0)
        try await Self.expectSameReports(f, days: days, now: now, "seed \(seed), labels changed")
        // The label groups' sums of some hours (newest first), then of all of them, again.
        let hours = try await Self.count(f, "SELECT COUNT(*) FROM rollup_fleet_hour")
        #expect(try await f.db.flushLabelSums(batch: 5) == hours)
        #expect(try await Self.count(f, "SELECT COUNT(*) FROM rollup_fleet_hour WHERE label_sums_known = 0") == 0)
        #expect(try await Self.count(f, "SELECT COUNT(*) FROM rollup_label_sum WHERE label_value = 'z'") > 0)
        try await Self.expectSameReports(f, days: days, now: now, "seed \(seed), label sums stored again")
        _ = try await Self.storeAllPeaks(f, now: now)
        #expect(try await Self.count(f, "SELECT COUNT(*) FROM rollup_fleet_hour WHERE labels_known = 1") == stored)
        try await Self.expectSameReports(f, days: days, now: now, "seed \(seed), label peaks stored again", allPeaksStored: true)
        // A purge, a deletion and retention change hour rows behind the rollup pass's back.
        try await f.db.deleteNode(nodeId: ids[0], purgeHistory: true, now: Date(timeIntervalSince1970: now))
        try await f.db.deleteNode(nodeId: ids[1], purgeHistory: false, now: Date(timeIntervalSince1970: now - 7200))
        _ = try await f.db.retentionPass(
            samplesBefore: Date(timeIntervalSince1970: t0 + 2 * day),
            rollupsBefore: Date(timeIntervalSince1970: t0 + day + 5 * hour))
        #expect(try await Self.currentSlices(f) == 0, "seed \(seed): the purge moved every slice's version")
        try await Self.expectSameReports(f, days: days, now: now + 60, "seed \(seed), after purge and retention")
        _ = try await f.db.rollupCatchUp(now: Date(timeIntervalSince1970: now + 60))
        try await f.db.slicePackPass(now: Date(timeIntervalSince1970: now + 60), limit: 100)
        #expect(try await Self.currentSlices(f) == Self.packableSlices(f, now: now + 60), "seed \(seed): packed again")
        try await f.db.flushFleetDays(now: Date(timeIntervalSince1970: now + 60 + day))
        try await Self.expectSameReports(f, days: days, now: now + 60, "seed \(seed), recomputed again")
        _ = try await Self.storeAllPeaks(f, now: now + 60)
        // Hours after the retention cut (and its margin) get their peaks again.
        let afterCut = try await Self.count(
            f, "SELECT COUNT(*) FROM rollup_fleet_hour WHERE peak_known = 1 AND bucket_start >= \(Int64(t0 + 2 * day + hour))")
        #expect(afterCut > 24, "seed \(seed)")
        try await Self.expectSameReports(f, days: days, now: now + 60, "seed \(seed), peaks stored again", allPeaksStored: true)
    }

    static func count(_ f: ReportFixture, _ sql: String) async throws -> Int {
        try await f.db.read { db in try Int.fetchOne(db, sql: sql) } ?? 0
    }

    /// Replaces the pack of the hour or slice at `start` (`table`, keyed by `key`) with one in
    /// which `node` saved twice as much as its rows say.
    static func fakePack(
        _ f: ReportFixture, table: String, key: String, start: Int64, seconds: Int64, doubling node: String
    ) async throws {
        let (fromMs, toMs) = (start * 1000, (start + seconds) * 1000)
        let fake = try await f.db.read { db -> [UInt8] in
            var read = try FleetDatabase.rawSamples(db, from: fromMs, to: toMs, full: true, packs: false, wanted: { _ in true }).sorted
            for i in read.indices where read[i].0 == node {
                for j in read[i].1.indices { read[i].1[j].savedBytes *= 2 }
            }
            return RawHourPack.encode(read, fromMs: fromMs, toMs: toMs)
        }
        let replaced = try await f.db.write { db in
            try db.execute(sql: "UPDATE \(table) SET data = ? WHERE \(key) = ?", arguments: [Data(fake), start])
            return db.changesCount
        }
        #expect(replaced == 1, "a pack to replace")
    }

    /// Slices whose pack is current.
    static func currentSlices(_ f: ReportFixture) async throws -> Int {
        try await count(f, "SELECT COUNT(*) FROM raw_slice_pack WHERE pack_version = version")
    }

    /// Slices a slice pass at `now` packs (over by `sliceSettleSeconds`, kept).
    static func packableSlices(_ f: ReportFixture, now: Double) async throws -> Int {
        let (lo, hi) = (Int64(now - FleetDatabase.sliceKeepSeconds), Int64(now - FleetDatabase.sliceSettleSeconds) - 600)
        return try await count(f, "SELECT COUNT(*) FROM raw_slice_pack WHERE slice_start >= \(lo) AND slice_start <= \(hi)")
    }

    static func knownPeaks(_ f: ReportFixture) async throws -> Int {
        try await f.db.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM rollup_fleet_hour WHERE peak_known = 1") } ?? 0
    }

    /// Runs the peak pass until it has nothing left; returns how many hours hold a known peak.
    static func storeAllPeaks(_ f: ReportFixture, now: Double) async throws -> Int {
        for _ in 0..<100 where try await f.db.fleetPeakPass(now: Date(timeIntervalSince1970: now), limit: 50) > 0 {}
        return try await knownPeaks(f)
    }

    /// Nodes saving a constant number of pages each, sampled every minute over the six hours
    /// before t0, rolled up at t0 + 10 min with every hour's peaks stored.
    static func flatHours(_ f: ReportFixture, _ nodes: [(id: String, pages: Int)]) async throws {
        for (id, pages) in nodes {
            try await f.pushSamples(
                id, stride(from: t0 - 6 * hour, to: t0, by: 60).map { ReportSample(at: $0, savedBytes: Int64(pages) * 4096, phase: .running) })
        }
        _ = try await f.db.rollupCatchUp(now: Date(timeIntervalSince1970: t0 + 600))
        #expect(try await storeAllPeaks(f, now: t0 + 600) == 6)
    }

    /// Reports read a partial edge hour from its pack (`raw_hour_pack`) while the pack is current
    /// (a wrong pack shows), and from the rows once a sample not rolled up yet reaches the hour,
    /// the hour's rows changed, or a label changed (every hour's version); the rollup service
    /// makes the packs again; retention deletes the packs of the hours it cut into.
    @Test func edgeHoursAreReadFromTheirPacksWhileCurrent() async throws {
        let f = try ReportFixture()
        let a = try await f.node("pack-a", labels: ["rack": "r1"], registeredAt: t0 - day)
        let b = try await f.node("pack-b", labels: ["rack": "r2"], registeredAt: t0 - day)
        try await Self.flatHours(f, [(a, 100), (b, 300)])
        var now = t0 + 600
        func current() async throws -> Int {
            try await Self.count(
                f,
                """
                SELECT COUNT(*) FROM raw_hour_pack p JOIN rollup_fleet_hour h
                  ON h.bucket_start = p.bucket_start AND h.peak_version = p.peak_version
                """)
        }
        #expect(try await current() == 6, "a pack for every hour with its peaks")
        func report(
            _ fleetRollup: Bool, since: Double = t0 - 5 * hour - 1800, until: Double = t0 - 1800
        ) async throws -> SavingsReport {
            try await f.db.savingsReport(
                since: Date(timeIntervalSince1970: since), until: Date(timeIntervalSince1970: until), by: .node,
                label: nil, policy: .default, now: Date(timeIntervalSince1970: now), exactPeaks: true, fleetRollup: fleetRollup)
        }
        func saving(_ r: SavingsReport, _ id: String) -> Double? { r.rows.first { $0.key == id }?.avgSavedBytes }
        #expect(try await report(true) == report(false))
        #expect(saving(try await report(true), a) == 100 * 4096)
        // The first edge hour's pack says a saved twice as much: the fast report reads it.
        let edge = Int64(t0 - 6 * hour)
        try await Self.fakePack(f, table: "raw_hour_pack", key: "bucket_start", start: edge, seconds: 3600, doubling: a)
        let faked = try #require(saving(try await report(true), a))
        #expect(faked > 100 * 4096 && faked < 200 * 4096, "half the period's first hour read from the pack")
        #expect(saving(try await report(false), a) == 100 * 4096, "the reference reads the rows")
        // One minute of the hour (six with the margin before it) is read from its rows on
        // PostgreSQL (less than its `packMinimumMs`), from the pack on SQLite (any part).
        let fromPack = FleetDatabase.packMinimumMs(f.db.engine, of: 3_600_000) <= 6 * 60_000
        let short = try #require(saving(try await report(true, since: t0 - 5 * hour - 60), a))
        if fromPack {
            #expect(short > 100 * 4096 + 1000, "a doubled minute adds 1,360 bytes")
        } else {
            #expect(abs(short - 100 * 4096) < 1, "a doubled minute would add 1,360 bytes")
        }
        // The same at a period's end: its first minute of the hour.
        let end = try #require(saving(try await report(true, since: t0 - 7 * hour, until: t0 - 6 * hour + 60), a))
        if fromPack {
            #expect(end > 100 * 4096 + 1000, "the pack says 200 pages for a minute")
        } else {
            #expect(abs(end - 100 * 4096) < 1, "the pack would say 200 pages")
        }
        // A retention cut into the hour recorded, its pack left behind (a peak pass that read the
        // hour before the cut and stored the pack after it): the pack is not read.
        try await f.db.write { db in
            try db.execute(
                sql: "INSERT INTO rollup_state (key, value) VALUES ('samples_cut', ?)", arguments: [edge * 1000 + 1])
        }
        #expect(saving(try await report(true), a) == 100 * 4096)
        try await f.db.write { db in try db.execute(sql: "DELETE FROM rollup_state WHERE key = 'samples_cut'") }
        #expect(saving(try await report(true), a) == faked)
        // A late sample in that hour, not rolled up yet: the rows are read (with it).
        try await f.pushSamples(b, [ReportSample(at: Double(edge) + 1810, savedBytes: 900 * 4096, phase: .running)])
        #expect(try await f.db.read { db in try FleetDatabase.firstUnrolledSample(db) } != nil)
        let lateNow = now
        let late = try await f.db.read { db in
            try FleetDatabase.nodeInputs(
                db, period: Interval(t0 - 5 * hour - 1800, t0 - 1800), policy: .default, now: lateNow, groups: nil)
        }
        #expect(late.inputs.first { $0.nodeId == a }?.stats.savedByteSeconds == 100 * 4096 * 5 * hour)
        // Rolled up: the hour's rows changed, a new version, so the pack is not current any more.
        now += 60
        _ = try await f.db.rollupCatchUp(now: Date(timeIntervalSince1970: now))
        #expect(try await current() == 5)
        #expect(try await report(true) == report(false))
        #expect(saving(try await report(true), a) == 100 * 4096)
        #expect(try await Self.storeAllPeaks(f, now: now) == 6)
        #expect(try await current() == 6, "made again")
        // A label change gives every hour a new version: the packs are made again with the peaks.
        _ = try await f.db.setLabels(nodeId: b, ["rack": "r1"])
        #expect(try await current() == 0)
        #expect(try await report(true) == report(false))
        #expect(try await Self.storeAllPeaks(f, now: now) == 6)
        #expect(try await current() == 6)
        // Retention into the second hour: the packs of the first two hours go with their samples.
        _ = try await f.db.retentionPass(
            samplesBefore: Date(timeIntervalSince1970: t0 - 5 * hour + 600), rollupsBefore: Date(timeIntervalSince1970: 0))
        #expect(try await Self.count(f, "SELECT COUNT(*) FROM raw_hour_pack") == 4)
        #expect(try await Self.count(f, "SELECT MIN(bucket_start) FROM raw_hour_pack") == Int(t0 - 4 * hour))
        #expect(try await report(true) == report(false))
    }

    /// The hour under way is read from its ten-minute slices' packs (`raw_slice_pack`) while they
    /// are current (a wrong pack shows), and from the rows once a sample not rolled up yet
    /// reaches a slice, a rollup pass moved its version, or a purge moved every version; a pack
    /// made before its slice's version moved is not stored; retention and age drop slices.
    @Test func slicesOfTheHourUnderWayAreReadFromTheirPacksWhileCurrent() async throws {
        let f = try ReportFixture()
        let a = try await f.node("slice-a", labels: ["rack": "r1"], registeredAt: t0 - day)
        let b = try await f.node("slice-b", labels: ["rack": "r2"], registeredAt: t0 - day)
        // Every minute from two hours before t0 to t0 + 39 min; t0 is on the hour.
        for (id, pages) in [(a, 100), (b, 300)] {
            try await f.pushSamples(
                id, stride(from: t0 - 2 * hour, to: t0 + 2400, by: 60).map { ReportSample(at: $0, savedBytes: Int64(pages) * 4096, phase: .running) })
        }
        let now = t0 + 2460
        _ = try await f.db.rollupCatchUp(now: Date(timeIntervalSince1970: now))
        func report(_ fast: Bool) async throws -> SavingsReport {
            try await f.db.savingsReport(
                since: Date(timeIntervalSince1970: t0 - hour - 1800), until: Date(timeIntervalSince1970: now), by: .node,
                label: nil, policy: .default, now: Date(timeIntervalSince1970: now), exactPeaks: true, fleetRollup: fast)
        }
        func saving(_ r: SavingsReport, _ id: String) -> Double? { r.rows.first { $0.key == id }?.avgSavedBytes }
        func pieces() async throws -> [Int64] {
            try await f.db.read { db in
                try FleetDatabase.packPieces(db, from: Int64(t0 - 2 * hour) * 1000, to: Int64(now) * 1000).map(\.baseMs)
            }
        }
        #expect(try await pieces().isEmpty)
        // Over by two minutes: the twelve slices before t0 and three of the hour under way (the
        // one ending at t0 + 40 min is not yet), newest first, a limited number a pass.
        #expect(try await f.db.slicePackPass(now: Date(timeIntervalSince1970: now), limit: 10) == 10)
        #expect(try await f.db.slicePackPass(now: Date(timeIntervalSince1970: now), limit: 10) == 5)
        #expect(try await Self.currentSlices(f) == 15)
        #expect(try await pieces() == stride(from: Int64(t0 - 2 * hour) * 1000, to: Int64(t0 + 1800) * 1000, by: 600_000).map { $0 })
        #expect(try await report(true) == report(false))
        #expect(saving(try await report(true), a) == 100 * 4096)
        // The first slice of the hour under way says a saved twice as much: the fast report reads it.
        try await Self.fakePack(f, table: "raw_slice_pack", key: "slice_start", start: Int64(t0), seconds: 600, doubling: a)
        let faked = try #require(saving(try await report(true), a))
        // 100 pages more for 600 of the 7,800 s with data.
        #expect(abs(faked - (100 * 4096 + 100 * 4096 * 600 / 7800)) < 1, "the slice's pack is read")
        #expect(saving(try await report(false), a) == 100 * 4096, "the reference reads the rows")
        // A late sample in that slice, not rolled up yet: no pack from that slice on.
        try await f.pushSamples(b, [ReportSample(at: t0 + 330, savedBytes: 900 * 4096, phase: .running)])
        #expect(try await pieces() == stride(from: Int64(t0 - 2 * hour) * 1000, to: Int64(t0) * 1000, by: 600_000).map { $0 })
        // Rolled up: the slice's version moved, so its pack is not current any more.
        _ = try await f.db.rollupCatchUp(now: Date(timeIntervalSince1970: now))
        #expect(try await Self.currentSlices(f) == 14)
        #expect(try await report(true) == report(false))
        #expect(saving(try await report(true), a) == 100 * 4096)
        #expect(try await f.db.slicePackPass(now: Date(timeIntervalSince1970: now)) == 1, "made again")
        #expect(try await report(true) == report(false))
        // A pack made before its slice's version moved is not stored.
        try await f.pushSamples(b, [ReportSample(at: t0 + 630, savedBytes: 900 * 4096, phase: .running)])
        _ = try await f.db.rollupCatchUp(now: Date(timeIntervalSince1970: now))
        let made = try await f.db.computeSlicePacks(now: Date(timeIntervalSince1970: now), limit: 50).packs
        #expect(made.map(\.start) == [Int64(t0 + 600)])
        try await f.pushSamples(b, [ReportSample(at: t0 + 660, savedBytes: 900 * 4096, phase: .running)])
        _ = try await f.db.rollupCatchUp(now: Date(timeIntervalSince1970: now))
        #expect(try await f.db.storeSlicePacks(made, now: Date(timeIntervalSince1970: now)) == 0)
        #expect(try await Self.currentSlices(f) == 14)
        #expect(try await report(true) == report(false))
        #expect(try await f.db.slicePackPass(now: Date(timeIntervalSince1970: now)) == 1)
        #expect(try await report(true) == report(false))
        // Slices from the one a sample not rolled up yet was taken in are left out before the
        // limit, so an older slice is still packed.
        let late = [t0 - 270, t0 + 690].map { ReportSample(at: $0, savedBytes: 900 * 4096, phase: .running) }
        try await f.pushSamples(b, late)
        _ = try await f.db.rollupCatchUp(now: Date(timeIntervalSince1970: now))
        try await f.pushSamples(b, [ReportSample(at: t0 + 130, savedBytes: 900 * 4096, phase: .running)])
        #expect(try await f.db.computeSlicePacks(now: Date(timeIntervalSince1970: now), limit: 1).packs.map(\.start) == [Int64(t0 - 600)])
        _ = try await f.db.rollupCatchUp(now: Date(timeIntervalSince1970: now))
        #expect(try await f.db.slicePackPass(now: Date(timeIntervalSince1970: now), limit: 50) == 3)
        #expect(try await Self.currentSlices(f) == 15)
        #expect(try await report(true) == report(false))
        // A purge moves every slice's version, and they are packed again. (The reports cannot
        // tell: the purged node's samples are not read for them either way.)
        try await f.db.deleteNode(nodeId: b, purgeHistory: true, now: Date(timeIntervalSince1970: now))
        #expect(try await Self.currentSlices(f) == 0)
        #expect(try await pieces().isEmpty)
        #expect(try await report(true) == report(false))
        #expect(try await f.db.slicePackPass(now: Date(timeIntervalSince1970: now), limit: 50) == 15)
        #expect(try await report(true) == report(false))
        // Retention into the first slice drops it.
        _ = try await f.db.retentionPass(
            samplesBefore: Date(timeIntervalSince1970: t0 - 2 * hour + 300), rollupsBefore: Date(timeIntervalSince1970: 0))
        #expect(try await Self.count(f, "SELECT MIN(slice_start) FROM raw_slice_pack") == Int(t0 - 2 * hour + 600))
        #expect(try await report(true) == report(false))
        // A pack of that slice stored after the cut (made on a snapshot from before it) is not read.
        try await f.db.write { db in
            try db.execute(
                sql: "INSERT INTO raw_slice_pack (slice_start, version, pack_version, data) VALUES (?, 1, 1, ?)",
                arguments: [Int64(t0 - 2 * hour), Data([1])])
        }
        // Hours and slices: the hour before t0 is packed again; while its slices cover the rest
        // of it they are read, and where one is missing, the hour.
        _ = try await f.db.rollupCatchUp(now: Date(timeIntervalSince1970: now))  // the purge's dirty hours
        #expect(try await Self.storeAllPeaks(f, now: now) == 1)
        let ms = { (t: Double) in Int64(t) * 1000 }
        let slices = stride(from: t0 - 2 * hour + 600, to: t0 + 1800, by: 600).map(ms)
        #expect(try await pieces() == slices)
        try await f.db.write { db in
            try db.execute(sql: "UPDATE raw_slice_pack SET pack_version = NULL WHERE slice_start = ?", arguments: [Int64(t0 - 1800)])
        }
        #expect(try await pieces() == slices.filter { $0 < ms(t0 - hour) } + [ms(t0 - hour)] + slices.filter { $0 >= ms(t0) })
        #expect(try await report(true) == report(false))
        // Six hours on, no slice is kept.
        #expect(try await f.db.slicePackPass(now: Date(timeIntervalSince1970: t0 + 7 * hour)) == 0)
        #expect(try await Self.count(f, "SELECT COUNT(*) FROM raw_slice_pack") == 0)
    }

    /// Label reports up to 24 h long read the stored hour peaks of the label's groups, and a label
    /// change makes them unknown.
    @Test func labelReportsReadTheStoredGroupPeaks() async throws {
        let f = try ReportFixture()
        let a = try await f.node("peak-a", labels: ["rack": "r1"], registeredAt: t0 - day)
        let b = try await f.node("peak-b", labels: ["rack": "r2"], registeredAt: t0 - day)
        try await Self.flatHours(f, [(a, 100), (b, 300)])
        let now = t0 + 600
        func peaks() async throws -> [String: Double?] {
            let r = try await f.db.savingsReport(
                since: Date(timeIntervalSince1970: t0 - 5 * hour - 1800), until: Date(timeIntervalSince1970: now), by: .label,
                label: "rack", policy: .default, now: Date(timeIntervalSince1970: now), exactPeaks: true, fleetRollup: true)
            var out: [String: Double?] = [:]
            for row in r.rows { out[row.key] = row.peakSavedBytes }
            out["fleet"] = r.total.peakSavedBytes
            return out
        }
        #expect(try await peaks() == ["r1": 100 * page, "r2": 300 * page, "fleet": 400 * page])
        try await f.db.write { db in
            try db.execute(
                sql: "UPDATE rollup_label_hour SET saved_peak = ? WHERE bucket_start = ? AND label_value = 'r1'",
                arguments: [1 << 40, Int64(t0 - 3 * hour)])
        }
        #expect(try await peaks()["r1"] == Double(1 << 40), "the stored peak of r1 is read, not swept")
        // b joins r1: the stored label peaks are forgotten, the report sweeps (and the fake is gone).
        _ = try await f.db.setLabels(nodeId: b, ["rack": "r1"])
        #expect(try await peaks() == ["r1": 400 * page, "fleet": 400 * page])
        #expect(try await Self.storeAllPeaks(f, now: now) == 6)
        #expect(try await peaks() == ["r1": 400 * page, "fleet": 400 * page])
    }

    /// Label reports up to a week long read each group's hourly series from the sums the rollup
    /// service stored (a wrong stored value shows), sum themselves an hour whose rows changed
    /// since, and forget every stored sum when a node's labels change, until the service computes
    /// them again.
    @Test func labelReportsReadTheStoredGroupSums() async throws {
        let f = try ReportFixture()
        let a = try await f.node("sum-a", labels: ["rack": "r1"], registeredAt: t0 - 3 * day)
        let b = try await f.node("sum-b", labels: ["rack": "r2", "zone": "east"], registeredAt: t0 - 3 * day)
        for (id, pages) in [(a, 100), (b, 300)] {
            try await f.pushSamples(
                id, stride(from: t0 - 2 * day, to: t0, by: 300).map { ReportSample(at: $0, savedBytes: Int64(pages) * 4096, phase: .running) })
        }
        _ = try await f.db.rollupCatchUp(now: Date(timeIntervalSince1970: t0 + 600))
        // The rollup service's work, not the catch-up's (which every report runs first).
        #expect(try await Self.count(f, "SELECT COUNT(*) FROM rollup_label_sum") == 0)
        #expect(try await f.db.flushLabelSums(maxHours: 10) == 10)
        #expect(try await f.db.labelSumsLeft() >= 38)
        #expect(try await f.db.flushLabelSums() >= 38)
        #expect(try await f.db.labelSumsLeft() == 0)
        // Peaks from the hourly series (no exact peaks): each group's highest hour.
        func peaks(_ label: String = "rack") async throws -> [String: Double?] {
            let r = try await f.db.savingsReport(
                since: Date(timeIntervalSince1970: t0 - 2 * day), until: Date(timeIntervalSince1970: t0), by: .label,
                label: label, policy: .default, now: Date(timeIntervalSince1970: t0 + 600), exactPeaks: false, fleetRollup: true)
            var out: [String: Double?] = [:]
            for row in r.rows { out[row.key] = row.peakSavedBytes }
            out["fleet"] = r.total.peakSavedBytes
            return out
        }
        #expect(try await peaks() == ["r1": 100 * page, "r2": 300 * page, "fleet": 400 * page])
        #expect(try await peaks("zone") == ["": 100 * page, "east": 300 * page, "fleet": 400 * page])
        let hour10 = Int64(t0 - 10 * hour)
        try await f.db.write { db in
            try db.execute(
                sql: "UPDATE rollup_label_sum SET saved_byte_seconds = ? WHERE bucket_start = ? AND label_value = 'r1'",
                arguments: [Double(1 << 40) * hour, hour10])
        }
        #expect(try await peaks()["r1"] == Double(1 << 40), "the stored sum of r1 is read, not summed")
        // The hour's rows changed (not recomputed yet): the report sums the hour itself.
        try await f.db.write { db in
            try db.execute(sql: "INSERT INTO rollup_fleet_dirty (bucket_start) VALUES (?)", arguments: [hour10])
        }
        #expect(try await peaks()["r1"] == 100 * page)
        try await f.db.write { db in try db.execute(sql: "DELETE FROM rollup_fleet_dirty") }
        #expect(try await peaks()["r1"] == Double(1 << 40))
        // b joins r1: every stored sum is forgotten (the fake is gone) until computed again.
        _ = try await f.db.setLabels(nodeId: b, ["rack": "r1"])
        #expect(try await peaks() == ["r1": 400 * page, "fleet": 400 * page])
        #expect(try await peaks("zone") == ["": 400 * page, "fleet": 400 * page])
        #expect(try await f.db.flushLabelSums() >= 48)
        #expect(try await Self.count(f, "SELECT COUNT(*) FROM rollup_label_sum WHERE label_value = 'r2'") == 0)
        #expect(try await Self.count(f, "SELECT COUNT(*) FROM rollup_label_sum WHERE label_key = 'zone'") == 0)
        #expect(try await peaks() == ["r1": 400 * page, "fleet": 400 * page])
        #expect(try await f.db.flushLabelSums() == 0, "nothing left")
    }

    /// The by-day report reads each whole day from its `rollup_fleet_day` row (a wrong stored
    /// value shows) while the row is up to date; a day whose rows changed since, or in which a
    /// node registered, is folded from rollup_day by the report itself.
    @Test func byDayReportsReadTheStoredFleetDays() async throws {
        let f = try ReportFixture()
        let a = try await f.node("day-a", labels: [:], registeredAt: t0 - 4 * day)
        let b = try await f.node("day-b", labels: [:], registeredAt: t0 - 4 * day)
        for (id, pages) in [(a, 100), (b, 300)] {
            try await f.pushSamples(
                id, stride(from: t0 - 3 * day, to: t0, by: 300).map { ReportSample(at: $0, savedBytes: Int64(pages) * 4096, phase: .running) })
        }
        let now = t0 + 600
        _ = try await f.db.rollupCatchUp(now: Date(timeIntervalSince1970: now))
        #expect(try await f.db.flushFleetDays(now: Date(timeIntervalSince1970: now)) >= 3)
        func averages() async throws -> [String: Double?] {
            let r = try await f.db.savingsReport(
                since: Date(timeIntervalSince1970: t0 - 3 * day), until: Date(timeIntervalSince1970: t0), by: .day,
                label: nil, policy: .default, now: Date(timeIntervalSince1970: now), exactPeaks: true, fleetRollup: true)
            var out: [String: Double?] = [:]
            for row in r.rows { out[row.key] = row.avgSavedBytes }
            return out
        }
        let middle = ReportTime.dayKey(t0 - 2 * day)
        #expect(try await averages()[middle] == 400 * 4096)
        try await f.db.write { db in
            try db.execute(
                sql: "UPDATE rollup_fleet_day SET saved_avg_sum = 7 WHERE bucket_start = ?", arguments: [Int64(t0 - 2 * day)])
        }
        #expect(try await averages()[middle] == 7, "the stored day row is read, not folded again")
        // A node registers in the middle of that day: the stored row does not know its existence.
        let c = try await f.node("day-c", labels: [:], registeredAt: t0 - 2 * day + 3600)
        #expect(try await averages()[middle] == 400 * 4096, "a day a node registered in is folded by the report")
        try await f.db.deleteNode(nodeId: c, purgeHistory: true, now: Date(timeIntervalSince1970: now))
        #expect(try await averages()[middle] == 7)
        // A late sample of that day: its rows change, the stale row is not read.
        try await f.pushSamples(a, [ReportSample(at: t0 - 2 * day + 150, savedBytes: 100 * 4096, phase: .running)])
        _ = try await f.db.rollupCatchUp(now: Date(timeIntervalSince1970: now))
        #expect(try await Self.count(f, "SELECT COUNT(*) FROM rollup_fleet_day_dirty") > 0)
        #expect(try await averages()[middle] == 400 * 4096)
        #expect(try await f.db.flushFleetDays(now: Date(timeIntervalSince1970: now)) >= 1)
        #expect(try await averages()[middle] == 400 * 4096)
        #expect(try await Self.count(f, "SELECT COUNT(*) FROM rollup_fleet_day WHERE saved_avg_sum = 7") == 0)
    }

    /// Periods up to a week read their nodes' whole days from day rows, but their group series
    /// (the peak from rollups) stay hourly: two nodes' simultaneous one-hour spike inside a whole
    /// day is the fleet's and the rack's rollup peak, above either node's own peak.
    @Test func periodsUpToAWeekKeepHourlySeries() async throws {
        let f = try ReportFixture()
        let a = try await f.node("week-a", labels: ["rack": "r1"], registeredAt: t0 - 4 * day)
        let b = try await f.node("week-b", labels: ["rack": "r1"], registeredAt: t0 - 4 * day)
        let c = try await f.node("week-c", labels: ["rack": "r2"], registeredAt: t0 - 4 * day)
        let spike = Interval(t0 - 2 * day + 5 * hour, t0 - 2 * day + 6 * hour)
        for id in [a, b, c] {
            try await f.pushSamples(
                id,
                stride(from: t0 - 3 * day - hour, to: t0, by: 300).map { at in
                    let spiking = id != c && spike.from <= at && at < spike.to
                    return ReportSample(at: at, savedBytes: (spiking ? 1000 : 100) * 4096, phase: .running)
                })
        }
        let now = Date(timeIntervalSince1970: t0 + 600)
        _ = try await f.db.rollupCatchUp(now: now)
        for (by, fleetRollup) in [(ReportGrouping.node, true), (.label, true), (.node, false), (.label, false)] {
            let r = try await f.db.savingsReport(
                since: Date(timeIntervalSince1970: t0 - 3 * day - 1800), until: Date(timeIntervalSince1970: t0), by: by,
                label: "rack", policy: .default, now: now, exactPeaks: false, fleetRollup: fleetRollup)
            let what = "\(by), fleetRollup \(fleetRollup)"
            #expect(r.total.peakBasis == .hour, "\(what)")
            // The hour's average, summed over its rows: equal up to rounding.
            func near(_ v: Double?, _ pages: Double) -> Bool { abs((v ?? 0) / (pages * 4096) - 1) < 1e-9 }
            #expect(near(r.total.peakSavedBytes, 2100), "\(what): the fleet's spike hour, not \(String(describing: r.total.peakSavedBytes))")
            if by == .label {
                #expect(near(r.rows.first { $0.key == "r1" }?.peakSavedBytes, 2000), "\(what): rack r1's spike hour")
                #expect(near(r.rows.first { $0.key == "r2" }?.peakSavedBytes, 100), "\(what): rack r2 never spiked")
            }
        }
    }

    /// Today's fleet day row is not folded while the day runs (each rollup pass rewrites its rows,
    /// and no report reads it: no node has existed the whole day yet); it is once the day is over.
    @Test func aFleetDayIsFoldedOnceItIsOver() async throws {
        let f = try ReportFixture()
        let a = try await f.node("today-a", labels: [:], registeredAt: t0 - day)
        try await f.pushSamples(
            a, stride(from: t0 - 2 * hour, to: t0 + 2 * hour, by: 300).map { ReportSample(at: $0, savedBytes: 100 * 4096, phase: .running) })
        let now = Date(timeIntervalSince1970: t0 + 2 * hour)
        _ = try await f.db.rollupCatchUp(now: now)
        let today = "SELECT COUNT(*) FROM %@ WHERE bucket_start = \(Int64(t0))"
        #expect(try await Self.count(f, String(format: today, "rollup_fleet_day_dirty")) == 1)
        #expect(try await f.db.flushFleetDays(now: now) == 1, "yesterday only")
        #expect(try await Self.count(f, String(format: today, "rollup_fleet_day_dirty")) == 1)
        #expect(try await Self.count(f, String(format: today, "rollup_fleet_day")) == 0)
        let r = try await f.db.savingsReport(
            since: Date(timeIntervalSince1970: t0 - day), until: now, by: .day, label: nil, policy: .default, now: now,
            exactPeaks: true, fleetRollup: true)
        #expect(r.rows.map(\.key) == [ReportTime.dayKey(t0 - day), ReportTime.dayKey(t0)])
        // Today, folded by the report: data from midnight to the last sample's 60 s tail, 240 s before now.
        #expect(abs((r.rows.last?.avgSavedBytes ?? 0) - 100 * 4096) < 1e-6)
        #expect(abs((r.rows.last?.coverage ?? 0) - (2 * hour - 240) / (2 * hour)) < 1e-12)
        #expect(try await f.db.flushFleetDays(now: now.addingTimeInterval(day)) == 1)
        #expect(try await Self.count(f, String(format: today, "rollup_fleet_day_dirty")) == 0)
        #expect(try await Self.count(f, String(format: today, "rollup_fleet_day")) == 1)
    }

    /// `dayCoverage` (from existences' ends) counts what measuring each existence's overlap
    /// with each day counts: random existences, many of them starting or ending on a day's edge,
    /// before the first day or after the last.
    @Test(arguments: [UInt64(1), 2, 3, 4]) func dayCoverageIsEachDaysOverlap(seed: UInt64) {
        var rng = SeededRandom(seed: seed)
        let first = (t0 / day).rounded(.down) * day
        let days = Int.random(in: 1...40, using: &rng)
        func instant() -> Double {
            let d = Double(Int.random(in: -2...(days + 2), using: &rng))
            return Bool.random(using: &rng) ? first + d * day : first + d * day + Double.random(in: 0.001..<day, using: &rng)
        }
        let existences = (0..<60).map { _ -> Interval in
            let (a, b) = (instant(), instant())
            return Interval(min(a, b), max(a, b))
        }
        var whole = [Int](repeating: 0, count: days)
        var partial = [Bool](repeating: false, count: days)
        for e in existences where e.to > e.from {
            for di in 0..<days {
                let from = first + Double(di) * day
                let overlap = min(e.to, from + day) - max(e.from, from)
                if overlap >= day { whole[di] += 1 } else if overlap > 0 { partial[di] = true }
            }
        }
        let got = FleetDatabase.dayCoverage(existences, first: first, days: days)
        #expect(got.whole == whole)
        #expect(got.partial == partial)
        #expect(whole.contains { $0 > 0 } && partial.contains(true), "the case tests both")
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

    /// The fleet peak of every report shape that reads stored hour peaks, against the same
    /// report sweeping the raw samples (`fleetRollup: false`).
    static func expectStoredPeaksRight(_ f: ReportFixture, since: Double, now: Double, _ note: Comment) async throws {
        for by in [ReportGrouping.node, .day] {
            func report(_ fleetRollup: Bool) async throws -> SavingsReport {
                try await f.db.savingsReport(
                    since: Date(timeIntervalSince1970: since), until: Date(timeIntervalSince1970: now), by: by, label: nil,
                    policy: .default, now: Date(timeIntervalSince1970: now), exactPeaks: true, fleetRollup: fleetRollup)
            }
            let fast = try await report(true)
            let reference = try await report(false)
            #expect(fast == reference, note)
        }
    }

    /// A node purged before the rollup pass saw its latest samples: the hour peaks computed from
    /// those samples meanwhile are forgotten too (no hour row of the node marked those hours).
    @Test func purgeForgetsPeaksOfSamplesNotRolledUp() async throws {
        let f = try ReportFixture()
        let a = try await f.node("a", registeredAt: t0 - day)
        try await f.pushSamples(a, stride(from: t0 - 6 * hour, to: t0, by: 60).map { ReportSample(at: $0, savedBytes: 100 * 4096, phase: .running) })
        let now = t0 + 600
        _ = try await f.db.rollupCatchUp(now: Date(timeIntervalSince1970: now))
        // b's samples of three hours ago arrive late, after the last rollup pass.
        let b = try await f.node("b", registeredAt: t0 - day)
        try await f.pushSamples(b, stride(from: t0 - 3 * hour, to: t0 - 2 * hour, by: 60).map { ReportSample(at: $0, savedBytes: 1000 * 4096, phase: .running) })
        #expect(try await Self.storeAllPeaks(f, now: now) == 6)
        #expect(try await Self.count(f, "SELECT saved_peak FROM rollup_fleet_hour WHERE bucket_start = \(Int64(t0 - 3 * hour))") == 1100 * 4096)
        try await f.db.deleteNode(nodeId: b, purgeHistory: true, now: Date(timeIntervalSince1970: now))
        try await Self.expectStoredPeaksRight(f, since: t0 - 5 * hour - 1800, now: now, "right after the purge")
        _ = try await f.db.rollupCatchUp(now: Date(timeIntervalSince1970: now))
        try await Self.expectStoredPeaksRight(f, since: t0 - 5 * hour - 1800, now: now, "after the rollup pass")
        #expect(try await Self.storeAllPeaks(f, now: now) == 6)
        #expect(try await Self.count(f, "SELECT MAX(saved_peak) FROM rollup_fleet_hour") == 100 * 4096)
        try await Self.expectStoredPeaksRight(f, since: t0 - 5 * hour - 1800, now: now, "peaks stored again")
    }

    /// A purge of the node that holds the newest samples, all rolled up: on SQLite the next
    /// samples get the rowids the purged rows had, at or below the rollup watermark. They are
    /// rolled up like any other (the purge brings the watermark down to the newest row left).
    @Test func samplesAfterAPurgeOfTheNewestRowsAreRolledUp() async throws {
        let f = try ReportFixture()
        let a = try await f.node("a", registeredAt: t0 - day)
        let b = try await f.node("b", registeredAt: t0 - day)
        try await Self.flatHours(f, [(a, 100)])
        try await f.pushSamples(b, stride(from: t0 - 3 * hour, to: t0 - 2 * hour, by: 60).map { ReportSample(at: $0, savedBytes: 1000 * 4096, phase: .running) })
        let now = Date(timeIntervalSince1970: t0 + 600)
        _ = try await f.db.rollupCatchUp(now: now)
        try await f.db.deleteNode(nodeId: b, purgeHistory: true, now: now)
        let c = try await f.node("c", registeredAt: t0 - day)
        try await f.pushSamples(c, stride(from: t0 - 2 * hour, to: t0 - hour, by: 60).map { ReportSample(at: $0, savedBytes: 500 * 4096, phase: .running) })
        _ = try await f.db.rollupCatchUp(now: now)
        #expect(try await Self.count(f, "SELECT COUNT(*) FROM rollup_hour WHERE node_id = '\(c)' AND bucket_start = \(Int64(t0 - 2 * hour))") == 1)
        let report = try await f.db.savingsReport(
            since: Date(timeIntervalSince1970: t0 - 2 * hour), until: Date(timeIntervalSince1970: t0 - hour), by: .node, label: nil,
            now: now)
        #expect(report.rows.first { $0.key == c }?.avgSavedBytes == Double(500 * 4096))
        #expect(report.total.avgSavedBytes == Double(600 * 4096))
        #expect(try await Self.storeAllPeaks(f, now: t0 + 600) == 6)
        try await Self.expectStoredPeaksRight(f, since: t0 - 5 * hour - 1800, now: t0 + 600, "after the purge and c's samples")
    }

    /// A late sample stored after the last rollup pass (after a report's catch-up, or through
    /// another replica) in an hour whose peak is stored: the report does not take that stored
    /// peak, it sweeps the hours the sample reaches.
    @Test func aSampleNotRolledUpYetOverridesStoredPeaks() async throws {
        let f = try ReportFixture()
        let a = try await f.node("a", registeredAt: t0 - day)
        try await Self.flatHours(f, [(a, 100)])
        #expect(try await Self.storeAllPeaks(f, now: t0 + 600) == 6)
        try await f.pushSamples(a, [ReportSample(at: t0 - 3 * hour + 30, savedBytes: 2000 * 4096, phase: .running)])
        try await Self.expectStoredPeaksRight(f, since: t0 - 5 * hour - 1800, now: t0 + 600, "before the sample's rollup")
        let report = try await f.db.savingsReport(
            since: Date(timeIntervalSince1970: t0 - 5 * hour), until: Date(timeIntervalSince1970: t0), by: .node, label: nil,
            policy: .default, now: Date(timeIntervalSince1970: t0 + 600), exactPeaks: true, fleetRollup: true)
        #expect(report.total.peakSavedBytes == Double(2000 * 4096))
    }

    /// A deletion dated in the past (the node's data ends there): the hour peaks from then on
    /// are forgotten and computed again without the samples after it.
    @Test func deletionForgetsThePeaksAfterIt() async throws {
        let f = try ReportFixture()
        let a = try await f.node("a", registeredAt: t0 - day)
        let b = try await f.node("b", registeredAt: t0 - day)
        try await Self.flatHours(f, [(a, 100), (b, 300)])
        let now = t0 + 600
        try await f.db.deleteNode(nodeId: b, purgeHistory: false, now: Date(timeIntervalSince1970: t0 - 3 * hour + 600))
        // The hours from the deletion's on are no longer known; those before it still are.
        #expect(
            try await Self.count(
                f, "SELECT COUNT(*) FROM rollup_fleet_hour WHERE peak_known = 1 AND bucket_start NOT IN (SELECT bucket_start FROM rollup_fleet_dirty)"
            ) == 3)
        try await Self.expectStoredPeaksRight(f, since: t0 - 5 * hour - 1800, now: now, "right after the deletion")
        _ = try await f.db.rollupCatchUp(now: Date(timeIntervalSince1970: now))
        #expect(try await Self.storeAllPeaks(f, now: now) == 6)
        #expect(try await Self.count(f, "SELECT saved_peak FROM rollup_fleet_hour WHERE bucket_start = \(Int64(t0 - hour))") == 100 * 4096)
        try await Self.expectStoredPeaksRight(f, since: t0 - 5 * hour - 1800, now: now, "peaks stored again")
    }

    /// Peaks computed on a snapshot are not stored when the hour changed before the write: a
    /// label change (every hour), a late sample's rollup (its hour); the rest are stored.
    @Test func peaksComputedBeforeAChangeAreNotStored() async throws {
        let f = try ReportFixture()
        let a = try await f.node("a", labels: ["rack": "r1"], registeredAt: t0 - day)
        try await f.pushSamples(a, stride(from: t0 - 6 * hour, to: t0, by: 60).map { ReportSample(at: $0, savedBytes: 100 * 4096, phase: .running) })
        let now = Date(timeIntervalSince1970: t0 + 600)
        _ = try await f.db.rollupCatchUp(now: now)
        var computed = try await f.db.computeHourPeaks(now: now, limit: 50)
        #expect(computed.count == 6)
        _ = try await f.db.setLabels(nodeId: a, ["rack": "r2"])
        #expect(try await f.db.storeHourPeaks(computed) == 0, "computed for the old labels")
        computed = try await f.db.computeHourPeaks(now: now, limit: 50)
        try await f.pushSamples(a, [ReportSample(at: t0 - 2 * hour + 30, savedBytes: 5000 * 4096, phase: .running)])
        _ = try await f.db.rollupCatchUp(now: now)
        // The late sample's rollup recomputes the hours within maxGapSeconds of it.
        #expect(try await f.db.storeHourPeaks(computed) == 4, "all but the hours of the late sample")
        #expect(try await Self.count(f, "SELECT COUNT(*) FROM rollup_fleet_hour WHERE peak_known = 0") == 2)
        #expect(try await Self.storeAllPeaks(f, now: now.timeIntervalSince1970) == 6)
        #expect(try await Self.count(f, "SELECT MAX(saved_peak) FROM rollup_fleet_hour") == 5000 * 4096)
        try await Self.expectStoredPeaksRight(f, since: t0 - 5 * hour - 1800, now: now.timeIntervalSince1970, "stored")
    }

    /// An hour's peak is computed once it has been over for `maxGapSeconds` (before, a live
    /// node's next sample still rewrites its rows of it) and then stays known while the nodes
    /// report on, through the rollup passes of the service and of reports.
    @Test func aLiveFleetKeepsItsStoredPeaks() async throws {
        let f = try ReportFixture()
        let a = try await f.node("a", registeredAt: t0 - day)
        try await f.pushSamples(a, stride(from: t0 - 3 * hour, to: t0 + 30, by: 60).map { ReportSample(at: $0, savedBytes: 100 * 4096, phase: .running) })
        var now = t0 + 40
        _ = try await f.db.rollupCatchUp(now: Date(timeIntervalSince1970: now))
        #expect(try await Self.storeAllPeaks(f, now: now) == 2, "the hour just over is not computed yet")
        // The node reports on every minute; reports run catch-ups meanwhile.
        var t = t0 + 60
        for _ in 0..<8 {
            try await f.pushSamples(a, [ReportSample(at: t, savedBytes: 100 * 4096, phase: .running)])
            now = t + 10
            _ = try await f.db.savingsReport(
                since: Date(timeIntervalSince1970: t0 - hour), until: Date(timeIntervalSince1970: now), by: .node, label: nil,
                now: Date(timeIntervalSince1970: now))
            _ = try await Self.storeAllPeaks(f, now: now)
            t += 60
        }
        #expect(try await Self.knownPeaks(f) == 3, "the hour before t0 is known since t0 + 300 s")
        let versions = try await Self.count(f, "SELECT SUM(peak_version) FROM rollup_fleet_hour WHERE bucket_start < \(Int64(t0))")
        for _ in 0..<5 {
            try await f.pushSamples(a, [ReportSample(at: t, savedBytes: 100 * 4096, phase: .running)])
            now = t + 10
            _ = try await f.db.rollupCatchUp(now: Date(timeIntervalSince1970: now))
            t += 60
        }
        #expect(try await Self.knownPeaks(f) == 3)
        #expect(try await Self.count(f, "SELECT SUM(peak_version) FROM rollup_fleet_hour WHERE bucket_start < \(Int64(t0))") == versions)
        try await Self.expectStoredPeaksRight(f, since: t0 - 2 * hour - 1800, now: now, "a live fleet")
    }

    /// The by-day report over a day or less reads the stored hour peaks too (a wrong stored
    /// value shows in the day's row and the total).
    @Test func byDayReportsReadTheStoredHourPeaks() async throws {
        let f = try ReportFixture()
        let a = try await f.node("a", registeredAt: t0 - day)
        try await Self.flatHours(f, [(a, 100)])
        let now = t0 + 600
        try await f.db.write { db in
            try db.execute(sql: "UPDATE rollup_fleet_hour SET saved_peak = ? WHERE bucket_start = ?", arguments: [1 << 40, Int64(t0 - 3 * hour)])
        }
        let r = try await f.db.savingsReport(
            since: Date(timeIntervalSince1970: t0 - 5 * hour - 1800), until: Date(timeIntervalSince1970: now), by: .day,
            label: nil, policy: .default, now: Date(timeIntervalSince1970: now), exactPeaks: true, fleetRollup: true)
        #expect(r.total.peakSavedBytes == Double(1 << 40))
        #expect(r.rows.compactMap(\.peakSavedBytes).max() == Double(1 << 40))
    }

    /// Periods longer than a day get exact group peaks from the stored hour peaks while their
    /// raw samples are kept: two nodes of a rack spiking together for two minutes days ago show
    /// in a week's report by node, label and day. Before the hour peaks are computed (and, for
    /// label groups, after a label change forgot them) the sweep that would need is over the
    /// budget: the peak is the rollup lower bound, marked so; also once retention cut into the period.
    @Test func longPeriodsGetExactPeaksFromStoredHours() async throws {
        let f = try ReportFixture()
        let a = try await f.node("long-a", labels: ["rack": "r1"], registeredAt: t0 - 6 * day)
        let b = try await f.node("long-b", labels: ["rack": "r1"], registeredAt: t0 - 6 * day)
        let c = try await f.node("long-c", labels: ["rack": "r2"], registeredAt: t0 - 6 * day)
        let spike = t0 - 3 * day + 7 * hour
        for (id, pages) in [(a, 100), (b, 300), (c, 50)] {
            try await f.pushSamples(
                id,
                stride(from: t0 - 5 * day, to: t0, by: 120).map { t in
                    ReportSample(at: t, savedBytes: Int64(t == spike && id != c ? 1000 : pages) * 4096, phase: .running)
                })
        }
        let now = t0 + 600
        let page = 4096.0
        func report(
            _ by: ReportGrouping, since: Double = t0 - 7 * day + 1234, key: String = "rack"
        ) async throws -> SavingsReport {
            try await f.db.savingsReport(
                since: Date(timeIntervalSince1970: since), until: Date(timeIntervalSince1970: now), by: by,
                label: by == .label ? key : nil, now: Date(timeIntervalSince1970: now))
        }
        func peaks(_ r: SavingsReport) -> [String: Double] {
            var out: [String: Double] = [:]
            for row in r.rows + [r.total] where row.peakBasis == .samples { out[row.key] = row.peakSavedBytes }
            return out
        }
        // Nothing stored yet: 120 hours with data to sweep. The lower bound is a node's own peak.
        let before = try await report(.node)
        #expect(before.total.peakBasis == .hour)
        #expect(before.total.peakSavedBytes == 1000 * page)
        #expect(peaks(try await report(.label)).isEmpty)
        #expect(try await report(.day).total.peakBasis == .hour)

        #expect(try await Self.storeAllPeaks(f, now: now) == 120)
        #expect(try await report(.node).total.peakBasis == .samples)
        #expect(try await report(.node).total.peakSavedBytes == 2050 * page)
        #expect(peaks(try await report(.label)) == ["r1": 2000 * page, "r2": 50 * page, "fleet": 2050 * page])
        let byDay = try await report(.day)
        #expect(byDay.total.peakBasis == .samples && byDay.total.peakSavedBytes == 2050 * page)
        #expect(byDay.rows.first { $0.key == ReportTime.dayKey(spike) }?.peakSavedBytes == 2050 * page)
        #expect(byDay.rows.allSatisfy { $0.peakBasis == .samples || $0.peakBasis == nil })
        // Fourteen days, the default raw retention.
        #expect(try await report(.node, since: now - 14 * day).total.peakSavedBytes == 2050 * page)
        // A key no node has: every node is in its group "", whose peak is the fleet's.
        #expect(peaks(try await report(.label, key: "zone")) == ["": 2050 * page, "fleet": 2050 * page])
        // A sample stored after the report's catch-up (here: none run) is swept from its hour on,
        // up to now; hours after now hold nothing and cost nothing, however far the period goes.
        try await f.pushSamples(a, [ReportSample(at: now - 100, savedBytes: 100 * 4096, phase: .running)])
        let ahead = try await f.db.savingsReport(
            since: Date(timeIntervalSince1970: t0 - 7 * day), until: Date(timeIntervalSince1970: now + 3 * day), by: .node,
            label: nil, policy: .default, now: Date(timeIntervalSince1970: now), exactPeaks: true, fleetRollup: true)
        #expect(ahead.total.peakBasis == .samples && ahead.total.peakSavedBytes == 2050 * page)

        // c joins r1: the label peaks are forgotten (the fleet's stay), computed again by the service.
        _ = try await f.db.setLabels(nodeId: c, ["rack": "r1"])
        #expect(peaks(try await report(.label)) == ["fleet": 2050 * page], "the fleet's own hour peaks are still known")
        #expect(try await report(.node).total.peakSavedBytes == 2050 * page)
        _ = try await Self.storeAllPeaks(f, now: now)
        #expect(peaks(try await report(.label)) == ["r1": 2050 * page, "fleet": 2050 * page])

        // Retention cut the raw samples before t0 - 4 d: a period from before it is not exact
        // any more, one after it still is.
        _ = try await f.db.retentionPass(
            samplesBefore: Date(timeIntervalSince1970: t0 - 4 * day), rollupsBefore: Date(timeIntervalSince1970: 0))
        #expect(try await report(.node).total.peakBasis == .hour)
        let after = try await report(.node, since: t0 - 3 * day - 1800)
        #expect(after.total.peakBasis == .samples && after.total.peakSavedBytes == 2050 * page)
        // By day across the cut: the days after it (and its margin) are exact, the total is not.
        let days = try await report(.day)
        #expect(days.total.peakBasis == .hour)
        #expect(days.rows.first { $0.key == ReportTime.dayKey(spike) }?.peakBasis == .samples)
        #expect(days.rows.first { $0.key == ReportTime.dayKey(spike) }?.peakSavedBytes == 2050 * page)
        #expect(days.rows.first { $0.key == ReportTime.dayKey(t0 - 5 * day) }?.peakBasis == .hour)
    }

    /// PostgreSQL, two replicas: a fleet-hour flush that read an hour's sum on its snapshot while
    /// the other replica's rollup pass changed the hour's rows and committed must not delete the
    /// hour's dirty mark with the old sum (it is retried on a new snapshot instead).
    @Test func aFlushRacingAnotherReplicasRollupKeepsTheHourRight() async throws {
        guard TestStore.isPostgres else {
            try Test.cancel("two replicas on one PostgreSQL database: runs on the PostgreSQL pass of make test")
        }
        let f = try ReportFixture()
        let other = try FleetDatabase.open(try TestStore.location(for: f.dir))
        defer { try? other.close() }
        let a = try await f.node("a", registeredAt: t0 - day)
        try await Self.flatHours(f, [(a, 100)])
        let h = Int64(t0 - 3 * hour)
        let now = Date(timeIntervalSince1970: t0 + 600)
        // The hour is dirty (a late sample rolled up, the fleet row not recomputed yet), and
        // another late sample waits for the next rollup pass.
        try await f.pushSamples(a, [ReportSample(at: t0 - 3 * hour + 30, savedBytes: 900 * 4096, phase: .running)])
        _ = try await f.db.rollupPass(now: now)
        try await f.pushSamples(a, [ReportSample(at: t0 - 3 * hour + 90, savedBytes: 5000 * 4096, phase: .running)])
        try await Self.flushRacingARollupPass(
            f.db, other: other, now: now, snapshot: { db in _ = try FleetDatabase.fleetHourSum(db, hour: h) },
            flush: { db in try FleetDatabase.flushFleetHours(db, limit: 1000) })
        let (stored, dirty, fresh) = try await f.db.read { db in
            (
                try Double.fetchOne(db, sql: "SELECT saved_byte_seconds FROM rollup_fleet_hour WHERE bucket_start = ?", arguments: [h]),
                try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM rollup_fleet_dirty WHERE bucket_start = ?", arguments: [h]) ?? 0,
                try FleetDatabase.fleetHourSum(db, hour: h)
            )
        }
        #expect(dirty == 1 || stored == fresh, "the hour's fleet sum \(String(describing: stored)) is not its rows' \(String(describing: fresh)), and nothing marks it")
    }

    /// The same race for a fleet day row: a day flush that folded the day's rows on its snapshot
    /// while the other replica's rollup pass changed one and committed must not delete the day's
    /// dirty mark with the old fold.
    @Test func aDayFlushRacingAnotherReplicasRollupKeepsTheDayRight() async throws {
        guard TestStore.isPostgres else {
            try Test.cancel("two replicas on one PostgreSQL database: runs on the PostgreSQL pass of make test")
        }
        let f = try ReportFixture()
        let other = try FleetDatabase.open(try TestStore.location(for: f.dir))
        defer { try? other.close() }
        let a = try await f.node("a", registeredAt: t0 - 2 * day)
        try await Self.flatHours(f, [(a, 100)])
        let d = Int64(t0 - day)
        let now = Date(timeIntervalSince1970: t0 + 600)
        _ = try await f.db.flushFleetDays(now: now)
        // The day is dirty (a late sample rolled up, its fleet row not folded again yet), and
        // another late sample waits for the next rollup pass.
        try await f.pushSamples(a, [ReportSample(at: t0 - 3 * hour + 30, savedBytes: 900 * 4096, phase: .running)])
        _ = try await f.db.rollupPass(now: now)
        #expect(try await Self.count(f, "SELECT COUNT(*) FROM rollup_fleet_day_dirty") == 1)
        try await f.pushSamples(a, [ReportSample(at: t0 - 3 * hour + 90, savedBytes: 5000 * 4096, phase: .running)])
        try await Self.flushRacingARollupPass(
            f.db, other: other, now: now,
            snapshot: { db in
                _ = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM rollup_day WHERE bucket_start = ?", arguments: [d])
            },
            flush: { db in try FleetDatabase.flushFleetDays(db, limit: 1000) })
        let (stored, dirty, fresh) = try await f.db.read { db in
            (
                try Double.fetchOne(db, sql: "SELECT saved_byte_seconds FROM rollup_fleet_day WHERE bucket_start = ?", arguments: [d]),
                try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM rollup_fleet_day_dirty WHERE bucket_start = ?", arguments: [d]) ?? 0,
                try Double.fetchOne(db, sql: "SELECT saved_byte_seconds FROM rollup_day WHERE bucket_start = ?", arguments: [d])
            )
        }
        #expect(stored != nil && fresh != nil)
        #expect(dirty == 1 || stored == fresh, "the day's fleet row \(String(describing: stored)) is not its rows' fold \(String(describing: fresh)), and nothing marks it")
    }

    /// Runs `flush` on this replica so that its first attempt takes its snapshot (`snapshot`),
    /// then waits while `other` rolls up the one sample waiting and commits; expects the flush to
    /// have conflicted with the other replica's marks and run again.
    static func flushRacingARollupPass(
        _ database: FleetDatabase, other: FleetDatabase, now: Date, snapshot: @escaping @Sendable (StoreDB) throws -> Void,
        flush: @escaping @Sendable (StoreDB) throws -> Int
    ) async throws {
        let attempts = Counter()
        let snapshotTaken = DispatchSemaphore(value: 0)
        let otherCommitted = DispatchSemaphore(value: 0)
        async let flushed = database.backgroundWrite { db -> Int in
            if attempts.next() == 1 {
                try snapshot(db)
                snapshotTaken.signal()
                otherCommitted.wait()
            }
            return try flush(db)
        }
        await Task.detached { snapshotTaken.wait() }.value
        let pass = try await other.rollupPass(now: now)
        otherCommitted.signal()
        _ = try await flushed
        #expect(pass.samples == 1)
        #expect(attempts.value == 2, "the flush conflicted with the other replica's marks and ran again")
    }
}
