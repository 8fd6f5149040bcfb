@testable import KSMCore
import TestSupport
import Testing

/// `ReportMath.integrate` and `groupPeak` were made faster (a bucket kept open instead of two
/// hash look-ups a segment; no copy and sort of samples already in time order; a counting sort
/// of the peak sweep's events). They must give the same doubles as before, bit for bit: these
/// tests hold them against the code as it was (`Reference`), on random streams with gaps, out
/// of order, with equal times, goodbyes, counter resets, every phase and "now" inside them.
@Suite struct ReportMathReferenceTests {
    static let seeds: [UInt64] = Array(1...100)

    /// A random node's samples over about [from - 10 min, to + 10 min): steps of 1 s to 7 min
    /// (gaps beyond `maxGapSeconds`), sometimes several at one time, sometimes shuffled.
    static func stream(_ rng: inout SeededRandom, from: Double, to: Double, aligned: Bool) -> [ReportSample] {
        var out: [ReportSample] = []
        var t = from - 600 + (aligned ? 0 : Double.random(in: 0..<60, using: &rng))
        var (cpu, scans) = (0.0, Int64(0))
        while t < to + 600 {
            cpu = Int.random(in: 0..<40, using: &rng) == 0 ? 0.5 : cpu + Double.random(in: 0...2, using: &rng)
            scans = Int.random(in: 0..<40, using: &rng) == 0 ? 0 : scans + Int64.random(in: 0...3, using: &rng)
            out.append(
                ReportSample(
                    at: aligned ? t : (t * 1000).rounded() / 1000, savedBytes: Int64.random(in: 0...(1 << 34), using: &rng),
                    cpuSeconds: Bool.random(using: &rng) ? cpu : nil,
                    cpuPercent: Int.random(in: 0..<4, using: &rng) == 0 ? nil : Double.random(in: 0...100, using: &rng),
                    fullScans: scans, phase: KSMPhase.allCases.randomElement(using: &rng)!,
                    netProfit: Bool.random(using: &rng) ? Int64.random(in: -(1 << 30)...(1 << 32), using: &rng) : nil,
                    endsData: Int.random(in: 0..<50, using: &rng) == 0))
            // Several samples at one time now and then; aligned streams share their times.
            if Int.random(in: 0..<15, using: &rng) != 0 {
                let steps: [Double] = [1, 10, 60, 60, 60, 299, 300, 301, 420]
                t += aligned ? 60 : steps.randomElement(using: &rng)! * Double.random(in: 0.5...1, using: &rng)
            }
        }
        if Int.random(in: 0..<4, using: &rng) == 0 { out.shuffle(using: &rng) }
        return out
    }

    static func fleet(seed: UInt64) -> (streams: [[ReportSample]], from: Double, to: Double, now: Double) {
        var rng = SeededRandom(seed: seed)
        let from = 1_793_577_600.0 + Double(Int.random(in: 0..<96, using: &rng)) * 900
        let to = from + [600.0, 1800, 3600, 7200, 6 * 3600].randomElement(using: &rng)!
        let now = from + Double.random(in: 0.1...1.2, using: &rng) * (to - from)
        // Some fleets sample in step (every node at the same seconds): many equal times.
        let aligned = seed % 5 == 0
        let streams = (0..<Int.random(in: 1...25, using: &rng)).map { _ in
            stream(&rng, from: from, to: to, aligned: aligned)
        }
        return (streams, from, to, now)
    }

    @Test(arguments: seeds) func integrateGivesWhatItGaveBefore(seed: UInt64) {
        let f = Self.fleet(seed: seed)
        for (i, s) in f.streams.enumerated() {
            for (bucket, horizon) in [(3600.0, f.now), (86400, Double.infinity), (900, f.now)] {
                let now = ReportMath.integrate(s, from: f.from, to: f.to, bucketSeconds: bucket, horizon: horizon)
                let before = Reference.integrate(s, from: f.from, to: f.to, bucketSeconds: bucket, horizon: horizon)
                #expect(now == before, "seed \(seed) stream \(i) buckets of \(bucket) s")
            }
        }
    }

    @Test(arguments: seeds) func groupPeakGivesWhatItGaveBefore(seed: UInt64) {
        let f = Self.fleet(seed: seed)
        let withHorizons = f.streams.enumerated().map { i, s in (s, i % 3 == 0 ? f.now - 900 : f.now) }
        let now = ReportMath.groupPeak(withHorizons, from: f.from, to: f.to)
        let before = Reference.groupPeak(withHorizons, from: f.from, to: f.to)
        #expect(now == before, "seed \(seed)")
        #expect(now != nil || f.streams.allSatisfy { $0.isEmpty } || f.now <= f.from + 900, "seed \(seed): no peak")
    }

