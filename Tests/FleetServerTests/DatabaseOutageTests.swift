import FleetAPI
import FleetClient
import FleetStore
import FleetTestSupport
import Foundation
import Logging
import Synchronization
import TestSupport
import Testing

@testable import FleetServer

/// The database goes away under a running server (PostgreSQL restarted, failed over, refusing
/// connections; SQLite's file locked by another process, the disk full): requests that need it
/// are answered 503 `database_unavailable` with the reason and `Retry-After`, not 500
/// "internal error"; nothing unacknowledged is taken for stored; the log says it once; and the
/// server serves again as soon as the database does.
@Suite("the database unavailable")
struct DatabaseOutageTests {
    /// The code and message of a 503, and its Retry-After.
    func unavailable(_ r: HTTPResponse) -> (code: String?, message: String, retryAfter: Int?) {
        let body = errorBody(r)
        let retry = r.headers.first { $0.key.lowercased() == "retry-after" }.flatMap { Int($0.value) }
        return (body?.error.code, body?.error.message ?? String(decoding: r.body, as: UTF8.self), retry)
    }

    @Test(
        "PostgreSQL ends the server's connections and refuses new ones: 503 database_unavailable with the reason and Retry-After, nothing stored but what was acknowledged, and pushes stored again once it takes connections"
    )
    func postgresRefusingConnections() async throws {
        guard let serverURL = TestStore.postgresURL else {
            try Test.cancel("needs PostgreSQL: runs on the PostgreSQL pass of make test (KSMFLEET_TEST_POSTGRES)")
        }
        let h = try await Harness.start()
        let location = try TestStore.location(for: h.server.dataDir)
        let name = try #require(URLComponents(string: location)?.path.dropFirst().description)
        let (reg, node) = try await h.register(hostname: "outage")
        _ = try await node.pushSamples(nodeId: reg.nodeId, Fixtures.batch([1, 2]))
        var browser = try DashboardBrowser(h.server)
        try await browser.signIn(adminToken: h.server.adminToken)

        // As in a restart: every connection of the server's database ends, and no new one is
        // accepted (the test's own psql connects to the server's maintenance database).
        try TestStore.psql(serverURL, "ALTER DATABASE \(name) ALLOW_CONNECTIONS false")
        var allowed = false
        func allow() {
            if !allowed { _ = try? TestStore.psql(serverURL, "ALTER DATABASE \(name) ALLOW_CONNECTIONS true") }
            allowed = true
        }
        do {
            try TestStore.psql(
                serverURL, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '\(name)'")

            let push = try await node.send(
                method: "POST", path: APIPaths.samples(reg.nodeId), body: try jsonBody(Fixtures.batch([3])))
            let pushed = unavailable(push)
            #expect(push.status == 503, "a push with the database gone: \(push.status) \(pushed.message)")
            #expect(pushed.code == APIErrorCode.databaseUnavailable)
            #expect(
                pushed.message.contains("the database is unavailable") && pushed.message.contains("PostgreSQL"),
                "\(pushed.message)")
            #expect(pushed.retryAfter == 5)
            // An admin's read too, and the readiness check says not ready.
            let list = try await h.admin.send(method: "GET", path: APIPaths.nodes)
            #expect(list.status == 503 && unavailable(list).code == APIErrorCode.databaseUnavailable, "\(list.status)")
            let ready = try await h.admin.send(method: "GET", path: "/readyz")
            #expect(ready.status == 503)
            // The dashboard shows a page that says why (its session check needs the database).
            let page = try await browser.get("/nodes")
            #expect(
                page.status == 503 && page.text.contains("<h1>The database is unavailable</h1>"),
                "\(page.status) \(page.text)")
            #expect(page.text.contains("PostgreSQL") && page.text.contains(#"http-equiv="refresh""#))
            // The process answers what needs no database.
            #expect(try await h.admin.send(method: "GET", path: "/healthz").status == 200)

            allow()
            // The agent sends the batch again; stored once PostgreSQL takes connections.
            let stored = await waitUntil(timeout: .seconds(20), poll: .milliseconds(200)) {
                (try? await node.pushSamples(nodeId: reg.nodeId, Fixtures.batch([3]))) != nil
            }
            #expect(stored, "the push was not stored after PostgreSQL took connections again")
            let database = try h.database()
            #expect(try await database.sampleSeqs(nodeId: reg.nodeId) == [1, 2, 3])
            try database.close()
        } catch {
            allow()
            await h.finish()
            throw error
        }
        allow()
        await h.finish()
    }

    @Test("an outage is logged once, summed up while it lasts, and its end with its length and the requests it refused")
    func anOutageIsLoggedOnce() async {
        let capture = LogCapture()
        let outage = DatabaseOutage(
            logger: capture.logger(), probeInterval: .milliseconds(20), summaryInterval: .milliseconds(100))
        for i in 0..<500 { outage.refused("PostgreSQL: gone", path: "/api/v1/nodes/n-\(i)/samples") }
        #expect(outage.active)
        let began = capture.messages(containing: "the database is unavailable")
        #expect(began.count == 1 && began.first?.level == .warning)
        #expect(
            began.first?.metadata["reason"] == "PostgreSQL: gone"
                && began.first?.metadata["path"] == "/api/v1/nodes/n-0/samples")

        // The database answers on the 10th probe (about 200 ms: a summary line on the way).
        let probes = Counter()
        await outage.watch { probes.next() >= 10 }
        #expect(!outage.active)
        let summaries = capture.messages(containing: "the database is still unavailable")
        #expect(
            !summaries.isEmpty && summaries.first?.metadata["refused_requests"] == "499", "\(summaries.map(\.metadata))"
        )
        let ended = capture.messages(containing: "the database answers again")
        #expect(ended.count == 1 && ended.first?.metadata["refused_requests"] == "500", "\(ended.map(\.metadata))")
        #expect(ended.first.flatMap { Double($0.metadata["outage_s"] ?? "") }.map { $0 >= 0.1 && $0 < 10 } == true)

        // The next refusal is a new outage, logged again.
        outage.refused("SQLite: locked", path: "/api/v1/nodes")
        #expect(capture.messages(containing: "the database is unavailable").count == 2)
    }
}

/// Counts calls (a probe's).
private final class Counter: Sendable {
    private let count = Mutex(0)
    func next() -> Int {
        count.withLock {
            $0 += 1
            return $0
        }
    }
}
