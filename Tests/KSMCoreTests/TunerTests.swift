import KSMCore
import TestSupport
import Testing

/// 16 GiB host in kB.
let gib16: Int64 = 16 * 1024 * 1024

func memory(totalKB: Int64 = gib16, availablePercent: Int64) -> MemorySnapshot {
    MemorySnapshot(memTotalKB: totalKB, memAvailableKB: totalKB * availablePercent / 100, anonPagesKB: totalKB / 2)
}

func customized(boost: Int = 200, decay: Int = 50, min: Int = 100, max: Int = 1000, sleep: Int = 20, thres: Int = 20) -> KSMConfig {
    KSMConfig(run: .run, mode: .customized, thresCoef: thres,
              parameters: TunerParameters(boost: boost, decay: decay, minPages: min, maxPages: max, sleepMsec: sleep))
}

@Suite("ksmtuned step (Harvester semantics, defects fixed)")
struct KsmtunedTests {
    @Test("below the threshold KSM runs; above it, it stops")
    func threshold() {
        let c = customized(thres: 20)
        let low = Ksmtuned.step(config: c, memory: memory(availablePercent: 10), state: TunerState())
        #expect(low.phase == .running)
        #expect(low.settings.run == 1)
        let high = Ksmtuned.step(config: c, memory: memory(availablePercent: 81), state: TunerState())
        #expect(high.phase == .stopped)
        #expect(high.settings.run == 0)
        #expect(high.reason == "Stopped: MemAvailable 81 % is above the 20 % threshold (KSM runs only below it)")
    }

    @Test("the boundary: MemAvailable exactly at the threshold does not run KSM")
    func boundary() {
        let d = Ksmtuned.step(config: customized(thres: 20), memory: memory(totalKB: 16_000_000, availablePercent: 20), state: TunerState())
        #expect(d.phase == .stopped)
    }

    @Test("thresCoef 100 always runs, thresCoef 0 never does")
    func extremes() {
        #expect(Ksmtuned.step(config: customized(thres: 100), memory: memory(availablePercent: 99), state: TunerState()).phase == .running)
        #expect(Ksmtuned.step(config: customized(thres: 0), memory: memory(availablePercent: 0), state: TunerState()).phase == .stopped)
    }

    @Test("Harvester defect: the first run wrote pages_to_scan 0 with run 1 — here it starts at minPages")
    func firstRunStartsAtMinPages() {
        let d = Ksmtuned.step(config: customized(min: 100), memory: memory(availablePercent: 5), state: TunerState())
        #expect(d.settings.run == 1)
        #expect(d.settings.pagesToScan == 100)
        #expect(d.state.pagesToScan == 100)
    }

    @Test("boost while running, capped at maxPages")
    func boostCapped() {
        let c = customized(boost: 400, min: 100, max: 1000)
        var state = TunerState()
        var seen: [Int] = []
        for _ in 0..<5 {
            let d = Ksmtuned.step(config: c, memory: memory(availablePercent: 5), state: state)
            seen.append(d.settings.pagesToScan ?? -1)
            state = d.state
        }
        #expect(seen == [100, 500, 900, 1000, 1000])
    }

    @Test("decay while stopped, floored at minPages")
    func decayFloored() {
        let c = customized(decay: 300, min: 100, max: 1000)
        var state = TunerState(pagesToScan: 1000)
        var seen: [Int] = []
        for _ in 0..<5 {
            let d = Ksmtuned.step(config: c, memory: memory(availablePercent: 90), state: state)
            seen.append(d.settings.pagesToScan ?? -1)
            state = d.state
        }
        #expect(seen == [700, 400, 100, 100, 100])
    }

