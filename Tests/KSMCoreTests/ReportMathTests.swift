import FleetAPI
import Foundation
import KSMCore
import Testing

/// 2026-11-02T00:00:00Z, an hour- and day-aligned start.
let t0: Double = 1_793_577_600
let gib: Int64 = 1_073_741_824

/// Samples every `step` seconds from `start` for `count` samples.
func series(
    start: Double, step: Double = 60, count: Int, saved: Int64 = gib, cpuStart: Double = 100, cpuPerStep: Double = 6,
    scansStart: Int64 = 0, phase: KSMPhase = .running, profit: Int64? = nil
) -> [ReportSample] {
    (0..<count).map { i in
        ReportSample(
            at: start + Double(i) * step, savedBytes: saved, cpuSeconds: cpuStart + Double(i) * cpuPerStep,
            cpuPercent: cpuPerStep * 100 / step, fullScans: scansStart + Int64(i), phase: phase, netProfit: profit)
    }
}

@Suite struct ReportMathTests {
    @Test func steadyNodeGivesExactHourFigures() {
        let s = series(start: t0, count: 121)  // t0 … t0+2h, one a minute
        let r = ReportMath.integrate(s, from: t0, to: t0 + 7200, bucketSeconds: 3600)
        #expect(r.gaps.isEmpty)
        #expect(r.buckets.keys.sorted() == [t0, t0 + 3600])
        let h0 = r.buckets[t0]!
        let h1 = r.buckets[t0 + 3600]!
        #expect(h0.dataSeconds == 3600 && h1.dataSeconds == 3600)
        #expect(h0.samples == 60 && h1.samples == 60)
        #expect(h0.avgSavedBytes == Double(gib))
        #expect(h0.savedGiBHours == 1)
        #expect(h0.peakSavedBytes == gib)
        #expect(h0.cpuSeconds == 360)  // 6 s a minute
        #expect(h0.avgCPUPercent == 10)
        #expect(h0.peakCPUPercent == 10)
        #expect(h0.fullScans == 59)  // the pair ending at t0 lies before the period
        #expect(h1.fullScans == 60)
        #expect(h0.runningSeconds == 3600 && h0.stoppedSeconds == 0)
        let total = r.total
        #expect(total.savedGiBHours == 2)
        #expect(total.cpuSeconds == 720)
        #expect(total.fullScans == 119)
        let row = ReportAggregation.nodeRow(
            NodeReportInput(nodeId: "n1", name: "alpha", existence: Interval(t0, t0 + 7200), stats: total, gaps: r.gaps))
        #expect(row.avgSavedBytes == Double(gib))
        #expect(row.savedGiBHours == 2)
        #expect(row.ksmdCPUHours == 0.2)
        #expect(row.avgKsmdCPUCores == 0.1)
        #expect(row.efficiencyGiBPerCore == 10)
        #expect(row.coverage == 1)
        #expect(row.phaseHours == ["Running": 2])
    }

    /// A history bucket's coverage is the report's: data over the part of the bucket the node
    /// existed (registered mid-hour, or the hour under way, is no missing data).
    @Test func bucketCoverageCountsOnlyTheNodesLife() {
        let hour = Interval(t0, t0 + 3600)
        #expect(ReportAggregation.coverage(dataSeconds: 1800, bucket: hour, existence: Interval(t0 + 1800, t0 + 7200)) == 1)
        #expect(ReportAggregation.coverage(dataSeconds: 2714, bucket: hour, existence: Interval(t0 - 60, t0 + 2714)) == 1)
        #expect(ReportAggregation.coverage(dataSeconds: 1800, bucket: hour, existence: Interval(t0 - 60, t0 + 7200)) == 0.5)
        #expect(ReportAggregation.coverage(dataSeconds: 900, bucket: hour, existence: Interval(t0 + 1800, t0 + 7200)) == 0.5)
        #expect(ReportAggregation.coverage(dataSeconds: 0, bucket: hour, existence: Interval(t0 + 3600, t0 + 7200)) == nil)
        #expect(ReportAggregation.coverage(dataSeconds: 0, bucket: hour, existence: nil) == nil)
    }

