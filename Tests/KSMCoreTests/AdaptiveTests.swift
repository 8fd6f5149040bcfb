import KSMCore
import Testing

/// The adaptive policy against the simulated ksmd: the targets, in shape.
@Suite("adaptive mode (simulated ksmd)")
struct AdaptiveTests {
    static func adaptive(maxCpu: Double? = nil) -> KSMConfig {
        KSMConfig(run: .run, mode: .adaptive, thresCoef: 100, maxCpuPercent: maxCpu)
    }

    /// 4 processes × 5000 pages, 75 % duplicate: a full-speed pass takes 2 s in the model.
    static func workload(volatile: Double = 0) -> (SimulatedKsmd, Int64) {
        var m = SimulatedKsmd()
        let possible = m.startProcesses(count: 4, pages: 5000, duplicate: 0.75, volatile: volatile)
        return (m, possible)
    }

    @Test("merges as fast as full speed and at a similar CPU cost", arguments: [0.0, 0.2])
    func fastMerging(volatile: Double) throws {
        let (m, possible) = Self.workload(volatile: volatile)
        var full = SimulationRun(model: m, config: nil)
        full.run(for: 30)
        var adaptive = SimulationRun(model: m, config: Self.adaptive())
        adaptive.run(for: 30)
        let f = try #require(full.reach(0.9, of: possible))
        let a = try #require(adaptive.reach(0.9, of: possible))
        #expect(a.time <= 1.2 * f.time, "adaptive \(a.time) s vs full speed \(f.time) s")
        #expect(a.cpu <= 1.5 * f.cpu, "adaptive \(a.cpu) CPU-s vs full speed \(f.cpu) CPU-s")
    }

    @Test("idles below 0.6 ksmd CPU-s a minute once nothing new merges", arguments: [0.0, 0.3])
    func idleWhenDone(volatile: Double) throws {
        let (m, possible) = Self.workload(volatile: volatile)
        var run = SimulationRun(model: m, config: Self.adaptive())
        run.run(for: 300)
        let reached = try #require(run.reach(0.9, of: possible))
        let settled = reached.time + 60
        let perMinute = run.cpu(at: settled + 60) - run.cpu(at: settled)
        #expect(perMinute <= 0.6, "\(perMinute) CPU-s in the minute from \(settled) s")
        // It still scans: near idle, not stopped.
        #expect(perMinute > 0)
        #expect(run.model.run == 1)
        let last = try #require(run.reasons.last?.1)
        #expect(last.contains("idle at"), "\(last)")
        #expect(last.contains("waiting for new mergeable memory"))
    }

    @Test("a second wave of duplicates merges within 2× full speed's time, without a kick")
    func secondWave() throws {
        let (m, _) = Self.workload()
        var full = SimulationRun(model: m, config: nil)
        var adaptive = SimulationRun(model: m, config: Self.adaptive())
        full.run(for: 200)
        adaptive.run(for: 200)
        #expect(adaptive.reasons.last?.1.contains("idle") == true)
        let base = (full.model.sharing, adaptive.model.sharing)
        let possible = full.model.startProcesses(count: 2, pages: 5000, duplicate: 0.75)
        adaptive.model.startProcesses(count: 2, pages: 5000, duplicate: 0.75)
        full.run(for: 60)
        adaptive.run(for: 60)
        let f = try #require(full.reach(0.9, of: possible, base: base.0, from: 200))
        let a = try #require(adaptive.reach(0.9, of: possible, base: base.1, from: 200))
        #expect(a.time <= 2 * f.time, "adaptive \(a.time) s vs full speed \(f.time) s")
        #expect(adaptive.reasons.contains { $0.1.contains("since AnonPages grew by") })
    }

    @Test("memory that grows but never merges sends it back to idle")
    func falseWake() throws {
        var (m, _) = Self.workload()
        var run = SimulationRun(model: m, config: Self.adaptive())
        run.run(for: 120)
        run.model.startProcesses(count: 1, pages: 20_000, duplicate: 0)
        run.run(for: 240)
        m = run.model
        let perMinute = run.cpu(at: 360) - run.cpu(at: 300)
        #expect(perMinute <= 0.6, "\(perMinute) CPU-s in the last minute")
    }

