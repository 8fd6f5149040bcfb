import Synchronization

/// Monotonic seconds for the tuner and the throttle timers. Injected so tests step time
/// without sleeping.
public protocol MonotonicClock: Sendable {
    /// Seconds since an arbitrary fixed point; never goes backwards.
    func now() -> Double
}

/// The real monotonic clock (CLOCK_MONOTONIC through ContinuousClock).
public struct SystemMonotonicClock: MonotonicClock {
    private let origin = ContinuousClock.now
    public init() {}
    public func now() -> Double {
        let d = origin.duration(to: ContinuousClock.now)
        return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }
}

/// A clock that only moves when told to. For tests.
public final class ManualClock: MonotonicClock {
    private let seconds: Mutex<Double>
    public init(_ start: Double = 1000) { seconds = Mutex(start) }
    public func now() -> Double { seconds.withLock { $0 } }
    public func advance(_ by: Double) { seconds.withLock { $0 += by } }
}