    @Test func offlineNodeShowsAGapNotZeros() {
        // Up for 30 min, offline, back at 1:30 until 2:00. The counter ran on while offline.
        let before = series(start: t0, count: 31)  // t0 … t0+1800
        let after = series(start: t0 + 5400, count: 31, cpuStart: 5000)  // t0+1:30 … t0+2:00
        let r = ReportMath.integrate(before + after, from: t0, to: t0 + 7200, bucketSeconds: 3600)
        // The last sample before the silence holds 60 s (tailSeconds), then it is a gap.
        #expect(r.gaps == [Interval(t0 + 1860, t0 + 5400)])
        #expect(r.buckets[t0]!.dataSeconds == 1860)
        #expect(r.buckets[t0 + 3600]!.dataSeconds == 1800)
        // Average over the time with data, not diluted by the gap.
        #expect(r.buckets[t0]!.avgSavedBytes == Double(gib))
        #expect(r.buckets[t0 + 3600]!.avgSavedBytes == Double(gib))
        // 30 minutes × 6 s + the tail minute at the sample's own 10 % = 186 s; the counter jump
        // across the gap is not counted as CPU during covered time.
        #expect(r.buckets[t0]!.cpuSeconds == 186)
        #expect(r.buckets[t0 + 3600]!.cpuSeconds == 180)
        let total = r.total
        #expect(total.dataSeconds == 3660)
        let row = ReportAggregation.nodeRow(
            NodeReportInput(nodeId: "n1", name: "a", existence: Interval(t0, t0 + 7200), stats: total, gaps: r.gaps))
        #expect(row.coverage == 3660.0 / 7200.0)
        #expect(row.gaps == [Interval(t0 + 1860, t0 + 5400)])
        #expect(row.avgSavedBytes == Double(gib))
    }

    @Test func counterResetAfterRebootCountsTheNewValue() {
        var s = series(start: t0, count: 11, cpuStart: 100, cpuPerStep: 6, scansStart: 50)
        // Reboot between minute 5 and 6: counters restart from zero.
        for i in 6...10 {
            s[i].cpuSeconds = Double(4 + (i - 6) * 6)  // 4, 10, 16, 22, 28
            s[i].fullScans = Int64(1 + (i - 6))  // 1, 2, 3, 4, 5
        }
        let r = ReportMath.integrate(s, from: t0, to: t0 + 600, bucketSeconds: 3600)
        let h = r.buckets[t0]!
        // 5 intervals of 6 s, then 4 s (the new value), then 4 × 6 s.
        #expect(h.cpuSeconds == 30 + 4 + 24)
        // 5 scans, then 1 (the new value), then 3 (the pair ending at t0+600 is outside).
        #expect(h.fullScans == 5 + 1 + 3)
        #expect(ReportMath.counterDelta(from: 130.0, to: 4.0) == 4)
        #expect(ReportMath.counterDelta(from: Int64(10), to: 12) == 2)
    }

    @Test func pruneDropsSavingsAndIsTimedAsPruned() {
        // 10 min running with 2 GiB saved, then prune: 0 saved, phase Pruned, for 10 min.
        let running = series(start: t0, count: 10, saved: 2 * gib, phase: .running)
        let pruned = series(start: t0 + 600, count: 11, saved: 0, cpuStart: 160, cpuPerStep: 0, scansStart: 10, phase: .pruned)
        let r = ReportMath.integrate(running + pruned, from: t0, to: t0 + 1200, bucketSeconds: 3600)
        let h = r.buckets[t0]!
        #expect(h.runningSeconds == 600)
        #expect(h.prunedSeconds == 600)
        #expect(h.savedByteSeconds == Double(2 * gib) * 600)
        #expect(h.avgSavedBytes == Double(gib))
        #expect(h.peakSavedBytes == 2 * gib)
        #expect(h.cpuSeconds == 60)  // 10 intervals of 6 s while running, 0 after
        #expect(r.gaps.isEmpty)
    }

    @Test func netProfitIsAveragedOnlyWhereReported() {
        var s = series(start: t0, count: 61, profit: 900)
        for i in 0..<30 { s[i].netProfit = nil }  // an older kernel for the first half hour
        let r = ReportMath.integrate(s, from: t0, to: t0 + 3600, bucketSeconds: 3600)
        #expect(r.buckets[t0]!.profitSeconds == 1800)
        #expect(r.buckets[t0]!.avgNetProfitBytes == 900)
        let none = ReportMath.integrate(series(start: t0, count: 61), from: t0, to: t0 + 3600, bucketSeconds: 3600)
        #expect(none.buckets[t0]!.avgNetProfitBytes == nil)
    }

    @Test func samplesBeforeThePeriodHoldIntoIt() {
        // A sample at 23:58 the day before holds until the next at 00:02 (within maxGap).
        let s = [
            ReportSample(at: t0 - 120, savedBytes: 100, cpuSeconds: 0, fullScans: 0),
            ReportSample(at: t0 + 120, savedBytes: 300, cpuSeconds: 24, fullScans: 1),
        ]
        let r = ReportMath.integrate(s, from: t0, to: t0 + 240, bucketSeconds: 3600)
        let h = r.buckets[t0]!
        #expect(h.dataSeconds == 180)  // 120 from the first, 60 tail of the last
        #expect(h.savedByteSeconds == 100 * 120 + 300 * 60)
        #expect(h.cpuSeconds == 12)  // 24 s over 240 s, 120 s of it inside the period
        #expect(h.fullScans == 1)
        #expect(h.samples == 1)
        #expect(r.gaps == [Interval(t0 + 180, t0 + 240)])
    }

