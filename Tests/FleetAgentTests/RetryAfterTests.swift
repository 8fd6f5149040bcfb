import FleetAPI
import FleetAgent
import FleetClient
import FleetTestSupport
import Foundation
import KSMCore
import Logging
import Synchronization
import TestSupport
import Testing

/// `Retry-After`: the client reads it off an error reply, and the agent waits at least that long
/// (up to `Backoff.longestHint`) before it pushes or polls again, rather than its own backoff of
/// a second or two: a fleet whose server said "5 s" (its database is away) does not come back
/// every second, nor all in the same second.
@Suite("Retry-After: read by the client, heeded by the agent")
struct RetryAfterTests {
    @Test("delay-seconds and IMF-fixdate parse; anything else is nil")
    func parse() {
        let now = Date(timeIntervalSince1970: 784_111_777)  // Sun, 06 Nov 1994 08:49:37 GMT
        #expect(RetryAfter.seconds("120", now: now) == 120)
        #expect(RetryAfter.seconds(" 5 ", now: now) == 5)
        #expect(RetryAfter.seconds("0", now: now) == 0)
        #expect(RetryAfter.seconds("99999999999999999999", now: now) == Double(365 * 86_400))
        #expect(RetryAfter.seconds("Sun, 06 Nov 1994 08:49:37 GMT", now: now) == 0)
        #expect(RetryAfter.seconds("Sun, 06 Nov 1994 08:51:07 GMT", now: now) == 90)
        #expect(RetryAfter.seconds("Wed, 01 Mar 2028 00:00:00 GMT", now: Date(timeIntervalSince1970: 1_835_481_600 - 86_400)) == 86_400)
        // Already past: now.
        #expect(RetryAfter.seconds("Sat, 05 Nov 1994 08:49:37 GMT", now: now) == 0)
        for bad in [
            "", "soon", "-5", "1.5", "5s", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994",
            "Sun, 06 Nov 1994 08:49:37 UTC", "Sun, 6 Nov 1994 08:49:37 GMT", "Sun, 29 Feb 1900 00:00:00 GMT",
            "Sun, 06 Foo 1994 08:49:37 GMT", "Sun, 06 Nov 1994 24:00:00 GMT",
        ] {
            #expect(RetryAfter.seconds(bad, now: now) == nil, "\(bad)")
        }
        #expect(RetryAfter.seconds("Thu, 29 Feb 2024 12:00:00 GMT", now: now) != nil)
    }

    @Test("the backoff waits the longer of its own wait and the hint, the hint spread by up to 20 % and capped")
    func backoffHint() {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<200 {
            var b = Backoff(base: 1, cap: 8)
            let first = b.next(hint: 30, using: &rng)
            #expect(first >= 30 && first <= 36)
            #expect(b.lastHintWait == first, "the hint as waited, kept for a later answered poll")
            #expect(b.failures == 1, "a hinted failure counts as a failure")
            let own = b.next(hint: 0.01, using: &rng)
            #expect(own >= 1 && own <= 2, "a short hint does not shorten the backoff: \(own)")
            let capped = b.next(hint: 86_400, using: &rng)
            #expect(capped >= Backoff.longestHint && capped <= Backoff.longestHint * 1.2)
            let none = b.next(hint: nil, using: &rng)
            #expect(none >= 4 && none <= 8)
            #expect(b.lastHintWait == nil)
        }
        // The spread: a fleet told the same number does not all come back in one second.
        var waits = [Double]()
        for _ in 0..<200 {
            var b = Backoff(base: 1, cap: 8)
            waits.append(b.next(hint: 5, using: &rng))
        }
        #expect((waits.max() ?? 0) - (waits.min() ?? 0) > 0.5, "no spread: \(waits.min() ?? 0)...\(waits.max() ?? 0)")
    }

    @Test("the client carries the real server's Retry-After of a 429 in its error")
    func fromTheServer() async throws {
        let server = try await TestServer.start(configure: { $0.failedAuthRateLimit = 2 })
        defer { server.removeDataDir() }
        let guesser = try Fixtures.client(server.baseURL, token: "ka_guess")
        var last: ClientError?
        for _ in 0..<3 {
            do { _ = try await guesser.listNodes() } catch { last = error }
        }
        await server.stop()
        let error = try #require(last)
        #expect(error.status == 429)
        let after = try #require(error.retryAfter, "no Retry-After in \(error)")
        #expect(after >= 1 && after <= 60)
    }

