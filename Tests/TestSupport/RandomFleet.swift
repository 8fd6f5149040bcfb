import KSMCore

/// A small seeded generator (SplitMix64) so that a failing case can be replayed from its seed.
public struct SeededRandom: RandomNumberGenerator {
    public var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// One random node: when it registered, when (if) it was deleted, and what it sent.
public struct RandomNode {
    public var registeredAt: Double
    public var deletedAt: Double?
    public var samples: [ReportSample]
    /// Sent without a silence longer than the policy's gap, from its registration to `now`.
    public var gapless: Bool
}

/// A random fleet over a report period with "now" anywhere in it (often inside an hour).
public struct RandomFleet {
    public var period: Interval
    public var now: Double
    public var nodes: [RandomNode]

    /// `wholeSeconds`: sample times on whole seconds and saved bytes in whole 4 KiB pages, as a
    /// store keeps them.
    public static func make(
        seed: UInt64, policy: ReportPolicy, wholeSeconds: Bool = false, goodbyes: Bool = true
    ) -> RandomFleet {
        var rng = SeededRandom(seed: seed)
        let from = 1_793_577_600.0 + Double(Int.random(in: 0..<48, using: &rng)) * 1800
        let lengths: [Double] = [1800, 3600, 5400, 7200, 4 * 3600]
        let length = lengths[Int.random(in: 0..<lengths.count, using: &rng)]
        let period = Interval(from, from + length)
        // Now: before, inside or after the period; often mid-hour.
        let now = (from + Double.random(in: 0.05...1.3, using: &rng) * length).rounded(.down)
        var nodes: [RandomNode] = []
        for _ in 0..<Int.random(in: 1...5, using: &rng) {
            var registeredAt = from + Double.random(in: -0.5...0.9, using: &rng) * length
            if wholeSeconds { registeredAt = registeredAt.rounded(.down) }
            let deletedAt: Double? =
                Bool.random(using: &rng) && Int.random(in: 0..<3, using: &rng) == 0
                ? (registeredAt + Double.random(in: 60...length, using: &rng)).rounded(.down) : nil
            let gapless = Int.random(in: 0..<3, using: &rng) == 0
            let step = Double(Int.random(in: 1...90, using: &rng))
            let end = min(now, deletedAt ?? now)
            // The first sample follows the registration after a set-up delay (sometimes too long).
            let setup = Int.random(in: 0..<3, using: &rng) == 0 ? Double(Int.random(in: 0...400, using: &rng)) : 0
            var t = registeredAt + setup
            var samples: [ReportSample] = []
            var saved = Int64.random(in: 0...(1 << 32), using: &rng)
            while t <= end {
                saved = max(0, saved + Int64.random(in: -(1 << 28)...(1 << 28), using: &rng))
                if wholeSeconds { saved = saved / 4096 * 4096 }
                let goodbye = goodbyes && !gapless && Int.random(in: 0..<200, using: &rng) == 0
                samples.append(
                    ReportSample(
                        at: t, savedBytes: saved, cpuSeconds: Double(samples.count), cpuPercent: 1,
                        fullScans: Int64(samples.count), phase: .running, endsData: goodbye))
                t += step
                if !gapless && Int.random(in: 0..<25, using: &rng) == 0 {
                    t += Double.random(in: policy.maxGapSeconds...(policy.maxGapSeconds * 6), using: &rng)
                    if wholeSeconds { t = t.rounded(.down) }
                }
            }
            // A gapless node's last sample must still hold at "now".
            let gaplessHolds = samples.last.map { end - $0.at <= policy.tailSeconds } ?? false
            nodes.append(
                RandomNode(
                    registeredAt: registeredAt, deletedAt: deletedAt, samples: samples,
                    gapless: gapless && gaplessHolds && deletedAt == nil && setup <= policy.maxGapSeconds))
        }
        return RandomFleet(period: period, now: now, nodes: nodes)
    }
}

