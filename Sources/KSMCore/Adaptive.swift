/// The adaptive mode as a pure function: (config, kernel observation, state) → settings, phase,
/// reason, next state.
///
/// Principle: ksmd scans at full speed while passes still pay (a completed pass newly merged at
/// least 1 % of the pages KSM tracks); after a wake it waits `warmPasses` passes before judging,
/// since a page needs two passes to merge. When a pass stops paying the speed halves every
/// fast pass's duration down to an idle share of a core, which is held by measuring ksmd's own
/// CPU. New mergeable memory (AnonPages or the processes' rmap items growing, or KSM tracking
/// more pages), a kick, or a later pass that pays again bring back full speed without anyone
/// asking. The ksmd CPU budget (`maxCpuPercent`) caps every speed; the settings for a share are
/// derived from the kernel's own cost per scanned page, corrected by the measured share.
public enum Adaptive {
    public static func step(
        config: KSMConfig, input: TunerInput, state: TunerState, tuning: AdaptiveTuning = .standard
    ) -> TuningDecision {
        var next = state
        let memory = input.memory
        guard Ksmtuned.belowThreshold(thresCoef: config.thresCoef, memory: memory) else {
            // The threshold rules like in the ksmtuned modes; the cycle restarts when it runs again.
            next.adaptive = nil
            return TuningDecision(
                settings: KernelSettings(run: 0), phase: .stopped,
                reason: Ksmtuned.aboveThresholdReason(config: config, memory: memory), state: next)
        }
        guard let obs = input.observation else {
            return TuningDecision(
                settings: KernelSettings(run: 1, pagesToScan: 100, sleepMillisecs: 20), phase: .running,
                reason:
                    "Running: adaptive cannot read the KSM counters or ksmd's CPU this step; holding the standard preset's speed (pages_to_scan 100 every 20 ms)",
                state: next)
        }
        let now = input.now
        let status = obs.status
        let tracked = obs.trackedPages
        let pageSize = Int64(max(input.pageSize, 1))
        let mergeable = obs.mergeablePages ?? memory.anonPagesKB * 1024 / pageSize
        let budget = config.maxCpuPercent.map { $0 / 100 }

        guard var s = state.adaptive else {
            let fresh = AdaptiveState(
                phase: .warming, speed: 1, wakeCause: "the mode started", passesSinceWake: 0,
                lastFullScans: status.fullScans, passStartSharing: status.pagesSharing, passStartTime: now,
                lastBackoffAt: now, mergeableRef: mergeable, trackedRef: tracked, kicks: state.throttle.kicks,
                lastTime: now, lastCPUSeconds: obs.ksmdCPUSeconds, lastPagesScanned: status.pagesScanned,
                target: min(1, budget ?? 1))
            next.adaptive = fresh
            return decision(fresh, budget: budget, obs: obs, tuning: tuning, state: next)
        }

        // ksmd's CPU and its cost per scanned page since the previous step.
        let dt = now - s.lastTime
        if dt > 0, let cpu = obs.ksmdCPUSeconds, let lastCPU = s.lastCPUSeconds, cpu >= lastCPU {
            let used = cpu - lastCPU
            let share = used / dt
            s.cpuRecent = ewma(s.cpuRecent, share, dt: dt, window: tuning.recentWindowSeconds)
            var scanned: Int64?
            if let p = status.pagesScanned, let lp = s.lastPagesScanned, p >= lp {
                scanned = p - lp
            } else if status.fullScans > s.lastFullScans {
                scanned = (status.fullScans - s.lastFullScans) * max(tracked, 1)
            }
            if let scanned, scanned >= 1000, used >= 0.03 {
                let sample = used / Double(scanned)
                s.costPerPage = s.costPerPage.map { 0.7 * $0 + 0.3 * sample } ?? sample
            }
        }
        s.lastTime = now
        s.lastCPUSeconds = obs.ksmdCPUSeconds
        s.lastPagesScanned = status.pagesScanned

        // Completed passes: did the last one pay?
        if status.fullScans > s.lastFullScans {
            let passes = status.fullScans - s.lastFullScans
            s.passesSinceWake += passes
            let merged = max(0, status.pagesSharing - s.passStartSharing)
            let perPass = Double(merged) / Double(max(tracked, 1)) / Double(passes)
            let seconds = (now - s.passStartTime) / Double(passes)
            if s.phase == .warming || s.phase == .merging { s.fastPassSeconds = seconds }
            s.lastPassMergedPercent = perPass * 100
            s.lastPassNumber = status.fullScans
            if perPass >= tuning.payFraction {
                s.phase = .merging
                s.speed = 1
            } else if s.passesSinceWake >= tuning.warmPasses && (s.phase == .warming || s.phase == .merging) {
                s.phase = .backingOff
                // Halving starts from the speed in force, which the budget may have capped.
                s.speed = min(1, budget ?? 1) / 2
                s.lastBackoffAt = now
            }
            s.lastFullScans = status.fullScans
            s.passStartSharing = status.pagesSharing
            s.passStartTime = now
        }

        // New mergeable memory or a kick while slow: full speed again.
        let growth = max(
            tuning.minGrowthBytes / pageSize, Int64(tuning.growthFraction * Double(max(s.trackedRef, tracked))))
        var wake: String?
        if state.throttle.kicks > s.kicks {
            wake = "a kick"
        } else if s.phase == .backingOff || s.phase == .idle {
            if mergeable - s.mergeableRef >= growth {
                let what = obs.mergeablePages == nil ? "AnonPages" : "the memory of mergeable processes"
                wake = "\(what) grew by \(Display.bytes((mergeable - s.mergeableRef) * pageSize))"
            } else if tracked - s.trackedRef >= growth {
                wake = "KSM found \(Display.bytes((tracked - s.trackedRef) * pageSize)) of new pages"
            }
        }
        s.kicks = state.throttle.kicks
        if let wake {
            s.phase = .warming
            s.speed = 1
            s.wakeCause = wake
            s.passesSinceWake = 0
        }
        if s.phase == .warming || s.phase == .merging {
            s.mergeableRef = mergeable
            s.trackedRef = tracked
        } else {
            s.mergeableRef = min(s.mergeableRef, mergeable)
            s.trackedRef = min(s.trackedRef, tracked)
        }

        // Backing off: halve every fast pass's duration, down to idle.
        let pressured = (obs.memoryPressureSomeAvg10 ?? 0) >= tuning.pressurePercent
        let idle = pressured ? tuning.pressureIdleShare : tuning.idleShare
        if s.phase == .backingOff {
            let step = min(max(s.fastPassSeconds ?? 5, tuning.stepSeconds), 60)
            while now - s.lastBackoffAt >= step && s.speed > idle {
                s.speed /= 2
                s.lastBackoffAt += step
            }
            if s.speed <= idle {
                s.phase = .idle
            }
        }
        if s.phase == .idle { s.speed = idle }

        // Correct the settings so that the measured share meets the target once it has settled.
        // Once per window at a steady target, the share measured over that window corrects the
        // settings. With smart_scan most of a slow pass is skipped pages, which cost CPU but are
        // not counted as scanned: the cost model is then far off, and only this loop can tell.
        let target = min(s.speed, budget ?? 1)
        if abs(target - s.target) > target * 0.01 || s.windowCPU == nil {
            s.target = target
            s.windowStart = now
            s.windowCPU = obs.ksmdCPUSeconds
        } else if now - s.windowStart >= tuning.recentWindowSeconds, let start = s.windowCPU,
            let cpu = obs.ksmdCPUSeconds, cpu >= start
        {
            if target < 0.999 {
                let measured = (cpu - start) / (now - s.windowStart)
                let ratio = target / max(measured, target / 20)
                s.gain = min(max(s.gain * min(max(ratio, 0.5), 2), 0.01), 1000)
            }
            s.windowStart = now
            s.windowCPU = cpu
        }
        next.adaptive = s
        return decision(s, budget: budget, obs: obs, tuning: tuning, state: next, pressured: pressured)
    }