    @Test(
        "the agent heeds Retry-After on a refused push and a refused poll: one try each, the push again only after the hint"
    )
    func agentWaits() async throws {
        let unavailable = #"{"error":{"code":"database_unavailable","message":"the database is unavailable (stub); try again in a few seconds"}}"#
        // Its own backoff would try again after 0.05-0.5 s: many tries in the windows below.
        let run = try StubbedAgent(name: "retry") { path in
            if path.hasSuffix("/config") { return .init(status: 503, body: unavailable, headers: ["Retry-After": "30"]) }
            if path.hasSuffix("/samples") { return .init(status: 503, body: unavailable, headers: ["Retry-After": "3"]) }
            return nil
        }
        defer { run.cleanUp() }
        let (stub, agent, count) = (run.stub, run.agent, run.count)
        let firstPush = await waitUntil(timeout: .seconds(15), poll: .milliseconds(20)) { count("/samples") >= 1 }
        let pushedAt = ContinuousClock.now
        #expect(firstPush, "no push reached the stub: \(stub.requestLines)")
        try await Task.sleep(for: .milliseconds(2_500))
        #expect(count("/samples") == 1, "pushed again within the 3 s asked: \(stub.requestLines)")
        let again = await waitUntil(timeout: .seconds(5), poll: .milliseconds(20)) { count("/samples") >= 2 }
        let waited = elapsedSeconds(since: pushedAt)
        #expect(again, "no push after the 3 s asked (silenced): \(stub.requestLines)")
        #expect(waited >= 2.9 && waited < 5, "the second push came \(waited) s after the first")
        #expect(count("/config") == 1, "polled again within the 30 s asked: \(stub.requestLines)")
        await agent.stop()
        let status = await agent.agent.status()
        #expect(status.lastAckedSeq == nil && status.spooled > 0, "samples kept for later: \(status)")
    }

    @Test(
        "a poll answered after a refused push does not cut the push's Retry-After short when the same server asked for it"
    )
    func answeredPollKeepsThePushWait() async throws {
        let limited = #"{"error":{"code":"rate_limited","message":"too many pushes (stub)"}}"#
        let unavailable = #"{"error":{"code":"database_unavailable","message":"the database is unavailable (stub)"}}"#
        // Polls fail (the agent counts the server away) until a push has been refused; then one
        // poll is answered (the server is back, as far as polls tell), then they fail for 30 s.
        let state = StubState()
        let log = LogCapture()
        let run = try StubbedAgent(name: "retry-poll", logger: log.logger()) { path in
            if path.hasSuffix("/config") {
                switch state.nextPoll() {
                case .failBriefly: return .init(status: 503, body: unavailable, headers: ["Retry-After": "1"])
                case .answer: return .init(status: 304, body: "")
                case .failLong: return .init(status: 503, body: unavailable, headers: ["Retry-After": "30"])
                }
            }
            if path.hasSuffix("/samples") {
                state.pushRefused()
                return .init(status: 429, body: limited, headers: ["Retry-After": "4"])
            }
            return nil
        }
        defer { run.cleanUp() }
        let (stub, agent, count) = (run.stub, run.agent, run.count)
        let firstPush = await waitUntil(timeout: .seconds(15), poll: .milliseconds(20)) { count("/samples") >= 1 }
        #expect(firstPush, "no push reached the stub: \(stub.requestLines)")
        // The poll answered 304 within about 1.2 s of the refusal: the agent saw its server back.
        let answered = await waitUntil(timeout: .seconds(3), poll: .milliseconds(20)) { state.answered }
        #expect(answered, "no poll was answered after the refused push: \(stub.requestLines)")
        let again = await waitUntil(timeout: .seconds(8), poll: .milliseconds(20)) { count("/samples") >= 2 }
        #expect(again, "no push after the 4 s asked (silenced): \(stub.requestLines)")
        // As the stub saw them (the agent's clock read comes after the stub's answer).
        let pushes = state.pushes
        if pushes.count >= 2 {
            let gap = pushes[1] - pushes[0]
            #expect(gap >= .seconds(4), "the second push came \(gap) after the first, inside the 4 s the server asked")
        }
        await agent.stop()
        // What an operator sees at --log-level debug: the answered poll, from which server, and
        // that no push was accepted.
        let polls = log.messages(containing: "config poll answered")
        #expect(polls.count == 1, "\(polls)")
        #expect(polls.first?.level == .debug)
        #expect(polls.first?.metadata["server"] == stub.baseURL && polls.first?.metadata["changed"] == "false", "\(polls)")
        #expect(polls.first?.metadata["generation"] == "1", "\(polls)")
        #expect(log.messages(containing: "samples accepted").isEmpty)
    }
}

