import FleetAPI
import FleetAgent
import FleetClient
import FleetTestSupport
import Foundation
import KSMCore
import TestSupport
import Testing

/// The agent with several server URLs (replicas of one fleet): two real `ksmfleet-server`
/// processes on one data directory (one SQLite file in WAL mode), the real agent binary on a
/// fake sysfs directory, and kill -9 of the server it uses.
@Suite("agent failover between server replicas")
struct AgentFailoverTests {
    /// Two `ksmfleet-server` processes on one data directory (one SQLite file in WAL mode, one
    /// admin token): replicas of one fleet. Nothing in the server refuses the second process.
    static func startReplicas() async throws -> (ServerProcess, ServerProcess) {
        let a = try await ServerProcess.start()
        do {
            return (a, try await ServerProcess.start(dataDir: a.dataDir, adminToken: a.adminToken))
        } catch {
            await a.stop()
            try? FileManager.default.removeItem(at: a.dataDir)
            throw error
        }
    }

    @Test(
        "kill -9 of the server in use: the agent switches to the other, loses and duplicates no sample, gets a config change made there"
    )
    func killTheServerInUse() async throws {
        guard let binary = builtProduct("ksmfleet-agent"), ServerProcess.binaryPath() != nil else {
            try Test.cancel(
                "ksmfleet-agent and ksmfleet-server are not built next to the tests (swift build --build-tests)")
        }
        let (a, b) = try await Self.startReplicas()
        defer { try? FileManager.default.removeItem(at: a.dataDir) }
        let root = makeTemporaryDirectory(prefix: "ksmfleet-failover").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        let sysfs = root + "/ksm"
        try FakeSysfsDirectory.create(at: sysfs)
        let tokenFile = root + "/enroll-token"
        let enroll = try await a.makeEnrollmentToken()
        try enroll.write(toFile: tokenFile, atomically: true, encoding: .utf8)
        let state = root + "/state"
        let logPath = root + "/agent.log"
        let p = try startLogged(
            binary,
            [
                "run", "--server", a.baseURL, "--server", b.baseURL, "--enroll-token-file", tokenFile,
                "--state-dir", state, "--sysfs", sysfs, "--node-name", "failover-agent", "--sample-interval", "0.2",
                "--tune-interval", "1", "--process-interval", "0",
            ],
            logPath: logPath)
        defer { if p.isRunning { kill(p.processIdentifier, SIGKILL) } }
        var log: String { readText(logPath) }
        func switches() -> [Substring] { log.split(separator: "\n").filter { $0.contains(": switching server") } }

        do {
            let adminA = try Fixtures.client(a.baseURL, token: a.adminToken)
            let adminB = try Fixtures.client(b.baseURL, token: b.adminToken)
            var nodeId: String?
            let registered = await waitUntil(timeout: .seconds(20)) {
                guard let n = try? await adminA.listNodes().nodes.first(where: { $0.name == "failover-agent" }) else {
                    return false
                }
                nodeId = n.id
                return (try? await storedSeqs(adminA, nodeId: n.id).count) ?? 0 >= 5
            }
            #expect(registered, "the agent did not register and push through the first server: \(log)")
            let id = try #require(nodeId)
            #expect(switches().isEmpty, "switched while the first server was up: \(log)")

            await a.kill9()
            let storedAtKill = try await storedSeqs(adminB, nodeId: id).count
            let goesOn = await waitUntil(timeout: .seconds(20)) {
                (try? await storedSeqs(adminB, nodeId: id).count) ?? 0 >= storedAtKill + 10
            }
            #expect(goesOn, "samples stopped arriving after the first server died: \(log)")
            // One switch, from A to B, with the reason and the node; sticky on B after it.
            let lines = switches()
            #expect(lines.count == 1, "expected one switch: \(lines)")
            if let line = lines.first {
                #expect(line.contains("from=\(a.baseURL)") && line.contains("to=\(b.baseURL)"), "\(line)")
                #expect(line.contains("node=\(id)") && line.contains("reason="), "\(line)")
            }

            // A config change made through B reaches the agent, which reports it to B.
            let changed = try await adminB.patchConfig(id, ConfigPatch(run: .run, thresCoef: 100))
            let applied = await waitUntil(timeout: .seconds(10), poll: .milliseconds(50)) {
                guard readText(sysfs + "/run") == "1",
                    let n = try? await adminB.listNodes().nodes.first(where: { $0.id == id })
                else { return false }
                return n.appliedGeneration == changed.generation
            }
            #expect(applied, "the change made through the second server did not reach the agent: \(log)")

            kill(p.processIdentifier, SIGTERM)
            let exited = await waitUntil(timeout: .seconds(15), poll: .milliseconds(50)) { !p.isRunning }
            #expect(exited, "the agent did not stop on SIGTERM")
            if exited { #expect(p.terminationStatus == 0, "exit status \(p.terminationStatus): \(log)") }

            // Every number the agent issued (1 ..< the next one, stored exactly at exit) is in
            // the database once: none lost across the kill, none stored twice, none left over.
            let next = try #require(Int64(readText(state + "/seq")), "no sequence number stored")
            let stored = try await storedSeqs(adminB, nodeId: id)
            #expect(next > Int64(storedAtKill) + 10)
            #expect(stored == Array(1..<next), "stored \(stored.count) samples for \(next - 1) numbers")
            let spooled = (try? FileManager.default.contentsOfDirectory(atPath: state + "/spool")) ?? []
            #expect(spooled.filter { $0.hasPrefix("seg-") }.isEmpty, "samples left in the spool: \(spooled)")
            #expect(!log.contains("registered again"), "the switch must not cost the node its identity: \(log)")
        } catch {
            await a.stop()
            await b.stop()
            throw error
        }
        await b.stop()
    }

    /// An agent in this process on `servers` (`server` among them, its fresh enrollment token),
    /// its state in a new temporary directory; `body` runs while it runs, then it stops.
    func withAgent(
        on server: TestServer, servers: [String], name: String, _ body: (RunningAgent) async throws -> Void
    ) async throws {
        let root = makeTemporaryDirectory(prefix: "ksmfleet-failover-\(name)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        var o = testAgentOptions(
            server: server.baseURL, enrollToken: try await server.makeEnrollmentToken(), stateDir: root + "/state",
            name: name)
        o.serverURLs = servers
        let agent = try RunningAgent.start(o, name: name)
        do { try await body(agent) } catch {
            await agent.stop()
            throw error
        }
        await agent.stop()
    }

    @Test("the first server down at start: the agent registers through the second, and its status says so")
    func firstDownAtStart() async throws {
        let server = try await TestServer.start()
        defer { server.removeDataDir() }
        try await withAgent(on: server, servers: ["http://127.0.0.1:1", server.baseURL], name: "second") { agent in
            let acked = await waitUntil(timeout: .seconds(20)) { await agent.agent.status().lastAckedSeq != nil }
            #expect(acked, "no sample acknowledged through the second server")
            #expect(await agent.agent.status().server == server.baseURL)
        }
        await server.stop()
    }

    @Test("a 4xx is not failed over: it means the same on every replica")
    func notOn4xx() async throws {
        let server = try await TestServer.start()
        defer { server.removeDataDir() }
        // The first URL reaches the server but no API (404 for every call); the second works.
        let wrong = server.baseURL + "/no-such-prefix"
        try await withAgent(on: server, servers: [wrong, server.baseURL], name: "four") { agent in
            try await Task.sleep(for: .seconds(3))
            let status = await agent.agent.status()
            #expect(status.server == wrong)
            #expect(status.nodeId == nil)
            let nodes = try await adminClient(server).listNodes().nodes
            #expect(nodes.isEmpty, "registered through the second server after a 404: \(nodes.map(\.name))")
        }
        await server.stop()
    }

    @Test("a hung server (SIGSTOP): the push times out and goes again to the other with the same sequence numbers")
    func pushFailsOverFromAHungServer() async throws {
        guard ServerProcess.binaryPath() != nil else {
            try Test.cancel("ksmfleet-server is not built next to the tests (swift build --build-tests)")
        }
        let (a, b) = try await Self.startReplicas()
        defer { try? FileManager.default.removeItem(at: a.dataDir) }
        let root = makeTemporaryDirectory(prefix: "ksmfleet-failover-hung").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        var o = testAgentOptions(
            server: a.baseURL, enrollToken: try await a.makeEnrollmentToken(), stateDir: root + "/state", name: "hung")
        o.serverURLs = [a.baseURL, b.baseURL]
        // A push gives up after 1 s; the long-poll held on A only after 5-8 s + 15 s, so the
        // switch below can only come from the push.
        o.requestTimeout = 1
        let agent = try RunningAgent.start(o, name: "hung")
        do {
            let admin = try Fixtures.client(b.baseURL, token: b.adminToken)
            let started = await waitUntil(timeout: .seconds(20)) { (await agent.agent.status().lastAckedSeq ?? 0) >= 3 }
            #expect(started, "no samples acknowledged through the first server")
            #expect(await agent.agent.status().server == a.baseURL)
            // Freeze A just after an acknowledgement (not in the middle of one of its writes).
            let acked = await agent.agent.status().lastAckedSeq ?? 0
            _ = await waitUntil(timeout: .seconds(5), poll: .milliseconds(5)) {
                (await agent.agent.status().lastAckedSeq ?? 0) > acked
            }
            a.send(signal: SIGSTOP)
            let frozenAt = ContinuousClock.now
            let frozenAck = await agent.agent.status().lastAckedSeq ?? 0
            let switched = await waitUntil(timeout: .seconds(10), poll: .milliseconds(50)) {
                let s = await agent.agent.status()
                return s.server == b.baseURL && (s.lastAckedSeq ?? 0) >= frozenAck + 5
            }
            #expect(switched, "pushes did not move to the second server while the first hung")
            #expect(elapsedSeconds(since: frozenAt) < 10)
            // A dies with the push that timed out unread: only its retry on B can have stored those
            // numbers (a batch dropped or renumbered at the switch leaves a gap below).
            await a.kill9()
            let nodeId = try #require(await agent.agent.status().nodeId)
            let changed = try await admin.patchConfig(nodeId, ConfigPatch(run: .run, thresCoef: 100))
            let applied = await waitUntil(timeout: .seconds(30)) {
                await agent.agent.status().appliedGeneration == changed.generation
            }
            #expect(applied, "the config change made through the second server did not arrive")
            #expect(await agent.agent.status().server == b.baseURL, "not sticky on the second server")
            await agent.stop()
            let end = await agent.agent.status()
            #expect(end.spooled == 0 && end.outbox == 0)
            let stored = try await storedSeqs(admin, nodeId: nodeId)
            #expect(stored == Array(1..<end.nextSeq), "stored \(stored.count) samples for \(end.nextSeq - 1) numbers")
        } catch {
            a.send(signal: SIGCONT)
            await agent.stop()
            await a.stop()
            await b.stop()
            throw error
        }
        await a.stop()
        await b.stop()
    }

    @Test("a proxy's 502 (nginx in front of a replica that died) fails over to the next server")
    func proxy502FailsOver() async throws {
        guard ServerProcess.binaryPath() != nil, FileManager.default.isExecutableFile(atPath: "/usr/sbin/nginx") else {
            try Test.cancel("needs ksmfleet-server built next to the tests and nginx (/usr/sbin/nginx)")
        }
        let (a, b) = try await Self.startReplicas()
        defer { try? FileManager.default.removeItem(at: a.dataDir) }
        let root = makeTemporaryDirectory(prefix: "ksmfleet-failover-nginx").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        let nginx = try await LoopbackNginx.start(directory: root + "/nginx", upstream: a.port)
        var o = testAgentOptions(
            server: nginx.baseURL, enrollToken: try await a.makeEnrollmentToken(), stateDir: root + "/state",
            name: "proxied")
        o.serverURLs = [nginx.baseURL, b.baseURL]
        let agent = try RunningAgent.start(o, name: "proxied")
        do {
            let started = await waitUntil(timeout: .seconds(20)) { (await agent.agent.status().lastAckedSeq ?? 0) >= 3 }
            #expect(started, "no samples acknowledged through nginx: \(nginx.errorLog())")
            #expect(await agent.agent.status().server == nginx.baseURL)
            await a.kill9()
            let ackAtKill = await agent.agent.status().lastAckedSeq ?? 0
            let switched = await waitUntil(timeout: .seconds(10), poll: .milliseconds(50)) {
                let s = await agent.agent.status()
                return s.server == b.baseURL && (s.lastAckedSeq ?? 0) >= ackAtKill + 5
            }
            #expect(switched, "the agent did not move to the second server")
            // nginx answered the agent 502 (it could not reach the replica): that is what moved it.
            #expect(nginx.accessLog().contains(" 502 "), "nginx served no 502: \(nginx.accessLog())")
            await agent.stop()
            let end = await agent.agent.status()
            let nodeId = try #require(end.nodeId)
            let stored = try await storedSeqs(try Fixtures.client(b.baseURL, token: b.adminToken), nodeId: nodeId)
            #expect(stored == Array(1..<end.nextSeq), "stored \(stored.count) samples for \(end.nextSeq - 1) numbers")
        } catch {
            await agent.stop()
            await nginx.stop()
            await b.stop()
            throw error
        }
        await nginx.stop()
        await b.stop()
    }

    @Test("every server down: one switch per server, then the backoff, round after round (no busy loop)")
    func allDown() async throws {
        guard let binary = builtProduct("ksmfleet-agent") else {
            try Test.cancel("ksmfleet-agent is not built next to the tests")
        }
        let root = makeTemporaryDirectory(prefix: "ksmfleet-failover-down").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FakeSysfsDirectory.create(at: root + "/ksm")
        let logPath = root + "/agent.log"
        let p = try startLogged(
            binary,
            [
                "run", "--server", "http://127.0.0.1:1,http://127.0.0.1:2", "--enroll-token", "ksme_unused",
                "--state-dir", root + "/state", "--sysfs", root + "/ksm",
            ],
            logPath: logPath)
        defer { if p.isRunning { kill(p.processIdentifier, SIGKILL) } }
        // Backoff 1 s doubling: rounds start at about 0, 1, 2-3 and 4-7 s.
        try await Task.sleep(for: .seconds(4))
        kill(p.processIdentifier, SIGTERM)
        let exited = await waitUntil(timeout: .seconds(15), poll: .milliseconds(50)) { !p.isRunning }
        #expect(exited, "the agent did not stop on SIGTERM")
        let lines = readText(logPath).split(separator: "\n")
        let switches = lines.filter { $0.contains(": switching server") }
        let rounds = lines.filter { $0.contains("every server failed in turn") }
        #expect((1...4).contains(rounds.count), "\(rounds.count) rounds in 4 s: \(lines.suffix(20))")
        #expect(switches.count == rounds.count || switches.count == rounds.count + 1, "\(switches.count) switches")
        #expect(
            switches.first?.contains("from=http://127.0.0.1:1") == true
                && switches.first?.contains("to=http://127.0.0.1:2") == true)
        #expect(
            rounds.first?.contains("from=http://127.0.0.1:2") == true
                && rounds.first?.contains("to=http://127.0.0.1:1") == true)
    }

    @Test("invalid server lists are a usage error (exit 2) that names the entry")
    func usage() async throws {
        guard let binary = builtProduct("ksmfleet-agent") else {
            try Test.cancel("ksmfleet-agent is not built next to the tests")
        }
        for (args, message) in [
            (["--server", "http://127.0.0.1:1", "--server", "ftp://x"], "ftp://x"),
            (["--server", "http://127.0.0.1:1,127.0.0.1:2"], "127.0.0.1:2"),
            (["--server", "http://127.0.0.1:1,http://127.0.0.1:1/"], "listed twice"),
        ] {
            let (status, text) = try await offPool { try runToEnd(binary, ["run"] + args + ["--once"]) }
            #expect(status == 2, "\(args): \(text)")
            #expect(text.contains(message), "\(args): \(text)")
        }
    }
}