    @Test func hoursMergeIntoDaysExactly() {
        let s = series(start: t0 + 22 * 3600, count: 241)  // 22:00 → 02:00 next day
        let r = ReportMath.integrate(s, from: t0, to: t0 + 2 * 86400, bucketSeconds: 3600)
        let days = ReportMath.mergeIntoDays(r.buckets)
        #expect(days.keys.sorted() == [t0, t0 + 86400])
        #expect(days[t0]!.dataSeconds == 7200)
        #expect(days[t0 + 86400]!.dataSeconds == 7200 + 60)  // the last sample's tail
        #expect(days[t0]!.savedGiBHours == 2)
        let direct = ReportMath.integrate(s, from: t0, to: t0 + 2 * 86400, bucketSeconds: 86400)
        #expect(direct.buckets[t0 + 86400]!.dataSeconds == days[t0 + 86400]!.dataSeconds)
        #expect(direct.buckets[t0]!.cpuSeconds == days[t0]!.cpuSeconds)
        #expect(direct.buckets[t0 + 86400]!.fullScans == days[t0 + 86400]!.fullScans)
    }

    @Test func groupsSumAveragesAndKeepGapsWhereNoNodeHadData() {
        let period = Interval(t0, t0 + 7200)
        let a = ReportMath.integrate(series(start: t0, count: 121, saved: gib), from: t0, to: t0 + 7200, bucketSeconds: 3600)
        // b saves 3 GiB but is offline in the second hour.
        let b = ReportMath.integrate(
            series(start: t0, count: 60, saved: 3 * gib, cpuPerStep: 12), from: t0, to: t0 + 7200, bucketSeconds: 3600)
        // c exists only in the second hour (registered at 1:00) and never reported.
        let nodes = [
            NodeReportInput(
                nodeId: "a", name: "a", labels: ["rack": "r1"], existence: period, stats: a.total, gaps: a.gaps,
                series: a.buckets.mapValues { $0.avgSavedBytes ?? 0 }),
            NodeReportInput(
                nodeId: "b", name: "b", labels: ["rack": "r1"], existence: period, stats: b.total, gaps: b.gaps,
                series: b.buckets.mapValues { $0.avgSavedBytes ?? 0 }),
            NodeReportInput(
                nodeId: "c", name: "c", labels: [:], existence: Interval(t0 + 3600, t0 + 7200), stats: BucketStats(),
                gaps: [Interval(t0 + 3600, t0 + 7200)]),
        ]
        #expect(b.gaps == [Interval(t0 + 3600, t0 + 7200)])
        let rows = ReportAggregation.labelRows(nodes, label: "rack", period: period)
        #expect(rows.map(\.key) == ["", "r1"])
        let r1 = rows[1]
        #expect(r1.nodes == 2)
        #expect(r1.avgSavedBytes == Double(4 * gib))  // 1 GiB + 3 GiB (b's average while up)
        #expect(r1.peakSavedBytes == Double(4 * gib))  // the first hour, both up
        #expect(r1.savedGiBHours == 2 + 3)
        #expect(r1.ksmdCPUHours == 0.2 + 0.2)
        #expect(r1.avgKsmdCPUCores == 0.1 + 0.2)
        #expect(r1.dataHours == 3)
        #expect(r1.periodHours == 4)
        #expect(r1.coverage == 0.75)
        #expect(r1.gaps.isEmpty)  // a covered all of it
        let unlabelled = rows[0]
        #expect(unlabelled.nodes == 0)
        #expect(unlabelled.avgSavedBytes == nil)
        #expect(unlabelled.gaps == [Interval(t0 + 3600, t0 + 7200)])  // c existed only then
        let fleet = ReportAggregation.groupRow(key: "fleet", nodes: nodes, period: period)
        #expect(fleet.periodHours == 5)
        #expect(fleet.coverage == 0.6)
        #expect(abs((fleet.efficiencyGiBPerCore ?? 0) - 4 / 0.3) < 1e-9)
    }

    @Test func intervalsComplementAndCoalesce() {
        let c = ReportMath.coalesce([Interval(5, 7), Interval(0, 2), Interval(2, 3), Interval(6, 9)])
        #expect(c == [Interval(0, 3), Interval(5, 9)])
        #expect(ReportMath.complement(of: c, within: Interval(-1, 10)) == [Interval(-1, 0), Interval(3, 5), Interval(9, 10)])
        #expect(ReportMath.complement(of: [], within: Interval(1, 2)) == [Interval(1, 2)])
        #expect(ReportMath.clip([Interval(0, 10)], to: Interval(2, 3)) == [Interval(2, 3)])
    }
}

