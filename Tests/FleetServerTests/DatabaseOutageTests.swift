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

    /// A server on its own PostgreSQL database with one node that has stored sample 1: the
    /// PostgreSQL server's URL (to reach the maintenance database), the database's name and URL.
    struct OnPostgres {
        let serverURL: String
        let name: String
        let location: String
        let h: Harness
        let reg: RegisterResponse
        let node: FleetClient
    }

    func onPostgres(hostname: String, configure: (inout ServerConfig) -> Void = { _ in }) async throws -> OnPostgres {
        guard let serverURL = TestStore.postgresURL else {
            try Test.cancel("needs PostgreSQL: runs on the PostgreSQL pass of make test (KSMFLEET_TEST_POSTGRES)")
        }
        let h = try await Harness.start(configure: configure)
        let location = try TestStore.location(for: h.server.dataDir)
        let name = try #require(URLComponents(string: location)?.path.dropFirst().description)
        let (reg, node) = try await h.register(hostname: hostname)
        _ = try await node.pushSamples(nodeId: reg.nodeId, Fixtures.batch([1]))
        return OnPostgres(serverURL: serverURL, name: name, location: location, h: h, reg: reg, node: node)
    }

    @Test(
        "PostgreSQL ends the server's connections and refuses new ones: 503 database_unavailable with the reason and Retry-After, nothing stored but what was acknowledged, and pushes stored again once it takes connections"
    )
    func postgresRefusingConnections() async throws {
        let p = try await onPostgres(hostname: "outage")
        let (serverURL, name, h, reg, node) = (p.serverURL, p.name, p.h, p.reg, p.node)
        _ = try await node.pushSamples(nodeId: reg.nodeId, Fixtures.batch([2]))
        var browser = try DashboardBrowser(h.server)
        try await browser.signIn(adminToken: h.server.adminToken)
        // Prometheus scrapes with a viewer credential; another scraper's credential is revoked
        // (its next scrape refused), a third never scraped before the outage.
        func scraper(_ name: String) async throws -> FleetClient {
            let created = try await h.admin.createCredential(CreateCredentialRequest(name: name, role: .viewer))
            return try Fixtures.client(h.server.baseURL, token: created.token)
        }
        let prometheus = try await scraper("prometheus")
        let revoked = try await scraper("old-prometheus")
        let late = try await scraper("late-prometheus")
        #expect(try await prometheus.send(method: "GET", path: "/metrics").status == 200)
        #expect(try await revoked.send(method: "GET", path: "/metrics").status == 200)
        let oldId = try #require(try await h.admin.credentials().credentials.first { $0.name == "old-prometheus" }).id
        _ = try await h.admin.revokeCredential(oldId)
        #expect(try await revoked.send(method: "GET", path: "/metrics").status == 401)

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
            // A form is not sent again by a reload; the page says what to do.
            let kick = try await browser.post("/nodes/\(reg.nodeId)/kick", [])
            #expect(kick.status == 503 && kick.text.contains("The form was not saved"), "\(kick.status) \(kick.text)")
            #expect(!kick.text.contains("http-equiv"))
            // The process answers what needs no database.
            #expect(try await h.admin.send(method: "GET", path: "/healthz").status == 200)
            // A scrape says the database is down, with the server's own counts and no fleet
            // figures; only on the credential seen valid before the outage.
            let scrape = try await prometheus.send(method: "GET", path: "/metrics")
            let text = String(decoding: scrape.body, as: UTF8.self)
            #expect(scrape.status == 200, "\(scrape.status) \(text)")
            let m = MetricsText(text)
            #expect(m.values["ksmfleet_database_up"] == 0, "\(text)")
            #expect(m.values["ksmfleet_samples_stored_total"] != nil && m.values["ksmfleet_nodes"] == nil)
            #expect(!text.contains("ksmfleet_node_") && !text.contains("ksmfleet_fleet_saved"))
            // This process's own series say the same (a ping, not the nodes' read).
            let own = try await prometheus.send(method: "GET", path: "/metrics?fleet=false")
            #expect(own.status == 200 && MetricsText(own.text).values["ksmfleet_database_up"] == 0, "\(own.text)")
            #expect(try await late.send(method: "GET", path: "/metrics").status == 503)
            #expect(try await revoked.send(method: "GET", path: "/metrics").status == 503)

            allow()
            // The agent sends the batch again; stored once PostgreSQL takes connections.
            let stored = await waitUntil(timeout: .seconds(20), poll: .milliseconds(200)) {
                (try? await node.pushSamples(nodeId: reg.nodeId, Fixtures.batch([3]))) != nil
            }
            #expect(stored, "the push was not stored after PostgreSQL took connections again")
            // Up again once no request has been refused for 5 s, the fleet's figures back.
            var lastScrape = ""
            let up = await waitUntil(timeout: .seconds(15), poll: .milliseconds(500)) {
                guard let r = try? await prometheus.send(method: "GET", path: "/metrics") else { return false }
                lastScrape = String(decoding: r.body, as: UTF8.self)
                return MetricsText(lastScrape).values["ksmfleet_database_up"] == 1
            }
            #expect(up && MetricsText(lastScrape).values["ksmfleet_nodes"] == 1, "\(lastScrape)")
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

    /// A scrape whose credential the database does not confirm in time (here a lock held on the
    /// credentials table; as well a hung database) is answered within Prometheus's timeout on the
    /// credential seen before, with `ksmfleet_database_up` 0 and no fleet data, even though the
    /// nodes themselves could be read: a credential taken from memory (it may have been revoked
    /// on another replica meanwhile) gets nothing but the server's own counts.
    @Test(
        "a scrape's credential not confirmed within 2 s: the page from memory, database_up 0, no fleet data though the nodes could be read"
    )
    func scrapeWithCredentialLookupHeld() async throws {
        let p = try await onPostgres(hostname: "scrape")
        let created = try await p.h.admin.createCredential(CreateCredentialRequest(name: "prometheus", role: .viewer))
        let prometheus = try Fixtures.client(p.h.server.baseURL, token: created.token)
        let first = MetricsText(String(decoding: try await prometheus.send(method: "GET", path: "/metrics").body, as: UTF8.self))
        #expect(first.values["ksmfleet_database_up"] == 1 && first.values["ksmfleet_nodes"] == 1)

        // Another session holds the credentials table for 6 s.
        let held = try await TableLock.take(p.location, "credentials", mode: "ACCESS EXCLUSIVE", seconds: 6)
        let clock = ContinuousClock()
        let asked = clock.now
        let scrape = try await prometheus.send(method: "GET", path: "/metrics", timeout: 30)
        let took = clock.now - asked
        let text = String(decoding: scrape.body, as: UTF8.self)
        let m = MetricsText(text)
        #expect(scrape.status == 200, "\(scrape.status) \(text)")
        #expect(took < .seconds(5), "the scrape took \(took)")
        #expect(m.values["ksmfleet_database_up"] == 0, "\(text)")
        #expect(m.values["ksmfleet_nodes"] == nil && !text.contains("ksmfleet_node_"), "fleet data on a remembered credential")
        await held.ended()
        await p.h.finish()
    }

    /// A push behind a stalled write (here the samples table locked by another session) is
    /// answered 503, with the reason and Retry-After, before its client gives up: the client
    /// states its timeout (`KSMFleet-Timeout`) and the push's database work gets all but 2 s of
    /// it (of 6 s). Before, the server held it for its own minute and the client saw a
    /// timeout.
    @Test("a push behind a stalled write is answered 503 within the client's timeout, not held for the server's minute")
    func pushAnsweredWithinTheClientsTimeout() async throws {
        let p = try await onPostgres(hostname: "stalled-push")
        let held = try await TableLock.take(p.location, "samples", mode: "EXCLUSIVE", seconds: 9)
        let agent = try FleetClient(
            ClientOptions(serverURL: p.h.server.baseURL, token: p.reg.nodeToken, connectTimeout: 2, requestTimeout: 6))
        let clock = ContinuousClock()
        let asked = clock.now
        do {
            _ = try await agent.pushSamples(nodeId: p.reg.nodeId, Fixtures.batch([2]))
            Issue.record("a push was stored while the samples table was locked")
        } catch {
            guard case .api(let status, let body, let retryAfter) = error else {
                Issue.record("not the server's answer: \(error)")
                return
            }
            #expect(status == 503 && body.error.code == "database_unavailable", "\(status) \(body)")
            #expect(body.error.message.contains("did not finish within 4 s"), "\(body.error.message)")
            #expect(retryAfter == 5)
        }
        let took = clock.now - asked
        #expect(took >= .seconds(4) && took < .seconds(6), "answered after \(took)")
        await held.ended()
        // Nothing of it was stored; the same push goes through now.
        #expect(try await agent.pushSamples(nodeId: p.reg.nodeId, Fixtures.batch([2])).stored == 1)
        await p.h.finish()
    }

    /// An agent's registration and token rotation state their timeout too. A registration the
    /// server went on with after its agent gave up committed after the agent's retry did and
    /// replaced the token the retry got: one more 401 and registration. Now it is given up, and
    /// answered, within the agent's timeout, and the retry registers the machine once.
    @Test(
        "a registration and a token rotation behind a stalled write are answered 503 within the client's timeout; the registration is not stored, and its retry registers the machine once"
    )
    func registrationAnsweredWithinTheClientsTimeout() async throws {
        let p = try await onPostgres(hostname: "stalled-registration")
        let enroll = try await p.h.server.makeEnrollmentToken()
        var request = Fixtures.registerRequest(hostname: "late")
        request.registrationKey = String(repeating: "k", count: 43)
        let held = try await TableLock.take(p.location, "nodes", mode: "EXCLUSIVE", seconds: 12)
        let options = { (token: String) in
            ClientOptions(serverURL: p.h.server.baseURL, token: token, connectTimeout: 2, requestTimeout: 6)
        }
        let agent = try FleetClient(options(enroll))
        let node = try FleetClient(options(p.reg.nodeToken))
        let clock = ContinuousClock()
        func expectUnavailableInTime(_ what: String, _ call: () async throws(ClientError) -> Void) async {
            let asked = clock.now
            do {
                try await call()
                Issue.record("\(what) went through while the nodes table was locked")
            } catch {
                if case .api(let status, let body, _) = error {
                    #expect(status == 503 && body.error.message.contains("did not finish within 4 s"), "\(what): \(status) \(body)")
                } else {
                    Issue.record("\(what): not the server's answer: \(error)")
                }
            }
            let took = clock.now - asked
            #expect(took >= .seconds(4) && took < .seconds(6), "\(what) answered after \(took)")
        }
        await expectUnavailableInTime("the registration") { () async throws(ClientError) in
            _ = try await agent.register(request, enrollmentToken: enroll)
        }
        await expectUnavailableInTime("the token rotation") { () async throws(ClientError) in
            _ = try await node.rotateNodeToken(nodeId: p.reg.nodeId)
        }
        await held.ended()
        // The first attempt was not stored: the retry is a new node (201), not the lost answer's
        // node given back (200, reregistered).
        let again = try await agent.register(request, enrollmentToken: enroll)
        #expect(again.reregistered != true)
        let named = try await p.h.admin.listNodes().nodes.filter { $0.name == "late" }
        #expect(named.map(\.id) == [again.nodeId])
        await p.h.finish()
    }

    /// A PostgreSQL that refuses writes (a failover left the server on the old primary, now a
    /// standby; or an operator made the database read-only): 503 saying so, reads still
    /// answered; once writable again the next write connects anew and is stored (the old
    /// session would keep its read-only setting).
    @Test(
        "PostgreSQL refusing writes (read-only): pushes 503 saying so, reads answered; writes stored again once it is writable"
    )
    func postgresReadOnly() async throws {
        let p = try await onPostgres(hostname: "read-only")
        let (serverURL, name, h, reg, node) = (p.serverURL, p.name, p.h, p.reg, p.node)
        // New sessions start read-only; the server's are ended so that it opens new ones.
        func endSessions() throws {
            try TestStore.psql(
                serverURL,
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '\(name)' AND application_name <> 'ksmfleet-listen'"
            )
        }
        try TestStore.psql(serverURL, "ALTER DATABASE \(name) SET default_transaction_read_only = on")
        do {
            try endSessions()
            // The first request after the cut may meet a closed connection; the next ones the
            // read-only database.
            var push: HTTPResponse?
            for _ in 0..<5 {
                let r = try await node.send(
                    method: "POST", path: APIPaths.samples(reg.nodeId), body: try jsonBody(Fixtures.batch([2])))
                push = r
                if unavailable(r).message.contains("refuses writes") { break }
            }
            let refused = try #require(push)
            let answer = unavailable(refused)
            #expect(
                refused.status == 503 && answer.code == APIErrorCode.databaseUnavailable,
                "\(refused.status) \(answer.message)")
            #expect(answer.message.contains("PostgreSQL refuses writes"), "\(answer.message)")
            // Reads are answered.
            #expect(try await h.admin.send(method: "GET", path: APIPaths.nodes).status == 200)

            // Writable again (only new sessions see it: the server's write session is not ended).
            try TestStore.psql(serverURL, "ALTER DATABASE \(name) RESET default_transaction_read_only")
            let stored = await waitUntil(timeout: .seconds(20), poll: .milliseconds(200)) {
                (try? await node.pushSamples(nodeId: reg.nodeId, Fixtures.batch([2]))) != nil
            }
            #expect(stored, "the push was not stored once the database was writable again")
            let database = try h.database()
            #expect(try await database.sampleSeqs(nodeId: reg.nodeId) == [1, 2])
            try database.close()
        } catch {
            _ = try? TestStore.psql(serverURL, "ALTER DATABASE \(name) RESET default_transaction_read_only")
            await h.finish()
            throw error
        }
        await h.finish()
    }

    /// Freezes (SIGSTOP) the backends of the server's request connections (`ksmfleet-read`,
    /// `ksmfleet-write`), after a read that opens one: PostgreSQL then answers nothing on them,
    /// with no error, as a hung host or a partition. Cancels the test (the server stopped) where
    /// they are not processes of this machine. The caller sends SIGCONT.
    func freezeRequestBackends(_ p: OnPostgres) async throws -> [pid_t] {
        _ = try await p.h.admin.listNodes()
        let listed = try TestStore.psql(
            p.location,
            "SELECT string_agg(pid::text, ',') FROM pg_stat_activity WHERE datname = current_database() AND application_name IN ('ksmfleet-read', 'ksmfleet-write')"
        )
        let pids = listed.split(separator: ",").compactMap { pid_t($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        try #require(!pids.isEmpty, "no backend of the server's database")
        for pid in pids {
            let comm = (try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8)) ?? ""
            if !comm.hasPrefix("postgres") {
                await p.h.finish()
                try Test.cancel("the backends are not processes of this machine (pid \(pid): \(comm))")
            }
        }
        for pid in pids { kill(pid, SIGSTOP) }
        return pids
    }

    /// A server stopped (SIGTERM, `systemctl stop`) while PostgreSQL answers nothing: the work
    /// under way is given up after the shutdown's grace, so the process stops within seconds,
    /// not at the request deadline (a minute) or a rollup pass's (ten), which systemd would
    /// end with SIGKILL (`TimeoutStopSec=30`). The request held is answered 503, and its batch,
    /// sent again, is stored once.
    @Test(
        "a server stopped while PostgreSQL answers nothing stops within seconds: work under way given up after the grace, the held push answered 503"
    )
    func stopWhilePostgresAnswersNothing() async throws {
        let p = try await onPostgres(hostname: "hung-stop", configure: { $0.shutdownDatabaseGraceSeconds = 1 })
        let pids = try await freezeRequestBackends(p)
        defer { for pid in pids { kill(pid, SIGCONT) } }
        // The push waits on a frozen backend (its deadline: the default minute).
        let took = try await stopWithPushHeld(p)
        print("DatabaseOutageTests: stopped with PostgreSQL's backends frozen in \(took)")
        #expect(took < .seconds(15), "the stop was held \(took) by database work on a frozen backend")
        for pid in pids { kill(pid, SIGCONT) }
        // The 503 promised nothing (PostgreSQL may still run a statement it had been sent when
        // its backend runs again): the agent sends the batch again, to the server started anew,
        // and it is stored once.
        let again = try await Harness.start(dataDir: p.h.server.dataDir, adminToken: p.h.server.adminToken)
        let node = try Fixtures.client(again.server.baseURL, token: p.reg.nodeToken)
        _ = try await node.pushSamples(nodeId: p.reg.nodeId, Fixtures.batch([2]))
        let database = try again.database()
        #expect(try await database.sampleSeqs(nodeId: p.reg.nodeId) == [1, 2])
        try database.close()
        await again.finish()
    }

    /// The same stop while the server is opening a connection that PostgreSQL does not answer
    /// (its postmaster frozen with SIGSTOP, as a hung host: the kernel accepts the TCP connection,
    /// nothing answers the startup): the attempt is given up with the work under way, so the
    /// process stops within the grace, not after the attempt's own limit.
    @Test(
        "a server stopped while a connection to PostgreSQL is being opened and not answered stops within seconds; the request waiting on it is answered 503"
    )
    func stopWhileConnecting() async throws {
        let p = try await onPostgres(hostname: "connect-stop", configure: { $0.shutdownDatabaseGraceSeconds = 1 })
        let pids = try await freezeRequestBackends(p)
        let postmaster = try #require(TestStore.postmasterPID(ofBackend: pids[0]), "no postmaster for backend \(pids[0])")
        // The server's request connections end (their backends continued, then terminated), so
        // the next request opens a new one; then nothing accepts it.
        for pid in pids { kill(pid, SIGCONT) }
        _ = try TestStore.psql(
            p.location,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND application_name IN ('ksmfleet-read', 'ksmfleet-write')"
        )
        try await Task.sleep(for: .milliseconds(300))
        kill(postmaster, SIGSTOP)
        defer { kill(postmaster, SIGCONT) }
        let took = try await stopWithPushHeld(p)
        kill(postmaster, SIGCONT)
        print("DatabaseOutageTests: stopped while connecting to a frozen PostgreSQL in \(took)")
        #expect(took < .seconds(6), "the stop was held \(took) by a connection being opened")
        await p.h.finish()
    }

    /// Sends a push, stops the server 0.7 s later (the push held by the database meanwhile) and
    /// expects the push answered 503 "the server is shutting down": how long the stop took.
    func stopWithPushHeld(_ p: OnPostgres) async throws -> Duration {
        let push = Task {
            try await p.node.send(
                method: "POST", path: APIPaths.samples(p.reg.nodeId), body: try jsonBody(Fixtures.batch([2])), timeout: 90)
        }
        try await Task.sleep(for: .milliseconds(700))
        let clock = ContinuousClock()
        let began = clock.now
        await p.h.server.stop()
        let took = clock.now - began
        let answer = try? await push.value
        #expect(answer?.status == 503, "\(answer.map { "\($0.status) \($0.text)" } ?? "no answer")")
        if let answer {
            #expect(unavailable(answer).message.contains("the server is shutting down"), "\(unavailable(answer).message)")
        }
        return took
    }

    /// A PostgreSQL that stops answering without an error (the backends of the server's request
    /// connections frozen with SIGSTOP, as a hung host or a network partition: TCP stays up,
    /// nothing comes back; not the background work's, which may hold locks a new connection
    /// would wait for): a request's transaction is cut at the deadline and answered 503,
    /// instead of holding the request (and the engine's thread) until TCP gives up; the next
    /// request gets a new connection and is stored.
    @Test(
        "PostgreSQL stops answering: a request is answered 503 at the deadline, not held; the next one gets a new connection"
    )
    func postgresStopsAnswering() async throws {
        let p = try await onPostgres(hostname: "hung", configure: { $0.databaseRequestDeadlineSeconds = 2 })
        let (h, reg, node) = (p.h, p.reg, p.node)
        let pids = try await freezeRequestBackends(p)
        defer { for pid in pids { kill(pid, SIGCONT) } }
        do {
            let clock = ContinuousClock()
            let asked = clock.now
            let push = try await node.send(
                method: "POST", path: APIPaths.samples(reg.nodeId), body: try jsonBody(Fixtures.batch([2])), timeout: 30
            )
            let took = clock.now - asked
            let answer = unavailable(push)
            #expect(
                push.status == 503 && answer.code == APIErrorCode.databaseUnavailable,
                "\(push.status) \(answer.message)")
            #expect(answer.message.contains("PostgreSQL did not finish within 2 s"), "\(answer.message)")
            #expect(took < .seconds(15), "the push was held \(took)")
            print("DatabaseOutageTests: with PostgreSQL's backends frozen, the push was answered 503 after \(took)")
            // The frozen backends stay frozen; new connections are answered.
            let stored = await waitUntil(timeout: .seconds(20), poll: .milliseconds(200)) {
                (try? await node.pushSamples(nodeId: reg.nodeId, Fixtures.batch([2]))) != nil
            }
            #expect(stored, "no push was stored on a new connection")
            let list = try await h.admin.send(method: "GET", path: APIPaths.nodes, timeout: 30)
            #expect(list.status == 200 || list.status == 503, "\(list.status)")
        } catch {
            for pid in pids { kill(pid, SIGCONT) }
            await h.finish()
            throw error
        }
        for pid in pids { kill(pid, SIGCONT) }
        let database = try h.database()
        #expect(try await database.sampleSeqs(nodeId: reg.nodeId) == [1, 2])
        try database.close()
        await h.finish()
    }

    /// Runs a tool (mount, umount); its exit status.
    @discardableResult
    func tool(_ path: String, _ arguments: [String]) -> Int32 {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = arguments
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        do { try p.run() } catch { return -1 }
        p.waitUntilExit()
        return p.terminationStatus
    }

    /// A real full disk under SQLite: the server's data directory on a small tmpfs of its own,
    /// filled up by another file. Pushes are refused 503 with the reason, none acknowledged and
    /// lost; once space is freed the agent's batch is stored.
    @Test(
        "SQLite on a full disk: 503 database_unavailable saying the disk is full, nothing acknowledged lost, stored again once there is space"
    )
    func sqliteOnAFullDisk() async throws {
        guard !TestStore.isPostgres else {
            try Test.cancel("the SQLite pass only (on PostgreSQL the data directory does not hold the database)")
        }
        let mountPoint = makeTemporaryDirectory(prefix: "ksmfleet-fulldisk")
        defer { try? FileManager.default.removeItem(at: mountPoint) }
        guard tool("/bin/mount", ["-t", "tmpfs", "-o", "size=6m,mode=0700", "tmpfs", mountPoint.path]) == 0 else {
            try Test.cancel(
                "cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN): the full-disk case was not tried")
        }
        defer { tool("/bin/umount", ["-l", mountPoint.path]) }
        let h = try await Harness.start(dataDir: mountPoint.appending(path: "data"))
        do {
            let (reg, node) = try await h.register(hostname: "full-disk")
            _ = try await node.pushSamples(nodeId: reg.nodeId, Fixtures.batch([1]))
            // Fill the disk: one file, 64 KB at a time, until the file system says no more.
            let filler = mountPoint.appending(path: "filler")
            try #require(FileManager.default.createFile(atPath: filler.path, contents: nil))
            let handle = try FileHandle(forWritingTo: filler)
            let chunk = Data(repeating: 0xA5, count: 65_536)
            var filled = 0
            while filled < 64 << 20, (try? handle.write(contentsOf: chunk)) != nil { filled += chunk.count }
            try? handle.close()

            // Batches of 1,000 samples until one is refused (the WAL grows into the full disk).
            var acknowledged: [Int64] = [1]
            var refusal: HTTPResponse?
            var next: Int64 = 2
            for _ in 0..<40 {
                let seqs = Array(next..<next + 1000)
                let r = try await node.send(
                    method: "POST", path: APIPaths.samples(reg.nodeId), body: try jsonBody(Fixtures.batch(seqs)))
                if r.status == 200 {
                    acknowledged += seqs
                    next += 1000
                    continue
                }
                refusal = r
                break
            }
            let refused = try #require(refusal, "40 batches of 1,000 samples were all stored on a full 6 MB disk")
            let answer = unavailable(refused)
            #expect(
                refused.status == 503 && answer.code == APIErrorCode.databaseUnavailable,
                "\(refused.status) \(answer.message)")
            #expect(answer.message.contains("SQLite: the disk holding the database is full"), "\(answer.message)")
            #expect(answer.retryAfter == 5)
            // The server is not ready while writes fail, though the database answers reads.
            let ready = try await h.admin.send(method: "GET", path: "/readyz")
            #expect(
                ready.status == 503 && unavailable(ready).message.contains("disk holding the database is full"),
                "\(ready.status) \(unavailable(ready).message)")
            // A scrape says the same: the database is not up, the nodes (read) still shown.
            let scrape = try await h.admin.send(method: "GET", path: "/metrics")
            let m = MetricsText(String(decoding: scrape.body, as: UTF8.self))
            #expect(scrape.status == 200 && m.values["ksmfleet_database_up"] == 0 && m.values["ksmfleet_nodes"] == 1)

            // Space again: the same batch (the agent sends it again) is stored.
            try FileManager.default.removeItem(at: filler)
            let seqs = Array(next..<next + 1000)
            let stored = await waitUntil(timeout: .seconds(20), poll: .milliseconds(200)) {
                (try? await node.pushSamples(nodeId: reg.nodeId, Fixtures.batch(seqs))) != nil
            }
            #expect(stored, "the batch was not stored once the disk had space again")
            if stored { acknowledged += seqs }
            // Ready again once no request was refused for a while (the outage is over).
            let readyAgain = await waitUntil(timeout: .seconds(15), poll: .milliseconds(200)) {
                (try? await h.admin.send(method: "GET", path: "/readyz"))?.status == 200
            }
            #expect(readyAgain, "/readyz did not say ready again after the disk had space")
            let up = try await h.admin.send(method: "GET", path: "/metrics")
            #expect(MetricsText(String(decoding: up.body, as: UTF8.self)).values["ksmfleet_database_up"] == 1)
            let database = try h.database()
            #expect(try await database.sampleSeqs(nodeId: reg.nodeId) == acknowledged)
            try database.close()
        } catch {
            await h.finish()
            throw error
        }
        await h.finish()
    }

    @Test(
        "an outage is logged once, summed up while it lasts, and ends when the database answers and a write went through since the last refusal"
    )
    func anOutageIsLoggedOnce() async {
        let capture = LogCapture()
        // Only a write ends it here (an hour of quiet would too); the probe's count drives it.
        let outage = probedOften(capture, summaryInterval: .milliseconds(50))
        let gone = DatabaseUnavailable(
            summary: "PostgreSQL is shutting down or restarting", detail: "PostgreSQL: gone at 10.0.0.5")
        for i in 0..<500 { outage.refused(gone, path: "/api/v1/nodes/n-\(i)/samples", write: true) }
        #expect(outage.active)
        let began = capture.messages(containing: "the database is unavailable")
        #expect(began.count == 1 && began.first?.level == .warning)
        #expect(began.first?.metadata["reason"] == "PostgreSQL: gone at 10.0.0.5")
        #expect(began.first?.metadata["path"] == "/api/v1/nodes/n-0/samples")
        #expect(outage.refused(within: .seconds(5))?.summary == "PostgreSQL is shutting down or restarting")
        #expect(outage.refused(within: .zero) == nil)

        // Probes 1–6 fail (a summary at the 5th: 50 ms); from 7 on the database answers reads.
        // Probe 7: a write had gone through, but a request is refused while the probe runs: not
        // over. Probes 8–9: it answers, but no write went through since: not over, and no
        // summary (nothing new to say). Probe 10: a write went through: over.
        let probes = Counter()
        await outage.watch {
            let n = probes.next()
            if n == 7 {
                outage.writeSucceeded(path: "/api/v1/nodes/n-7/samples")
                outage.refused(gone, path: "/api/v1/nodes/n-1/samples", write: true)
            }
            if n == 10 { outage.writeSucceeded(path: "/api/v1/nodes/n-8/samples") }
            return n >= 7
        }
        #expect(probes.next() == 11, "the outage ended at another probe")
        #expect(!outage.active)
        let summaries = capture.messages(containing: "the database is still unavailable")
        #expect(
            summaries.count == 1 && summaries.first?.metadata["refused_requests"] == "499",
            "\(summaries.map(\.metadata))")
        let ended = capture.messages(containing: "the database answers again")
        #expect(ended.count == 1 && ended.first?.metadata["refused_requests"] == "501", "\(ended.map(\.metadata))")

        // The next refusal is a new outage, logged again; ended by quiet when no write comes.
        let quiet = probedOften(capture, quietInterval: .milliseconds(30))
        quiet.refused(gone, path: "/api/v1/nodes", write: false)
        await quiet.watch { true }
        #expect(!quiet.active)
        #expect(capture.messages(containing: "the database is unavailable").count == 2)
        let ends = capture.messages(containing: "the database answers again")
        #expect(ends.count == 2)
        // Counted to its one refusal, not to the end of the quiet (at least 30 ms later).
        #expect(ends.last?.metadata["outage_s"] == "0.0" && ends.last?.metadata["ended_by"]?.hasPrefix("no refusal") == true, "\(ends.map(\.metadata))")
    }
}

