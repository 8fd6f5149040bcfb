/// One status sample reduced to what history and reports integrate. Times are Unix seconds.
public struct ReportSample: Sendable, Equatable {
    public var at: Double
    public var savedBytes: Int64
    /// Cumulative ksmd CPU seconds (resets to a small value when ksmd restarts).
    public var cpuSeconds: Double?
    /// ksmd CPU in % of one CPU since the previous sample (the agent's own figure).
    public var cpuPercent: Double?
    /// Cumulative full_scans (resets with the host).
    public var fullScans: Int64
    public var phase: KSMPhase
    /// general_profit where the kernel reports it.
    public var netProfit: Int64?
    /// The agent's last sample before a clean stop: its data ends at this instant (no tail).
    public var endsData: Bool

    public init(
        at: Double, savedBytes: Int64, cpuSeconds: Double? = nil, cpuPercent: Double? = nil, fullScans: Int64 = 0,
        phase: KSMPhase = .running, netProfit: Int64? = nil, endsData: Bool = false
    ) {
        self.at = at
        self.savedBytes = savedBytes
        self.cpuSeconds = cpuSeconds
        self.cpuPercent = cpuPercent
        self.fullScans = fullScans
        self.phase = phase
        self.netProfit = netProfit
        self.endsData = endsData
    }
}

/// How samples become time: a sample's value holds until the next sample, unless the next one
/// comes more than `maxGapSeconds` later (or never): then it holds `tailSeconds` and the rest
/// is a gap.
public struct ReportPolicy: Sendable, Equatable {
    public var maxGapSeconds: Double
    public var tailSeconds: Double
    public init(maxGapSeconds: Double = 300, tailSeconds: Double = 60) {
        self.maxGapSeconds = maxGapSeconds
        self.tailSeconds = min(tailSeconds, maxGapSeconds)
    }
    public static let `default` = ReportPolicy()
}

/// A half-open interval [from, to) of Unix seconds.
public struct Interval: Sendable, Equatable, Hashable, Codable {
    public var from: Double
    public var to: Double
    public init(_ from: Double, _ to: Double) {
        self.from = from
        self.to = to
    }
    public var length: Double { max(0, to - from) }
}

/// Sums over a span of time (an hour, a day, a report period) that merge exactly: averages are
/// derived from them, never averaged again.
public struct BucketStats: Sendable, Equatable {
    public var dataSeconds: Double = 0
    public var samples: Int = 0
    /// Integral of saved bytes over the covered time (byte-seconds).
    public var savedByteSeconds: Double = 0
    public var peakSavedBytes: Int64?
    public var cpuSeconds: Double = 0
    public var peakCPUPercent: Double?
    public var fullScans: Int64 = 0
    public var runningSeconds: Double = 0
    public var stoppedSeconds: Double = 0
    public var prunedSeconds: Double = 0
    public var unmanagedSeconds: Double = 0
    /// Integral of general_profit over the time where it was reported, and that time.
    public var profitByteSeconds: Double = 0
    public var profitSeconds: Double = 0

    public init() {}

    public init(
        dataSeconds: Double, samples: Int, savedByteSeconds: Double, peakSavedBytes: Int64?, cpuSeconds: Double,
        peakCPUPercent: Double?, fullScans: Int64, runningSeconds: Double, stoppedSeconds: Double,
        prunedSeconds: Double, unmanagedSeconds: Double, profitByteSeconds: Double, profitSeconds: Double
    ) {
        self.dataSeconds = dataSeconds
        self.samples = samples
        self.savedByteSeconds = savedByteSeconds
        self.peakSavedBytes = peakSavedBytes
        self.cpuSeconds = cpuSeconds
        self.peakCPUPercent = peakCPUPercent
        self.fullScans = fullScans
        self.runningSeconds = runningSeconds
        self.stoppedSeconds = stoppedSeconds
        self.prunedSeconds = prunedSeconds
        self.unmanagedSeconds = unmanagedSeconds
        self.profitByteSeconds = profitByteSeconds
        self.profitSeconds = profitSeconds
    }

    public var isEmpty: Bool { dataSeconds <= 0 && samples == 0 && cpuSeconds == 0 && fullScans == 0 }

    public mutating func merge(_ o: BucketStats) {
        dataSeconds += o.dataSeconds
        samples += o.samples
        savedByteSeconds += o.savedByteSeconds
        peakSavedBytes = maxOpt(peakSavedBytes, o.peakSavedBytes)
        cpuSeconds += o.cpuSeconds
        peakCPUPercent = maxOpt(peakCPUPercent, o.peakCPUPercent)
        fullScans += o.fullScans
        runningSeconds += o.runningSeconds
        stoppedSeconds += o.stoppedSeconds
        prunedSeconds += o.prunedSeconds
        unmanagedSeconds += o.unmanagedSeconds
        profitByteSeconds += o.profitByteSeconds
        profitSeconds += o.profitSeconds
    }

