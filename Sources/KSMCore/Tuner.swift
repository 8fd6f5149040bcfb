/// Everything a tuning step needs to know about the node besides the config.
public struct TunerInput: Sendable {
    public var memory: MemorySnapshot
    public var pageSize: Int
    /// The KSM settings captured when the agent started (throttle's initial level).
    public var initial: KernelSettings
    /// Monotonic seconds now.
    public var now: Double
    /// The kernel's counters and ksmd's CPU, for the feedback (adaptive) mode; nil when not read.
    public var observation: KernelObservation?

    public init(
        memory: MemorySnapshot, pageSize: Int, initial: KernelSettings, now: Double,
        observation: KernelObservation? = nil
    ) {
        self.memory = memory
        self.pageSize = pageSize
        self.initial = initial
        self.now = now
        self.observation = observation
    }
}

/// The whole node policy as one pure function: (config, node facts, state) → what to write,
/// the phase and the reason. The agent and the standalone mode both call only this.
public enum Tuner {
    public static func decide(config: KSMConfig, input: TunerInput, state: TunerState) -> TuningDecision {
        var decision: TuningDecision
        switch config.run {
        case .unmanaged:
            return TuningDecision(
                settings: KernelSettings(), phase: .unmanaged,
                reason: "Unmanaged: run is unmanaged, so the agent only reports and never writes to the kernel",
                state: state)
        case .stop:
            decision = TuningDecision(
                settings: KernelSettings(run: 0), phase: .stopped,
                reason: "Stopped: run is stop (ksmd is off; pages already merged stay merged)", state: state)
        case .prune:
            decision = TuningDecision(
                settings: KernelSettings(run: 2), phase: .pruned,
                reason: "Pruned: run is prune (ksmd is off and every merged page is unmerged)", state: state)
        case .run where config.mode == .throttle:
            decision = throttleStep(config: config, input: input, state: state)
        case .run where config.mode == .adaptive:
            decision = Adaptive.step(config: config, input: input, state: state)
        case .run where config.mode == .advisor:
            decision = AdvisorPolicy.step(config: config, input: input, state: state)
        case .run:
            decision = Ksmtuned.step(config: config, memory: input.memory, state: state)
        }
        // Every other mode writes pages_to_scan, which the kernel refuses while its advisor runs:
        // leaving the advisor mode switches it off (on kernels that have it). Throttle's idle
        // level puts back the settings captured at start, the advisor's among them.
        let restoresInitial = config.mode == .throttle && decision.state.throttle.level == .initial
        if config.run == .run && config.mode != .advisor && !restoresInitial {
            decision.settings.advisorMode = "none"
        }
        decision.settings.mergeAcrossNodes = config.mergeAcrossNodes
        decision.settings.maxPageSharing = config.maxPageSharing
        decision.settings.useZeroPages = config.useZeroPages
        decision.settings.smartScan = config.smartScan
        return decision
    }

    /// Registers a kick (from the server, a watched directory or SIGUSR1).
    public static func kick(state: TunerState, now: Double) -> TunerState {
        var next = state
        next.throttle.kick(now: now)
        return next
    }

    static func throttleStep(config: KSMConfig, input: TunerInput, state: TunerState) -> TuningDecision {
        let t = config.effectiveThrottle
        var next = state
        next.throttle.advance(now: input.now, settings: t)
        let level = next.throttle.level
        let settings = Throttle.settings(
            level: level, throttle: t, memory: input.memory, pageSize: input.pageSize, initial: input.initial)
        let phase = KSMPhase(kernelRun: settings.run ?? 0)
        let reason: String
        if level == .initial {
            let idle =
                next.throttle.kicks == 0
                ? "not kicked yet" : "no kick for \(t.toStandardSeconds + t.toSlowSeconds + t.toInitialSeconds) s"
            reason = "\(phase.rawValue): throttle is idle (\(idle)), the KSM settings captured at start are in force"
        } else {
            let left = next.throttle.secondsToNext(now: input.now, settings: t).map { Int($0.rounded(.up)) } ?? 0
            reason =
                "Running: throttle \(level.rawValue) (pages_to_scan \(settings.pagesToScan ?? 0) every \(settings.sleepMillisecs ?? 0) ms), next step down in \(left) s unless kicked"
        }
        return TuningDecision(settings: settings, phase: phase, reason: reason, state: next)
    }
}
