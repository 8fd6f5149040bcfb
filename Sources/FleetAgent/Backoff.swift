/// Capped exponential backoff with full jitter: the n-th consecutive failure waits a random
/// time in [base·2ⁿ / 2, base·2ⁿ], never more than `cap`. A success resets it.
public struct Backoff: Sendable {
    public var base: Double
    public var cap: Double
    public private(set) var failures = 0

    public init(base: Double = 1, cap: Double = 60) {
        self.base = max(base, 0.001)
        self.cap = max(cap, self.base)
    }

    /// Seconds to wait after one more failure.
    public mutating func next<G: RandomNumberGenerator>(using rng: inout G) -> Double {
        let exp = min(failures, 30)
        failures += 1
        let ceiling = min(cap, base * Double(1 << exp))
        return Double.random(in: (ceiling / 2)...ceiling, using: &rng)
    }

    public mutating func next() -> Double {
        var rng = SystemRandomNumberGenerator()
        return next(using: &rng)
    }

    public mutating func reset() { failures = 0 }
}
