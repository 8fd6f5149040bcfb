import FleetAgent
import KSMCore
import KSMNode
import TestSupport
import Testing

/// run=2 (prune, or the unmerge before a merge_across_nodes/max_page_sharing change) allocates
/// what KSM saves: the agent checks MemAvailable first and backs off after a refusal or a failure.
@Suite("Unmerging and the node's memory")
struct UnmergeMemoryEngineTests {
    static let gib: Int64 = 1024 * 1024 * 1024

    /// A 16 GiB node running KSM with 8 GiB merged and `availableGiB` available.
    static func node(availableGiB: Int64, unmerge: FakeKSMKernel.UnmergeBehaviour = .immediate) throws
        -> FakeKSMKernel
    {
        try FakeKSMKernel.mergedNode(availableGiB: availableGiB, unmerge: unmerge)
    }

    static func memory(availableGiB: Int64) -> MemorySnapshot {
        MemorySnapshot(memTotalKB: 16 * 1024 * 1024, memAvailableKB: availableGiB * 1024 * 1024)
    }

    @Test("8 GiB merged, 1 GiB available, prune: no run=2, an apply error with the numbers, no second attempt")
    func pruneRefusedAndNotRetriedEveryTune() async throws {
        let k = try Self.node(availableGiB: 1)
        let clock = ManualClock()
        let capture = LogCapture()
        let engine = try NodeEngine(kernel: k, clock: clock, logger: capture.logger())

        let first = await engine.setConfig(KSMConfig(run: .prune), generation: 7)
        #expect(k.writes.isEmpty)
        #expect(k.current.run == 1)
        let error = try #require(first.applyError)
        #expect(error.contains("would need ~8 GiB, MemAvailable is 1 GiB of 16 GiB"))
        #expect(error.contains("free memory or unmerge by hand"))
        #expect(error.contains("tries again after 5 min, on a config change or a kick"))
        // The phase says what the node is in, not what was asked.
        #expect(first.decision.phase == .running)
        #expect(first.decision.reason.contains("run is prune, but the unmerge was not done"))
        #expect(first.appliedGeneration == nil)
        #expect(capture.messages(containing: "unmerge refused").count == 1)

        // The next tunes (a minute, four minutes later) neither write nor log it again.
        for _ in 0..<4 {
            clock.advance(60)
            let again = await engine.tune()
            #expect(again.applyError == error)
            #expect(again.decision.phase == .running)
        }
        #expect(k.writes.isEmpty)
        #expect(capture.messages(containing: "unmerge refused").count == 1)
        #expect(capture.messages(containing: "config not applied").count == 1)

        // What the server receives.
        let snapshot = try await engine.snapshot()
        #expect(snapshot.applyError == error)
        #expect(snapshot.phase == .running)
        #expect(snapshot.appliedGeneration == nil)

        // After 5 minutes the check runs again: memory was freed meanwhile, so it unmerges.
        k.setMemory(Self.memory(availableGiB: 12))
        clock.advance(61)
        let later = await engine.tune()
        #expect(k.writes == [.init(.run, 2)])
        #expect(later.applyError == nil)
        #expect(later.decision.phase == .pruned)
        #expect(later.appliedGeneration == 7)
    }

