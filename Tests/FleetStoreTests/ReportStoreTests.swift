import FleetAPI
import Foundation
import KSMCore
import TestSupport
import Testing

@testable import FleetStore

/// 2026-11-02T00:00:00Z.
private let t0: Double = 1_793_577_600
private let gib: Int64 = 1_073_741_824
private let pageSize = 4096

/// A temporary database with registered nodes, removed at the end.
final class ReportFixture {
    let dir: URL
    let db: FleetDatabase
    private var token = ""
    private var seqs: [String: Int64] = [:]

    init() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("reports-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        db = try FleetDatabase.open(try TestStore.location(for: dir))
    }

    deinit {
        try? db.close()
        try? FileManager.default.removeItem(at: dir)
    }

    func node(_ name: String, labels: [String: String] = [:], registeredAt: Double = t0 - 86400) async throws -> String {
        if token.isEmpty {
            token = try await db.createEnrollmentToken(description: "test", expiresAt: nil).token ?? ""
        }
        let req = RegisterRequest(
            hostname: name, machineId: "m-\(name)", kernel: "6.8", memTotalBytes: 64 * gib, numaNodes: 1,
            ksmFeatures: ["run"], agentVersion: "test", pageSize: pageSize)
        let reg = try await db.register(
            req, enrollmentTokenHash: Secrets.hash(token), nodeTokenHash: Secrets.hash("kn_\(name)"),
            now: Date(timeIntervalSince1970: registeredAt))
        if !labels.isEmpty { _ = try await db.setLabels(nodeId: reg.node.id, labels) }
        return reg.node.id
    }

    /// Pushes samples every `step` s from `start`, `count` of them; CPU counter +cpuPerStep each.
    func push(
        _ id: String, start: Double, step: Double = 60, count: Int, saved: Int64 = gib, cpuStart: Double = 100,
        cpuPerStep: Double = 6, scansStart: Int64 = 0, phase: KSMPhase = .running, profit: Int64? = nil
    ) async throws {
        var batch: [StatusSample] = []
        for i in 0..<count {
            let seq = (seqs[id] ?? 0) + 1
            seqs[id] = seq
            batch.append(
                StatusSample(
                    seq: seq, takenAt: Date(timeIntervalSince1970: start + Double(i) * step),
                    status: KSMStatus(
                        run: phase == .running ? 1 : 0, pagesSharing: saved / Int64(pageSize),
                        fullScans: scansStart + Int64(i), generalProfit: profit),
                    memory: MemorySnapshot(memTotalKB: 64 * 1024 * 1024, memAvailableKB: 8 * 1024 * 1024),
                    pageSize: pageSize, ksmdCPUPercent: cpuPerStep * 100 / step,
                    ksmdCPUSeconds: cpuStart + Double(i) * cpuPerStep, phase: phase, phaseReason: "test"))
            if batch.count == 500 {
                _ = try await db.insertSamples(nodeId: id, batch)
                batch = []
            }
        }
        if !batch.isEmpty { _ = try await db.insertSamples(nodeId: id, batch) }
    }

    /// Pushes the given samples (saved bytes in whole pages), in batches.
    func pushSamples(_ id: String, _ samples: [ReportSample]) async throws {
        var batch: [StatusSample] = []
        for s in samples {
            let seq = (seqs[id] ?? 0) + 1
            seqs[id] = seq
            batch.append(
                StatusSample(
                    seq: seq, takenAt: Date(timeIntervalSince1970: s.at),
                    status: KSMStatus(
                        run: 1, pagesSharing: s.savedBytes / Int64(pageSize), fullScans: s.fullScans, generalProfit: s.netProfit),
                    memory: MemorySnapshot(memTotalKB: 64 * 1024 * 1024, memAvailableKB: 8 * 1024 * 1024),
                    pageSize: pageSize, ksmdCPUPercent: s.cpuPercent, ksmdCPUSeconds: s.cpuSeconds, phase: s.phase,
                    phaseReason: "test", agentStopped: s.endsData ? true : nil))
            if batch.count == 500 {
                _ = try await db.insertSamples(nodeId: id, batch)
                batch = []
            }
        }
        if !batch.isEmpty { _ = try await db.insertSamples(nodeId: id, batch) }
    }

    func report(
        _ since: Double, _ until: Double, by: ReportGrouping = .node, label: String? = nil, exactPeaks: Bool = true
    ) async throws -> SavingsReport {
        // "Now" is after the period (some fixtures put data after the wall clock's now).
        try await db.savingsReport(
            since: Date(timeIntervalSince1970: since), until: Date(timeIntervalSince1970: until), by: by, label: label,
            now: Date(timeIntervalSince1970: max(until, Date().timeIntervalSince1970)), exactPeaks: exactPeaks)
    }
}