    /// The counting sort against a stable sort: random times with many equal ones, slots of more
    /// than 16 events (the sort path), times on the range's edges, and ranges that cannot be
    /// divided (one slot).
    @Test(arguments: seeds) func timeSortedIsAStableSortByTime(seed: UInt64) {
        var rng = SeededRandom(seed: seed)
        let range = Interval(1000, 1000 + Double.random(in: 0.001...100_000, using: &rng))
        let n = Int.random(in: 0...3000, using: &rng)
        // A few distinct times when clumped, so slots overflow and ties abound.
        let clump = seed % 3 == 0 ? (0..<20).map { _ in Double.random(in: range.from...range.to, using: &rng) } : []
        let events: [(Double, Double)] = (0..<n).map { i in
            let t: Double
            switch Int.random(in: 0..<10, using: &rng) {
            case 0: t = range.from
            case 1: t = range.to
            default: t = clump.isEmpty ? Double.random(in: range.from...range.to, using: &rng) : clump.randomElement(using: &rng)!
            }
            return (t, Double(i))
        }
        let expected = events.enumerated().sorted { $0.element.0 != $1.element.0 ? $0.element.0 < $1.element.0 : $0.offset < $1.offset }
            .map(\.element)
        for r in [range, Interval(range.from, range.from), Interval(range.from, .infinity)] {
            let got = ReportMath.timeSorted(events, within: r)
            #expect(got.map(\.0) == expected.map(\.0) && got.map(\.1) == expected.map(\.1), "seed \(seed) range \(r)")
        }
    }

    /// The report math as it was before it was made faster (docs/benchmarks.md), kept only to
    /// check that the faster code gives the same doubles.
    enum Reference {
        static func integrate(
            _ input: [ReportSample], from: Double, to: Double, bucketSeconds: Double, policy: ReportPolicy = .default,
            horizon: Double = .infinity
        ) -> Integration {
            let samples = input.sorted { $0.at < $1.at }
            var buckets: [Double: BucketStats] = [:]
            var covered: [Interval] = []
            var clipped = false
            func bucketStart(_ t: Double) -> Double { (t / bucketSeconds).rounded(.down) * bucketSeconds }

            for (i, s) in samples.enumerated() {
                let next: ReportSample? = i + 1 < samples.count ? samples[i + 1] : nil
                let contiguous = !s.endsData && (next.map { $0.at - s.at <= policy.maxGapSeconds } ?? false)
                let span = ReportMath.segmentEnd(s, next: next, policy: policy) - s.at
                let end = min(s.at + span, horizon)
                if end < s.at + span && end < to { clipped = true }
                var rateNum: Double = 0
                var rateDen: Double = 1
                if let n = next, contiguous, span > 0 {
                    if let a = s.cpuSeconds, let b = n.cpuSeconds {
                        rateNum = ReportMath.counterDelta(from: a, to: b)
                        rateDen = span
                    } else if let p = n.cpuPercent {
                        rateNum = p
                        rateDen = 100
                    }
                } else if !contiguous, let p = s.cpuPercent {
                    rateNum = p
                    rateDen = 100
                }
                let percent = rateNum * 100 / rateDen
                if s.at >= from && s.at < to {
                    buckets[bucketStart(s.at), default: BucketStats()].samples += 1
                }
                if let n = next, contiguous, n.at >= from, n.at < to {
                    let d = ReportMath.counterDelta(from: s.fullScans, to: n.fullScans)
                    if d != 0 { buckets[bucketStart(n.at), default: BucketStats()].fullScans += d }
                }
                let a = max(s.at, from)
                let b = min(end, to)
                guard b > a else { continue }
                if let last = covered.last, last.to >= a {
                    covered[covered.count - 1].to = max(last.to, b)
                } else {
                    covered.append(Interval(a, b))
                }
                var t = a
                while t < b {
                    let bs = bucketStart(t)
                    let e = min(b, bs + bucketSeconds)
                    let dur = e - t
                    var st = buckets[bs] ?? BucketStats()
                    st.dataSeconds += dur
                    st.savedByteSeconds += Double(s.savedBytes) * dur
                    st.peakSavedBytes = maxOpt(st.peakSavedBytes, s.savedBytes)
                    st.cpuSeconds += rateNum * dur / rateDen
                    st.peakCPUPercent = maxOpt(st.peakCPUPercent, percent)
                    st.addPhase(s.phase, dur)
                    if let p = s.netProfit {
                        st.profitByteSeconds += Double(p) * dur
                        st.profitSeconds += dur
                    }
                    buckets[bs] = st
                    t = e
                }
            }
            return Integration(
                buckets: buckets, gaps: ReportMath.complement(of: covered, within: Interval(from, to)), covered: covered,
                clippedAtHorizon: clipped)
        }

        static func groupPeak(
            _ streams: [(samples: [ReportSample], horizon: Double)], from: Double, to: Double,
            policy: ReportPolicy = .default
        ) -> Double? {
            var events: [(Double, Double)] = []
            for (input, horizon) in streams {
                let samples = input.sorted { $0.at < $1.at }
                for (i, s) in samples.enumerated() {
                    let next: ReportSample? = i + 1 < samples.count ? samples[i + 1] : nil
                    let a = max(s.at, from)
                    let b = min(ReportMath.segmentEnd(s, next: next, policy: policy), horizon, to)
                    if b > a {
                        events.append((a, Double(s.savedBytes)))
                        events.append((b, -Double(s.savedBytes)))
                    }
                }
            }
            guard !events.isEmpty else { return nil }
            events.sort { $0.0 < $1.0 }
            var sum = 0.0
            var best: Double?
            var i = 0
            while i < events.count {
                let t = events[i].0
                while i < events.count && events[i].0 == t {
                    sum += events[i].1
                    i += 1
                }
                if i < events.count && events[i].0 > t { best = max(best ?? sum, sum) }
            }
            return best
        }
    }
}