    @Test("a lowered maxPages clamps the value in force at once")
    func clampOnConfigChange() {
        let d = Ksmtuned.step(config: customized(boost: 0, min: 100, max: 300), memory: memory(availablePercent: 5), state: TunerState(pagesToScan: 5000))
        #expect(d.settings.pagesToScan == 300)
        let up = Ksmtuned.step(config: customized(boost: 0, decay: 0, min: 800, max: 900), memory: memory(availablePercent: 90), state: TunerState(pagesToScan: 100))
        #expect(up.settings.pagesToScan == 800)
    }

    static let sleepCases: [(Int64, Int, Int)] = [
        (16 * 1024 * 1024, 20, 20),  // 16 GiB: sleepMsec as given
        (8 * 1024 * 1024, 20, 40),  // 8 GiB: twice as long
        (32 * 1024 * 1024, 40, 20),  // 32 GiB: half
        (64 * 1024 * 1024, 20, 10),  // 64 GiB: 5 → floor 10
        (256 * 1024 * 1024, 100, 10),  // floor
    ]

    @Test("Harvester defect: the sleep formula mixed bytes and kB and always hit the 10 ms floor", arguments: sleepCases)
    func sleepFormula(memTotalKB: Int64, sleepMsec: Int, expected: Int) {
        #expect(Ksmtuned.sleepMillisecs(sleepMsec: sleepMsec, memTotalKB: memTotalKB) == expected)
    }

    @Test("the step writes the scaled sleep")
    func stepWritesSleep() {
        let d = Ksmtuned.step(config: customized(sleep: 20), memory: memory(totalKB: 8 * 1024 * 1024, availablePercent: 5), state: TunerState())
        #expect(d.settings.sleepMillisecs == 40)
    }

    @Test("standard preset keeps pages_to_scan at 100 whatever happens")
    func standardPresetFlat() {
        let c = KSMConfig(run: .run, mode: .standard, thresCoef: 20).normalized()
        var state = TunerState()
        for avail in [5, 5, 90, 5] as [Int64] {
            let d = Ksmtuned.step(config: c, memory: memory(availablePercent: avail), state: state)
            #expect(d.settings.pagesToScan == 100)
            state = d.state
        }
    }

    @Test("reasons never show a rounded value equal to the threshold")
    func percentFormat() {
        #expect(Percent.format(19.96, against: 20) == "19.99")
        #expect(Percent.format(19.6, against: 20) == "19.6")
        #expect(Percent.format(81.2, against: 20) == "81")
        #expect(Percent.format(19.99995, against: 20) == "19.99")
        #expect(Percent.format(20.00005, against: 20) == "20.01")
        #expect(Percent.format(20, against: 20) == "20")
        let at = Ksmtuned.aboveThresholdReason(
            config: KSMConfig(run: .run, thresCoef: 20), memory: MemorySnapshot(memTotalKB: 1000, memAvailableKB: 200))
        #expect(at == "Stopped: MemAvailable 20 % is at the 20 % threshold (KSM runs only below it)")
        let unknown = Ksmtuned.aboveThresholdReason(
            config: KSMConfig(run: .run, thresCoef: 20), memory: MemorySnapshot(memTotalKB: 0, memAvailableKB: 0))
        #expect(!unknown.contains(" at the "))
    }

