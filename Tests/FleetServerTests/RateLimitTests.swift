import FleetAPI
import FleetClient
import FleetServer
import FleetTestSupport
import Foundation
import Synchronization
import Testing

@Suite struct RateLimiterTests {
    final class Clock: Sendable {
        let now = Mutex(1000.0)
        func advance(_ s: Double) { now.withLock { $0 += s } }
    }

    @Test func limitsPerKeyAndEndsWithTheWindow() {
        let clock = Clock()
        let limiter = RateLimiter(limit: 3, window: 60, clock: { clock.now.withLock { $0 } })
        for _ in 0..<3 { #expect(limiter.hit("10.0.0.1") == .allowed) }
        #expect(limiter.hit("10.0.0.1") == .limited(retryAfter: 60))
        #expect(limiter.check("10.0.0.1") == .limited(retryAfter: 60))
        #expect(limiter.hit("10.0.0.2") == .allowed, "another address has its own count")
        clock.advance(59.2)
        #expect(limiter.check("10.0.0.1") == .limited(retryAfter: 1))
        clock.advance(1)
        #expect(limiter.check("10.0.0.1") == .allowed)
        #expect(limiter.hit("10.0.0.1") == .allowed)
    }

    @Test func memoryIsBounded() {
        let limiter = RateLimiter(limit: 2, window: 60, maxKeys: 100)
        for i in 0..<10_000 { limiter.hit("10.0.\(i / 256).\(i % 256)") }
        #expect(limiter.trackedKeys <= 101)
        // Addresses beyond the table share one counter: a flood is still limited.
        #expect(limiter.hit("192.168.9.9") != .allowed)
        // An address that never failed is not refused for someone else's flood (a healthy agent
        // behind a full table used to share the overflow counter's 429).
        #expect(limiter.check("203.0.113.1") == .allowed)
    }

    @Test func zeroTurnsItOff() {
        let limiter = RateLimiter(limit: 0)
        for _ in 0..<1000 { #expect(limiter.hit("x") == .allowed) }
        #expect(limiter.trackedKeys == 0)
    }
}

@Suite struct RateLimitAPITests {
    @Test("registrations above the limit get 429 with Retry-After and a JSON error")
    func registrationLimit() async throws {
        let server = try await TestServer.start(configure: { $0.registrationRateLimit = 3 })
        let h = Harness(server: server, admin: try Fixtures.client(server.baseURL, token: server.adminToken))
        defer { Task { await h.finish() } }
        for i in 0..<3 { _ = try await h.register(machineId: "m-rl-\(i)", hostname: "rl-\(i)") }
        let anon = try Fixtures.client(server.baseURL, token: nil)
        let r = try await anon.send(
            method: "POST", path: APIPaths.register,
            headers: ["Content-Type": "application/json", "Authorization": "Bearer \(try await server.makeEnrollmentToken())"],
            body: try jsonBody(Fixtures.registerRequest(machineId: "m-rl-4", hostname: "rl-4")))
        #expect(r.status == 429)
        let after = r.headers.first { $0.key.lowercased() == "retry-after" }.flatMap { Int($0.value) }
        #expect(after != nil && (after ?? 0) >= 1 && (after ?? 0) <= 60)
        #expect(errorBody(r)?.error.code == APIErrorCode.rateLimited)
        #expect(try await h.admin.listNodes().nodes.count == 3)
    }

    @Test("after too many failed token checks an address gets 429, even with the right token, until the window ends")
    func failedTokenChecks() async throws {
        let server = try await TestServer.start(configure: { $0.failedAuthRateLimit = 3 })
        let h = Harness(server: server, admin: try Fixtures.client(server.baseURL, token: server.adminToken))
        defer { Task { await h.finish() } }
        _ = try await h.admin.listNodes()
        let guesser = try Fixtures.client(server.baseURL, token: "ka_guess")
        for _ in 0..<3 {
            let r = try await guesser.send(method: "GET", path: APIPaths.nodes)
            #expect(r.status == 401)
        }
        let blocked = try await guesser.send(method: "GET", path: APIPaths.nodes)
        #expect(blocked.status == 429 && errorBody(blocked)?.error.code == APIErrorCode.rateLimited)
        #expect(blocked.headers.contains { $0.key.lowercased() == "retry-after" })
        let admin = await apiError { _ = try await h.admin.listNodes() }
        #expect(admin?.0 == 429)
    }

    /// A refused enrollment token is a failed token check like any other: it reached the
    /// limiter as the store's error, not yet the 401, and was not counted.
    @Test("guessing enrollment tokens counts as failed token checks")
    func guessedEnrollmentTokens() async throws {
        let server = try await TestServer.start(configure: { $0.failedAuthRateLimit = 3 })
        let h = Harness(server: server, admin: try Fixtures.client(server.baseURL, token: server.adminToken))
        defer { Task { await h.finish() } }
        let guesser = try Fixtures.client(server.baseURL, token: "ke_guess")
        for i in 0..<3 {
            let r = try await guesser.send(
                method: "POST", path: APIPaths.register, headers: ["Content-Type": "application/json"],
                body: try jsonBody(Fixtures.registerRequest(machineId: "m-guess-\(i)", hostname: "guess")))
            #expect(r.status == 401, "\(r.status) \(r.text)")
        }
        let admin = await apiError { _ = try await h.admin.listNodes() }
        #expect(admin?.0 == 429, "the address guessed 3 enrollment tokens and is not held back")
    }
}
