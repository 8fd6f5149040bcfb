import FleetAPI
import FleetClient
import FleetTestSupport
import Foundation
import KSMCore
import Testing

@Suite struct RegistrationTests {
    @Test func aNewNodeGetsTheStandardConfigWithMergeAcrossNodesAbsent() async throws {
        let h = try await Harness.start()
        defer { Task { await h.finish() } }
        let (reg, node) = try await h.register(hostname: "alpha")
        #expect(!reg.reregistered)
        #expect(reg.nodeId.hasPrefix("n-"))
        #expect(reg.nodeToken.hasPrefix("kn_"))
        let c = reg.config
        #expect(c.generation == 1)
        #expect(c.config.mode == .standard)
        #expect(c.config.thresCoef == 20)
        #expect(c.config.run == .stop)
        #expect(c.config.parameters == TunerParameters.standard)
        #expect(c.config.mergeAcrossNodes == nil)
        // On the wire the key is absent, not null or 0: the kernel's own value is kept.
        let raw = try await node.send(method: "GET", path: APIPaths.config(reg.nodeId))
        #expect(raw.status == 200)
        #expect(raw.headers["etag"] == "\"1\"")
        let object = try #require(try JSONSerialization.jsonObject(with: raw.body) as? [String: Any])
        #expect(object["mergeAcrossNodes"] == nil)
        #expect(object["mode"] as? String == "standard")
        // The admin sees it too.
        let info = try await h.admin.node(reg.nodeId)
        #expect(info.name == "alpha" && info.config == c)
        #expect(info.drift && info.driftReason?.contains("not yet applied") == true)
    }

    @Test func reRegistrationWithTheNodeTokenReturnsTheSameNodeAndRotatesTheToken() async throws {
        let h = try await Harness.start()
        defer { Task { await h.finish() } }
        let (first, oldClient) = try await h.register(machineId: "machine-1")
        _ = try await h.admin.patchConfig(first.nodeId, ConfigPatch(run: .run))
        var request = Fixtures.registerRequest(machineId: "machine-1")
        request.nodeToken = first.nodeToken
        let second = try await Fixtures.client(h.server.baseURL, token: nil).register(
            request, enrollmentToken: try await h.server.makeEnrollmentToken())
        let newClient = try Fixtures.client(h.server.baseURL, token: second.nodeToken)
        #expect(second.reregistered)
        #expect(second.nodeId == first.nodeId)
        #expect(second.nodeToken != first.nodeToken)
        #expect(second.config.generation == 2 && second.config.config.run == .run, "the config is kept")
        let refused = await apiError { _ = try await oldClient.config(nodeId: first.nodeId, ifNoneMatch: nil, waitSeconds: nil) }
        #expect(refused?.0 == 401 && refused?.1.error.code == "unauthorized")
        let ok = try await newClient.config(nodeId: first.nodeId, ifNoneMatch: nil, waitSeconds: nil)
        #expect(ok?.generation == 2)
        #expect(try await h.admin.listNodes().nodes.count == 1)
    }

    @Test func revokedExpiredAndUnknownEnrollmentTokensAreRefused() async throws {
        let h = try await Harness.start()
        defer { Task { await h.finish() } }
        let anon = try Fixtures.client(h.server.baseURL, token: nil)
        // Revoked through the API.
        let created = try await h.admin.createEnrollmentToken(CreateEnrollmentTokenRequest(description: "rack 7"))
        let token = try #require(created.token)
        try await h.admin.revokeEnrollmentToken(created.id)
        let listed = try await h.admin.enrollmentTokens().tokens
        #expect(listed.first { $0.id == created.id }?.revokedAt != nil)
        #expect(listed.allSatisfy { $0.token == nil }, "the list never shows secrets")
        let revoked = await apiError { _ = try await anon.register(Fixtures.registerRequest(), enrollmentToken: token) }
        #expect(revoked?.0 == 401 && revoked?.1.error.message.contains("revoked") == true)
        // Expired.
        let old = try await h.server.makeEnrollmentToken(expiresAt: Date(timeIntervalSinceNow: -60))
        let expired = await apiError { _ = try await anon.register(Fixtures.registerRequest(), enrollmentToken: old) }
        #expect(expired?.0 == 401 && expired?.1.error.message.contains("expired") == true)
        // Unknown, and none at all.
        let unknown = await apiError { _ = try await anon.register(Fixtures.registerRequest(), enrollmentToken: "ke_nope") }
        #expect(unknown?.0 == 401)
        let missing = try await anon.send(
            method: "POST", path: APIPaths.register, headers: ["Content-Type": "application/json"],
            body: try jsonBody(Fixtures.registerRequest()))
        #expect(missing.status == 401 && errorBody(missing)?.error.code == "unauthorized")
        // An expiry in the past cannot be created through the API.
        let past = await apiError {
            _ = try await h.admin.createEnrollmentToken(CreateEnrollmentTokenRequest(expiresAt: Date(timeIntervalSinceNow: -5)))
        }
        #expect(past?.0 == 422 && past?.1.error.field == "expiresAt")
        #expect(try await h.admin.listNodes().nodes.isEmpty)
        // A valid, unexpired one works, but not with a client timeout (`KSMFleet-Timeout`) that
        // is not seconds over 0 and at most an hour: refused naming the header, nothing stored.
        let fresh = try await h.admin.createEnrollmentToken(CreateEnrollmentTokenRequest(expiresAt: Date(timeIntervalSinceNow: 3600)))
        let freshToken = try #require(fresh.token)
        for bad in ["0", "-1", "soon", "7200"] {
            let r = try await anon.send(
                method: "POST", path: APIPaths.register,
                headers: ["Content-Type": "application/json", "Authorization": "Bearer \(freshToken)", ClientTimeout.header: bad],
                body: try jsonBody(Fixtures.registerRequest()))
            #expect(r.status == 422 && errorBody(r)?.error.field == ClientTimeout.header, "\(bad): \(r.status) \(r.text)")
        }
        #expect(try await h.admin.listNodes().nodes.isEmpty)
        _ = try await anon.register(Fixtures.registerRequest(), enrollmentToken: freshToken)
        #expect(try await h.admin.listNodes().nodes.count == 1)
    }

    @Test func aNodeMayTouchOnlyItself() async throws {
        let h = try await Harness.start()
        defer { Task { await h.finish() } }
        let (a, clientA) = try await h.register(hostname: "a")
        let (b, _) = try await h.register(hostname: "b")
        let readOther = await apiError { _ = try await clientA.config(nodeId: b.nodeId, ifNoneMatch: nil, waitSeconds: nil) }
        #expect(readOther?.0 == 403 && readOther?.1.error.code == "forbidden")
        let writeOther = await apiError { _ = try await clientA.pushSamples(nodeId: b.nodeId, Fixtures.batch([1])) }
        #expect(writeOther?.0 == 403)
        let admin = await apiError { _ = try await clientA.listNodes() }
        #expect(admin?.0 == 403)
        let patch = await apiError { _ = try await clientA.patchConfig(a.nodeId, ConfigPatch(run: .run)) }
        #expect(patch?.0 == 403, "a node may not change its own config either")
        #expect(try await clientA.config(nodeId: a.nodeId, ifNoneMatch: nil, waitSeconds: nil)?.generation == 1)
        #expect(try await clientA.pushSamples(nodeId: a.nodeId, Fixtures.batch([1])).highestSeq == 1)
    }
}