    public func merged(_ o: BucketStats) -> BucketStats {
        var c = self
        c.merge(o)
        return c
    }

    /// Time-weighted average saved bytes over the covered time; nil without data.
    public var avgSavedBytes: Double? { dataSeconds > 0 ? savedByteSeconds / dataSeconds : nil }
    public var savedByteHours: Double { savedByteSeconds / 3600 }
    public var savedGiBHours: Double { savedByteSeconds / 3600 / 1_073_741_824 }
    /// Average ksmd CPU in cores (1 = one CPU busy) over the covered time.
    public var avgCPUCores: Double? { dataSeconds > 0 ? cpuSeconds / dataSeconds : nil }
    public var avgCPUPercent: Double? { avgCPUCores.map { $0 * 100 } }
    public var avgNetProfitBytes: Double? { profitSeconds > 0 ? profitByteSeconds / profitSeconds : nil }

    /// Seconds per phase (raw values of KSMPhase), phases with no time left out.
    public var phaseSeconds: [String: Double] {
        var out: [String: Double] = [:]
        if runningSeconds > 0 { out[KSMPhase.running.rawValue] = runningSeconds }
        if stoppedSeconds > 0 { out[KSMPhase.stopped.rawValue] = stoppedSeconds }
        if prunedSeconds > 0 { out[KSMPhase.pruned.rawValue] = prunedSeconds }
        if unmanagedSeconds > 0 { out[KSMPhase.unmanaged.rawValue] = unmanagedSeconds }
        return out
    }

    mutating func addPhase(_ phase: KSMPhase, _ seconds: Double) {
        switch phase {
        case .running: runningSeconds += seconds
        case .stopped: stoppedSeconds += seconds
        case .pruned: prunedSeconds += seconds
        case .unmanaged: unmanagedSeconds += seconds
        }
    }
}

@inline(__always) func maxOpt<T: Comparable>(_ a: T?, _ b: T?) -> T? {
    switch (a, b) {
    case (nil, nil): return nil
    case (let x?, nil): return x
    case (nil, let y?): return y
    case (let x?, let y?): return max(x, y)
    }
}

/// What integrating a node's samples over [from, to) gives.
public struct Integration: Sendable, Equatable {
    /// Per bucket start (UTC-aligned multiples of the bucket length), buckets with anything in them.
    public var buckets: [Double: BucketStats]
    /// The parts of [from, to) with no data, ordered.
    public var gaps: [Interval]
    /// The covered parts of [from, to), ordered.
    public var covered: [Interval]
    /// A segment was cut short at the horizon ("now"): the buckets around it grow when computed later.
    public var clippedAtHorizon: Bool = false

    public var total: BucketStats {
        buckets.keys.sorted().reduce(into: BucketStats()) { $0.merge(buckets[$1] ?? BucketStats()) }
    }
}

/// The report math: pure functions over ordered samples and sums.
public enum ReportMath {
    /// Increase of a cumulative counter between two readings. A counter that went backwards was
    /// reset (host reboot, ksmd restart): the increase since the reset is the new value.
    public static func counterDelta<T: Numeric & Comparable>(from a: T, to b: T) -> T {
        b >= a ? b - a : b
    }

