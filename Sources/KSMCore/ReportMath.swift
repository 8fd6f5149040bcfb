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
        let samples = timeOrdered(input)
        var buckets = BucketFill()
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
                buckets.open(bucketStart(s.at))
                buckets.current.samples += 1
            }
            // Full scans completed between this sample and the next.
            if let n = next, contiguous, n.at >= from, n.at < to {
                let d = counterDelta(from: s.fullScans, to: n.fullScans)
                if d != 0 {
                    buckets.open(bucketStart(n.at))
                    buckets.current.fullScans += d
                }
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
                buckets.open(bs)
                buckets.current.dataSeconds += dur
                buckets.current.savedByteSeconds += Double(s.savedBytes) * dur
                buckets.current.peakSavedBytes = maxOpt(buckets.current.peakSavedBytes, s.savedBytes)
                buckets.current.cpuSeconds += rateNum * dur / rateDen
                buckets.current.peakCPUPercent = maxOpt(buckets.current.peakCPUPercent, percent)
                buckets.current.addPhase(s.phase, dur)
                if let p = s.netProfit {
                    buckets.current.profitByteSeconds += Double(p) * dur
                    buckets.current.profitSeconds += dur
                }
                t = e
            }
        }
        return Integration(
            buckets: buckets.finished(), gaps: complement(of: covered, within: Interval(from, to)), covered: covered,
            clippedAtHorizon: clipped)
    }

    /// `integrate`'s buckets: the one being added to is kept out of the dictionary until another
    /// is wanted. A node's samples come in time order, so nearly every segment, sample and scan
    /// falls in the bucket of the one before: one look-up a bucket, not two a segment (hashing
    /// Doubles was a sixth of a live 24 h report's integration). Each bucket gets the same
    /// additions in the same order as before, so the same doubles.
    struct BucketFill {
        var buckets: [Double: BucketStats] = [:]
        var current = BucketStats()
        var start = 0.0
        var isOpen = false

        /// Makes the bucket starting at `bucketStart` the current one.
        @inline(__always) mutating func open(_ bucketStart: Double) {
            if isOpen && bucketStart == start { return }
            if isOpen { buckets[start] = current }
            current = buckets[bucketStart] ?? BucketStats()
            start = bucketStart
            isOpen = true
        }

        mutating func finished() -> [Double: BucketStats] {
            if isOpen { buckets[start] = current }
            isOpen = false
            return buckets
        }
    }

    /// `samples` in time order: as they are when already in it (a node's samples nearly always
    /// are, as read), without the copy and sort.
    static func timeOrdered(_ samples: [ReportSample]) -> [ReportSample] {
        var i = 1
        while i < samples.count {
            if samples[i].at < samples[i - 1].at { return samples.sorted { $0.at < $1.at } }
            i += 1
        }
        return samples
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
        var out: [(Interval, Int64)] = []
        forEachSavedSegment(input, from: from, to: to, policy: policy, horizon: horizon) { out.append(($0, $1)) }
        return out
    }

    /// `savedSegments`, each handed to `body` in time order instead of collected.
    @inline(__always)
    static func forEachSavedSegment(
        _ input: [ReportSample], from: Double, to: Double, policy: ReportPolicy, horizon: Double,
        _ body: (Interval, Int64) -> Void
    ) {
        let samples = timeOrdered(input)
        for i in samples.indices {
            let s = samples[i]
            let a = max(s.at, from)
            let b = min(segmentEnd(s, next: i + 1 < samples.count ? samples[i + 1] : nil, policy: policy), horizon, to)
            if b > a { body(Interval(a, b), s.savedBytes) }
        }
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
        // Every segment's start (+ its value) and end (− its value), stream after stream.
        var events: [(Double, Double)] = []
        events.reserveCapacity(2 * streams.reduce(0) { $0 + $1.samples.count })
        for (stream, horizon) in streams {
            forEachSavedSegment(stream, from: from, to: to, policy: policy, horizon: horizon) { iv, v in
                events.append((iv.from, Double(v)))
                events.append((iv.to, -Double(v)))
            }
        }
        guard !events.isEmpty else { return nil }
        events = timeSorted(events, within: Interval(from, to))
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

    /// `events` (times within `range`, each with a value) in time order, equal times in their
    /// order in `events`: what a stable sort gives, so sums over them add in the same order. A
    /// counting sort into about one slot per two events, then each slot's few put in order: a
    /// group's events spread over the range, and sorting them whole was most of a live report's
    /// peak sweep (docs/benchmarks.md).
    static func timeSorted(_ events: [(Double, Double)], within range: Interval) -> [(Double, Double)] {
        let n = events.count
        let perSecond = Double(max(1, n / 2)) / (range.to - range.from)
        // One slot when the range cannot be divided: a plain sort.
        let slots = perSecond.isFinite && perSecond > 0 ? max(1, n / 2) : 1
        // Monotonic in t, so slots hold times in order and equal times share one.
        func slot(_ t: Double) -> Int {
            guard slots > 1 else { return 0 }
            let x = (t - range.from) * perSecond
            return x <= 0 ? 0 : x >= Double(slots - 1) ? slots - 1 : Int(x)
        }
        var first = [Int](repeating: 0, count: slots + 1)
        for e in events { first[slot(e.0) + 1] += 1 }
        for k in 0..<slots { first[k + 1] += first[k] }
        var next = first
        var out = [(Double, Double)](repeating: (0, 0), count: n)
        for e in events {
            let k = slot(e.0)
            out[next[k]] = e
            next[k] += 1
        }
        // Each slot holds its events in their order in `events`; put them in time order.
        for k in 0..<slots where first[k + 1] - first[k] > 1 {
            let (lo, hi) = (first[k], first[k + 1])
            if hi - lo <= 16 {
                for j in lo + 1..<hi {
                    let e = out[j]
                    var m = j
                    while m > lo && out[m - 1].0 > e.0 {
                        out[m] = out[m - 1]
                        m -= 1
                    }
                    out[m] = e
                }
            } else {
                // Ties by position, so the order does not rest on the sort's stability.
                var part = out[lo..<hi].enumerated().map { ($0.element, $0.offset) }
                part.sort { $0.0.0 != $1.0.0 ? $0.0.0 < $1.0.0 : $0.1 < $1.1 }
                for (j, p) in part.enumerated() { out[lo + j] = p.0 }
            }
        }
        return out
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
