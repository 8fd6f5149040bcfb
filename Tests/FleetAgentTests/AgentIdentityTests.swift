import FleetAPI
import FleetAgent
import FleetClient
import FleetStore
import FleetTestSupport
import Foundation
import KSMCore
import Testing
import TestSupport

@Suite("Agent identity: pending registrations and token rotation", .serialized)
struct AgentIdentityTests {
    @Test("a second agent with the same machine id is pending, says why, backs off, and never takes the node")
    func pendingAgentBacksOff() async throws {
        let server = try await TestServer.start()
        defer { server.removeDataDir() }
        let root = makeTemporaryDirectory(prefix: "ksmfleet-identity").path
        let enroll = try await server.makeEnrollmentToken()
        var first = testAgentOptions(server: server.baseURL, enrollToken: enroll, stateDir: "\(root)/a", name: "clone-a")
        first.machineId = "cloned-machine"
        let a = try RunningAgent.start(first, name: "clone-a")
        let admin = try adminClient(server)
        #expect(await waitUntil(timeout: .seconds(20)) { await a.agent.status().lastAckedSeq != nil })
        let nodeId = try #require(await a.agent.status().nodeId)

        var second = testAgentOptions(server: server.baseURL, enrollToken: enroll, stateDir: "\(root)/b", name: "clone-b")
        second.machineId = "cloned-machine"
        let b = try RunningAgent.start(second, name: "clone-b")
        #expect(await waitUntil(timeout: .seconds(10)) { await b.agent.status().registrationWaiting != nil })
        let waiting = await b.agent.status().registrationWaiting ?? ""
        #expect(waiting.contains("waiting for an admin") && waiting.contains("machine id"), "\(waiting)")
        // Three seconds on (twelve of its sample intervals, sixty of its backoff bases) it has
        // asked once: it waits the server's minute before asking again.
        try await Task.sleep(for: .seconds(3))
        let pending = try await admin.pendingRegistrations().registrations
        #expect(pending.count == 1 && pending.first?.attempts == 1, "\(pending.map(\.attempts))")
        #expect(await b.agent.status().nodeId == nil)
        // The first agent keeps its node and goes on pushing.
        let acked = await a.agent.status().lastAckedSeq ?? 0
        #expect(await waitUntil(timeout: .seconds(5)) { (await a.agent.status().lastAckedSeq ?? 0) > acked })
        #expect(await a.agent.status().nodeId == nodeId)
        #expect(try await admin.listNodes().nodes.map(\.id) == [nodeId])
        await b.stop()
        await a.stop()
        await server.stop()
    }

    @Test("a rotation asked for by an admin: the agent replaces its token and every sample arrives")
    func rotationWithARunningAgent() async throws {
        let server = try await TestServer.start()
        defer { server.removeDataDir() }
        let root = makeTemporaryDirectory(prefix: "ksmfleet-rotation").path
        let enroll = try await server.makeEnrollmentToken()
        let o = testAgentOptions(server: server.baseURL, enrollToken: enroll, stateDir: "\(root)/r", name: "rotor")
        let agent = try RunningAgent.start(o, name: "rotor")
        let admin = try adminClient(server)
        #expect(await waitUntil(timeout: .seconds(20)) { await agent.agent.status().lastAckedSeq != nil })
        let nodeId = try #require(await agent.agent.status().nodeId)
        let stateDir = try AgentStateDir(o.stateDir)
        let before = try #require(try stateDir.loadIdentity()).nodeToken
        _ = try await admin.requestTokenRotation(nodeId)
        #expect(
            await waitUntil(timeout: .seconds(10)) { (try? stateDir.loadIdentity())?.nodeToken != before },
            "the agent did not rotate its token")
        // Samples go on with the new token.
        let acked = await agent.agent.status().lastAckedSeq ?? 0
        #expect(await waitUntil(timeout: .seconds(5)) { (await agent.agent.status().lastAckedSeq ?? 0) > acked + 2 })
        await agent.stop()
        let status = await agent.agent.status()
        #expect(status.spooled == 0 && status.outbox == 0 && status.dropped == 0)
        let db = try FleetDatabase.open(try TestStore.location(for: server.dataDir))
        let seqs = try await db.sampleSeqs(nodeId: nodeId)
        let last = try #require(seqs.last)
        #expect(seqs == Array(1...last), "a sample is missing across the rotation")
        #expect(try await admin.node(nodeId).id == nodeId)
        await server.stop()
    }
}
