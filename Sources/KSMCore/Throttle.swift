/// cc-proxy's throttle levels.
public enum ThrottleLevel: String, Codable, Sendable, CaseIterable {
    /// The settings captured when the agent started.
    case initial
    case aggressive
    case standard
    case slow
}

/// The throttle state machine (KSM.md §4): a kick in any level → aggressive; without kicks,
/// aggressive → standard after 30 s, standard → slow after 2 min, slow → initial after 2 min
/// (timers configurable). Time is passed in, so tests step through it without sleeping.
public struct ThrottleState: Codable, Sendable, Equatable, Hashable {
    public var level: ThrottleLevel
    /// Monotonic seconds at which `level` was entered.
    public var since: Double
    /// Kicks seen so far (local and from the server).
    public var kicks: Int

    public init(level: ThrottleLevel = .initial, since: Double = 0, kicks: Int = 0) {
        self.level = level
        self.since = since
        self.kicks = kicks
    }

    /// A new VM or container (or an operator) asked for aggressive merging.
    public mutating func kick(now: Double) {
        level = .aggressive
        since = now
        kicks += 1
    }

    /// Moves through every timer that has expired by `now`; returns the levels passed through.
    @discardableResult
    public mutating func advance(now: Double, settings: ThrottleSettings) -> [ThrottleLevel] {
        var passed: [ThrottleLevel] = []
        while true {
            let (nextLevel, after): (ThrottleLevel, Int)
            switch level {
            case .initial: return passed
            case .aggressive: (nextLevel, after) = (.standard, settings.toStandardSeconds)
            case .standard: (nextLevel, after) = (.slow, settings.toSlowSeconds)
            case .slow: (nextLevel, after) = (.initial, settings.toInitialSeconds)
            }
            let due = since + Double(after)
            guard now >= due else { return passed }
            level = nextLevel
            since = due
            passed.append(nextLevel)
        }
    }

    /// Seconds until the next timer fires, nil in the initial level.
    public func secondsToNext(now: Double, settings: ThrottleSettings) -> Double? {
        let after: Int
        switch level {
        case .initial: return nil
        case .aggressive: after = settings.toStandardSeconds
        case .standard: after = settings.toSlowSeconds
        case .slow: after = settings.toInitialSeconds
        }
        return max(0, since + Double(after) - now)
    }
}

public enum Throttle {
    /// The kernel settings of a level. Scan sizes are AnonPages divided by the level's divisor
    /// (at least 1 page); the initial level puts back what was captured at start: run,
    /// sleep_millisecs, the advisor's mode and settings, and pages_to_scan unless the advisor
    /// picks it.
    public static func settings(
        level: ThrottleLevel, throttle: ThrottleSettings, memory: MemorySnapshot, pageSize: Int,
        initial: KernelSettings
    ) -> KernelSettings {
        let anonPages = pageSize > 0 ? memory.anonPagesKB * 1024 / Int64(pageSize) : 0
        func scan(_ divisor: Int) -> Int {
            Int(min(max(anonPages / Int64(max(divisor, 1)), 1), Int64(ConfigLimits.maxPagesToScan)))
        }
        switch level {
        case .initial:
            // The kernel advisor's mode and settings too: the other levels switch it off. While
            // it runs (scan-time) it picks pages_to_scan itself, so that is left to it.
            return KernelSettings(
                run: initial.run, pagesToScan: initial.advisorMode == "scan-time" ? nil : initial.pagesToScan,
                sleepMillisecs: initial.sleepMillisecs, advisorMode: initial.advisorMode,
                advisorTargetScanTime: initial.advisorTargetScanTime, advisorMaxCPU: initial.advisorMaxCPU,
                advisorMinPagesToScan: initial.advisorMinPagesToScan,
                advisorMaxPagesToScan: initial.advisorMaxPagesToScan)
        case .aggressive:
            return KernelSettings(
                run: 1, pagesToScan: scan(throttle.aggressiveDivisor), sleepMillisecs: throttle.aggressiveSleepMsec)
        case .standard:
            return KernelSettings(
                run: 1, pagesToScan: scan(throttle.standardDivisor), sleepMillisecs: throttle.standardSleepMsec)
        case .slow:
            return KernelSettings(
                run: 1, pagesToScan: scan(throttle.slowDivisor), sleepMillisecs: throttle.slowSleepMsec)
        }
    }
}