@Suite struct ReportTimeTests {
    @Test func parsesTheAcceptedForms() {
        let now = t0 + 12 * 3600
        #expect(ReportTime.parse("2026-11-02T00:00:00Z", now: now) == t0)
        #expect(ReportTime.parse("2026-11-02", now: now) == t0)
        #expect(ReportTime.parse("2026-11-02T01:30:00+01:00", now: now) == t0 + 1800)
        #expect(ReportTime.parse("2026-11-02 00:00:01.5Z", now: now) == t0 + 1.5)
        #expect(ReportTime.parse("2026-11-02T00:00", now: now) == t0)
        #expect(ReportTime.parse("-24h", now: now) == now - 86400)
        #expect(ReportTime.parse("30d", now: now) == now - 30 * 86400)
        #expect(ReportTime.parse("now", now: now) == now)
        #expect(ReportTime.parse("@1793577600", now: now) == t0)
        #expect(ReportTime.parse("yesterday", now: now) == nil)
        #expect(ReportTime.parse("2026-13-01", now: now) == nil)
        #expect(ReportTime.parse("2026-11-02T00:00:00Q", now: now) == nil)
    }

    @Test func formatsUTC() {
        #expect(ReportTime.iso(t0 + 3723) == "2026-11-02T01:02:03Z")
        #expect(ReportTime.dayKey(t0 + 86399) == "2026-11-02")
        #expect(ReportTime.dayKey(0) == "1970-01-01")
        #expect(ReportTime.decimal(1.5) == "1.5")
        #expect(ReportTime.decimal(2) == "2")
        #expect(ReportTime.decimal(1.0 / 3) == "0.333")
        #expect(ReportTime.decimal(-0.25, places: 1) == "-0.3")
    }

    /// The CSV's numbers: every digit of the double, never an exponent, read back as the same double.
    @Test func csvNumbersAreTheExactDoubles() {
        for (v, text) in [
            (0.00019073486328125, "0.00019073486328125"), (0.9999996, "0.9999996"), (1073741824, "1073741824"),
            (-0.0, "0"), (1e20, "100000000000000000000"), (1.5, "1.5"), (1e-7, "0.0000001"), (-2.5e-5, "-0.000025"),
            (123456789.125, "123456789.125"),
        ] as [(Double, String)] {
            #expect(ReportTime.exactDecimal(v) == text)
        }
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<2000 {
            let v = Double(sign: Bool.random(using: &rng) ? .minus : .plus, exponent: Int.random(in: -40...60, using: &rng),
                           significand: Double.random(in: 1..<2, using: &rng))
            let text = ReportTime.exactDecimal(v)
            #expect(Double(text) == v && !text.contains("e"), "\(v) → \(text)")
        }
        let tiny = SavingsRow(
            key: "n", name: nil, nodes: 1, avgSavedBytes: 102400, peakSavedBytes: 102400, savedGiBHours: 0.0000316,
            ksmdCPUHours: 0.1, avgKsmdCPUCores: 0.5, efficiencyGiBPerCore: 0.00019073486328125, avgNetProfitBytes: nil,
            phaseHours: [:], dataHours: 0.2, periodHours: 0.2, coverage: 0.9999996, gaps: [])
        let cells = tiny.csvLine().split(separator: ",", omittingEmptySubsequences: false)
        #expect(cells[9] == "0.00019073486328125" && cells[17] == "0.9999996", "\(cells)")
    }

    @Test func csvQuotesAndListsGaps() {
        let row = SavingsRow(
            key: "rack,1", name: "say \"hi\"", nodes: 1, avgSavedBytes: 1024, peakSavedBytes: 2048, savedGiBHours: 1.5,
            ksmdCPUHours: 0.25, avgKsmdCPUCores: 0.1, efficiencyGiBPerCore: 10, avgNetProfitBytes: nil,
            phaseHours: ["Running": 2], dataHours: 2, periodHours: 4, coverage: 0.5,
            gaps: [TimeRange(Interval(t0, t0 + 3600))])
        let line = row.csvLine()
        #expect(
            line
                == "\"rack,1\",\"say \"\"hi\"\"\",,1,1024,2048,1.5,0.25,0.1,10,,2,0,0,0,2,4,0.5,2026-11-02T00:00:00Z/2026-11-02T01:00:00Z,"
        )
        #expect(line.split(separator: ",", omittingEmptySubsequences: false).count >= SavingsReport.csvHeader.split(separator: ",").count)
    }
}