private func range(_ a: Double, _ b: Double) -> TimeRange {
    TimeRange(from: Date(timeIntervalSince1970: a), to: Date(timeIntervalSince1970: b))
}

@Suite struct ReportStoreTests {
    @Test func steadyNodeFromRollupsAndRawEdges() async throws {
        let f = try ReportFixture()
        let id = try await f.node("alpha")
        try await f.push(id, start: t0, count: 241)  // t0 … t0+4h, one a minute
        // Half-hour edges come from raw samples, the two whole hours from hour rollups.
        let r = try await f.report(t0 + 1800, t0 + 3 * 3600 + 1800)
        #expect(r.rows.count == 1)
        let row = try #require(r.rows.first)
        #expect(row.key == id && row.name == "alpha" && row.deleted == false)
        #expect(row.avgSavedBytes == Double(gib))
        #expect(row.peakSavedBytes == Double(gib))
        #expect(row.savedGiBHours == 3)
        #expect(row.ksmdCPUHours == 0.3)
        #expect(row.avgKsmdCPUCores == 0.1)
        #expect(row.efficiencyGiBPerCore == 10)
        #expect(row.dataHours == 3 && row.periodHours == 3 && row.coverage == 1)
        #expect(row.phaseHours == ["Running": 3])
        #expect(row.gaps.isEmpty)
        #expect(r.total.key == "fleet" && r.total.nodes == 1 && r.total.savedGiBHours == 3)
        #expect(r.total.peakSavedBytes == Double(gib))

        // The hour history agrees.
        let h = try #require(
            try await f.db.history(
                nodeId: id, since: Date(timeIntervalSince1970: t0), until: Date(timeIntervalSince1970: t0 + 4 * 3600),
                resolution: .hour))
        #expect(h.buckets?.count == 4)
        #expect(h.buckets?.first?.savedByteHours == Double(gib))
        #expect(h.buckets?.first?.avgKsmdCPUPercent == 10)
        #expect(h.buckets?.first?.fullScans == 59)
        #expect(h.buckets?[1].fullScans == 60)
        #expect(h.gaps.isEmpty)
    }

    @Test func offlineNodeIsAGapNotZero() async throws {
        let f = try ReportFixture()
        let id = try await f.node("beta")
        try await f.push(id, start: t0, count: 31)  // 0:00 … 0:30
        try await f.push(id, start: t0 + 5400, count: 31, cpuStart: 9000)  // 1:30 … 2:00
        let r = try await f.report(t0, t0 + 7200)
        let row = try #require(r.rows.first)
        #expect(row.gaps == [range(t0 + 1860, t0 + 5400)])
        #expect(row.dataHours == 3660.0 / 3600)
        #expect(row.coverage == 3660.0 / 7200)
        #expect(row.avgSavedBytes == Double(gib))  // not diluted by the gap
        #expect(row.ksmdCPUHours == 366.0 / 3600)  // the counter jump across the gap is not covered time
        #expect(r.total.gaps == [range(t0 + 1860, t0 + 5400)])
        let hist = try #require(
            try await f.db.history(
                nodeId: id, since: Date(timeIntervalSince1970: t0), until: Date(timeIntervalSince1970: t0 + 7200),
                resolution: .raw))
        #expect(hist.samples?.count == 61)
        #expect(hist.omittedSamples == nil)
        #expect(hist.gaps == [range(t0 + 1860, t0 + 5400)])
        // Fewer samples per answer than the period has: the first ones, and how many more.
        let first = try #require(
            try await f.db.history(
                nodeId: id, since: Date(timeIntervalSince1970: t0), until: Date(timeIntervalSince1970: t0 + 7200),
                resolution: .raw, maxSamples: 40))
        #expect(first.samples?.count == 40 && first.omittedSamples == 21)
        #expect(first.samples?.last?.takenAt == Date(timeIntervalSince1970: t0 + 5400 + 8 * 60))
        #expect(first.gaps == hist.gaps)
        let exactly = try await f.db.history(
            nodeId: id, since: Date(timeIntervalSince1970: t0), until: Date(timeIntervalSince1970: t0 + 7200),
            resolution: .raw, maxSamples: 61)
        #expect(exactly?.samples?.count == 61 && exactly?.omittedSamples == nil)
        let hours = try #require(
            try await f.db.history(
                nodeId: id, since: Date(timeIntervalSince1970: t0), until: Date(timeIntervalSince1970: t0 + 7200),
                resolution: .hour))
        #expect(hours.gaps == [range(t0 + 1860, t0 + 5400)])
        #expect(hours.buckets?.map(\.dataSeconds) == [1860, 1800])
    }

    /// An hour whose only sample is an agent's goodbye after a gap holds no data time: the
    /// history leaves it out (its time is a gap), never a bucket of 0 B saved.
    @Test func goodbyeAloneInAnHourIsNoBucket() async throws {
        let f = try ReportFixture()
        let id = try await f.node("bye")
        try await f.push(id, start: t0, step: 10, count: 61)  // 0:00 … 0:10
        try await f.pushSamples(id, [ReportSample(at: t0 + 4800, savedBytes: gib, endsData: true)])  // 1:20
        for resolution in [HistoryResolution.hour, .day] {
            let h = try #require(
                try await f.db.history(
                    nodeId: id, since: Date(timeIntervalSince1970: t0), until: Date(timeIntervalSince1970: t0 + 7200),
                    resolution: resolution))
            #expect(h.buckets?.map(\.start) == [Date(timeIntervalSince1970: t0)], "\(resolution)")
            #expect(h.buckets?.map(\.dataSeconds) == [660], "\(resolution)")
            #expect(h.buckets?.allSatisfy { $0.avgSavedBytes == Double(gib) } == true, "\(resolution)")
            #expect(h.gaps == [range(t0 + 660, t0 + 7200)], "\(resolution)")
        }
    }

    /// The hour under way, asked at a time that is not a whole millisecond: its row is cut at
    /// that time and stores its gaps to the millisecond, so the part of the hour after the cut
    /// (not over yet) must not come back as a gap between the stored cut and now.
    @Test func hourUnderWayHasNoGapAtItsEnd() async throws {
        let f = try ReportFixture()
        let id = try await f.node("live", registeredAt: t0)
        try await f.push(id, start: t0, step: 60, count: 20)  // 0:00 … 0:19
        for now in [t0 + 1180.0004567, t0 + 1180.9996, t0 + 1180.5] {
            let h = try #require(
                try await f.db.history(
                    nodeId: id, since: Date(timeIntervalSince1970: t0), until: Date(timeIntervalSince1970: now),
                    resolution: .hour, now: Date(timeIntervalSince1970: now)))
            #expect(h.buckets?.count == 1)
            #expect(h.gaps == [], "now \(now - t0)")
        }
    }

    /// A bucket's coverage is the server's, over the node's life in the whole bucket: the CLI
    /// worked it out from the answer's life, cut at the period's edges, and showed 75 % for a
    /// node that never missed a sample (registered 0:15, asked from 0:30) and 100 % for one
    /// silent 0:00–0:20 (asked until 0:30).
    @Test func historyCoverageIsOverTheWholeBucket() async throws {
        let f = try ReportFixture()
        let now = Date(timeIntervalSince1970: t0 + 2 * 3600)
        let young = try await f.node("young", registeredAt: t0 + 900)
        try await f.push(young, start: t0 + 900, step: 60, count: 76)  // 0:15 … 1:30
        let fromHalfPast = try #require(
            try await f.db.history(
                nodeId: young, since: Date(timeIntervalSince1970: t0 + 1800), until: now, resolution: .hour, now: now))
        #expect(fromHalfPast.buckets?.first?.start == Date(timeIntervalSince1970: t0))
        #expect(fromHalfPast.buckets?.first?.dataSeconds == 2700)
        #expect(fromHalfPast.buckets?.first?.coverage == 1, "\(String(describing: fromHalfPast.buckets?.first))")
        let silent = try await f.node("silent", registeredAt: t0 - 7200)
        try await f.push(silent, start: t0 + 1200, step: 60, count: 71)  // 0:20 … 1:30
        let untilHalfPast = try #require(
            try await f.db.history(
                nodeId: silent, since: Date(timeIntervalSince1970: t0), until: Date(timeIntervalSince1970: t0 + 1800),
                resolution: .hour, now: now))
        #expect(untilHalfPast.buckets?.first?.dataSeconds == 2400)
        #expect(untilHalfPast.buckets?.first?.coverage == 2400.0 / 3600, "\(String(describing: untilHalfPast.buckets?.first))")
        // By day: the young node's day counts from its registration to now (it went silent
        // after 1:30).
        let day = try #require(
            try await f.db.history(
                nodeId: young, since: Date(timeIntervalSince1970: t0 + 1800), until: now, resolution: .day, now: now))
        let dayBucket = try #require(day.buckets?.first)
        #expect(dayBucket.coverage == dayBucket.dataSeconds / (7200 - 900), "\(dayBucket)")
    }

    /// The dashboard's fleet chart, likewise: an hour in which no node has data time (one
    /// node's goodbye alone after a gap) is not a point at 0 B, and a node whose row there holds
    /// only its goodbye is not counted beside another node's data.
    @Test func goodbyeAloneInAnHourIsNoPointOfTheFleetChart() async throws {
        let f = try ReportFixture()
        let a = try await f.node("bye")
        try await f.push(a, start: t0, step: 10, count: 61)  // 0:00 … 0:10
        try await f.pushSamples(a, [ReportSample(at: t0 + 4800, savedBytes: gib, endsData: true)])  // 1:20
        let since = Date(timeIntervalSince1970: t0)
        let chart = try await f.db.fleetSeries(
            since: since, until: Date(timeIntervalSince1970: t0 + 3 * 3600), level: .hour)
        #expect(chart.map(\.start) == [since], "the goodbye's hour (1:00) is a gap")
        #expect(chart.first?.savedBytes == Double(gib))
        #expect(chart.first?.nodes == 1)
        // Another node with data in that hour: the hour is a point of its data alone.
        let b = try await f.node("stays")
        try await f.push(b, start: t0 + 3600, step: 60, count: 31, saved: 2 * gib)  // 1:00 … 1:30
        let both = try await f.db.fleetSeries(
            since: since, until: Date(timeIntervalSince1970: t0 + 3 * 3600), level: .hour)
        #expect(both.map(\.start) == [since, Date(timeIntervalSince1970: t0 + 3600)])
        #expect(both.last?.savedBytes == Double(2 * gib))
        #expect(both.last?.nodes == 1, "the goodbye's row is not a node reporting")
        // By day: both nodes have data time that day.
        let day = try await f.db.fleetSeries(
            since: since, until: Date(timeIntervalSince1970: t0 + 86_400), level: .day)
        #expect(day.map(\.nodes) == [2])
    }

    @Test func counterResetAfterHostReboot() async throws {
        let f = try ReportFixture()
        let id = try await f.node("gamma")
        try await f.push(id, start: t0, count: 31, cpuStart: 500, scansStart: 40)  // 0:00 … 0:30
        // Reboot: counters start again from small values, samples keep coming every minute.
        try await f.push(id, start: t0 + 1860, count: 30, cpuStart: 2, scansStart: 0)  // 0:31 … 1:00 (30 samples)
        let r = try await f.report(t0, t0 + 3600)
        let row = try #require(r.rows.first)
        // 30 intervals × 6 s, then the reset interval counts the new value (2 s), then 29 × 6 s
        // (the last sample is at 1:00, the end of the period).
        let cpuSeconds: Double = 180 + 2 + 174
        #expect(row.ksmdCPUHours == cpuSeconds / 3600)
        let h = try #require(
            try await f.db.history(
                nodeId: id, since: Date(timeIntervalSince1970: t0), until: Date(timeIntervalSince1970: t0 + 3600),
                resolution: .hour))
        // 30 scans, 0 (reset to 0: the new value), 28 (the pair ending at 1:00 is the next hour's).
        #expect(h.buckets?.first?.fullScans == 58)
        #expect(row.gaps.isEmpty)
    }

    @Test func deletedNodeCountsUntilItsDeletion() async throws {
        let f = try ReportFixture()
        let keep = try await f.node("keep")
        let gone = try await f.node("gone")
        try await f.push(keep, start: t0, count: 121)
        try await f.push(gone, start: t0, count: 60, saved: 2 * gib)  // 0:00 … 0:59, holds until 1:00
        try await f.db.deleteNode(nodeId: gone, purgeHistory: false, now: Date(timeIntervalSince1970: t0 + 3600))
        let r = try await f.report(t0, t0 + 7200)
        #expect(r.rows.map(\.name) == ["gone", "keep"])
        let g = r.rows[0]
        #expect(g.deleted == true)
        #expect(g.periodHours == 1)
        #expect(g.savedGiBHours == 2)
        #expect(g.coverage == 1)
        #expect(g.gaps.isEmpty)
        #expect(r.total.savedGiBHours == 4)
        #expect(r.total.periodHours == 3)
        #expect(r.total.avgSavedBytes == Double(3 * gib))
        #expect(r.total.peakSavedBytes == Double(3 * gib))  // the first hour, both up

        // Purged: gone from reports.
        let f2 = try ReportFixture()
        let p = try await f2.node("purged")
        try await f2.push(p, start: t0, count: 61)
        _ = try await f2.report(t0, t0 + 3600)  // rolled up first
        try await f2.db.deleteNode(nodeId: p, purgeHistory: true)
        let r2 = try await f2.report(t0, t0 + 3600)
        #expect(r2.rows.isEmpty)
        #expect(r2.total.nodes == 0 && r2.total.avgSavedBytes == nil)
    }

    @Test func groupsByLabelAndDay() async throws {
        let f = try ReportFixture()
        let a = try await f.node("a", labels: ["rack": "r1"])
        let b = try await f.node("b", labels: ["rack": "r1"])
        let c = try await f.node("c", labels: ["rack": "r2"])
        let d = try await f.node("d")
        // Two days from 22:00 to 02:00 for a and c; b only the first hour; d silent.
        try await f.push(a, start: t0 + 22 * 3600, count: 241)
        try await f.push(b, start: t0 + 22 * 3600, count: 60, saved: 3 * gib)
        try await f.push(c, start: t0 + 22 * 3600, count: 241, saved: 4 * gib, cpuPerStep: 12)
        _ = d
        let since = t0 + 22 * 3600
        let until = t0 + 26 * 3600
        let byLabel = try await f.report(since, until, by: .label, label: "rack")
        #expect(byLabel.rows.map(\.key) == ["", "r1", "r2"])
        let none = byLabel.rows[0]
        #expect(none.nodes == 0 && none.avgSavedBytes == nil && none.gaps == [range(since, until)])
        let r1 = byLabel.rows[1]
        #expect(r1.nodes == 2)
        #expect(r1.avgSavedBytes == Double(4 * gib))  // 1 + 3 GiB while up
        #expect(r1.peakSavedBytes == Double(4 * gib))
        #expect(r1.savedGiBHours == 4 + 3)
        #expect(r1.dataHours == 5 && r1.periodHours == 8)
        #expect(r1.gaps.isEmpty)
        let r2 = byLabel.rows[2]
        #expect(r2.avgKsmdCPUCores == 0.2 && r2.efficiencyGiBPerCore == 20)
        #expect(byLabel.total.savedGiBHours == 4 + 3 + 16)
        #expect(byLabel.total.periodHours == 16)

        let byDay = try await f.report(since, until, by: .day)
        #expect(byDay.rows.map(\.key) == ["2026-11-02", "2026-11-03"])
        #expect(byDay.rows[0].savedGiBHours == 2 + 3 + 8)
        #expect(byDay.rows[1].savedGiBHours == 2 + 8)
        #expect(byDay.rows[0].periodHours == 8 && byDay.rows[1].periodHours == 8)
        #expect(byDay.rows[1].dataHours == 4)
        #expect(byDay.total.savedGiBHours == 23)
        #expect(byDay.total.dataHours == 9)

        let csv = byDay.csv()
        let lines = csv.split(separator: "\n")
        #expect(lines.first.map(String.init) == SavingsReport.csvHeader)
        #expect(lines.count == 4)
        #expect(lines[1].hasPrefix("2026-11-02,,,3,"))
        #expect(lines[3].hasPrefix("fleet,,,3,"))
    }

    @Test func lateSamplesRecomputeTheHoursTheyTouch() async throws {
        let f = try ReportFixture()
        let id = try await f.node("late")
        try await f.push(id, start: t0 + 3600, count: 60, cpuStart: 460)  // the second hour arrives first
        let first = try await f.report(t0, t0 + 7200)
        #expect(first.rows.first?.dataHours == 1)
        #expect(first.rows.first?.gaps == [range(t0, t0 + 3600)])
        try await f.push(id, start: t0, count: 60)  // then the first hour, replayed from a spool
        let second = try await f.report(t0, t0 + 7200)
        let row = try #require(second.rows.first)
        #expect(row.dataHours == 2)
        #expect(row.gaps.isEmpty)
        #expect(row.ksmdCPUHours == 0.2)
        #expect(try await f.db.rollupWatermark() > 0)
    }

    @Test func longPeriodsReadDayRollups() async throws {
        let f = try ReportFixture()
        let id = try await f.node("long", registeredAt: t0 - 40 * 86400)
        try await f.push(id, start: t0, step: 300, count: 288 * 2 + 1)  // two days, every 5 min
        let r = try await f.report(t0 - 35 * 86400, t0 + 5 * 86400)
        let row = try #require(r.rows.first)
        // Two days, plus the last sample's tail minute.
        #expect(abs(row.savedGiBHours - (48 + 60.0 / 3600)) < 1e-9)
        #expect(abs(row.dataHours - (48 + 60.0 / 3600)) < 1e-9)
        #expect(row.gaps == [range(t0 - 35 * 86400, t0), range(t0 + 2 * 86400 + 60, t0 + 5 * 86400)])
        #expect(row.periodHours == 40 * 24)

        // By day over whole days (read from day rollups in one go), with a partial last day.
        let byDay = try await f.report(t0 - 86400, t0 + 2 * 86400 + 7200, by: .day)
        #expect(byDay.rows.map(\.key) == ["2026-11-01", "2026-11-02", "2026-11-03", "2026-11-04"])
        #expect(byDay.rows.map(\.savedGiBHours) == [0, 24, 24, 1.0 / 60])
        #expect(byDay.rows[0].gaps == [range(t0 - 86400, t0)] && byDay.rows[0].nodes == 0)
        #expect(byDay.rows[1].gaps.isEmpty && byDay.rows[1].coverage == 1 && byDay.rows[1].periodHours == 24)
        #expect(byDay.rows[3].gaps == [range(t0 + 2 * 86400 + 60, t0 + 2 * 86400 + 7200)])
        #expect(byDay.rows[3].periodHours == 2)
        #expect(byDay.rows[1].peakSavedBytes == Double(gib))
        #expect(abs(byDay.total.savedGiBHours - (48 + 1.0 / 60)) < 1e-9)
    }

    @Test func aRollupPeakNeverExceedsWhatTheFleetSavedAtOnce() async throws {
        // alpha saves 10 GiB until 10:30 and is deleted; bravo registers at 10:30 and saves
        // 10 GiB. The fleet never saved more than 10 GiB at once: a peak read from hour rollups
        // (exact peaks not asked for) must not say 20 (the sum of their averages over their own data time).
        let f = try ReportFixture()
        let alpha = try await f.node("alpha", registeredAt: t0)
        try await f.push(alpha, start: t0, count: 31, saved: 10 * gib)  // 0:00 … 0:30
        try await f.db.deleteNode(
            nodeId: alpha, purgeHistory: false, now: Date(timeIntervalSince1970: t0 + 1800))
        let bravo = try await f.node("bravo", registeredAt: t0 + 1800)
        try await f.push(bravo, start: t0 + 1800, count: 31, saved: 10 * gib)  // 0:30 … 1:00
        let r = try await f.report(t0 - 86400, t0 + 3600, exactPeaks: false)
        #expect(r.total.peakBasis == .hour)
        let peak = try #require(r.total.peakSavedBytes)
        #expect(peak <= Double(10 * gib) + 1, "\(peak / Double(gib)) GiB")
        #expect(peak >= Double(10 * gib) - 1, "never below a member's own peak")
    }

    @Test func yearLongPeriodsReadMonthRollupsAndBackfill() async throws {
        let f = try ReportFixture()
        let id = try await f.node("months", registeredAt: t0 - 60 * 86400)
        let nov28 = t0 + 26 * 86400
        try await f.push(id, start: nov28, step: 300, count: 4 * 288 + 1)  // Nov 28 → Dec 2, across a month end
        let since = t0 - 32 * 86400  // 2026-10-01
        let until = t0 + 69 * 86400  // 2027-01-10
        #expect(ReportTime.dayKey(since) == "2026-10-01" && ReportTime.dayKey(until) == "2027-01-10")
        let r = try await f.report(since, until)
        let row = try #require(r.rows.first)
        #expect(abs(row.savedGiBHours - (96 + 60.0 / 3600)) < 1e-9)
        #expect(row.gaps == [range(since, nov28), range(nov28 + 4 * 86400 + 60, until)])
        #expect(row.avgSavedBytes == Double(gib))
        #expect(r.total.peakSavedBytes == Double(gib))
        // A database from before month rollups: months are merged from days again.
        let merged = try await f.db.backfillMonthRollups()
        #expect(merged == 0)
    }

    @Test func retentionDeletesOnlyRolledUpOldSamples() async throws {
        let f = try ReportFixture()
        let id = try await f.node("old")
        try await f.push(id, start: t0, count: 120)
        // Nothing rolled up yet: nothing may go.
        let none = try await f.db.retentionPass(
            samplesBefore: Date(timeIntervalSince1970: t0 + 86400), rollupsBefore: Date(timeIntervalSince1970: 0))
        #expect(none.samples == 0)
        _ = try await f.db.rollupCatchUp()
        let some = try await f.db.retentionPass(
            samplesBefore: Date(timeIntervalSince1970: t0 + 3600), rollupsBefore: Date(timeIntervalSince1970: 0), batch: 7)
        #expect(some.samples == 60)
        // The report still comes from the rollups.
        let r = try await f.report(t0, t0 + 3600)
        #expect(r.rows.first?.savedGiBHours == 1)
        // Its raw samples are gone: the fleet peak is not called exact (it comes from rollups); a
        // period after the cut still reads them.
        #expect(r.total.peakBasis == .hour)
        let later = try await f.report(t0 + 3600 + 300, t0 + 7200)
        #expect(later.total.peakBasis == .samples)
        let old = try await f.db.retentionPass(
            samplesBefore: Date(timeIntervalSince1970: t0 + 86400), rollupsBefore: Date(timeIntervalSince1970: t0 + 86400))
        #expect(old.samples == 59)  // the newest row always stays
        #expect(old.hours == 2 && old.days == 1 && old.months == 1)
    }

    /// Rollup retention as the server runs it (`rollupCut`) goes by whole months: every report of
    /// a period after the retention window's start (now − days, here inside a day) is the same
    /// after the pass as before it, whether it reads hour, day or month rows; only months wholly
    /// before the window go. (A cut at now − days itself deleted that day's and month's rows and
    /// kept their later hours: a gap in the day's report where the hours still held data.)
    @Test func rollupRetentionGoesByWholeMonths() async throws {
        let f = try ReportFixture()
        let day = ReportTime.day
        let oct20 = t0 - 13 * day
        let id = try await f.node("old", registeredAt: oct20 - day)
        // Hourly from 2026-10-20 to 2026-12-19 (a gap after each sample), every 5 minutes over
        // 2026-11-21 … 23, around the window's start (few samples: ingest is slower on PostgreSQL).
        let nov21 = t0 + 19 * day
        let nov24 = nov21 + 3 * day
        try await f.push(id, start: oct20, step: 3600, count: Int((nov21 - oct20) / 3600))
        try await f.push(id, start: nov21, step: 300, count: 3 * 288, cpuStart: 10_000)
        try await f.push(id, start: nov24, step: 3600, count: 26 * 24, cpuStart: 20_000)
        let now = t0 + 60 * day + 13 * 3600  // 2027-01-01 13:00
        let keep = 40
        let window = now - Double(keep) * day  // 2026-11-22 13:00
        let cut = FleetDatabase.rollupCut(now: Date(timeIntervalSince1970: now), keepDays: keep)
        #expect(ReportTime.iso(window) == "2026-11-22T13:00:00Z")
        #expect(cut == Date(timeIntervalSince1970: t0 - day), "2026-11-01, the start of the month holding the window's start")
        _ = try await f.db.rollupCatchUp(now: Date(timeIntervalSince1970: now))
        // Raw samples go first (as at the default retentions), so that only the rollups' cut differs below.
        _ = try await f.db.retentionPass(
            samplesBefore: Date(timeIntervalSince1970: now - 14 * day), rollupsBefore: Date(timeIntervalSince1970: 0))
        let periods: [(Double, Double, ReportGrouping)] = [
            (ReportTime.dayStart(window), ReportTime.dayStart(window) + day, .node),  // the window's first day, from its day row
            (window, window + day, .node),
            (ReportTime.dayStart(window), ReportTime.dayStart(window) + 7 * day, .node),
            (window, now, .node),  // over the month rows of November (its remainder) and December
            (cut.timeIntervalSince1970, now, .day),
            (cut.timeIntervalSince1970, now, .label),
        ]
        func reports() async throws -> [SavingsReport] {
            var out: [SavingsReport] = []
            for (since, until, by) in periods {
                out.append(
                    try await f.db.savingsReport(
                        since: Date(timeIntervalSince1970: since), until: Date(timeIntervalSince1970: until), by: by,
                        label: by == .label ? "rack" : nil, now: Date(timeIntervalSince1970: now)))
            }
            return out
        }
        let before = try await reports()
        #expect(before[0].rows.first?.coverage == 1 && before[0].rows.first?.savedGiBHours == 24)
        // The fleet's own rows (hours, days, label hours) of the months that go.
        func fleetRowsBeforeCut() async throws -> [Int] {
            _ = try await f.db.flushFleetDays(now: Date(timeIntervalSince1970: now))
            return try await f.db.read { db in
                try ["rollup_fleet_hour", "rollup_fleet_day", "rollup_label_hour"].map { table in
                    try Int.fetchOne(
                        db, sql: "SELECT COUNT(*) FROM \(table) WHERE bucket_start < ?", arguments: [Int64(cut.timeIntervalSince1970)]) ?? 0
                }
            }
        }
        let fleetBefore = try await fleetRowsBeforeCut()
        #expect(fleetBefore[0] == 12 * 24 && fleetBefore[1] == 12, "\(fleetBefore)")
        let r = try await f.db.retentionPass(
            samplesBefore: Date(timeIntervalSince1970: now - 14 * day), rollupsBefore: cut)
        #expect(r.hours == 12 * 24 && r.days == 12 && r.months == 1, "October's rows (from the 20th) go")
        let after = try await reports()
        for (i, (b, a)) in zip(before, after).enumerated() {
            #expect(a == b, "period \(i): \(ReportTime.iso(periods[i].0)) … \(ReportTime.iso(periods[i].1)) by \(periods[i].2)")
        }
        // October is a gap now.
        let october = try await f.report(oct20, t0 - day)
        #expect(october.rows.first?.dataHours == 0 && october.rows.first?.gaps == [range(oct20, t0 - day)])
        // The deletions marked the fleet's hours and days for the rollup service, which drops them.
        #expect(try await fleetRowsBeforeCut() == [0, 0, 0])
    }
}

