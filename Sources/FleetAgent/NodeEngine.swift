#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import KSMCore
import KSMNode
import Logging

/// What one tuning step did.
public struct EngineOutcome: Sendable {
    /// The tuner's decision: settings, phase and reason.
    public var decision: TuningDecision
    /// The config generation in force after this step (nil before the first successful apply,
    /// and for a standalone config that has no generation).
    public var appliedGeneration: Int64?
    /// Why the settings could not be applied, in an operator's words; nil when they were.
    public var applyError: String?
    /// What was written (nil when nothing was attempted, e.g. unmanaged or no config yet).
    public var report: ApplyReport?

    public init(decision: TuningDecision, appliedGeneration: Int64?, applyError: String?, report: ApplyReport?) {
        self.decision = decision
        self.appliedGeneration = appliedGeneration
        self.applyError = applyError
        self.report = report
    }
}

/// Everything a StatusSample needs except its sequence number and time.
public struct EngineSnapshot: Sendable {
    public var status: KSMStatus
    public var memory: MemorySnapshot
    public var pageSize: Int
    /// ksmd CPU in % of one CPU since the previous snapshot; nil for the first one or without ksmd.
    public var ksmdCPUPercent: Double?
    /// ksmd's cumulative utime + stime in seconds; nil when no ksmd was found.
    public var ksmdCPUSeconds: Double?
    public var phase: KSMPhase
    public var phaseReason: String
    public var appliedGeneration: Int64?
    public var applyError: String?

    public init(
        status: KSMStatus, memory: MemorySnapshot, pageSize: Int, ksmdCPUPercent: Double?,
        ksmdCPUSeconds: Double?, phase: KSMPhase, phaseReason: String, appliedGeneration: Int64?,
        applyError: String?
    ) {
        self.status = status
        self.memory = memory
        self.pageSize = pageSize
        self.ksmdCPUPercent = ksmdCPUPercent
        self.ksmdCPUSeconds = ksmdCPUSeconds
        self.phase = phase
        self.phaseReason = phaseReason
        self.appliedGeneration = appliedGeneration
        self.applyError = applyError
    }

    /// Bytes KSM saves now.
    public var savedBytes: Int64 { Savings.savedBytes(status, pageSize: pageSize) }
}