    /// Integrates one node's samples over [from, to) into buckets of `bucketSeconds`.
    ///
    /// Pass the samples from `from − maxGapSeconds` to `to + maxGapSeconds` so the edges are right.
    /// Saved bytes, phase and net profit: a sample's value holds over its segment. ksmd CPU: the
    /// counter delta to the next sample (a reset counts the new value) spread evenly over the
    /// segment; a tail segment (before a gap, or the last) uses the sample's own CPU %. Full scans:
    /// the counter delta counted in the bucket of the later sample, only across contiguous pairs.
    ///
    /// `horizon` is "now": no segment reaches past it, so no bucket ever holds more data time
    /// than has elapsed (the last sample's tail grows as time passes, up to `tailSeconds`).
    public static func integrate(
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
            let span = segmentEnd(s, next: next, policy: policy) - s.at
            let end = min(s.at + span, horizon)
            if end < s.at + span && end < to { clipped = true }

            // CPU rate (cores) over this segment, as a fraction kept apart so that whole
            // figures stay exact: cpu seconds over `dur` = rateNum × dur / rateDen.
            var rateNum: Double = 0
            var rateDen: Double = 1
            if let n = next, contiguous, span > 0 {
                if let a = s.cpuSeconds, let b = n.cpuSeconds {
                    rateNum = counterDelta(from: a, to: b)
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
            // Full scans completed between this sample and the next.
            if let n = next, contiguous, n.at >= from, n.at < to {
                let d = counterDelta(from: s.fullScans, to: n.fullScans)
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
            buckets: buckets, gaps: complement(of: covered, within: Interval(from, to)), covered: covered,
            clippedAtHorizon: clipped)
    }

    /// Where the value of sample `s` stops holding (before any horizon): the next sample when it
    /// follows within `maxGapSeconds`, else `tailSeconds` later; at once for an agent's goodbye.
    static func segmentEnd(_ s: ReportSample, next: ReportSample?, policy: ReportPolicy) -> Double {
        if s.endsData { return s.at }
        if let n = next, n.at - s.at <= policy.maxGapSeconds { return n.at }
        return s.at + policy.tailSeconds
    }

    /// One node's saved bytes as a step function: the intervals of [from, to) where a sample's
    /// value holds (the same segments `integrate` counts), with that value.
    public static func savedSegments(
        _ input: [ReportSample], from: Double, to: Double, policy: ReportPolicy = .default,
        horizon: Double = .infinity
    ) -> [(Interval, Int64)] {
        let samples = input.sorted { $0.at < $1.at }
        var out: [(Interval, Int64)] = []
        for (i, s) in samples.enumerated() {
            let next: ReportSample? = i + 1 < samples.count ? samples[i + 1] : nil
            let a = max(s.at, from)
            let b = min(segmentEnd(s, next: next, policy: policy), horizon, to)
            if b > a { out.append((Interval(a, b), s.savedBytes)) }
        }
        return out
    }

    /// A group's peak: the highest sum of its nodes' saved bytes at one moment of [from, to)
    /// (a node without data at that moment adds nothing). nil when no node has data.
    /// Never below any member's own peak, since saved bytes are never negative.
    public static func groupPeak(
        _ streams: [[ReportSample]], from: Double, to: Double, policy: ReportPolicy = .default,
        horizon: Double = .infinity
    ) -> Double? {
        groupPeak(streams.map { ($0, horizon) }, from: from, to: to, policy: policy)
    }

    /// `groupPeak` with a horizon per node (min of "now" and its deletion).
    public static func groupPeak(
        _ streams: [(samples: [ReportSample], horizon: Double)], from: Double, to: Double,
        policy: ReportPolicy = .default
    ) -> Double? {
        var events: [(Double, Double)] = []
        for (stream, horizon) in streams {
            for (iv, v) in savedSegments(stream, from: from, to: to, policy: policy, horizon: horizon) {
                events.append((iv.from, Double(v)))
                events.append((iv.to, -Double(v)))
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
            // The sum holds on [t, next event): only a stretch of positive length is a moment.
            if i < events.count && events[i].0 > t { best = max(best ?? sum, sum) }
        }
        return best
    }

    /// The part of `period` a node existed and time has passed: from its registration to its
    /// deletion, and never past `now`. The start is its first data instead when that predates
    /// the registration (replayed history) or follows it within `setupSeconds` (an agent
    /// registers, then takes its first sample: that moment is set-up, not a gap).
    public static func existence(
        registeredAt: Double, firstData: Double?, deletedAt: Double?, period: Interval, now: Double,
        setupSeconds: Double = ReportPolicy.default.maxGapSeconds
    ) -> Interval? {
        var start = registeredAt
        if let first = firstData, first < registeredAt || first - registeredAt <= setupSeconds { start = first }
        // Registered, no sample yet, still within its set-up time: not yet counted (it would show a
        // gap that vanishes when the first sample arrives).
        if firstData == nil && now - registeredAt <= setupSeconds { return nil }
        let iv = Interval(max(period.from, start), min(period.to, deletedAt ?? period.to, now))
        return iv.length > 0 ? iv : nil
    }

    /// Sorted, overlapping or touching intervals joined.
    public static func coalesce(_ list: [Interval]) -> [Interval] {
        var out: [Interval] = []
        for iv in list.filter({ $0.to > $0.from }).sorted(by: { $0.from < $1.from }) {
            if let last = out.last, last.to >= iv.from {
                out[out.count - 1].to = max(last.to, iv.to)
            } else {
                out.append(iv)
            }
        }
        return out
    }

    /// The parts of `range` not in `list`.
    public static func complement(of list: [Interval], within range: Interval) -> [Interval] {
        var out: [Interval] = []
        var t = range.from
        for iv in coalesce(list) {
            if iv.to <= t { continue }
            if iv.from >= range.to { break }
            if iv.from > t { out.append(Interval(t, iv.from)) }
            t = max(t, iv.to)
        }
        if t < range.to { out.append(Interval(t, range.to)) }
        return out
    }

    /// `list` clipped to `range`.
    public static func clip(_ list: [Interval], to range: Interval) -> [Interval] {
        list.compactMap { iv in
            let a = max(iv.from, range.from)
            let b = min(iv.to, range.to)
            return b > a ? Interval(a, b) : nil
        }
    }

    /// Merges hour buckets into the UTC days holding them (rollup hour → day).
    public static func mergeIntoDays(_ hours: [Double: BucketStats]) -> [Double: BucketStats] {
        var days: [Double: BucketStats] = [:]
        for h in hours.keys.sorted() {
            guard let st = hours[h] else { continue }
            days[ReportTime.dayStart(h), default: BucketStats()].merge(st)
        }
        return days
    }
}