    @Test("a kick wakes it even without new memory")
    func kick() throws {
        let (m, _) = Self.workload()
        var run = SimulationRun(model: m, config: Self.adaptive())
        run.run(for: 120)
        #expect(run.model.pagesToScan < 20_000)
        run.kick()
        run.run(for: 1)
        #expect(run.model.pagesToScan == 20_000)
        #expect(run.model.sleepMillisecs == 0)
        #expect(run.reasons.last?.1.contains("since a kick") == true)
    }

    @Test("the ksmd CPU budget holds within ±20 % and the reason says it is the limit", arguments: [5.0, 20.0, 50.0])
    func budget(percent: Double) throws {
        var m = SimulatedKsmd()
        // Large enough that merging lasts the whole window at the budget's speed.
        m.startProcesses(count: 4, pages: 60_000, duplicate: 0.75)
        var run = SimulationRun(model: m, config: Self.adaptive(maxCpu: percent))
        run.run(for: 120)
        let share = (run.cpu(at: 120) - run.cpu(at: 60)) / 60 * 100
        #expect(share >= percent * 0.8 && share <= percent * 1.2, "\(share) % of a core against a budget of \(percent) %")
        let reason = try #require(run.reasons.last?.1)
        #expect(reason.contains("the ksmd CPU budget of \(Display.number(percent, significant: 2)) % of a core is the limit"), "\(reason)")
    }

    @Test("under a budget it also idles once passes stop paying, backing off from the budget")
    func budgetThenIdle() throws {
        let (m, possible) = Self.workload()
        var run = SimulationRun(model: m, config: Self.adaptive(maxCpu: 20))
        run.run(for: 300)
        #expect(run.reach(0.9, of: possible) != nil)
        let perMinute = run.cpu(at: 300) - run.cpu(at: 240)
        #expect(perMinute <= 0.6, "\(perMinute) CPU-s in the last minute")
        #expect(run.reasons.contains { $0.1.contains("slowing to 10 % of a core") }, "the back-off starts from the budget")
    }

    @Test("memory pressure keeps a higher idle speed")
    func pressure() throws {
        let (m, _) = Self.workload()
        var calm = SimulationRun(model: m, config: Self.adaptive())
        var pressed = SimulationRun(model: m, config: Self.adaptive())
        calm.run(for: 200)
        pressed.run(for: 200, pressure: 30)
        let calmMinute = calm.cpu(at: 200) - calm.cpu(at: 140)
        let pressedMinute = pressed.cpu(at: 200) - pressed.cpu(at: 140)
        #expect(pressedMinute > 2 * calmMinute, "\(pressedMinute) vs \(calmMinute)")
        #expect(pressed.reasons.last?.1.contains("memory is under pressure") == true)
    }

    @Test("run stop, prune and unmanaged still win over the adaptive mode")
    func runWins() {
        let input = TunerInput(
            memory: MemorySnapshot(memTotalKB: 1000, memAvailableKB: 10), pageSize: 4096, initial: KernelSettings(),
            now: 0, observation: KernelObservation(status: KSMStatus(), ksmdCPUSeconds: 0))
        for (run, expected) in [(RunMode.stop, 0), (.prune, 2)] {
            let d = Tuner.decide(config: KSMConfig(run: run, mode: .adaptive), input: input, state: TunerState())
            #expect(d.settings.run == expected)
            #expect(d.state.adaptive == nil)
        }
        let u = Tuner.decide(config: KSMConfig(run: .unmanaged, mode: .adaptive), input: input, state: TunerState())
        #expect(u.settings.isEmpty)
    }

    @Test("thresCoef rules like in the other modes: above it KSM stops and the cycle restarts")
    func threshold() {
        let obs = KernelObservation(status: KSMStatus(), ksmdCPUSeconds: 0)
        let high = TunerInput(
            memory: MemorySnapshot(memTotalKB: 1000, memAvailableKB: 900), pageSize: 4096, initial: KernelSettings(),
            now: 0, observation: obs)
        let d = Tuner.decide(config: KSMConfig(run: .run, mode: .adaptive, thresCoef: 20), input: high, state: TunerState())
        #expect(d.settings.run == 0)
        #expect(d.phase == .stopped)
        #expect(d.reason.contains("above the 20 % threshold"))
        let low = TunerInput(
            memory: MemorySnapshot(memTotalKB: 1000, memAvailableKB: 100), pageSize: 4096, initial: KernelSettings(),
            now: 0, observation: obs)
        let r = Tuner.decide(config: KSMConfig(run: .run, mode: .adaptive, thresCoef: 20), input: low, state: TunerState())
        #expect(r.settings == KernelSettings(run: 1, pagesToScan: 20_000, sleepMillisecs: 0, advisorMode: "none"))
        #expect(r.reason.contains("since the mode started"))
    }