    /// The WHY column of `ksmfleet history` (the tuner's reason) and its MEM AVAIL column
    /// (`Display.memAvailable`, also the dashboard's) show the same MemAvailable, on the side of
    /// the threshold the decision took: random hosts with MemAvailable within a few kB or a few
    /// tenths of a percent of the threshold, where rounding decides what is shown.
    @Test("the reason's MemAvailable is the one shown beside it, on the decision's side", arguments: [UInt64(1), 2, 3])
    func reasonAndColumnAgree(seed: UInt64) {
        var rng = SeededRandom(seed: seed)
        for _ in 0..<5_000 {
            let coef = Int.random(in: 1...99, using: &rng)
            let total = Int64.random(in: (1 << 20)...(1 << 32), using: &rng)
            let exact = total * Int64(coef) / 100
            let near =
                Bool.random(using: &rng)
                ? Int64.random(in: -3...3, using: &rng) : Int64.random(in: -(total / 300)...(total / 300), using: &rng)
            let m = MemorySnapshot(memTotalKB: total, memAvailableKB: min(max(exact + near, 0), total))
            let config = KSMConfig(run: .run, mode: .standard, thresCoef: coef).normalized()
            let d = Ksmtuned.step(config: config, memory: m, state: TunerState())
            let shown = Display.memAvailable(m, thresCoef: coef)
            #expect(d.reason.contains("MemAvailable \(shown) "), "\(d.reason) / \(shown)")
            guard let value = Double(shown.dropLast(2)) else {
                Issue.record("not a number: \(shown)")
                continue
            }
            if d.phase == .running {
                #expect(value < Double(coef), "\(d.reason) (\(m.memAvailableKB) of \(m.memTotalKB) kB)")
            } else {
                #expect(value >= Double(coef), "\(d.reason) (\(m.memAvailableKB) of \(m.memTotalKB) kB)")
                let at = m.memAvailableKB * 100 == m.memTotalKB * Int64(coef)
                #expect(value > Double(coef) || at, "\(d.reason)")
                #expect(d.reason.contains(at ? " % is at the " : " % is above the "), "\(d.reason)")
            }
        }
    }
}

@Suite("Tuner: run modes")
struct TunerModeTests {
    let input = TunerInput(memory: memory(availablePercent: 50), pageSize: 4096, initial: KernelSettings(run: 0, pagesToScan: 100, sleepMillisecs: 20), now: 0)

    @Test("stop writes run 0 and keeps merged pages")
    func stop() {
        let d = Tuner.decide(config: KSMConfig(run: .stop), input: input, state: TunerState())
        #expect(d.settings == KernelSettings(run: 0))
        #expect(d.phase == .stopped)
    }

    @Test("prune writes run 2")
    func prune() {
        let d = Tuner.decide(config: KSMConfig(run: .prune), input: input, state: TunerState())
        #expect(d.settings.run == 2)
        #expect(d.phase == .pruned)
    }

    @Test("unmanaged writes nothing at all, not even knobs")
    func unmanaged() {
        let d = Tuner.decide(config: KSMConfig(run: .unmanaged, mergeAcrossNodes: 0), input: input, state: TunerState())
        #expect(d.settings.isEmpty)
        #expect(d.phase == .unmanaged)
    }

    @Test("optional knobs pass through only when set")
    func knobs() {
        let d = Tuner.decide(config: KSMConfig(run: .stop, mergeAcrossNodes: 0, useZeroPages: 1), input: input, state: TunerState())
        #expect(d.settings.mergeAcrossNodes == 0)
        #expect(d.settings.useZeroPages == 1)
        #expect(d.settings.maxPageSharing == nil)
        let plain = Tuner.decide(config: .standardDefault, input: input, state: TunerState())
        #expect(plain.settings.mergeAcrossNodes == nil)
    }
}

@Suite("cc-proxy throttle state machine")
struct ThrottleTests {
    let settings = ThrottleSettings.ccProxy
    let initial = KernelSettings(run: 0, pagesToScan: 100, sleepMillisecs: 20)
    /// 4 GiB of anonymous memory = 1,048,576 pages of 4 KiB.
    let mem = MemorySnapshot(memTotalKB: gib16, memAvailableKB: gib16 / 2, anonPagesKB: 4 * 1024 * 1024)

    @Test("initial → aggressive on a kick → standard at 30 s → slow at 2 min → initial at 2 min")
    func fullCycle() {
        let clock = ManualClock(0)
        var s = ThrottleState()
        #expect(s.level == .initial)
        s.kick(now: clock.now())
        #expect(s.level == .aggressive)
        clock.advance(29.9)
        s.advance(now: clock.now(), settings: settings)
        #expect(s.level == .aggressive)
        clock.advance(0.1)
        s.advance(now: clock.now(), settings: settings)
        #expect(s.level == .standard)
        clock.advance(119)
        s.advance(now: clock.now(), settings: settings)
        #expect(s.level == .standard)
        clock.advance(1)
        s.advance(now: clock.now(), settings: settings)
        #expect(s.level == .slow)
        clock.advance(120)
        s.advance(now: clock.now(), settings: settings)
        #expect(s.level == .initial)
        clock.advance(10_000)
        s.advance(now: clock.now(), settings: settings)
        #expect(s.level == .initial)
    }

