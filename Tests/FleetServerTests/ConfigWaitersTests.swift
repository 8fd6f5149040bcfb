import FleetAPI
import Foundation
import NIOCore
import KSMCore
import Testing

@testable import FleetServer

/// The in-memory long-poll waiters on their own: wake-ups, deadlines, cancellation, shutdown,
/// and that nothing is left registered afterwards.
@Suite struct ConfigWaitersTests {
    func config(_ generation: Int64) -> NodeConfig { NodeConfig(generation: generation, config: .standardDefault) }

    @Test func manyWaitersWakeOnOneNotifyAndOthersTimeOut() async {
        let waiters = ConfigWaiters()
        let e = waiters.pollStart("a", agentHas: nil).epoch
        let woken = Task {
            await withTaskGroup(of: Int64?.self) { group in
                for _ in 0..<500 {
                    group.addTask {
                        if case .changed(let c, _) = await waiters.wait("a", since: e, timeout: .seconds(30)) { return c?.generation }
                        return nil
                    }
                }
                var out: [Int64?] = []
                for await r in group { out.append(r) }
                return out
            }
        }
        let other = Task { await waiters.wait("b", since: waiters.pollStart("b", agentHas: nil).epoch, timeout: .milliseconds(200)) }
        let deadline = ContinuousClock.now + .seconds(20)
        while waiters.waitingCount < 500 && ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(5)) }
        #expect(waiters.waitingCount >= 500)
        waiters.notify("a", config: config(2))
        let results = await woken.value
        #expect(results.count == 500 && results.allSatisfy { $0 == 2 })
        if case .changed = await other.value { Issue.record("node b was never changed") }
        #expect(waiters.waitingCount == 0)
    }

    @Test func aChangeBeforeTheWaitIsNotMissed() async {
        let waiters = ConfigWaiters()
        let e = waiters.pollStart("a", agentHas: nil).epoch
        waiters.notify("a", config: config(5))  // between reading the config and waiting
        guard case .changed(let c, let newEpoch) = await waiters.wait("a", since: e, timeout: .seconds(30)) else {
            Issue.record("the change was missed")
            return
        }
        #expect(c?.generation == 5 && newEpoch == e + 1)
        // Out-of-order notifications keep the newest generation, and still move the epoch: a wait
        // since the last epoch seen answers at once (a timeout here is a failure).
        waiters.notify("a", config: config(4))
        guard case .changed(let kept, let later) = await waiters.wait("a", since: newEpoch, timeout: .seconds(1)) else {
            Issue.record("the out-of-order notification was missed (the wait timed out)")
            return
        }
        #expect(kept?.generation == 5 && later == newEpoch + 1)
    }

    /// A notice of another replica's (or this one's own) change: ignored when this process has
    /// notified that generation already, an epoch move only when nothing of the node waits here.
    @Test func aNoticeIsKnownIdleOrAwaited() async {
        let waiters = ConfigWaiters()
        #expect(waiters.hear("a", generation: 1) == .idle)
        let e = waiters.pollStart("a", agentHas: nil).epoch
        let waiting = Task { await waiters.wait("a", since: e, timeout: .seconds(30)) }
        let deadline = ContinuousClock.now + .seconds(20)
        while waiters.waitingCount < 1 && ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(5)) }
        #expect(waiters.hear("a", generation: 1) == .waiting)
        #expect(waiters.hear("b", generation: 1) == .idle)
        // This process's own change: its waiters are woken with it, and the notice of the same
        // generation (or an older one) that comes back is known.
        waiters.notify("a", config: config(7))
        guard case .changed(let c, _) = await waiting.value else {
            Issue.record("the waiter was not woken")
            return
        }
        #expect(c?.generation == 7)
        #expect(waiters.hear("a", generation: 7) == .known)
        #expect(waiters.hear("a", generation: 6) == .known)
        #expect(waiters.hear("a", generation: 8) == .idle)
        // A newer generation heard of without its config (the node waited elsewhere): known,
        // and a config older than it, notified late (a writer's own notify after its
        // fleet-wide apply), is not handed to a waiter: it reads the store.
        waiters.notify("a", generation: 9)
        #expect(waiters.hear("a", generation: 9) == .known)
        let e2 = waiters.pollStart("a", agentHas: nil).epoch
        let late = Task { await waiters.wait("a", since: e2, timeout: .seconds(30)) }
        while waiters.waitingCount < 1 && ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(5)) }
        waiters.notify("a", config: config(8))
        guard case .changed(let stale, _) = await late.value else {
            Issue.record("the waiter was not woken")
            return
        }
        #expect(stale == nil, "woken with generation \(stale.map { "\($0.generation)" } ?? "nil") below the 9 heard of")
        // A deletion forgets the node.
        waiters.notify("a", config: nil)
        #expect(waiters.hear("a", generation: 7) == .idle)
    }

    /// A poll whose agent has the newest generation heard of here needs no store read, but only
    /// while the change feed lives, and on PostgreSQL only once a notice vouched for it: a
    /// generation this replica wrote or read itself may have been overtaken by a change that a
    /// lost LISTEN never delivered. A feed that starts again forgets what was heard and moves
    /// the epochs of the nodes it had heard of, so a poll that trusted one just before reads
    /// the store when it comes to wait.
    @Test func aPollTrustsTheGenerationHeardOfOnlyWhileTheFeedLives() async {
        let waiters = ConfigWaiters(changeFeedLive: false)
        #expect(!waiters.changeFeedLive)
        #expect(waiters.hear("a", generation: 3) == .idle)
        waiters.notify("a", generation: 3)  // a notice of a node idle here
        #expect(!waiters.pollStart("a", agentHas: 3).current, "trusted before the change feed was in place")
        waiters.changeFeedStarted()
        #expect(waiters.changeFeedLive)
        #expect(!waiters.pollStart("a", agentHas: 3).current, "heard of before the change feed started, and trusted")
        // This replica's own write: trusted only when its notice comes back.
        waiters.notify("a", config: config(4))
        #expect(!waiters.pollStart("a", agentHas: 4).current, "an own write trusted before its notice came back")
        #expect(waiters.hear("a", generation: 4) == .known)
        #expect(waiters.pollStart("a", agentHas: 4).current)
        #expect(!waiters.pollStart("a", agentHas: 3).current, "an agent behind is not current")
        #expect(!waiters.pollStart("a", agentHas: nil).current, "an agent that names no generation is not current")
        #expect(!waiters.pollStart("b", agentHas: 4).current, "a node never heard of is not current")
        // Notices: of a node idle here (a generation), and of one waiting here (its config).
        waiters.notify("a", generation: 6)
        #expect(waiters.pollStart("a", agentHas: 6).current)
        #expect(!waiters.pollStart("a", agentHas: 4).current)
        waiters.notify("c", config: config(2), fromFeed: true)
        #expect(waiters.pollStart("c", agentHas: 2).current)
        // A read (the resync after a lost LISTEN) vouches for nothing either.
        waiters.notify("d", config: config(5))
        #expect(!waiters.pollStart("d", agentHas: 5).current)

        // The feed is lost: nothing heard of is trusted, nor after it is back.
        let trusting = waiters.pollStart("a", agentHas: 6)
        #expect(trusting.current)
        waiters.changeFeedStopped()
        #expect(!waiters.changeFeedLive)
        #expect(!waiters.pollStart("a", agentHas: 6).current, "trusted while the change feed was lost")
        waiters.changeFeedStarted()
        #expect(waiters.changeFeedLive)
        #expect(!waiters.pollStart("a", agentHas: 6).current, "heard of before the feed was lost, and trusted")
        #expect(!waiters.pollStart("c", agentHas: 2).current, "heard of before the feed was lost, and trusted")
        // The poll that trusted generation 6 before the loss: its wait ends at once without a
        // config, so it reads the store (a timeout here is a failure).
        guard case .changed(let c, _) = await waiters.wait("a", since: trusting.epoch, timeout: .seconds(1)) else {
            Issue.record("a poll that trusted a generation heard of before the feed started again waited")
            return
        }
        #expect(c == nil)

        // A deletion forgets the node.
        waiters.notify("a", config: config(7), fromFeed: true)
        #expect(waiters.pollStart("a", agentHas: 7).current)
        waiters.notify("a", config: nil)
        #expect(!waiters.pollStart("a", agentHas: 7).current)

        // A lone server (SQLite) makes every change itself: its own writes vouch for theirs.
        let lone = ConfigWaiters()
        lone.notify("a", config: config(2))
        #expect(lone.pollStart("a", agentHas: 2).current)
    }

    /// The other side of a resync: a poll that read the store before a change committed while
    /// the feed was lost, and comes to wait only after the feed started again (after the resync
    /// listed the nodes waiting, so it was not among them), reads the store again at once, for
    /// a node never heard of too; it does not wait with the old config until its timeout.
    @Test func aPollThatReadBeforeTheFeedStartedAgainReadsAgain() async {
        let waiters = ConfigWaiters(changeFeedLive: false)
        waiters.changeFeedStarted()
        let start = waiters.pollStart("quiet", agentHas: 3)  // then it reads generation 3
        #expect(!start.current)
        waiters.changeFeedStopped()
        // Generation 4 commits now, unheard; LISTEN is back and the resync lists the waiting.
        waiters.changeFeedStarted()
        #expect(waiters.waitingNodeIds.isEmpty)
        let clock = ContinuousClock()
        let began = clock.now
        guard case .changed(let c, _) = await waiters.wait("quiet", since: start.epoch, timeout: .seconds(2)) else {
            Issue.record("a poll that read the store before the feed started again waited until its timeout")
            return
        }
        #expect(c == nil, "it must read the store, not take a config from memory")
        #expect(clock.now - began < .seconds(1))
    }

    /// A fleet apply's check of its own notices (`ServerState.wakeUnheard`): only a node
    /// that waits here, has not heard of the apply's generation, and whose feed has not started
    /// again since the apply, is woken, and without a config (it reads the store: another
    /// replica may have changed or deleted it since), which is not recorded as heard.
    @Test func anApplysCheckWakesOnlyUnheardWaitersToReadTheStore() async {
        let waiters = ConfigWaiters(changeFeedLive: false)
        waiters.changeFeedStarted()
        let starts = waiters.feedStarts
        func waitOn(_ node: String) -> Task<ConfigWaiters.Outcome, Never> {
            let e = waiters.pollStart(node, agentHas: 1).epoch
            return Task { await waiters.wait(node, since: e, timeout: .seconds(5)) }
        }
        let deadline = ContinuousClock.now + .seconds(20)
        let unheard = waitOn("unheard")
        while waiters.waitingCount < 1 && ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(5)) }
        // Not waiting here: nothing to wake.
        #expect(!waiters.wakeUnheard("idle", generation: 2, feedStarts: starts))
        // Its notice came back: it was woken by it.
        waiters.notify("heard", config: config(2), fromFeed: true)
        #expect(!waiters.wakeUnheard("heard", generation: 2, feedStarts: starts))
        // Waiting, unheard: woken without a config, and generation 2 is not taken as heard.
        #expect(waiters.wakeUnheard("unheard", generation: 2, feedStarts: starts))
        guard case .changed(let c, _) = await unheard.value else {
            Issue.record("the unheard waiter was not woken")
            return
        }
        #expect(c == nil, "woken with the apply's config instead of reading the store")
        #expect(waiters.hear("unheard", generation: 2) != .known, "the check recorded the generation as heard")
        // The feed started again since the apply: its resync reads every waiting node, the check
        // stands down.
        let later = waitOn("later")
        while waiters.waitingCount < 1 && ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(5)) }
        waiters.changeFeedStarted()
        #expect(!waiters.wakeUnheard("later", generation: 2, feedStarts: starts))
        #expect(waiters.waitingCount == 1)
        waiters.shutdown()
        _ = await later.value
    }

    @Test func cancellationAndShutdownEndEveryWait() async {
        let waiters = ConfigWaiters()
        let cancelled = Task { await waiters.wait("a", since: 0, timeout: .seconds(60)) }
        let held = Task { await waiters.wait("b", since: 0, timeout: .seconds(60)) }
        let deadline = ContinuousClock.now + .seconds(20)
        while waiters.waitingCount < 2 && ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(5)) }
        cancelled.cancel()
        if case .changed = await cancelled.value { Issue.record("a cancelled wait reported a change") }
        waiters.shutdown()
        if case .changed = await held.value { Issue.record("shutdown reported a change") }
        #expect(waiters.waitingCount == 0)
        // After shutdown nothing waits any more.
        let start = ContinuousClock.now
        _ = await waiters.wait("c", since: 0, timeout: .seconds(30))
        #expect(ContinuousClock.now - start < .seconds(20))  // not the 30 s timeout
    }

    /// Timeouts come from one reaper's 100 ms buckets: no wait ends before its timeout, each
    /// ends, a wait woken early leaves nothing behind for the reaper to resume a second time,
    /// and the reaper starts again for waits after it stopped.
    @Test(.timeLimit(.minutes(1))) func timeoutsEndEachWaitNoEarlierThanAsked() async {
        let waiters = ConfigWaiters()
        let started = ContinuousClock.now
        let ended = await withTaskGroup(of: (Duration, Duration, Bool).self) { group in
            for i in 0..<40 {
                let timeout = Duration.milliseconds(50 + 10 * i)
                group.addTask {
                    let outcome = await waiters.wait("n\(i % 7)", since: 0, timeout: timeout)
                    if case .changed = outcome { return (timeout, ContinuousClock.now - started, false) }
                    return (timeout, ContinuousClock.now - started, true)
                }
            }
            var all: [(Duration, Duration, Bool)] = []
            for await r in group { all.append(r) }
            return all
        }
        #expect(ended.count == 40)
        for (timeout, after, timedOut) in ended {
            #expect(timedOut)
            #expect(after >= timeout, "a wait of \(timeout) ended after \(after)")
        }
        #expect(waiters.waitingCount == 0)

        // Woken by a change before its timeout; its bucket entry must not resume it again
        // (a second resume of a checked continuation traps) once that tick comes.
        let epoch = waiters.pollStart("a", agentHas: nil).epoch
        let woken = Task { await waiters.wait("a", since: epoch, timeout: .milliseconds(300)) }
        let deadline = ContinuousClock.now + .seconds(20)
        while waiters.waitingCount < 1 && ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(5)) }
        waiters.notify("a", config: config(9))
        guard case .changed(let c, _) = await woken.value else {
            Issue.record("the change did not end the wait")
            return
        }
        #expect(c?.generation == 9)
        try? await Task.sleep(for: .milliseconds(600))  // past the woken wait's tick

        // The reaper stopped with nothing left to wait for; a new wait starts it again.
        let start = ContinuousClock.now
        if case .changed = await waiters.wait("b", since: waiters.pollStart("b", agentHas: nil).epoch, timeout: .milliseconds(150)) {
            Issue.record("a wait with no change reported one")
        }
        #expect(ContinuousClock.now - start >= .milliseconds(150))
        #expect(waiters.waitingCount == 0)
    }
}