/// What a proxy, load balancer or WAF in front of the server answers is not the server's word:
/// its 401/403 page is no refused token, its 404 or redirect no refused batch.
@Suite("a proxy's answers in front of the server")
struct ProxyAnswerTests {
    static let html = "<html><body><h1>403 Forbidden</h1><hr>nginx</body></html>"

    @Test("a proxy's 403 on polls and 404 or 301 on pushes: the identity is kept and every sample stays spooled")
    func proxyPagesLoseNothing() async throws {
        for pushStatus in [404, 301] {
            let run = try StubbedAgent(name: "proxy-\(pushStatus)") { path in
                if path.hasSuffix("/config") { return .init(status: 403, body: Self.html, contentType: "text/html") }
                if path.hasSuffix("/samples") {
                    return .init(
                        status: pushStatus, body: "<html>not here</html>", contentType: "text/html",
                        headers: pushStatus == 301 ? ["Location": "https://elsewhere.example/"] : [:])
                }
                return nil
            }
            defer { run.cleanUp() }
            let pushed = await waitUntil(timeout: .seconds(15), poll: .milliseconds(20)) { run.count("/samples") >= 3 }
            #expect(pushed, "the agent did not keep pushing: \(run.stub.requestLines)")
            let status = await run.agent.agent.status()
            #expect(status.dropped == 0, "samples dropped on a proxy's \(pushStatus): \(status)")
            #expect(status.spooled + status.outbox >= 1 && status.lastAckedSeq == nil, "\(status)")
            #expect(status.nodeId == "n-proxy-\(pushStatus)", "the identity was forgotten: \(status)")
            #expect(run.count(APIPaths.register) == 1, "registered again on a proxy's 403: \(run.stub.requestLines)")
            let ended = await run.stop()
            #expect(ended == nil, "the agent ended with \(String(describing: ended))")
        }
    }

    /// A proxy whose body limit is below a full batch (ingress-nginx's 1 MiB against 500 samples
    /// with process reports) answers 413 with its own page: retried as it was, the spool, pushed
    /// first, never reached the server again. The agent pushes smaller batches; a single sample
    /// still refused is dropped and counted rather than holding back every sample behind it.
    @Test("a proxy's 413: smaller batches at once, down to one sample, which is then dropped and counted")
    func proxyBodyLimit() async throws {
        let log = LogCapture()
        // 40 samples spooled before the start (a backlog): the first push carries them all, and
        // the proxy refuses two pushes as too large, then lets them through.
        let tooLarge = Mutex(0)
        let ack = #"{"highestSeq":1,"stored":1,"duplicates":0}"#
        let run = try StubbedAgent(
            name: "proxy-413", logger: log.logger(),
            prepare: { stateDir in
                var spool = try SampleSpool(directory: try AgentStateDir(stateDir).spoolDir)
                try spool.append((1...40).map(makeSample))
            }
        ) { path in
            if path.hasSuffix("/config") { return .init(status: 304, body: "") }
            guard path.hasSuffix("/samples") else { return nil }
            let refuse = tooLarge.withLock { n -> Bool in
                n += 1
                return n <= 2
            }
            return refuse
                ? .init(status: 413, body: "<html>413 Request Entity Too Large</html>", contentType: "text/html")
                : .init(status: 200, body: ack)
        }
        defer { run.cleanUp() }
        let accepted = await waitUntil(timeout: .seconds(15), poll: .milliseconds(20)) {
            await run.agent.agent.status().lastAckedSeq != nil
        }
        #expect(accepted, "no push went through after the proxy's 413s: \(run.stub.requestLines)")
        let smaller = log.messages(containing: "pushing smaller ones")
        #expect(!smaller.isEmpty, "no smaller batches after a 413")
        let status = await run.agent.agent.status()
        #expect(status.dropped == 0)
        _ = await run.stop()
    }

    @Test("a proxy that refuses even one sample (413): it is dropped and counted, the rest goes on")
    func proxyRefusingOneSample() async throws {
        let log = LogCapture()
        let run = try StubbedAgent(name: "proxy-413-one", logger: log.logger()) { path in
            if path.hasSuffix("/config") { return .init(status: 304, body: "") }
            guard path.hasSuffix("/samples") else { return nil }
            return .init(status: 413, body: "<html>413 Request Entity Too Large</html>", contentType: "text/html")
        }
        defer { run.cleanUp() }
        let dropped = await waitUntil(timeout: .seconds(15), poll: .milliseconds(20)) {
            await run.agent.agent.status().dropped > 0
        }
        let status = await run.agent.agent.status()
        #expect(dropped, "a sample the proxy never takes held back the rest: \(status)")
        #expect(!log.messages(containing: "a proxy refused a single sample as too large").isEmpty)
        _ = await run.stop()
    }