extension DatabaseOutageTests {
    @Test(
        "a stall of one route's writes (a locked table) is not ended by writes to other routes; an outage of reads alone is ended by any write"
    )
    func otherRoutesWritesDoNotEndAnOutageOfPushes() async {
        let capture = LogCapture()
        let outage = probedOften(capture)
        let locked = DatabaseUnavailable(
            summary: "the database did not finish within 27 s", detail: "PostgreSQL: statement cut at its deadline")
        outage.refused(locked, path: "/api/v1/nodes/n-1/samples", write: true)
        outage.refused(locked, path: "/api/v1/nodes/n-2/samples", write: true)
        // The database answers every probe. Probe 3: a registration and a config change went
        // through (their tables are not locked): not over. Probe 5: a push went through: over.
        let probes = Counter()
        await outage.watch {
            let n = probes.next()
            if n == 3 {
                outage.writeSucceeded(path: "/api/v1/register")
                outage.writeSucceeded(path: "/api/v1/nodes/n-1/config")
                outage.writeSucceeded(path: "/api/v1/config/apply")
            }
            if n == 5 { outage.writeSucceeded(path: "/api/v1/nodes/n-3/samples") }
            return true
        }
        #expect(probes.next() == 6, "the outage of pushes did not end at the push that went through")
        #expect(capture.messages(containing: "the database is unavailable").count == 1)
        let ended = capture.messages(containing: "the database answers again")
        #expect(ended.count == 1 && ended.first?.metadata["ended_by"] == "a write", "\(ended.map(\.metadata))")

        // Only a read was refused (a report cut at its deadline): any write ends it.
        let reads = probedOften(capture)
        reads.refused(locked, path: "/api/v1/reports/savings", write: false)
        let readProbes = Counter()
        await reads.watch {
            if readProbes.next() == 2 { reads.writeSucceeded(path: "/api/v1/register") }
            return true
        }
        #expect(readProbes.next() == 3)
        #expect(!reads.active)
    }
}