/// The config bodies kept for polls: each is the bytes `HTTP.json` writes for that config (its
/// generation, kick counter and settings), whichever configs came before it.
@Suite struct ConfigBodiesTests {
    @Test func eachBodyIsItsOwnConfigsJSON() throws {
        let bodies = ConfigBodies()
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<2_000 {
            var settings = KSMConfig.standardDefault
            settings.thresCoef = Int.random(in: 0...3, using: &rng)
            settings.run = Bool.random(using: &rng) ? .run : .stop
            let config = NodeConfig(
                generation: Int64.random(in: 1...4, using: &rng), kickCounter: Int64.random(in: 0...1, using: &rng),
                config: settings)
            let body = try bodies.body(of: config)
            let expected = try SortedJSONEncoder().encode(config)
            #expect(Array(body.readableBytesView) == Array(expected), "\(config)")
            #expect(try JSONDecoder().decode(NodeConfig.self, from: Data(body.readableBytesView)) == config)
        }
    }
}

@Suite struct ConfiguredDurationTests {
    /// `ServerConfig`'s fields of seconds as durations (the LISTEN check, the apply's notice
    /// grace, the request deadline, the rollup interval, the shutdown grace): within their
    /// bounds, the default for a value that is not a number (never a crash converting it).
    @Test func secondsAreKeptWithinTheirBounds() {
        func check(_ s: Double) -> Duration { ServerConfig.duration(s, atMost: 3600, ifNotANumber: 10) }
        #expect(check(2.5) == .milliseconds(2500))
        #expect(check(10) == .seconds(10))
        #expect(check(0) == .milliseconds(100))
        #expect(check(-3) == .milliseconds(100))
        #expect(check(1e12) == .seconds(3600))
        #expect(check(.infinity) == .seconds(10))
        #expect(check(.nan) == .seconds(10))
        #expect(ServerConfig.duration(1e12, ifNotANumber: 60) == .seconds(86_400))
        #expect(ServerConfig.duration(-1, atLeast: 0, ifNotANumber: 5) == .zero)
    }
}
