import FleetAPI
import FleetAgent
import FleetClient
import FleetTestSupport
import Foundation
import KSMCore
import KSMNode
import Testing
import TestSupport

@Suite("Agent end to end on loopback", .serialized)
struct AgentEndToEndTests {
    @Test("three agents register; a node config change and a fleet-wide change reach all of them")
    func threeAgents() async throws {
        let server = try await TestServer.start()
        defer { server.removeDataDir() }
        let root = makeTemporaryDirectory(prefix: "ksmfleet-e2e").path
        var agents: [RunningAgent] = []
        do {
            let enroll = try await server.makeEnrollmentToken()
            for i in 1...3 {
                let name = "e2e-\(i)"
                let o = testAgentOptions(server: server.baseURL, enrollToken: enroll, stateDir: "\(root)/\(name)", name: name)
                agents.append(try RunningAgent.start(o, name: name))
            }
            let registered = await waitUntil(timeout: .seconds(20)) {
                for a in agents where await a.agent.status().appliedGeneration == nil { return false }
                return true
            }
            #expect(registered, "agents did not register and apply their first config")
            let admin = try adminClient(server)

            // One change per node: run with thresCoef 100 makes the fake kernel run.
            var ids: [String] = []
            for a in agents { ids.append(try #require(await a.agent.status().nodeId)) }
            #expect(Set(ids).count == 3)
            let started = ContinuousClock.now
            var targets: [Int64] = []
            for id in ids { targets.append(try await admin.patchConfig(id, ConfigPatch(run: .run, thresCoef: 100)).generation) }
            var latencies: [Double] = []
            for (i, a) in agents.enumerated() {
                let ok = await waitUntil(timeout: .seconds(5), poll: .milliseconds(20)) {
                    await a.agent.status().appliedGeneration == targets[i] && a.kernel.current.run == 1
                }
                latencies.append(elapsedSeconds(since: started))
                #expect(ok, "agent \(a.name) did not apply generation \(targets[i])")
            }
            print("config change → applied on node, seconds after the first PATCH: \(latencies.map { String(format: "%.3f", $0) })")

            // Fleet-wide: stop everywhere.
            let fleetStart = ContinuousClock.now
            let result = try await admin.applyConfig(ApplyRequest(all: true, change: ConfigPatch(run: .stop)))
            var generations: [String: Int64] = [:]
            for r in result.results { generations[r.nodeId] = r.generation }
            for (i, a) in agents.enumerated() {
                let target = try #require(generations[ids[i]])
                let ok = await waitUntil(timeout: .seconds(5), poll: .milliseconds(20)) {
                    await a.agent.status().appliedGeneration == target && a.kernel.current.run == 0
                }
                #expect(ok, "agent \(a.name) did not apply the fleet-wide change")
            }
            print("fleet-wide change applied on all three after \(String(format: "%.3f", elapsedSeconds(since: fleetStart))) s")

            // The server sees the applied generation in the nodes' samples.
            let reported = await waitUntil(timeout: .seconds(5)) {
                for (i, id) in ids.enumerated() {
                    guard let n = try? await admin.node(id), n.appliedGeneration == generations[ids[i]] else { return false }
                }
                return true
            }
            #expect(reported, "the server did not see the applied generation")
        } catch {
            for a in agents { await a.stop() }
            await server.stop()
            throw error
        }
        for a in agents { #expect(await a.stop() == nil) }
        await server.stop()
    }

    @Test("server stopped and restarted: every sample taken meanwhile arrives exactly once, in order")
    func outage() async throws {
        var server = try await TestServer.start()
        let dataDir = server.dataDir
        let port = server.port
        let adminToken = server.adminToken
        defer { try? FileManager.default.removeItem(at: dataDir) }
        let root = makeTemporaryDirectory(prefix: "ksmfleet-outage").path
        let enroll = try await server.makeEnrollmentToken()
        let o = testAgentOptions(server: server.baseURL, enrollToken: enroll, stateDir: root + "/a", name: "outage")
        let log = LogCapture()
        let a = try RunningAgent.start(o, name: "outage", logger: log.logger())
        var serverUp = true
        do {
            let pushed = await waitUntil(timeout: .seconds(20)) { (await a.agent.status().lastAckedSeq ?? 0) >= 3 }
            #expect(pushed, "no samples accepted before the outage")
            await server.stop()
            serverUp = false
            let before = await a.agent.status().nextSeq
            // Samples keep being taken and spooled while the server is away.
            let spooled = await waitUntil(timeout: .seconds(20)) { await a.agent.status().spooled >= 8 }
            #expect(spooled, "the agent did not spool while the server was away")
            let downStatus = await a.agent.status()
            #expect(downStatus.nextSeq > before + 5)

            server = try await TestServer.start(dataDir: dataDir, port: port, adminToken: adminToken)
            serverUp = true
            let lastDuringOutage = downStatus.nextSeq - 1
            let replayed = await waitUntil(timeout: .seconds(20)) {
                let s = await a.agent.status()
                return s.spooled == 0 && (s.lastAckedSeq ?? 0) >= lastDuringOutage
            }
            #expect(replayed, "the spool was not replayed after the server came back")
            let stopError = await a.stop()
            #expect(stopError == nil)
            let finalNext = await a.agent.status().nextSeq

            let nodeId = try #require(await a.agent.status().nodeId)
            let seqs = try await storedSeqs(try adminClient(server), nodeId: nodeId)
            // Exactly once and in order: every number the agent issued, each once, increasing.
            #expect(seqs == Array(1..<finalNext), "stored seqs: \(seqs)")
            // The debug log of accepted pushes accounts for what the server stored, spool
            // included: each sample stored once, or a duplicate where a push the server had
            // stored was cut off (the stop) and sent again.
            let accepted = log.messages(containing: "samples accepted")
            #expect(accepted.allSatisfy { $0.level == .debug && $0.metadata["server"] == server.baseURL })
            func sum(_ key: String) -> Int { accepted.reduce(0) { $0 + (Int($1.metadata[key] ?? "") ?? 0) } }
            #expect(sum("stored") <= seqs.count && sum("stored") + sum("duplicates") >= seqs.count, "\(accepted.map(\.metadata))")
            #expect(accepted.compactMap { Int64($0.metadata["highest_seq"] ?? "") }.max() == seqs.last)
        } catch {
            await a.stop()
            if serverUp { await server.stop() }
            throw error
        }
        await server.stop()
    }

    @Test("an agent restarted with a full spool loses nothing it had spooled, and reports the drop")
    func restartWithFullSpool() async throws {
        var server = try await TestServer.start()
        let dataDir = server.dataDir
        let port = server.port
        let adminToken = server.adminToken
        defer { try? FileManager.default.removeItem(at: dataDir) }
        let root = makeTemporaryDirectory(prefix: "ksmfleet-restart").path
        let enroll = try await server.makeEnrollmentToken()
        var o = testAgentOptions(server: server.baseURL, enrollToken: enroll, stateDir: root + "/a", name: "restart")
        o.spoolLimits = SampleSpool.Limits(maxSamples: 12)
        let kernel = FakeKSMKernel()
        let first = try RunningAgent.start(o, kernel: kernel, name: "restart")
        var serverUp = true
        do {
            let pushed = await waitUntil(timeout: .seconds(20)) { (await first.agent.status().lastAckedSeq ?? 0) >= 2 }
            #expect(pushed)
            await server.stop()
            serverUp = false
            // Fill the spool past its limit.
            let full = await waitUntil(timeout: .seconds(30)) {
                let s = await first.agent.status()
                return s.spooled >= 12 && s.dropped >= 3
            }
            #expect(full, "the spool did not fill")
            #expect(await first.stop() == nil)
            let spool = try SampleSpool(directory: root + "/a/spool", limits: o.spoolLimits)
            let spooledSeqs = try spool.oldest(1000).map(\.seq)
            #expect(spooledSeqs.count == 12)
            #expect(spool.dropped >= 3)
            let dropped = spool.dropped

            // A new agent process on the same state directory: same node, same spool.
            let second = try FleetAgent(options: o, kernel: kernel, logger: agentLogger("restart-2"))
            let s0 = await second.status()
            #expect(s0.spooled == 12)
            #expect(s0.dropped == dropped)
            #expect(s0.nextSeq > spooledSeqs.last ?? 0)
            server = try await TestServer.start(dataDir: dataDir, port: port, adminToken: adminToken)
            serverUp = true
            let task = Task { try await second.run() }
            let replayed = await waitUntil(timeout: .seconds(20)) {
                let s = await second.status()
                return s.spooled == 0 && s.dropped == 0 && (s.lastAckedSeq ?? 0) >= spooledSeqs.last ?? 0
            }
            #expect(replayed, "the spool was not replayed after the restart")
            await second.stop()
            _ = await task.result
            let nodeId = try #require(await second.status().nodeId)
            let stored = Set(try await storedSeqs(try adminClient(server), nodeId: nodeId))
            #expect(Set(spooledSeqs).isSubset(of: stored), "missing: \(Set(spooledSeqs).subtracting(stored).sorted())")
            let admin = try adminClient(server)
            let history = try await admin.history(
                nodeId, since: Date().addingTimeInterval(-3600), until: Date().addingTimeInterval(60), resolution: .raw)
            let seqs = (history.samples ?? []).map(\.seq)
            #expect(seqs == seqs.sorted() && Set(seqs).count == seqs.count)
        } catch {
            await first.stop()
            if serverUp { await server.stop() }
            throw error
        }
        await server.stop()
    }

    @Test("--once: registers, applies, pushes one sample, exits; a revoked token without enrollment token is a clear error")
    func onceAndNotEnrolled() async throws {
        let server = try await TestServer.start()
        defer { server.removeDataDir() }
        do {
            let root = makeTemporaryDirectory(prefix: "ksmfleet-once").path
            let enroll = try await server.makeEnrollmentToken()
            var o = testAgentOptions(server: server.baseURL, enrollToken: enroll, stateDir: root + "/a", name: "once")
            o.once = true
            let kernel = FakeKSMKernel()
            let agent = try FleetAgent(options: o, kernel: kernel, logger: agentLogger("once"))
            try await agent.runOnce()
            let s = await agent.status()
            #expect(s.nodeId != nil)
            #expect(s.appliedGeneration != nil)
            #expect((s.lastAckedSeq ?? 0) >= 1)
            #expect(s.spooled == 0)

            // The node is deleted on the server; without an enrollment token the agent says so.
            let admin = try adminClient(server)
            try await admin.deleteNode(try #require(s.nodeId))
            var noToken = o
            noToken.enrollToken = nil
            let orphan = try FleetAgent(options: noToken, kernel: kernel, logger: agentLogger("once-2"))
            do {
                try await orphan.runOnce()
                Issue.record("ran with a deleted node and no enrollment token")
            } catch {
                #expect(error.description.contains("enrollment token"), "\(error)")
            }

            // With the enrollment token it asks again, but a deleted node does not come back by
            // itself: the registration waits for an admin, and the agent says so.
            let agent3 = try FleetAgent(options: o, kernel: kernel, logger: agentLogger("once-3"))
            let task = Task { try await agent3.run() }
            let waiting = await waitUntil(timeout: .seconds(20)) {
                await agent3.status().registrationWaiting?.contains("deleted") == true
            }
            #expect(waiting, "the agent did not report its pending registration")
            #expect(try await admin.listNodes().nodes.isEmpty, "the deleted node came back by itself")
            await agent3.stop()
            _ = await task.result

            // Not registered at all and no enrollment token: a clear error.
            let fresh = try FleetAgent(
                options: testAgentOptions(server: server.baseURL, enrollToken: nil, stateDir: root + "/b", name: "fresh"),
                kernel: FakeKSMKernel(), logger: agentLogger("fresh"))
            do {
                try await fresh.run()
                Issue.record("ran without identity or enrollment token")
            } catch {
                guard case .notEnrolled = error else {
                    Issue.record("expected notEnrolled, got \(error)")
                    return
                }
            }

            // A wrong enrollment token ends the agent with the reason, instead of retrying forever.
            let wrong = try FleetAgent(
                options: testAgentOptions(server: server.baseURL, enrollToken: "ksme_wrong", stateDir: root + "/c", name: "wrong"),
                kernel: FakeKSMKernel(), logger: agentLogger("wrong"))
            do {
                try await wrong.run()
                Issue.record("ran with a wrong enrollment token")
            } catch {
                guard case .notEnrolled(let message) = error else {
                    Issue.record("expected notEnrolled, got \(error)")
                    return
                }
                #expect(message.contains("enrollment token"))
            }
        } catch {
            await server.stop()
            throw error
        }
        await server.stop()
    }

    @Test("kicks: a new entry in a watched directory and the server's kick counter reach the engine")
    func kicks() async throws {
        let server = try await TestServer.start()
        defer { server.removeDataDir() }
        let root = makeTemporaryDirectory(prefix: "ksmfleet-kick").path
        let watched = root + "/sbs"
        try FileManager.default.createDirectory(atPath: watched, withIntermediateDirectories: true)
        let enroll = try await server.makeEnrollmentToken()
        var o = testAgentOptions(server: server.baseURL, enrollToken: enroll, stateDir: root + "/a", name: "kick")
        o.watchPaths = [watched]
        o.tuneInterval = 3600
        let a = try RunningAgent.start(o, name: "kick")
        do {
            let ready = await waitUntil(timeout: .seconds(20)) { await a.agent.status().appliedGeneration != nil }
            #expect(ready)
            let id = try #require(await a.agent.status().nodeId)
            let admin = try adminClient(server)
            _ = try await admin.patchConfig(id, ConfigPatch(run: .run, mode: .throttle))
            let throttled = await waitUntil(timeout: .seconds(5)) { await a.agent.engine.config?.mode == .throttle }
            #expect(throttled)
            let kicks0 = await a.agent.engine.state.throttle.kicks
            try Data().write(to: URL(fileURLWithPath: watched + "/vm-1"))
            let byWatch = await waitUntil(timeout: .seconds(5)) { await a.agent.engine.state.throttle.kicks > kicks0 }
            #expect(byWatch, "a new entry in the watched directory was not a kick")
            let kicks1 = await a.agent.engine.state.throttle.kicks
            _ = try await admin.kick(id)
            let byServer = await waitUntil(timeout: .seconds(5)) { await a.agent.engine.state.throttle.kicks > kicks1 }
            #expect(byServer, "the server's kick did not reach the engine")
        } catch {
            await a.stop()
            await server.stop()
            throw error
        }
        await a.stop()
        await server.stop()
    }
}