/// An outage log into `capture` whose probes run every 10 ms; by default it sums up once a
/// minute and only a write ends it (an hour of quiet would too).
private func probedOften(
    _ capture: LogCapture, summaryInterval: Duration = .seconds(60), quietInterval: Duration = .seconds(3600)
) -> DatabaseOutage {
    DatabaseOutage(
        logger: capture.logger(), probeInterval: .milliseconds(10), summaryInterval: summaryInterval,
        quietInterval: quietInterval)
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

/// A table locked by another session (psql) for a while: a database that takes connections and
/// does not finish what needs the table.
final class TableLock: Sendable {
    private let outcome = Mutex<Result<String, any Error>?>(nil)

    /// Locks `table` of `location` in `mode` ("ACCESS EXCLUSIVE", "EXCLUSIVE") for `seconds`;
    /// returns once PostgreSQL granted it.
    static func take(_ location: String, _ table: String, mode: String, seconds: Int) async throws -> TableLock {
        let held = TableLock()
        Thread.detachNewThread {
            let r = Result {
                try TestStore.psql(location, "BEGIN; LOCK TABLE \(table) IN \(mode) MODE; SELECT pg_sleep(\(seconds)); COMMIT;")
            }
            held.outcome.withLock { $0 = r }
        }
        // pg_locks names the mode "AccessExclusiveLock", "ExclusiveLock".
        let named = mode.split(separator: " ").map { $0.prefix(1) + $0.dropFirst().lowercased() }.joined() + "Lock"
        let locked = await waitUntil(timeout: .seconds(5), poll: .milliseconds(100)) {
            (try? TestStore.psql(
                location,
                "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE c.relname = '\(table)' AND l.mode = '\(named)' AND l.granted"
            )) == "1"
        }
        try #require(locked, "the lock on the \(table) table was not taken")
        return held
    }

    /// Waits for the holder to end (up to 10 s) and records it if it failed.
    func ended() async {
        _ = await waitUntil(timeout: .seconds(10), poll: .milliseconds(200)) { outcome.withLock { $0 != nil } }
        if case .failure(let error) = outcome.withLock({ $0 }) { Issue.record("the lock holder failed: \(error)") }
    }
}
