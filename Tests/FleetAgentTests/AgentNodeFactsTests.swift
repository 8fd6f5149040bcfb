import FleetAPI
import FleetAgent
import FleetClient
import FleetTestSupport
import Foundation
import KSMCore
import Testing
import TestSupport

@Suite("Agent host facts: a restart tells the server what the host is now", .serialized)
struct AgentNodeFactsTests {
    /// A host registered on a kernel without the KSM advisor reboots into one with it: the agent
    /// starts with the identity it has (no enrollment token now, so it cannot register again),
    /// tells the server its new features, and mode advisor is accepted for the node. Its token
    /// is the one it had.
    @Test("an agent that starts with an identity sends its host's facts, and mode advisor is accepted then")
    func restartOnANewKernelUpdatesTheServer() async throws {
        let server = try await TestServer.start()
        defer { server.removeDataDir() }
        let root = makeTemporaryDirectory(prefix: "ksmfleet-facts").path
        let enroll = try await server.makeEnrollmentToken()
        var o = testAgentOptions(server: server.baseURL, enrollToken: enroll, stateDir: "\(root)/f", name: "rebooted")
        let before = try RunningAgent.start(o, kernel: FakeKSMKernel(features: FakeKSMKernel.Features.legacy), name: "rebooted")
        let admin = try adminClient(server)
        #expect(await waitUntil(timeout: .seconds(20)) { await before.agent.status().lastAckedSeq != nil })
        let nodeId = try #require(await before.agent.status().nodeId)
        #expect(await before.stop() == nil)
        #expect(try await !admin.node(nodeId).ksmFeatures.contains("advisor_mode"))
        let refused = await apiErrorStatus { _ = try await admin.patchConfig(nodeId, ConfigPatch(mode: .advisor)) }
        #expect(refused == 422)
        let stateDir = try AgentStateDir(o.stateDir)
        let token = try #require(try stateDir.loadIdentity()).nodeToken

        o.enrollToken = nil
        let after = try RunningAgent.start(o, kernel: FakeKSMKernel(features: FakeKSMKernel.Features.modern), name: "rebooted")
        #expect(
            await waitUntil(timeout: .seconds(20)) {
                (try? await admin.node(nodeId).ksmFeatures.contains("advisor_mode")) == true
            }, "the restarted agent did not tell the server its kernel's features")
        let info = try await admin.node(nodeId)
        #expect(Set(info.ksmFeatures) == Set(try FakeKSMKernel(features: FakeKSMKernel.Features.modern).features()))
        #expect(info.agentVersion == FleetVersion.current)
        let advisor = try await admin.patchConfig(nodeId, ConfigPatch(mode: .advisor))
        #expect(advisor.config.mode == .advisor)
        // The agent goes on with the same node and token, and gets the new config.
        #expect(await waitUntil(timeout: .seconds(20)) { await after.agent.status().configGeneration == advisor.generation })
        #expect(try stateDir.loadIdentity()?.nodeToken == token, "no re-registration, no token rotation")
        #expect(try await admin.listNodes().nodes.map(\.id) == [nodeId])
        #expect(await after.stop() == nil)
        await server.stop()
    }

    /// The server is down when the agent starts on its new kernel: the facts cannot go, and the
    /// agent does not give up on them; they reach the server once it is back (same data, same
    /// port), before mode advisor is asked for.
    @Test("an agent that starts while the server is down tells it its host's facts once it is back")
    func factsReachAServerThatWasDownAtStart() async throws {
        let first = try await TestServer.start()
        defer { first.removeDataDir() }
        let root = makeTemporaryDirectory(prefix: "ksmfleet-facts-down").path
        var o = testAgentOptions(
            server: first.baseURL, enrollToken: try await first.makeEnrollmentToken(), stateDir: "\(root)/f",
            name: "away")
        let before = try RunningAgent.start(o, kernel: FakeKSMKernel(features: FakeKSMKernel.Features.legacy), name: "away")
        #expect(await waitUntil(timeout: .seconds(20)) { await before.agent.status().lastAckedSeq != nil })
        let nodeId = try #require(await before.agent.status().nodeId)
        #expect(await before.stop() == nil)
        await first.stop()

        o.enrollToken = nil
        let after = try RunningAgent.start(o, kernel: FakeKSMKernel(features: FakeKSMKernel.Features.modern), name: "away")
        // A few failed rounds (its backoff is 0.1-0.5 s).
        try await Task.sleep(for: .seconds(1.5))
        let second = try await TestServer.start(dataDir: first.dataDir, port: first.port, adminToken: first.adminToken)
        let admin = try adminClient(second)
        #expect(
            await waitUntil(timeout: .seconds(20)) {
                (try? await admin.node(nodeId).ksmFeatures.contains("advisor_mode")) == true
            }, "the agent did not tell the server its host's facts once it was back")
        #expect(try await admin.patchConfig(nodeId, ConfigPatch(mode: .advisor)).config.mode == .advisor)
        #expect(await after.stop() == nil)
        await second.stop()
    }
}

/// The status of the `ClientError.api` `body` throws, nil when it throws none (or another error).
private func apiErrorStatus(_ body: () async throws -> Void) async -> Int? {
    do {
        try await body()
    } catch let error as ClientError {
        return error.status
    } catch {}
    return nil
}