/// The store's reports (rollups for whole hours, raw samples at the edges, "now" inside an hour)
/// against the report math run directly on the same samples: the numbers are the same whichever
/// way the data is read, and the invariants hold (docs/numbers.md).
@Suite struct ReportStorePropertyTests {
    static let policy = ReportPolicy.default

    @Test(arguments: Array(UInt64(1)...UInt64(16))) func storeReportsMatchTheMathOnRawSamples(seed: UInt64) async throws {
        let fleet = RandomFleet.make(seed: seed, policy: Self.policy, wholeSeconds: true, goodbyes: false)
        let f = try ReportFixture()
        var ids: [String] = []
        for (i, n) in fleet.nodes.enumerated() {
            let id = try await f.node("n\(i)", registeredAt: n.registeredAt)
            ids.append(id)
            try await f.pushSamples(id, n.samples)
        }
        for (i, n) in fleet.nodes.enumerated() {
            if let d = n.deletedAt, d <= fleet.now {
                try await f.db.deleteNode(nodeId: ids[i], purgeHistory: false, now: Date(timeIntervalSince1970: d))
            }
        }
        let now = Date(timeIntervalSince1970: fleet.now)
        let report = try await f.db.savingsReport(
            since: Date(timeIntervalSince1970: fleet.period.from), until: Date(timeIntervalSince1970: fleet.period.to),
            by: .node, label: nil, now: now)
        var peaks: [(samples: [ReportSample], horizon: Double)] = []
        var expectedRows = 0
        for (i, n) in fleet.nodes.enumerated() {
            let deletedAt = n.deletedAt.flatMap { $0 <= fleet.now ? $0 : nil }
            let horizon = min(fleet.now, deletedAt ?? fleet.now)
            peaks.append((n.samples, horizon))
            guard
                let existence = ReportMath.existence(
                    registeredAt: n.registeredAt, firstData: n.samples.first?.at, deletedAt: deletedAt,
                    period: fleet.period, now: fleet.now)
            else {
                #expect(!report.rows.contains { $0.key == ids[i] }, "seed \(seed): n\(i) did not exist in the period")
                continue
            }
            expectedRows += 1
            let integ = ReportMath.integrate(
                n.samples, from: fleet.period.from, to: fleet.period.to, bucketSeconds: 3600, policy: Self.policy,
                horizon: horizon)
            let row = try #require(report.rows.first { $0.key == ids[i] }, "seed \(seed): row of n\(i)")
            let expected = ReportAggregation.nodeRow(
                NodeReportInput(
                    nodeId: ids[i], name: "n\(i)", existence: existence, stats: integ.total,
                    gaps: ReportMath.complement(of: ReportMath.clip(integ.covered, to: existence), within: existence)))
            #expect(abs(row.dataHours - expected.dataHours) < 1e-6, "seed \(seed) n\(i) data")
            #expect(abs(row.periodHours - expected.periodHours) < 1e-6, "seed \(seed) n\(i) period")
            let coverage = try #require(row.coverage, "seed \(seed) n\(i): a node row has a coverage")
            #expect(abs(coverage - (expected.coverage ?? -1)) < 1e-6, "seed \(seed) n\(i) coverage \(coverage)")
            #expect(coverage <= 1, "seed \(seed)")
            #expect(row.peakSavedBytes == expected.peakSavedBytes, "seed \(seed) n\(i) peak")
            #expect(abs(row.savedGiBHours - expected.savedGiBHours) < 1e-6, "seed \(seed) n\(i) GiB-h")
            if n.gapless && deletedAt == nil {
                #expect(abs(coverage - 1) < 1e-9, "seed \(seed) n\(i): gapless coverage \(coverage)")
            }
            #expect(row.dataHours * 3600 <= max(0, min(fleet.period.to, fleet.now) - fleet.period.from) + 1e-6)
        }
        #expect(report.rows.count == expectedRows, "seed \(seed)")
        let exactPeak = ReportMath.groupPeak(peaks, from: fleet.period.from, to: fleet.period.to, policy: Self.policy)
        #expect(report.total.peakSavedBytes == exactPeak, "seed \(seed): fleet peak")
        #expect(report.total.peakBasis == (exactPeak == nil ? nil : .samples), "seed \(seed)")
        for row in report.rows {
            #expect((report.total.peakSavedBytes ?? -1) >= (row.peakSavedBytes ?? 0), "seed \(seed)")
        }
    }
}
