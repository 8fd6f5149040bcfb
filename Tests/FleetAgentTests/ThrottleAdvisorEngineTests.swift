import FleetAgent
import KSMCore
import KSMNode
import TestSupport
import Testing

/// Throttle's idle level on a host whose kernel advisor was on at capture (KSM.md §6).
@Suite("Throttle's idle level and the kernel advisor")
struct ThrottleAdvisorEngineTests {
    @Test("a host captured with advisor_mode scan-time gets scan-time back at the idle level, pages_to_scan left to it")
    func scanTimeComesBack() async throws {
        let k = FakeKSMKernel()
        k.update {
            $0.advisorMode = "scan-time"
            $0.pagesToScan = 777  // what the advisor had picked at capture
        }
        let clock = ManualClock()
        let engine = try NodeEngine(kernel: k, clock: clock, logger: quietLogger())
        await engine.setConfig(KSMConfig(run: .run, mode: .throttle), generation: 1)
        await engine.kick(source: "test")
        #expect(try k.readStatus().advisorMode == "none")
        clock.advance(30 + 120 + 120)
        let idle = await engine.tune()
        #expect(idle.decision.state.throttle.level == .initial)
        #expect(idle.applyError == nil)
        #expect(try k.readStatus().advisorMode == "scan-time")
        #expect(idle.report?.skipped.contains(.pagesToScan) == false)
        #expect(!k.writes.contains { $0.tunable == .pagesToScan && $0.value == 777 })
    }
}

/// kata's throttler steps down 30 s after a kick, then 2 min, then 2 min. The agent's tuning loop
/// sleeps until the next step is due, not its 60 s interval (stepping on the tick alone kept the
/// aggressive scan up to 89 s), and a kick ends the sleep under way.
@Suite("Throttle's timers")
struct ThrottleTimerTests {
    @Test("the next step is due 30 s after a kick, then 120 s, then the interval again")
    func theStepsKeepKatasSchedule() async throws {
        let k = FakeKSMKernel()
        let clock = ManualClock()
        let engine = try NodeEngine(kernel: k, clock: clock, logger: quietLogger())
        let idle = await engine.setConfig(KSMConfig(run: .run, mode: .throttle), generation: 1)
        #expect(idle.decision.reason.contains("throttle is idle (not kicked yet)"), "\(idle.decision.reason)")
        #expect(await engine.tuneInterval(default: 60) == 60)
        await engine.kick(source: "test")
        #expect(await engine.tuneInterval(default: 60) == 30)
        clock.advance(10)
        #expect(await engine.tuneInterval(default: 60) == 20)
        clock.advance(20)
        #expect(await engine.tune().decision.state.throttle.level == .standard)
        #expect(await engine.tuneInterval(default: 60) == 60, "the next step is 120 s away: the interval first")
        clock.advance(100)
        #expect(await engine.tuneInterval(default: 60) == 20)
        clock.advance(20)
        #expect(await engine.tune().decision.state.throttle.level == .slow)
        clock.advance(120)
        let back = await engine.tune()
        #expect(back.decision.state.throttle.level == .initial)
        #expect(back.decision.reason.contains("no kick for 270 s"), "\(back.decision.reason)")
        #expect(await engine.tuneInterval(default: 60) == 60)
    }

    @Test("a signal ends the sleep under way or the next one; cancellation ends it too")
    func theWakeup() async throws {
        let wakeup = ScheduleWakeup()
        let clock = ContinuousClock()
        let start = clock.now
        async let woken = wakeup.sleep(seconds: 30)
        try await Task.sleep(for: .milliseconds(100))
        wakeup.signal()
        #expect(try await woken == true)
        #expect(clock.now - start < .seconds(5))
        wakeup.signal()  // no sleep under way: the next one returns at once
        #expect(try await wakeup.sleep(seconds: 30) == true)
        #expect(try await wakeup.sleep(seconds: 0.05) == false, "a signal is used once")
        let sleeper = Task { try await wakeup.sleep(seconds: 30) }
        try await Task.sleep(for: .milliseconds(50))
        sleeper.cancel()
        let cancelled: Bool
        do {
            _ = try await sleeper.value
            cancelled = false
        } catch {
            cancelled = true
        }
        #expect(cancelled)
        #expect(clock.now - start < .seconds(10))
    }
}
