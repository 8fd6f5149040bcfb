import FleetAPI
import FleetClient
import FleetTestSupport
import Foundation
import KSMCore
import TestSupport
import Testing

/// The deployment the replicas are for: two `ksmfleet-server` processes on one PostgreSQL
/// database behind nginx, several real agent processes (the built binary, fake sysfs) all on
/// nginx's one URL. One replica dies (kill -9) while the agents push; the fleet goes on through
/// the other as one server.
@Suite("replicas behind nginx with real agents")
struct ReplicaDeploymentTests {
    static let postgresOnly: Comment =
        "replicas share a PostgreSQL database: runs on the PostgreSQL pass of make test (KSMFLEET_TEST_POSTGRES)"

    /// One agent process and its files.
    struct AgentProcess {
        let name: String
        let sysfs: String
        let state: String
        let logPath: String
        let process: Process
        var log: String { readText(logPath) }
    }

    @Test(
        "kill -9 of one replica mid-ingest: a fleet-wide change through the other reaches every agent; no sample lost or stored twice"
    )
    func killOneReplicaMidIngest() async throws {
        guard TestStore.isPostgres else { try Test.cancel(Self.postgresOnly) }
        guard let binary = builtProduct("ksmfleet-agent"), ServerProcess.binaryPath() != nil else {
            try Test.cancel(
                "ksmfleet-agent and ksmfleet-server are not built next to the tests (swift build --build-tests)")
        }
        guard FileManager.default.isExecutableFile(atPath: "/usr/sbin/nginx") else {
            try Test.cancel("needs nginx (/usr/sbin/nginx; Debian's nginx-light, installed by make test)")
        }
        let (a, b) = try await AgentFailoverTests.startReplicas()
        defer { try? FileManager.default.removeItem(at: a.dataDir) }
        let root = makeTemporaryDirectory(prefix: "ksmfleet-replicas").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        let nginx: LoopbackNginx
        do {
            nginx = try await LoopbackNginx.start(directory: root + "/nginx", upstreams: [a.port, b.port])
        } catch {
            await a.stop()
            await b.stop()
            throw error
        }

        var agents: [AgentProcess] = []
        defer { for agent in agents where agent.process.isRunning { kill(agent.process.processIdentifier, SIGKILL) } }
        do {
            // Three agents, each its own machine id, fake sysfs and state, all on nginx's URL.
            for i in 1...3 {
                let name = "replica-agent-\(i)"
                let dir = root + "/" + name
                try FakeSysfsDirectory.create(at: dir + "/ksm")
                let tokenFile = dir + "/enroll-token"
                try (try await a.makeEnrollmentToken()).write(toFile: tokenFile, atomically: true, encoding: .utf8)
                let process = try startLogged(
                    binary,
                    [
                        "run", "--server", nginx.baseURL, "--enroll-token-file", tokenFile, "--state-dir", dir + "/state",
                        "--sysfs", dir + "/ksm", "--node-name", name, "--machine-id", "machine-\(name)-\(UUID())",
                        "--sample-interval", "0.2", "--tune-interval", "1", "--process-interval", "0",
                    ],
                    logPath: dir + "/agent.log")
                agents.append(
                    AgentProcess(
                        name: name, sysfs: dir + "/ksm", state: dir + "/state", logPath: dir + "/agent.log",
                        process: process))
            }
            func logs() -> String { agents.map { "--- \($0.name):\n\($0.log.suffix(3000))" }.joined(separator: "\n") }

            let adminB = try Fixtures.client(b.baseURL, token: b.adminToken)
            // Every agent registered and has samples stored (through both replicas: nginx spreads them).
            var ids: [String: String] = [:]
            let ingesting = await waitUntil(timeout: .seconds(30)) {
                guard let nodes = try? await adminB.listNodes().nodes else { return false }
                for agent in agents {
                    guard let n = nodes.first(where: { $0.name == agent.name }) else { return false }
                    ids[agent.name] = n.id
                    guard (try? await storedSeqs(adminB, nodeId: n.id).count) ?? 0 >= 5 else { return false }
                }
                return true
            }
            try #require(ingesting, "not every agent registered and pushed through nginx: \(logs())\n\(nginx.errorLog())")
            #expect(Set(ids.values).count == agents.count, "the agents share a node: \(ids)")
            let pushesToA = nginx.accessLog().split(separator: "\n")
                .filter { $0.contains("/samples") && $0.contains("upstream=127.0.0.1:\(a.port)") }
            #expect(!pushesToA.isEmpty, "nginx sent no sample push to the first replica: \(nginx.accessLog().suffix(2000))")

            // A config change made directly on B while both replicas run reaches every agent,
            // whichever replica holds its long-poll (nginx spreads those too): replicas wake
            // each other's long-polls. Bounded well below the agents' 30-55 s long-poll wait.
            let first = try await adminB.applyConfig(ApplyRequest(all: true, change: ConfigPatch(thresCoef: 90)))
            let firstGenerations = try generations(first, ids: ids)
            let firstReached = await waitUntil(timeout: .seconds(15), poll: .milliseconds(50)) {
                guard let nodes = try? await adminB.listNodes().nodes else { return false }
                return ids.allSatisfy { name, id in
                    nodes.first(where: { $0.id == id })?.appliedGeneration == firstGenerations[name]
                }
            }
            #expect(firstReached, "a change made on one replica did not reach every agent: \(logs())")

            // kill -9 of A while the agents push.
            let stored = try await storedCounts(adminB, ids)
            #expect(agents.allSatisfy { FakeSysfsDirectory.read($0.sysfs, "run") == "0" }, "KSM runs before the change")
            await a.kill9()
            let killedAt = ContinuousClock.now
            let goesOn = await waitUntil(timeout: .seconds(30)) {
                guard let now = try? await storedCounts(adminB, ids) else { return false }
                return ids.keys.allSatisfy { (now[$0] ?? 0) >= (stored[$0] ?? 0) + 10 }
            }
            #expect(goesOn, "samples stopped arriving after one replica died: \(logs())\n\(nginx.errorLog())")

            // A fleet-wide change through the surviving replica reaches every agent: its sysfs
            // `run` becomes 1 and the node reports the new generation applied.
            let change = try await adminB.applyConfig(
                ApplyRequest(all: true, change: ConfigPatch(run: .run, thresCoef: 100)))
            let changedAt = ContinuousClock.now
            let changeGenerations = try generations(change, ids: ids)
            let applied = await waitUntil(timeout: .seconds(15), poll: .milliseconds(50)) {
                guard agents.allSatisfy({ FakeSysfsDirectory.read($0.sysfs, "run") == "1" }),
                    let nodes = try? await adminB.listNodes().nodes
                else { return false }
                return ids.allSatisfy { name, id in
                    nodes.first(where: { $0.id == id })?.appliedGeneration == changeGenerations[name]
                }
            }
            let runs = agents.map { FakeSysfsDirectory.read($0.sysfs, "run") }
            #expect(
                applied,
                """
                the change made through the surviving replica \(elapsedSeconds(since: killedAt)) s after the kill \
                did not reach every agent: run=\(runs) \(logs())
                """)

            // What nginx did around the kill (for the test's output): requests it sent on to the
            // other replica after the dead one failed them, and errors it answered itself.
            let access = nginx.accessLog().split(separator: "\n")
            let retried = access.filter { $0.contains("upstream=") && $0.split(separator: "upstream=")[1].contains(",") }
            let errors = access.filter { $0.contains("\" 502 ") || $0.contains("\" 503 ") || $0.contains("\" 504 ") }
            print(
                "ReplicaDeploymentTests: \(access.count) requests through nginx, \(retried.count) retried on the other "
                    + "replica after the kill, \(errors.count) answered 5xx; every agent had applied the change "
                    + "\(elapsedSeconds(since: changedAt)) s after it was made (polled every 50 ms)")

            // Stop the agents (they flush what they hold), then account for every number each issued.
            for agent in agents { kill(agent.process.processIdentifier, SIGTERM) }
            for agent in agents {
                let exited = await waitUntil(timeout: .seconds(15), poll: .milliseconds(50)) { !agent.process.isRunning }
                #expect(exited, "\(agent.name) did not stop on SIGTERM")
                if exited {
                    #expect(agent.process.terminationStatus == 0, "\(agent.name): exit \(agent.process.terminationStatus)")
                }
            }
            for agent in agents {
                let id = try #require(ids[agent.name])
                let next = try #require(Int64(readText(agent.state + "/seq")), "\(agent.name): no sequence number stored")
                let seqs = try await storedSeqs(adminB, nodeId: id)
                #expect(next > Int64(stored[agent.name] ?? 0) + 10, "\(agent.name): next \(next)")
                #expect(
                    seqs == Array(1..<next),
                    "\(agent.name): stored \(seqs.count) samples for \(next - 1) numbers; missing \(Set(1..<next).subtracting(seqs).sorted().prefix(20)), duplicated \(duplicates(seqs).prefix(20))"
                )
                let spooled = (try? FileManager.default.contentsOfDirectory(atPath: agent.state + "/spool")) ?? []
                #expect(spooled.filter { $0.hasPrefix("seg-") }.isEmpty, "\(agent.name): samples left in the spool")
                #expect(!agent.log.contains("registered again"), "\(agent.name) lost its identity: \(agent.log)")
            }
        } catch {
            await nginx.stop()
            await a.stop()
            await b.stop()
            throw error
        }
        await nginx.stop()
        await a.stop()
        await b.stop()
    }

    /// The generation each agent's node got from a fleet-wide apply (by agent name); every node
    /// must have changed.
    func generations(_ response: ApplyResponse, ids: [String: String]) throws -> [String: Int64] {
        var out: [String: Int64] = [:]
        for (name, id) in ids {
            let result = try #require(response.results.first(where: { $0.nodeId == id }), "no apply result for \(name)")
            #expect(result.status == "changed", "\(name): \(result)")
            let generation: Int64 = try #require(result.generation, "\(name): no generation in \(result)")
            out[name] = generation
        }
        return out
    }

    func storedCounts(_ admin: FleetClient, _ ids: [String: String]) async throws -> [String: Int] {
        var out: [String: Int] = [:]
        for (name, id) in ids { out[name] = try await storedSeqs(admin, nodeId: id).count }
        return out
    }

    func duplicates(_ seqs: [Int64]) -> [Int64] {
        var seen = Set<Int64>()
        return seqs.filter { !seen.insert($0).inserted }
    }
}
