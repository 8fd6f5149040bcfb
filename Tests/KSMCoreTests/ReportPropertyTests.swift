import KSMCore
import TestSupport
import Testing

/// The report math's invariants over random sample streams with gaps, registrations,
/// deletions, goodbyes and "now" inside a bucket (docs/numbers.md).
@Suite struct ReportPropertyTests {
    static let policy = ReportPolicy(maxGapSeconds: 300, tailSeconds: 60)
    static let seeds: [UInt64] = Array(1...300)

    /// A node's figures the way the store computes them from raw samples.
    static func input(_ n: RandomNode, fleet: RandomFleet, id: String) -> (NodeReportInput, Integration)? {
        guard
            let existence = ReportMath.existence(
                registeredAt: n.registeredAt, firstData: n.samples.first?.at, deletedAt: n.deletedAt,
                period: fleet.period, now: fleet.now)
        else { return nil }
        let integ = ReportMath.integrate(
            n.samples, from: fleet.period.from, to: fleet.period.to, bucketSeconds: 3600, policy: policy,
            horizon: min(fleet.now, n.deletedAt ?? fleet.now))
        let covered = ReportMath.clip(integ.covered, to: existence)
        return (
            NodeReportInput(
                nodeId: id, name: id, existence: existence, stats: integ.total,
                gaps: ReportMath.complement(of: covered, within: existence)),
            integ
        )
    }

    /// A node's saved-bytes segments, as the group peak sees them.
    static func segments(_ n: RandomNode, fleet: RandomFleet) -> [(Interval, Int64)] {
        ReportMath.savedSegments(
            n.samples, from: fleet.period.from, to: fleet.period.to, policy: policy,
            horizon: min(fleet.now, n.deletedAt ?? fleet.now))
    }