    /// A route the server does not have (an older server, a path a proxy maps elsewhere) is 404
    /// `no_route`, not the `not_found` of a deleted node: the agent keeps its identity.
    @Test("a 404 no_route on the poll is not taken for the node being gone")
    func noRouteKeepsTheIdentity() async throws {
        let run = try StubbedAgent(name: "no-route") { path in
            if path.hasSuffix("/config") {
                return .init(status: 404, body: #"{"error":{"code":"no_route","message":"no route GET /api/v1/nodes/x/config"}}"#)
            }
            return nil
        }
        defer { run.cleanUp() }
        let polled = await waitUntil(timeout: .seconds(15), poll: .milliseconds(20)) { run.count("/config") >= 3 }
        #expect(polled, "\(run.stub.requestLines)")
        #expect(run.count(APIPaths.register) == 1, "registered again on a missing route: \(run.stub.requestLines)")
        _ = await run.stop()
    }

    @Test("a proxy's 403 on the registration is retried, not taken for a refused enrollment token (exit 3)")
    func proxyRefusingTheRegistration() async throws {
        let stub = try StubServer { _, _ in .init(status: 403, body: Self.html, contentType: "text/html") }
        defer { stub.stop() }
        let root = makeTemporaryDirectory(prefix: "ksmfleet-proxy-reg").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        var o = testAgentOptions(server: stub.baseURL, enrollToken: "ke_stub", stateDir: root + "/state", name: "proxy-reg")
        o.serverURLs = [stub.baseURL]
        let agent = try RunningAgent.start(o, name: "proxy-reg")
        let retried = await waitUntil(timeout: .seconds(15), poll: .milliseconds(20)) {
            stub.requestLines.filter { $0.hasPrefix("POST \(APIPaths.register)") }.count >= 3
        }
        #expect(retried, "the registration was not retried: \(stub.requestLines)")
        let ended = await agent.stop()
        #expect(ended == nil, "the agent gave up: \(String(describing: ended))")
    }
}

/// A stub server that registers node `n-NAME` and answers the rest with `route` (nil: 404), and
/// an agent started against it with a state directory of its own.
private struct StubbedAgent {
    let stub: StubServer
    let agent: RunningAgent
    let root: String

    /// `prepare` runs on the state directory before the agent starts.
    init(
        name: String, logger: Logger? = nil, prepare: (String) throws -> Void = { _ in },
        route: @escaping @Sendable (_ path: String) -> StubServer.Reply?
    ) throws {
        let registered = String(
            decoding: try StrictJSON.encoder().encode(
                RegisterResponse(
                    nodeId: "n-\(name)", nodeToken: "kn_stub", config: NodeConfig(generation: 1, config: .standardDefault),
                    reregistered: false)),
            as: UTF8.self)
        let stub = try StubServer { method, path in
            if method == "POST" && path == APIPaths.register { return .init(status: 200, body: registered) }
            return route(path) ?? .init(status: 404, body: #"{"error":{"code":"not_found","message":"stub"}}"#)
        }
        root = makeTemporaryDirectory(prefix: "ksmfleet-\(name)").path
        var o = testAgentOptions(server: stub.baseURL, enrollToken: "ksme_stub", stateDir: root + "/state", name: name)
        o.serverURLs = [stub.baseURL]
        do {
            try prepare(root + "/state")
            agent = try RunningAgent.start(o, name: name, logger: logger)
        } catch {
            stub.stop()
            throw error
        }
        self.stub = stub
    }

    /// Requests whose path ends with `suffix` (a query string allowed).
    func count(_ suffix: String) -> Int {
        stub.requestLines.filter { $0.hasSuffix(suffix) || $0.contains(suffix + "?") }.count
    }

    /// Stops the agent; the error its run ended with, if any.
    func stop() async -> AgentError? { await agent.stop() }

    func cleanUp() {
        stub.stop()
        try? FileManager.default.removeItem(atPath: root)
    }
}

/// The poll answers of `answeredPollKeepsThePushWait`, by what happened so far.
private final class StubState: Sendable {
    enum Poll { case failBriefly, answer, failLong }
    private struct State {
        var pushes: [ContinuousClock.Instant] = []
        var answered = false
    }
    private let state = Mutex(State())
    var answered: Bool { state.withLock { $0.answered } }
    /// When each push was refused.
    var pushes: [ContinuousClock.Instant] { state.withLock { $0.pushes } }
    func pushRefused() { state.withLock { $0.pushes.append(.now) } }
    func nextPoll() -> Poll {
        state.withLock { s in
            guard !s.pushes.isEmpty else { return .failBriefly }
            if s.answered { return .failLong }
            s.answered = true
            return .answer
        }
    }
}