/// The node policy in one place: holds the config and the tuner state, runs `Tuner.decide`,
/// applies the result through `Applier`, and reports. Used by the standalone mode and by the
/// server-connected agent alike.
public actor NodeEngine {
    public let kernel: any KSMKernel
    let clock: any MonotonicClock
    let logger: Logger
    let unmergeTimeout: Duration
    /// The share of MemTotal (in %) an unmerge must leave available (`UnmergeGuard`).
    let unmergeReservePercent: Double

    /// The KSM settings found before the agent first wrote to the kernel (throttle's initial
    /// level, and what `restoreInitial()` puts back): kept in the state directory by the first
    /// start that writes, read back by every later one; without a state directory, the kernel's
    /// settings when the engine started.
    public nonisolated let initialCapture: InitialCapture
    /// The file `initialCapture` came from, nil when it was read from the kernel at this start.
    public nonisolated let initialCaptureFile: String?
    public nonisolated var initialSettings: KernelSettings { initialCapture.settings }
    let stateDir: AgentStateDir?
    /// A capture from the kernel still to be kept in the state directory (before the first write).
    private var captureToKeep: InitialCapture?

    /// The config in force; nil until the first `setConfig`.
    public private(set) var config: KSMConfig?
    public private(set) var generation: Int64?
    public private(set) var state = TunerState()
    public private(set) var appliedGeneration: Int64?
    public private(set) var applyError: String?
    public private(set) var lastOutcome: EngineOutcome?
    private var lastCPU: CPUTimeSample?
    private var lastAdaptivePhase: AdaptivePhase?
    /// The warnings of the last apply: logged again only when they change (the adaptive mode
    /// applies every second; a kernel without a configured file would fill the journal).
    private var lastWarnings: [String] = []
    /// The apply error logged last, with its generation: the same again is logged at debug.
    private var loggedApplyError: (generation: Int64?, message: String)?

    /// After an unmerge (run=2) was refused for want of memory or failed, the agent does not try
    /// it again before this many seconds have passed, a new config arrives or a kick: a full
    /// unmerge every tuning step (every second in the adaptive mode) would keep a node short of
    /// memory near the OOM killer. The check itself costs nothing; the wait lets memory change.
    public static let unmergeRetrySeconds = 300.0
    /// The held-back unmerge: until when (monotonic seconds), the apply error reported meanwhile,
    /// and the `holdEpoch` of the step that set it.
    private var unmergeHold: (until: Double, message: String, epoch: Int)?
    /// Counts new configs and kicks: either ends a hold set by a step that began before it, also
    /// one that was under way when it came (it waits its turn, and the hold that step sets is
    /// not its own).
    private var holdEpoch = 0
    /// The unmerges this engine's applies run: samples read whether one is under way, and
    /// `stopApplying()` interrupts it.
    private let unmergeControl = UnmergeControl()
    /// The unmerge of the restore at exit (`restoreInitial`), which runs after the stop: a second
    /// `stopApplying()` (a second SIGTERM) interrupts it.
    private let restoreControl = UnmergeControl()

    /// Applies go one at a time. Only an unmerge lets the actor serve others while it lasts (its
    /// run=2 is written on a thread of its own, `UnmergeThread`): samples then say what is under
    /// way (`snapshot`), and a tuning step, a new config, a kick or the restore at exit wait for
    /// their turn instead of writing to the kernel beside it.
    private var applying = false
    private var applyQueue: [CheckedContinuation<Void, Never>] = []
    /// What the apply holding the turn applies (samples name it while it unmerges).
    private var applyUnderWay: String?

    private func beginApply(_ what: @autoclosure () -> String) async {
        if applying {
            await withCheckedContinuation { applyQueue.append($0) }
        } else {
            applying = true
        }
        applyUnderWay = what()
    }

    private func endApply() {
        applyUnderWay = nil
        if applyQueue.isEmpty {
            applying = false
        } else {
            applyQueue.removeFirst().resume()  // the turn passes on: `applying` stays true
        }
    }

    /// With `stateDir`, the settings kept there by an earlier start are the initial ones; the
    /// first start captures the kernel's and keeps them there before it first writes (an
    /// unmanaged agent never writes, so it keeps nothing and captures afresh each start).
    public init(
        kernel: any KSMKernel, clock: any MonotonicClock = SystemMonotonicClock(), logger: Logger,
        unmergeTimeout: Duration = .seconds(60), unmergeReservePercent: Double = UnmergeGuard.defaultReservePercent,
        stateDir: AgentStateDir? = nil
    ) throws {
        self.kernel = kernel
        self.clock = clock
        self.logger = logger
        self.unmergeTimeout = unmergeTimeout
        self.unmergeReservePercent = unmergeReservePercent
        self.stateDir = stateDir
        let status = try kernel.readStatus()
        var kept: InitialCapture?
        var keepable = stateDir != nil
        if let stateDir {
            let file = stateDir.initialSettingsFile
            do {
                kept = try stateDir.loadInitialCapture()
                if let problem = kept?.problem {
                    throw AgentFileError(path: file, message: "not a usable capture: \(problem)")
                }
            } catch {
                // Not overwritten: the kernel's settings now may be this agent's own from before
                // a restart; the operator decides (deleting the file makes the next start capture).
                kept = nil
                keepable = false
                logger.warning(
                    "cannot read the KSM settings kept from an earlier start: using the kernel's settings now for this run; delete the file to capture them again and keep them",
                    metadata: ["file": "\(file)", "error": "\(error)"])
            }
            // Kept in another boot: the kernel started again from its own settings, which are
            // the host's now (and the file is replaced at the first write).
            let boot = kernel.bootID()
            if let k = kept, let keptBoot = k.bootID, let boot, keptBoot != boot {
                logger.info(
                    "the host rebooted since the KSM settings were kept: capturing the kernel's settings again",
                    metadata: ["file": "\(file)", "captured_at": "\(k.capturedAt)", "kept": "\(k.summary)"])
                kept = nil
            }
        }
        let capture: InitialCapture
        let file: String
        if var kept, let stateDir {
            if status.advisorMode == nil {
                // Kept on a kernel with the advisor (6.7+), started on one without it.
                kept.settings.advisorMode = nil
            }
            capture = kept
            initialCaptureFile = stateDir.initialSettingsFile
            captureToKeep = nil
            file = stateDir.initialSettingsFile
        } else {
            // Whole seconds: the file keeps no more (ISO 8601), and a restart then logs the same time.
            let now = Date(timeIntervalSince1970: Date().timeIntervalSince1970.rounded(.down))
            capture = InitialCapture(settings: status.tunables, capturedAt: now, bootID: kernel.bootID())
            initialCaptureFile = nil
            captureToKeep = keepable ? capture : nil
            file =
                keepable
                ? (stateDir?.initialSettingsFile ?? "") + " (written before the agent first writes to the kernel)"
                : "none: not kept across restarts"
        }
        initialCapture = capture
        logger.info(
            initialCaptureFile == nil
                ? "KSM settings captured from the kernel at start: the throttle's idle level and a restore put them back"
                : "KSM settings kept from an earlier start are in force: the throttle's idle level and a restore put them back (delete the file to capture the kernel's again)",
            metadata: [
                "captured": "\(capture.summary)", "captured_at": "\(capture.capturedAt)", "file": "\(file)",
            ])
    }

    /// Installs a new config (already validated) and applies it at once (one tuning step).
    @discardableResult
    public func setConfig(_ config: KSMConfig, generation: Int64?) async -> EngineOutcome {
        if let old = self.config, old.mode != config.mode || old.run != config.run {
            // A new mode or run starts the ksmtuned loop from minPages again, and the adaptive and
            // advisor modes from their start; kicks are kept.
            state.pagesToScan = nil
            state.adaptive = nil
            state.advisor = nil
        }
        self.config = config
        self.generation = generation
        holdEpoch += 1  // a new config tries the unmerge again
        logger.info(
            "config installed",
            metadata: [
                "generation": "\(generation.map(String.init) ?? "-")", "run": "\(config.run.rawValue)",
                "mode": "\(config.mode.rawValue)", "thresCoef": "\(config.thresCoef)",
            ])
        return await tuneAndWake()
    }

    /// A throttle kick (server kickCounter change, watched directory, SIGUSR1); tunes at once.
    @discardableResult
    public func kick(source: String) async -> EngineOutcome {
        state = Tuner.kick(state: state, now: clock.now())
        holdEpoch += 1  // a kick tries a held-back unmerge again
        logger.info("kick", metadata: ["source": "\(source)", "kicks": "\(state.throttle.kicks)"])
        return await tuneAndWake()
    }

    /// A step for a new config or a kick, then the tuning loop woken: once the step has run (it
    /// may wait behind an unmerge), the loop works out its wait from the state it left
    /// (`tuneInterval`), sooner or later than the one it sleeps.
    private func tuneAndWake() async -> EngineOutcome {
        let outcome = await tune()
        wakeup.signal()
        return outcome
    }

    /// One tuning step with the current config (called every tuning interval).
    @discardableResult
    public func tune() async -> EngineOutcome {
        await beginApply("generation \(generation.map(String.init) ?? "-") (run \(config?.run.rawValue ?? "-"))")
        defer { endApply() }
        // The config and its generation as this step found them: a new one installed while an
        // unmerge lets the actor serve others is the next step's.
        let config = self.config ?? KSMConfig(run: .unmanaged)
        let generation = self.generation
        let epoch = holdEpoch
        let memory: MemorySnapshot
        do {
            memory = try kernel.readMemory()
        } catch {
            return fail("cannot read memory figures: \(error)", config: config)
        }
        let input = TunerInput(
            memory: memory, pageSize: kernel.pageSize, initial: initialSettings, now: clock.now(),
            observation: observe(config))
        let decision = Tuner.decide(config: config, input: input, state: state)
        state = decision.state

        guard self.config != nil else {
            return record(EngineOutcome(decision: decision, appliedGeneration: nil, applyError: nil, report: nil))
        }
        if config.run == .unmanaged {
            // Nothing to write: the config is in force as soon as it is installed.
            appliedGeneration = generation
            applyError = nil
            loggedApplyError = nil
            return record(
                EngineOutcome(decision: decision, appliedGeneration: appliedGeneration, applyError: nil, report: nil))
        }
        // The agent is stopping (`stopApplying`): a step queued behind an interrupted unmerge
        // (a kick, a config) writes nothing, or it would start ksmd or another unmerge again.
        if unmergeControl.stopped {
            return EngineOutcome(decision: decision, appliedGeneration: appliedGeneration, applyError: applyError, report: nil)
        }
        keepInitialCapture()
        var unmergeGuard = UnmergeGuard(reservePercent: unmergeReservePercent)
        if let hold = unmergeHold, hold.epoch != epoch {
            unmergeHold = nil  // a new config or a kick came since
        } else if let hold = unmergeHold {
            if input.now >= hold.until {
                unmergeHold = nil
                logger.info("trying the unmerge again", metadata: ["after_s": "\(Int(Self.unmergeRetrySeconds))"])
            } else {
                unmergeGuard.heldBack = hold.message
            }
        }
        do {
            let report = try await Applier.apply(
                decision.settings, to: kernel, unmergeTimeout: unmergeTimeout, unmergeGuard: unmergeGuard,
                unmergeControl: unmergeControl, logger: logger)
            // The adaptive mode steps every second and retunes pages_to_scan as it measures: its
            // writes are logged at info only when its phase changes.
            let phase = decision.state.adaptive?.phase
            let routine = config.mode == .adaptive && phase == lastAdaptivePhase && appliedGeneration == generation
            lastAdaptivePhase = phase
            if routine && !report.written.isEmpty {
                logger.debug(
                    "applied",
                    metadata: [
                        "written": "\(report.written.map(\.description).joined(separator: ", "))",
                        "reason": "\(decision.reason)",
                    ])
            } else if !report.written.isEmpty || !report.advisorWritten.isEmpty || appliedGeneration != generation {
                logger.info(
                    "applied",
                    metadata: [
                        "generation": "\(generation.map(String.init) ?? "-")",
                        "written":
                            "\((report.advisorWritten + report.written.map(\.description)).joined(separator: ", "))",
                        "phase": "\(decision.phase.rawValue)", "reason": "\(decision.reason)",
                    ])
            }
            if report.warnings != lastWarnings || appliedGeneration != generation {
                for warning in report.warnings { logger.warning("\(warning)") }
            }
            lastWarnings = report.warnings
            appliedGeneration = generation
            applyError = nil
            loggedApplyError = nil
            return record(
                EngineOutcome(decision: decision, appliedGeneration: appliedGeneration, applyError: nil, report: report)
            )
        } catch {
            var message = error.description
            var shown = decision
            var heldBack = false
            if case .unmergeHeldBack = error.reason { heldBack = true }
            if error.isUnmergeNotDone {
                if !heldBack {
                    message +=
                        "; the agent tries again after \(Int(Self.unmergeRetrySeconds / 60)) min, on a config change or a kick"
                    unmergeHold = (until: input.now + Self.unmergeRetrySeconds, message: message, epoch: epoch)
                }
            }
            // The decision did not reach the kernel: the phase is what the kernel does, the
            // reason says why (read once, here; samples report this outcome).
            if decision.phase != .unmanaged, let status = try? kernel.readStatus(),
                KSMPhase(kernelRun: status.run) != decision.phase
            {
                shown.phase = KSMPhase(kernelRun: status.run)
                shown.reason =
                    config.run == .prune && error.isUnmergeNotDone
                    ? "\(shown.phase.rawValue): run is prune, but the unmerge was not done (see the apply error): "
                        + (status.run == 1
                            ? "ksmd runs and merged pages stay merged" : "ksmd is off and merged pages stay merged")
                    : "\(shown.phase.rawValue): the kernel's run is \(status.run); applying the decision failed "
                        + "(\(message)); the decision was \(decision.reason)"
            }
            if heldBack {
                // Reported as it was when the hold began, and logged then.
                logger.debug("unmerge held back", metadata: ["error": "\(message)"])
            } else if case .cancelled = error.reason, unmergeControl.stopped {
                // The stop the operator asked for, not a failure.
                logger.info(
                    "unmerge interrupted: the agent is stopping",
                    metadata: ["generation": "\(generation.map(String.init) ?? "-")", "error": "\(message)"])
            } else if let logged = loggedApplyError, logged.generation == generation, logged.message == message {
                // The same failure step after step (every second in the adaptive and advisor
                // modes): logged once, as warnings are.
                logger.debug(
                    "config not applied, again",
                    metadata: ["generation": "\(generation.map(String.init) ?? "-")", "error": "\(message)"])
            } else {
                logger.error(
                    "config not applied",
                    metadata: ["generation": "\(generation.map(String.init) ?? "-")", "error": "\(message)"])
                loggedApplyError = (generation, message)
            }
            applyError = message
            return record(
                EngineOutcome(
                    decision: shown, appliedGeneration: appliedGeneration, applyError: message, report: error.report)
            )
        }
    }

    /// How often the agent should step: every second while a mode that reads the kernel's
    /// feedback needs it (adaptive; advisor once it has begun and until it has handed over: not
    /// on a kernel without the advisor, nor while MemAvailable keeps KSM off), when the
    /// throttle's next step down is due if that is sooner, else `default`.
    public func tuneInterval(default seconds: Double) -> Double {
        guard let config, config.run == .run else { return seconds }
        switch config.mode {
        case .adaptive:
            return min(seconds, AdaptiveTuning.standard.stepSeconds)
        case .advisor where state.advisor != nil && state.advisor?.handedOver != true:
            return min(seconds, AdaptiveTuning.standard.stepSeconds)
        case .throttle:
            guard let left = state.throttle.secondsToNext(now: clock.now(), settings: config.effectiveThrottle) else {
                return seconds
            }
            return min(seconds, max(Self.shortestThrottleWait, left))
        default:
            return seconds
        }
    }

    /// The shortest wait for a throttle step that is due (a timer a hair early steps at once after).
    static let shortestThrottleWait = 0.25

    /// Ends the tuning loop's sleep when a kick or a config changes when the next step is due.
    public nonisolated let wakeup = ScheduleWakeup()

    /// What the feedback modes see of the kernel this step; nil for the other modes (they only
    /// need /proc/meminfo) or when the counters cannot be read (the mode then says so).
    private func observe(_ config: KSMConfig) -> KernelObservation? {
        guard config.run == .run, config.mode == .adaptive || config.mode == .advisor else { return nil }
        guard let status = try? kernel.readStatus() else { return nil }
        let ticks = (try? kernel.ksmdCPUTicks()) ?? nil
        return KernelObservation(
            status: status,
            ksmdCPUSeconds: ticks.map { Double($0) / Double(max(kernel.clockTicksPerSecond, 1)) },
            mergeablePages: config.mode == .adaptive ? kernel.mergeableAnonPages() : nil,
            memoryPressureSomeAvg10: kernel.memoryPressureSomeAvg10())
    }

    private func fail(_ message: String, config: KSMConfig) -> EngineOutcome {
        logger.error("tuning step failed", metadata: ["error": "\(message)"])
        applyError = message
        let decision =
            lastOutcome?.decision
            ?? Tuner.decide(
                config: KSMConfig(run: .unmanaged),
                input: TunerInput(
                    memory: MemorySnapshot(memTotalKB: 0, memAvailableKB: 0), pageSize: kernel.pageSize,
                    initial: initialSettings, now: clock.now()), state: state)
        return record(
            EngineOutcome(decision: decision, appliedGeneration: appliedGeneration, applyError: message, report: nil))
    }

    private func record(_ outcome: EngineOutcome) -> EngineOutcome {
        lastOutcome = outcome
        return outcome
    }

    /// Reads status + meminfo + ksmd CPU and returns what a StatusSample needs (the agent adds seq).
    public func snapshot() async throws -> EngineSnapshot {
        let status = try kernel.readStatus()
        let memory = try kernel.readMemory()
        var percent: Double?
        var seconds: Double?
        if let ticks = try kernel.ksmdCPUTicks() {
            let sample = CPUTimeSample(ticks: ticks, at: clock.now())
            if let last = lastCPU {
                percent = Savings.cpuPercent(from: last, to: sample, ticksPerSecond: kernel.clockTicksPerSecond)
            }
            lastCPU = sample
            seconds = Double(ticks) / Double(max(kernel.clockTicksPerSecond, 1))
        } else {
            lastCPU = nil
        }
        let phase: KSMPhase
        let reason: String
        if let since = unmergeControl.underWaySince {
            // An apply's unmerge under way (its write begun): the kernel's phase, and why.
            phase = KSMPhase(kernelRun: status.run)
            reason =
                "\(phase.rawValue): applying \(applyUnderWay ?? "the config"); the kernel is unmerging every KSM page "
                + "(pages_sharing \(status.pagesSharing), pages_shared \(status.pagesShared), "
                + "\(Int((ContinuousClock.now - since) / .seconds(1))) s so far)"
        } else if let decision = lastOutcome?.decision, self.config != nil {
            phase = decision.phase
            reason = decision.reason
        } else {
            phase = .unmanaged
            reason = "Unmanaged: no config yet; the agent only reports (kernel run is \(status.run))"
        }
        return EngineSnapshot(
            status: status, memory: memory, pageSize: kernel.pageSize, ksmdCPUPercent: percent,
            ksmdCPUSeconds: seconds, phase: phase, phaseReason: reason, appliedGeneration: appliedGeneration,
            applyError: applyError)
    }

    /// Keeps the capture in the state directory before the agent first writes to the kernel, so
    /// that a later start does not capture the agent's own settings.
    private func keepInitialCapture() {
        guard let capture = captureToKeep, let stateDir else { return }
        captureToKeep = nil
        do {
            try stateDir.saveInitialCapture(capture)
            logger.info(
                "kept the KSM settings captured at start",
                metadata: ["file": "\(stateDir.initialSettingsFile)", "captured": "\(capture.summary)"])
        } catch {
            logger.warning(
                "cannot keep the KSM settings captured at start: a restart will capture the kernel's settings again",
                metadata: ["error": "\(error)"])
        }
    }

    /// The agent is stopping: interrupts the unmerge under way, if any (the kernel then leaves
    /// run=0 with the pages not yet unmerged still merged), and no tuning step writes after it
    /// (the restore at exit still does). Called from the signal handling, which must not wait for
    /// the unmerge (nonisolated).
    public nonisolated func stopApplying() {
        // A second stop (SIGTERM again) also cuts short the restore's unmerge, which the
        // operator is then waiting for.
        if unmergeControl.stopped { restoreControl.stop() }
        unmergeControl.stop()
    }

    /// Puts back the settings captured at start (for --restore-on-exit). Nothing is written
    /// while the config is unmanaged (or there is none yet): the agent then never writes.
    public func restoreInitial() async throws {
        guard let config, config.run != .unmanaged else {
            logger.info(
                "the KSM settings captured at start not restored: the config is unmanaged (or none yet), nothing is written"
            )
            return
        }
        await beginApply("the KSM settings captured at start")
        defer { endApply() }
        let report = try await Applier.restore(
            initialSettings, to: kernel, unmergeTimeout: unmergeTimeout,
            unmergeGuard: UnmergeGuard(reservePercent: unmergeReservePercent), unmergeControl: restoreControl,
            logger: logger)
        logger.info("restored the KSM settings captured at start", metadata: ["written": "\(report)"])
    }
}