    @Test("without the kernel's counters it holds a modest speed and says why")
    func noObservation() {
        let input = TunerInput(
            memory: MemorySnapshot(memTotalKB: 1000, memAvailableKB: 10), pageSize: 4096, initial: KernelSettings(),
            now: 0)
        let d = Tuner.decide(config: Self.adaptive(), input: input, state: TunerState())
        #expect(d.settings.pagesToScan == 100)
        #expect(d.reason.contains("cannot read the KSM counters"))
    }

    @Test("settings for a share of a core follow the cost per page")
    func settingsForShare() {
        let t = AdaptiveTuning.standard
        #expect(Adaptive.settings(share: 1, cost: 3e-6, gain: 1, tuning: t) == (20_000, 0))
        let half = Adaptive.settings(share: 0.5, cost: 1e-5, gain: 1, tuning: t)
        #expect(half.sleepMillisecs == 20)
        #expect(half.pages == 2000)
        // A tiny share lengthens the sleep rather than scanning a page or two at a time.
        let tiny = Adaptive.settings(share: 0.004, cost: 1e-4, gain: 1, tuning: t)
        #expect(tiny.sleepMillisecs == 200)
        #expect(tiny.pages == 8)
    }
}

/// The figures behind the shape tests, printed for the docs (a failing expectation would mean
/// the simulation itself broke: the full-speed reference must merge).
@Suite("adaptive mode: simulated figures")
struct AdaptiveFigures {
    @Test("prints full speed vs adaptive on the model")
    func figures() throws {
        let (m, possible) = AdaptiveTests.workload()
        var full = SimulationRun(model: m, config: nil)
        var adaptive = SimulationRun(model: m, config: AdaptiveTests.adaptive())
        full.run(for: 200)
        adaptive.run(for: 200)
        let f = try #require(full.reach(0.9, of: possible))
        let a = try #require(adaptive.reach(0.9, of: possible))
        let idle = adaptive.cpu(at: 200) - adaptive.cpu(at: 140)
        print("model: full speed 90 % in \(f.time) s / \(f.cpu) CPU-s; adaptive \(a.time) s / \(a.cpu) CPU-s; adaptive CPU-s in minute 140–200 s: \(idle)")
        for (t, r) in adaptive.reasons where t.truncatingRemainder(dividingBy: 5) == 0 && t <= 40 { print("  t=\(t) \(r)") }
    }
}

@Suite struct LeavingTheAdvisorTests {
    @Test("every running mode but advisor switches the kernel's advisor off, so its pages_to_scan is written")
    func otherModesSwitchTheAdvisorOff() {
        let input = TunerInput(
            memory: MemorySnapshot(memTotalKB: 1000, memAvailableKB: 10), pageSize: 4096, initial: KernelSettings(),
            now: 0, observation: KernelObservation(status: KSMStatus(), ksmdCPUSeconds: 0))
        for mode in TuningMode.allCases where mode != .advisor {
            // Throttle scans only after a kick; idle, it puts back the settings captured at start.
            let state = mode == .throttle ? Tuner.kick(state: TunerState(), now: 0) : TunerState()
            let d = Tuner.decide(config: KSMConfig(run: .run, mode: mode, thresCoef: 100), input: input, state: state)
            #expect(d.settings.advisorMode == "none", "\(mode)")
        }
        let stopped = Tuner.decide(config: KSMConfig(run: .stop, mode: .high), input: input, state: TunerState())
        #expect(stopped.settings.advisorMode == nil)
    }

    @Test("parameters are range-checked in every mode, also where the mode does not use them")
    func parametersInEveryMode() {
        for mode in [TuningMode.throttle, .adaptive, .advisor] {
            let c = KSMConfig(
                run: .run, mode: mode,
                parameters: TunerParameters(boost: -5, decay: 0, minPages: 1, maxPages: 2, sleepMsec: 1))
            #expect(c.validate().contains { $0.field == "parameters.boost" }, "\(mode)")
        }
    }
}