    @Test("a long pause passes through every level in one advance")
    func catchUp() {
        var s = ThrottleState()
        s.kick(now: 0)
        let passed = s.advance(now: 1000, settings: settings)
        #expect(passed == [.standard, .slow, .initial])
    }

    @Test("a kick in any level goes back to aggressive and restarts the timer", arguments: [ThrottleLevel.aggressive, .standard, .slow, .initial])
    func kickFromAnyLevel(level: ThrottleLevel) {
        var s = ThrottleState(level: level, since: 0)
        s.kick(now: 50)
        #expect(s.level == .aggressive)
        s.advance(now: 79, settings: settings)
        #expect(s.level == .aggressive)
        s.advance(now: 80, settings: settings)
        #expect(s.level == .standard)
    }

    @Test("level settings derive from AnonPages: /10 every 1 ms, /100 every 10 ms, /500 every 100 ms, then the captured ones")
    func levelSettings() {
        let pages: Int64 = 4 * 1024 * 1024 * 1024 / 4096
        func s(_ l: ThrottleLevel) -> KernelSettings { Throttle.settings(level: l, throttle: settings, memory: mem, pageSize: 4096, initial: initial) }
        #expect(s(.aggressive) == KernelSettings(run: 1, pagesToScan: Int(pages / 10), sleepMillisecs: 1))
        #expect(s(.standard) == KernelSettings(run: 1, pagesToScan: Int(pages / 100), sleepMillisecs: 10))
        #expect(s(.slow) == KernelSettings(run: 1, pagesToScan: Int(pages / 500), sleepMillisecs: 100))
        #expect(s(.initial) == initial)
    }

    @Test("the idle level puts back the captured advisor mode and settings, and leaves pages_to_scan to scan-time")
    func idleLevelRestoresTheAdvisor() {
        var captured = initial
        captured.advisorMode = "scan-time"
        captured.advisorTargetScanTime = 30
        captured.advisorMaxCPU = 50
        captured.advisorMinPagesToScan = 400
        captured.advisorMaxPagesToScan = 9000
        let config = KSMConfig(run: .run, mode: .throttle)
        let input = TunerInput(memory: mem, pageSize: 4096, initial: captured, now: 0)
        let kicked = Tuner.decide(config: config, input: input, state: Tuner.kick(state: TunerState(), now: 0))
        #expect(kicked.settings.advisorMode == "none")
        var idleInput = input
        idleInput.now = 1000
        let idle = Tuner.decide(config: config, input: idleInput, state: kicked.state)
        #expect(idle.state.throttle.level == .initial)
        #expect(idle.settings.advisorMode == "scan-time")
        #expect(idle.settings.pagesToScan == nil)
        #expect(idle.settings.run == captured.run && idle.settings.sleepMillisecs == captured.sleepMillisecs)
        #expect(idle.settings.advisorTargetScanTime == 30 && idle.settings.advisorMaxCPU == 50)
        #expect(idle.settings.advisorMinPagesToScan == 400 && idle.settings.advisorMaxPagesToScan == 9000)

        // Captured with the advisor off: pages_to_scan is put back, and the advisor stays off.
        captured.advisorMode = "none"
        idleInput.initial = captured
        let off = Tuner.decide(config: config, input: idleInput, state: kicked.state)
        #expect(off.settings.advisorMode == "none")
        #expect(off.settings.pagesToScan == captured.pagesToScan)
    }

