/// Capped exponential backoff with full jitter: the n-th consecutive failure waits a random
/// time in [base·2ⁿ / 2, base·2ⁿ], never more than `cap`. A success resets it. A server that
/// says how long to wait (`Retry-After`) is heeded: `next(hint:)`.
public struct Backoff: Sendable {
    /// The longest `Retry-After` heeded, 15 minutes (the longest wait between two asks of a
    /// pending registration): an hours-long hint from a misconfigured proxy must not silence an
    /// agent that long (its samples wait in the spool meanwhile).
    public static let longestHint: Double = 900

    public var base: Double
    public var cap: Double
    public private(set) var failures = 0
    /// The last failure's hint as waited: spread over [hint, 1.2 × hint], at most
    /// `longestHint` × 1.2 (nil when it had none). The backoff's own wait may be longer.
    public private(set) var lastHintWait: Double?

    public init(base: Double = 1, cap: Double = 60) {
        self.base = max(base, 0.001)
        self.cap = max(cap, self.base)
    }

    /// Seconds to wait after one more failure.
    public mutating func next<G: RandomNumberGenerator>(using rng: inout G) -> Double {
        let exp = min(failures, 30)
        failures += 1
        lastHintWait = nil
        let ceiling = min(cap, base * Double(1 << exp))
        return Double.random(in: (ceiling / 2)...ceiling, using: &rng)
    }

    public mutating func next() -> Double {
        var rng = SystemRandomNumberGenerator()
        return next(using: &rng)
    }

    /// Seconds to wait after one more failure whose reply asked for `hint` seconds
    /// (`ClientError.retryAfter`; nil: it did not say): the longer of the backoff's own wait and
    /// the hint (at most `longestHint`), the hint spread over [hint, 1.2 × hint] so that a fleet
    /// told the same number (every agent of a replica whose database went away) does not come
    /// back in the same second.
    public mutating func next<G: RandomNumberGenerator>(hint: Double?, using rng: inout G) -> Double {
        let own = next(using: &rng)
        guard let hint, hint > 0 else { return own }
        let asked = min(hint, Self.longestHint)
        let spread = Double.random(in: asked...(asked * 1.2), using: &rng)
        lastHintWait = spread
        return max(own, spread)
    }

    public mutating func next(hint: Double?) -> Double {
        var rng = SystemRandomNumberGenerator()
        return next(hint: hint, using: &rng)
    }

    public mutating func reset() {
        failures = 0
        lastHintWait = nil
    }
}
