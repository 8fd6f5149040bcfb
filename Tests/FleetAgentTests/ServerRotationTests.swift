import FleetAPI
import FleetAgent
import FleetClient
import Testing

/// The failover policy between server replicas, as a pure function: which server next, and
/// when to back off.
@Suite("server rotation (failover policy)")
struct ServerRotationTests {
    let a = "http://a:1", b = "http://b:2", c = "http://c:3"

    @Test("one server: every failure backs off and stays on it (the single-URL behaviour)")
    func single() {
        var r = ServerRotation([a])
        for _ in 0..<3 { #expect(r.failed(a) == .backOff(then: a)) }
        #expect(r.current == a)
    }

    @Test("a failure moves to the next server at once; a full round of failures backs off, then the next round starts")
    func rounds() {
        var r = ServerRotation([a, b, c])
        #expect(r.current == a)
        #expect(r.failed(a) == .switchTo(b))
        #expect(r.failed(b) == .switchTo(c))
        #expect(r.failed(c) == .backOff(then: a))
        #expect(r.failedInRound == 0)
        #expect(r.failed(a) == .switchTo(b))
        #expect(r.failed(b) == .switchTo(c))
        #expect(r.failed(c) == .backOff(then: a))
    }

    @Test("sticky: the agent stays on the server that answers, and an answer starts the round again")
    func sticky() {
        var r = ServerRotation([a, b, c])
        #expect(r.failed(a) == .switchTo(b))
        r.answered(b)
        #expect(r.current == b)
        #expect(r.failedInRound == 0)
        // B dies later: C, then A (now up again) are tried before any backoff.
        #expect(r.failed(b) == .switchTo(c))
        #expect(r.failed(c) == .switchTo(a))
        r.answered(a)
        #expect(r.current == a)
        #expect(r.failed(a) == .switchTo(b))
        #expect(r.failed(b) == .switchTo(c))
        #expect(r.failed(c) == .backOff(then: a))
    }

    @Test("a second failure from a server already left (poll and push in flight on it) moves nothing")
    func alreadyLeft() {
        var r = ServerRotation([a, b])
        #expect(r.failed(a) == .switchTo(b))
        #expect(r.failed(a) == .alreadyLeft(current: b))
        #expect(r.current == b)
        #expect(r.failedInRound == 1)
        // A late answer from the server left does not reset the round on the current one.
        r.answered(a)
        #expect(r.failedInRound == 1)
        #expect(r.failed(b) == .backOff(then: a))
    }

    @Test(
        "fails over on no connection, timeouts and 5xx; never on 4xx or a bad reply",
        arguments: [
            (ClientError.unreachable("cannot reach http://a:1: Connection refused"), true),
            (.unreachable("cannot reach http://a:1: Timeout was reached"), true),
            (.api(status: 500, body: APIErrorBody(code: "internal", message: "x")), true),
            (.api(status: 502, body: APIErrorBody(code: "http_502", message: "bad gateway")), true),
            (.api(status: 503, body: APIErrorBody(code: "http_503", message: "service unavailable")), true),
            (.api(status: 504, body: APIErrorBody(code: "http_504", message: "gateway timeout")), true),
            (.api(status: 400, body: APIErrorBody(code: "invalid", message: "x")), false),
            (.api(status: 401, body: APIErrorBody(code: "unauthorized", message: "x")), false),
            (.api(status: 403, body: APIErrorBody(code: "forbidden", message: "x")), false),
            (.api(status: 404, body: APIErrorBody(code: "not_found", message: "x")), false),
            (.api(status: 408, body: APIErrorBody(code: "http_408", message: "x")), false),
            (.api(status: 429, body: APIErrorBody(code: "rate_limited", message: "x")), false),
            (.decoding("not JSON"), false),
            (.invalidURL("x"), false),
        ])
    func failsOver(error: ClientError, expected: Bool) {
        #expect(ServerRotation.failsOver(error) == expected, "\(error)")
    }
}