    /// The value at `t` of a node with these (ordered, disjoint) segments; 0 where it has no data.
    static func value(_ segs: [(Interval, Int64)], at t: Double) -> Double {
        var lo = 0
        var hi = segs.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if segs[mid].0.to <= t { lo = mid + 1 } else { hi = mid }
        }
        guard lo < segs.count, segs[lo].0.from <= t, t < segs[lo].0.to else { return 0 }
        return Double(segs[lo].1)
    }

    @Test(arguments: seeds) func noBucketHoldsMoreDataThanHasElapsed(seed: UInt64) {
        let fleet = RandomFleet.make(seed: seed, policy: Self.policy)
        for (i, n) in fleet.nodes.enumerated() {
            guard let (input, integ) = Self.input(n, fleet: fleet, id: "n\(i)") else { continue }
            let elapsed = max(0, min(fleet.period.to, fleet.now) - fleet.period.from)
            #expect(input.stats.dataSeconds <= elapsed + 1e-6, "seed \(seed) node \(i)")
            for (start, b) in integ.buckets {
                let room = max(0, min(start + 3600, fleet.period.to, fleet.now) - max(start, fleet.period.from))
                #expect(b.dataSeconds <= room + 1e-6, "seed \(seed) node \(i) bucket \(start)")
            }
            #expect(input.stats.dataSeconds <= input.existence.length + 1e-6, "seed \(seed) node \(i)")
        }
    }

    @Test(arguments: seeds) func coverageIsAtMostOneAndOneWithoutGaps(seed: UInt64) throws {
        let fleet = RandomFleet.make(seed: seed, policy: Self.policy)
        var inputs: [NodeReportInput] = []
        for (i, n) in fleet.nodes.enumerated() {
            guard let (input, _) = Self.input(n, fleet: fleet, id: "n\(i)") else { continue }
            inputs.append(input)
            let row = ReportAggregation.nodeRow(input)
            let coverage = try #require(row.coverage, "seed \(seed) node \(i): a node's row is only made for a node that existed")
            #expect(coverage >= 0 && coverage <= 1, "seed \(seed) node \(i)")
            if n.gapless {
                #expect(abs(coverage - 1) < 1e-9, "seed \(seed) node \(i): coverage \(coverage)")
                #expect(input.gaps.isEmpty, "seed \(seed) node \(i): gaps \(input.gaps)")
            }
            // Gaps lie inside the node's life, never before its registration or after now.
            for g in input.gaps {
                #expect(g.from >= input.existence.from && g.to <= input.existence.to, "seed \(seed)")
                #expect(g.from >= n.registeredAt - 1e-9 && g.to <= fleet.now + 1e-9, "seed \(seed)")
            }
        }
        let fleetRow = ReportAggregation.groupRow(key: "fleet", nodes: inputs, period: fleet.period)
        if inputs.isEmpty {
            #expect(fleetRow.coverage == nil, "seed \(seed): no node existed in the period")
        } else {
            let coverage = try #require(fleetRow.coverage, "seed \(seed)")
            #expect(coverage >= 0 && coverage <= 1, "seed \(seed)")
        }
        // No node existed in the period (a day before the first registration): no coverage, not 0.
        let empty = ReportAggregation.groupRow(key: "before", nodes: [], period: fleet.period)
        #expect(empty.periodHours == 0 && empty.coverage == nil && empty.gaps.isEmpty, "seed \(seed)")
        // A group's gaps lie inside some member's life: not before the first registration.
        let lives = ReportMath.coalesce(inputs.map(\.existence))
        for g in fleetRow.gaps {
            #expect(lives.contains { $0.from <= g.from && g.to <= $0.to }, "seed \(seed): group gap \(g) outside \(lives)")
        }
        #expect(fleetRow.dataHours <= fleetRow.periodHours + 1e-9, "seed \(seed)")
    }

    @Test(arguments: seeds) func groupPeakIsTheHighestSumAtOneMoment(seed: UInt64) {
        let fleet = RandomFleet.make(seed: seed, policy: Self.policy)
        let horizon = fleet.now
        // Deleted nodes' values end at their deletion, as `input` does.
        let peak = ReportMath.groupPeak(
            fleet.nodes.map { n in (n.samples, min(horizon, n.deletedAt ?? horizon)) },
            from: fleet.period.from, to: fleet.period.to, policy: Self.policy)
        // Brute force: the sum at every instant where some node's value starts to hold.
        let segs = fleet.nodes.map { Self.segments($0, fleet: fleet) }
        let moments = segs.flatMap { $0.map(\.0.from) }
        let sums = moments.map { t in segs.reduce(0.0) { $0 + Self.value($1, at: t) } }
        #expect(peak == sums.max(), "seed \(seed): \(String(describing: peak)) vs \(String(describing: sums.max()))")

        // Never below any member's value at any moment, nor below a member's own peak.
        var inputs: [NodeReportInput] = []
        for (i, n) in fleet.nodes.enumerated() {
            guard let (input, _) = Self.input(n, fleet: fleet, id: "n\(i)") else { continue }
            inputs.append(input)
            if let p = input.stats.peakSavedBytes { #expect((peak ?? -1) >= Double(p), "seed \(seed) node \(i)") }
        }
        for (t, sum) in zip(moments, sums) { #expect((peak ?? -1) >= sum, "seed \(seed) at \(t)") }
        let exactRow = ReportAggregation.groupRow(key: "fleet", nodes: inputs, period: fleet.period, exactPeak: peak)
        let roughRow = ReportAggregation.groupRow(key: "fleet", nodes: inputs, period: fleet.period)
        for input in inputs {
            guard let own = ReportAggregation.nodeRow(input).peakSavedBytes else { continue }
            #expect((exactRow.peakSavedBytes ?? -1) >= own, "seed \(seed)")
            #expect((roughRow.peakSavedBytes ?? -1) >= own, "seed \(seed)")
            // The rollup figure is a lower bound of the exact one.
            #expect((roughRow.peakSavedBytes ?? 0) <= (exactRow.peakSavedBytes ?? 0) + 1e-6, "seed \(seed)")
        }
    }

    /// The stored fleet peaks rest on this: a period's group peak is the highest of the peaks of
    /// any partition of it into windows (each swept from only the samples within `maxGapSeconds`
    /// of the window, as the store reads them), none of them being nil unless all are.
    @Test(arguments: seeds) func groupPeakOfAPeriodIsTheHighestPeakOfItsParts(seed: UInt64) {
        let fleet = RandomFleet.make(seed: seed, policy: Self.policy, wholeSeconds: true)
        var rng = SeededRandom(seed: seed &* 7919)
        let streams = fleet.nodes.map { n in (samples: n.samples, horizon: min(fleet.now, n.deletedAt ?? fleet.now)) }
        let whole = ReportMath.groupPeak(streams, from: fleet.period.from, to: fleet.period.to, policy: Self.policy)
        // Cut points: every whole hour inside the period (the store's split), plus random ones.
        var cuts = Set<Double>()
        var h = (fleet.period.from / 3600).rounded(.up) * 3600
        while h < fleet.period.to {
            cuts.insert(h)
            h += 3600
        }
        for _ in 0..<Int.random(in: 0...4, using: &rng) {
            cuts.insert((fleet.period.from + Double.random(in: 0..<1, using: &rng) * fleet.period.length).rounded(.down))
        }
        let edges = [fleet.period.from] + cuts.filter { $0 > fleet.period.from && $0 < fleet.period.to }.sorted()
            + [fleet.period.to]
        var best: Double?
        for (a, b) in zip(edges, edges.dropFirst()) {
            let near = streams.map { s in
                (samples: s.samples.filter { $0.at >= a - Self.policy.maxGapSeconds && $0.at < b + Self.policy.maxGapSeconds },
                 horizon: s.horizon)
            }
            if let p = ReportMath.groupPeak(near, from: a, to: b, policy: Self.policy) { best = max(best ?? p, p) }
        }
        #expect(best == whole, "seed \(seed): parts \(String(describing: best)) vs whole \(String(describing: whole))")
    }

    @Test func aOneNodeGroupPeakIsItsPeak() {
        let samples = (0..<21).map { i in ReportSample(at: 1_793_577_600 + Double(i), savedBytes: Int64(i) << 26) }
        let peak = ReportMath.groupPeak([samples], from: 1_793_577_600, to: 1_793_577_600 + 3600)
        #expect(peak == Double(Int64(20) << 26))
        let rows = ReportAggregation.groupRow(
            key: "fleet",
            nodes: [
                NodeReportInput(
                    nodeId: "a", name: "a", existence: Interval(1_793_577_600, 1_793_581_200),
                    stats: ReportMath.integrate(samples, from: 1_793_577_600, to: 1_793_581_200, bucketSeconds: 3600)
                        .total, gaps: [])
            ], period: Interval(1_793_577_600, 1_793_581_200), series: [1_793_577_600: 1e6])
        // Without raw samples the hourly average (1e6) is not the peak: the member's peak is.
        #expect(rows.peakSavedBytes == Double(Int64(20) << 26))
        #expect(rows.peakBasis == .hour)
    }

    @Test func theCurrentHourHoldsOnlyElapsedTime() {
        // 31 s after an agent started sampling every second, the hour holds 31 s, not 91.
        let start = 1_793_577_600.0 + 600
        let samples = (0...30).map { i in ReportSample(at: start + Double(i), savedBytes: 1 << 30) }
        let r = ReportMath.integrate(
            samples, from: 1_793_577_600, to: 1_793_581_200, bucketSeconds: 3600, horizon: start + 31)
        #expect(r.total.dataSeconds == 31)
        #expect(r.clippedAtHorizon)
        let later = ReportMath.integrate(
            samples, from: 1_793_577_600, to: 1_793_581_200, bucketSeconds: 3600, horizon: start + 500)
        #expect(later.total.dataSeconds == 90)
        #expect(!later.clippedAtHorizon)
    }

    @Test func aGoodbyeEndsTheDataAtOnce() {
        let start = 1_793_577_600.0
        var samples = (0..<10).map { i in ReportSample(at: start + Double(i) * 10, savedBytes: 1 << 30) }
        samples[9].endsData = true
        let r = ReportMath.integrate(samples, from: start, to: start + 3600, bucketSeconds: 3600)
        #expect(r.total.dataSeconds == 90)
        #expect(r.gaps == [Interval(start + 90, start + 3600)])
    }

    @Test func existenceStartsAtRegistrationAndStopsAtNow() {
        let p = Interval(1_793_577_600, 1_793_581_200)
        let e = ReportMath.existence(
            registeredAt: p.from + 360, firstData: p.from + 361, deletedAt: nil, period: p, now: p.from + 1800)
        // The first sample a second after the registration: set-up time, not a gap.
        #expect(e == Interval(p.from + 361, p.from + 1800))
        let late = ReportMath.existence(
            registeredAt: p.from + 360, firstData: p.from + 1000, deletedAt: nil, period: p, now: p.from + 1800)
        #expect(late == Interval(p.from + 360, p.from + 1800), "a first sample 640 s late leaves a gap")
        // Registered a moment ago, no sample yet: not counted (no gap that the first sample would
        // take back); silent past the set-up time: counted, with its gap.
        #expect(ReportMath.existence(registeredAt: p.from + 360, firstData: nil, deletedAt: nil, period: p, now: p.from + 370) == nil)
        #expect(
            ReportMath.existence(registeredAt: p.from + 360, firstData: nil, deletedAt: nil, period: p, now: p.from + 1000)
                == Interval(p.from + 360, p.from + 1000))
        #expect(ReportMath.existence(registeredAt: p.to + 1, firstData: nil, deletedAt: nil, period: p, now: p.to + 5) == nil)
        // History replayed from before the registration counts from its first sample.
        let replayed = ReportMath.existence(
            registeredAt: p.from + 360, firstData: p.from + 10, deletedAt: nil, period: p, now: p.to + 5)
        #expect(replayed == Interval(p.from + 10, p.to))
    }
}