    /// pages_to_scan and sleep_millisecs for ksmd to use `share` of a core: it scans
    /// pages_to_scan pages (at `cost` seconds each), then sleeps.
    public static func settings(share: Double, cost: Double, gain: Double, tuning: AdaptiveTuning) -> (
        pages: Int, sleepMillisecs: Int
    ) {
        if share >= 0.999 { return (tuning.fullSpeedPages, 0) }
        var sleep = 20.0
        var pages = share * sleep / 1000 / ((1 - share) * max(cost, 1e-9)) * gain
        if pages < 16 {
            sleep = 200
            pages *= 10
        }
        return (Int(min(max(pages.rounded(), 1), Double(tuning.fullSpeedPages))), Int(sleep))
    }

    static func ewma(_ old: Double?, _ sample: Double, dt: Double, window: Double) -> Double {
        guard let old else { return sample }
        let alpha = dt / (window + dt)
        return old + alpha * (sample - old)
    }

    static func decision(
        _ s: AdaptiveState, budget: Double?, obs: KernelObservation, tuning: AdaptiveTuning, state: TunerState,
        pressured: Bool = false
    ) -> TuningDecision {
        let limited = budget.map { $0 < s.speed } ?? false
        let share = min(s.speed, budget ?? 1)
        let (pages, sleep) = settings(
            share: share, cost: s.costPerPage ?? tuning.defaultCostPerPage, gain: s.gain, tuning: tuning)
        let speed =
            share >= 0.999
            ? "full speed (pages_to_scan \(pages), sleep 0 ms)"
            : "\(pct(share)) of a core (pages_to_scan \(pages) every \(sleep) ms)"
        let lastPass = s.lastPassMergedPercent.map { p in
            "pass \(s.lastPassNumber.map(String.init) ?? "?") merged \(Display.number(p, significant: 2)) % new pages"
        }
        var reason: String
        switch s.phase {
        case .warming:
            reason =
                "Running: adaptive at \(speed) since \(s.wakeCause); judging from pass \(tuning.warmPasses) after it (\(s.passesSinceWake) so far)"
        case .merging:
            reason = "Running: adaptive, \(lastPass ?? "the last pass paid"): \(speed)"
        case .backingOff:
            reason = "Running: adaptive, \(lastPass ?? "passes stopped paying"): slowing to \(speed)"
        case .idle:
            reason =
                "Running: adaptive, idle at \(speed): passes stopped paying (\(lastPass ?? "no pass yet")); waiting for new mergeable memory"
            if pressured {
                reason +=
                    "; memory is under pressure (PSI some avg10 ≥ \(Int(tuning.pressurePercent)) %), so the idle speed is higher"
            }
        }
        if limited, let budget {
            reason += "; the ksmd CPU budget of \(pct(budget)) of a core is the limit"
        }
        return TuningDecision(
            settings: KernelSettings(run: 1, pagesToScan: pages, sleepMillisecs: sleep), phase: .running,
            reason: reason, state: state)
    }

    static func pct(_ share: Double) -> String { "\(Display.number(share * 100, significant: 2)) %" }
}