    /// `--unmerge-reserve`: the share of MemTotal an unmerge must leave available. 8 GiB merged
    /// and 9 GiB available leave 1 GiB (6.25 % of 16 GiB): refused at the default 10 %, done at 5 %.
    @Test("--unmerge-reserve: 1 GiB left of 16 is refused at 10 %, unmerged at 5 %")
    func theReserveIsTheOperators() async throws {
        for (reserve, unmerged) in [(10.0, false), (5.0, true)] {
            let k = try Self.node(availableGiB: 9)
            let engine = try NodeEngine(
                kernel: k, clock: ManualClock(), logger: quietLogger(), unmergeReservePercent: reserve)
            let outcome = await engine.setConfig(KSMConfig(run: .prune), generation: 1)
            #expect(k.writes.contains(.init(.run, 2)) == unmerged, "reserve \(reserve) %: \(k.writes)")
            if unmerged {
                #expect(outcome.applyError == nil)
            } else {
                #expect(
                    outcome.applyError?.contains("at least 10 % of MemTotal must stay available") == true,
                    "\(outcome.applyError ?? "nil")")
            }
        }
    }

    @Test func theReserveIsASettingFrom0To90() throws {
        func resolve(_ env: [String: String]) throws -> AgentOptions {
            try AgentOptions.resolve(flags: ["server": ["http://x"]], environment: env, configFile: nil)
        }
        #expect(try resolve([:]).unmergeReservePercent == 10)
        #expect(try resolve(["KSMFLEET_UNMERGE_RESERVE": "5"]).unmergeReservePercent == 5)
        #expect(try resolve(["KSMFLEET_UNMERGE_RESERVE": "2.5%"]).unmergeReservePercent == 2.5)
        #expect(try resolve(["KSMFLEET_UNMERGE_RESERVE": "0"]).unmergeReservePercent == 0)
        for bad in ["91", "-1", "ten", "nan", ""] {
            #expect(throws: AgentOptionsError.self, "\(bad)") { _ = try resolve(["KSMFLEET_UNMERGE_RESERVE": bad]) }
        }
    }

    @Test("the same node with enough memory: run=2 written as before")
    func pruneWithEnoughMemory() async throws {
        let k = try Self.node(availableGiB: 12)
        let engine = try NodeEngine(kernel: k, clock: ManualClock(), logger: quietLogger())
        let outcome = await engine.setConfig(KSMConfig(run: .prune), generation: 1)
        #expect(k.writes == [.init(.run, 2)])
        #expect(outcome.applyError == nil)
        #expect(outcome.decision.phase == .pruned)
        #expect(k.current.pagesSharing == 0)
    }

    @Test("a kick or a new config tries a refused unmerge again at once")
    func kickAndConfigChangeRetry() async throws {
        let k = try Self.node(availableGiB: 1)
        let clock = ManualClock()
        let engine = try NodeEngine(kernel: k, clock: clock, logger: quietLogger())
        await engine.setConfig(KSMConfig(run: .prune), generation: 1)
        // A kick re-checks: still short, so still no write.
        let kicked = await engine.kick(source: "test")
        #expect(kicked.applyError?.contains("would need ~8 GiB") == true)
        #expect(k.writes.isEmpty)
        // Memory freed, then a new config: unmerged at once.
        k.setMemory(Self.memory(availableGiB: 12))
        clock.advance(1)
        let outcome = await engine.setConfig(KSMConfig(run: .prune, useZeroPages: 0), generation: 2)
        #expect(outcome.applyError == nil)
        #expect(k.writes.last == .init(.run, 2))
    }

    @Test("a failed unmerge (ENOMEM, the kernel leaves run=0) is reported and not retried every tune")
    func failedUnmergeBacksOff() async throws {
        let k = try Self.node(availableGiB: 12, unmerge: .fails(errno: 12))  // ENOMEM
        let clock = ManualClock()
        let engine = try NodeEngine(kernel: k, clock: clock, logger: quietLogger())
        let first = await engine.setConfig(KSMConfig(run: .prune), generation: 1)
        #expect(k.refusedWrites == [.init(.run, 2)])
        let error = try #require(first.applyError)
        #expect(error.contains("ENOMEM"))
        #expect(error.contains("the kernel left run 0"))
        #expect(first.decision.phase == .stopped)
        #expect(first.decision.reason.contains("run is prune, but the unmerge was not done"))

        clock.advance(60)
        let again = await engine.tune()
        #expect(k.refusedWrites == [.init(.run, 2)])
        #expect(again.applyError == error)

        clock.advance(300)
        await engine.tune()
        #expect(k.refusedWrites == [.init(.run, 2), .init(.run, 2)])
    }

    @Test("a merge_across_nodes change that would not fit: tuning goes on, the knob waits, no run=2")
    func knobChangeRefused() async throws {
        let k = try Self.node(availableGiB: 1)
        let clock = ManualClock()
        let engine = try NodeEngine(kernel: k, clock: clock, logger: quietLogger())
        let outcome = await engine.setConfig(
            KSMConfig(run: .run, mode: .standard, thresCoef: 100, mergeAcrossNodes: 0), generation: 1)
        #expect(!k.writes.contains(.init(.run, 2)))
        #expect(k.current.run == 1)
        #expect(k.current.mergeAcrossNodes == 1)
        #expect(outcome.applyError?.contains("(run=2, to change merge_across_nodes) would need ~8 GiB") == true)
        #expect(outcome.decision.phase == .running)
        clock.advance(60)
        await engine.tune()
        #expect(!k.writes.contains(.init(.run, 2)))
    }
}