    @Test("no anonymous memory still scans at least one page, never 0 with run 1")
    func neverZero() {
        let empty = MemorySnapshot(memTotalKB: gib16, memAvailableKB: gib16, anonPagesKB: 0)
        let k = Throttle.settings(level: .aggressive, throttle: settings, memory: empty, pageSize: 4096, initial: initial)
        #expect(k.pagesToScan == 1)
    }

    @Test("through Tuner.decide with a test clock: kick, decay, back to initial")
    func throughTuner() {
        let clock = ManualClock(100)
        let config = KSMConfig(run: .run, mode: .throttle)
        func input() -> TunerInput { TunerInput(memory: mem, pageSize: 4096, initial: initial, now: clock.now()) }
        var state = TunerState()
        var d = Tuner.decide(config: config, input: input(), state: state)
        #expect(d.settings.run == 0)  // initial captured settings: KSM was off
        #expect(d.phase == .stopped)
        state = Tuner.kick(state: d.state, now: clock.now())
        d = Tuner.decide(config: config, input: input(), state: state)
        #expect(d.phase == .running)
        #expect(d.settings.sleepMillisecs == 1)
        #expect(d.reason.contains("aggressive"))
        clock.advance(30)
        d = Tuner.decide(config: config, input: input(), state: d.state)
        #expect(d.settings.sleepMillisecs == 10)
        clock.advance(240)
        d = Tuner.decide(config: config, input: input(), state: d.state)
        #expect(d.settings == initial)
        #expect(d.state.throttle.kicks == 1)
    }

    @Test("custom timers are honoured")
    func customTimers() {
        let t = ThrottleSettings(toStandardSeconds: 1, toSlowSeconds: 2, toInitialSeconds: 3)
        var s = ThrottleState()
        s.kick(now: 0)
        s.advance(now: 1, settings: t)
        #expect(s.level == .standard)
        s.advance(now: 3, settings: t)
        #expect(s.level == .slow)
        #expect(s.secondsToNext(now: 3, settings: t) == 3)
        s.advance(now: 6, settings: t)
        #expect(s.level == .initial)
    }
}

@Suite("Savings math")
struct SavingsTests {
    @Test("saved bytes are pages_sharing (+ zero pages) × page size; pages_shared is not a saving")
    func saved() {
        let s = KSMStatus(pagesShared: 1000, pagesSharing: 5000, ksmZeroPages: 10)
        #expect(Savings.savedBytes(s, pageSize: 4096) == 5010 * 4096)
        #expect(Savings.savedBytes(KSMStatus(pagesShared: 9, pagesSharing: 0), pageSize: 65536) == 0)
    }

    @Test("absurd counters saturate instead of crashing the server")
    func savedSaturates() {
        #expect(Savings.savedBytes(KSMStatus(pagesSharing: Int64.max / 2, ksmZeroPages: Int64.max / 2), pageSize: 4096) == Int64.max)
        #expect(Savings.savedBytes(KSMStatus(pagesSharing: Int64.max, ksmZeroPages: 1), pageSize: 1) == Int64.max)
    }

    @Test("net saving comes from general_profit where the kernel reports it")
    func net() {
        #expect(Savings.netProfitBytes(KSMStatus(generalProfit: 123_456)) == 123_456)
        #expect(Savings.netProfitBytes(KSMStatus()) == nil)
    }

    @Test("ksmd CPU % from two stat samples")
    func cpu() {
        let a = CPUTimeSample(ticks: 1000, at: 10)
        let b = CPUTimeSample(ticks: 1050, at: 20)
        // 50 ticks at 100 Hz = 0.5 s over 10 s = 5 %.
        #expect(Savings.cpuPercent(from: a, to: b, ticksPerSecond: 100) == 5)
        #expect(Savings.cpuPercent(from: b, to: a, ticksPerSecond: 100) == nil)
        #expect(Savings.cpuPercent(from: a, to: CPUTimeSample(ticks: 900, at: 30), ticksPerSecond: 100) == nil)
    }
}
