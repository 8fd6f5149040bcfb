import FleetAPI
import FleetClient
import FleetStore
import FleetTestSupport
import Foundation
import KSMCore
import Testing

/// Issue 14: a node keeps its identity only by proving it holds its current token.
@Suite struct NodeIdentityTests {
    /// Registers with `machineId`; the reply or the API error.
    func attempt(
        _ h: Harness, machineId: String, hostname: String, proof: String? = nil, key: String? = nil
    ) async throws -> Result<RegisterResponse, ClientError> {
        let enrollment = try await h.server.makeEnrollmentToken()
        let anon = try Fixtures.client(h.server.baseURL, token: nil)
        var request = Fixtures.registerRequest(machineId: machineId, hostname: hostname)
        request.nodeToken = proof
        request.registrationKey = key
        do throws(ClientError) {
            return .success(try await anon.register(request, enrollmentToken: enrollment))
        } catch {
            return .failure(error)
        }
    }

    func code(_ r: Result<RegisterResponse, ClientError>) -> (Int, String)? {
        guard case .failure(.api(let status, let body, _)) = r else { return nil }
        return (status, body.error.code)
    }

    @Test("two hosts with one machine id: neither takes the node over, the second is pending with both hosts' details")
    func twoHostsOneMachineId() async throws {
        let h = try await Harness.start()
        defer { Task { await h.finish() } }
        let (first, firstClient) = try await h.register(machineId: "cloned-1", hostname: "alpha")
        for _ in 0..<3 {
            let second = try await attempt(h, machineId: "cloned-1", hostname: "beta", key: "kr_beta")
            #expect(code(second)?.0 == 409 && code(second)?.1 == APIErrorCode.registrationPending)
            // The first host goes on working: its token was not replaced.
            let config = try await firstClient.config(nodeId: first.nodeId, ifNoneMatch: nil, waitSeconds: nil)
            #expect(config?.generation == 1)
        }
        let pending = try await h.admin.pendingRegistrations().registrations
        #expect(pending.count == 1)
        let p = try #require(pending.first)
        #expect(p.status == "pending" && p.reason == "conflict" && p.attempts == 3)
        #expect(p.newcomer.hostname == "beta" && p.newcomer.source == "127.0.0.1" && p.newcomer.agentVersion == "test")
        #expect(p.holder?.nodeId == first.nodeId && p.holder?.hostname == "alpha" && p.holder?.kernel == "6.8.0-test")
        let nodes = try await h.admin.listNodes().nodes
        #expect(nodes.count == 1 && nodes.first?.name == "alpha")
    }

    @Test("a takeover attempt with only the enrollment token (or a wrong node token) gets no token; the node's own token proves it")
    func takeoverWithOnlyTheEnrollmentToken() async throws {
        let h = try await Harness.start()
        defer { Task { await h.finish() } }
        let (victim, victimClient) = try await h.register(machineId: "victim-machine", hostname: "victim")
        let bare = try await attempt(h, machineId: "victim-machine", hostname: "victim")
        #expect(code(bare)?.0 == 409)
        let wrong = try await attempt(h, machineId: "victim-machine", hostname: "victim", proof: "kn_guessed")
        #expect(code(wrong)?.0 == 409)
        #expect(try await victimClient.config(nodeId: victim.nodeId, ifNoneMatch: nil, waitSeconds: nil) != nil)
        // The node itself, proving its identity, gets a new token for the same node.
        let proven = try await attempt(h, machineId: "victim-machine", hostname: "victim", proof: victim.nodeToken)
        guard case .success(let again) = proven else {
            Issue.record("the node's own token did not prove its identity: \(proven)")
            return
        }
        #expect(again.nodeId == victim.nodeId && again.reregistered && again.nodeToken != victim.nodeToken)
    }

    @Test("a deleted node does not come back by itself; accepted, the host registers as a new node")
    func deletedNodeStaysDeleted() async throws {
        let h = try await Harness.start()
        defer { Task { await h.finish() } }
        let (gone, _) = try await h.register(machineId: "retired", hostname: "retired")
        try await h.admin.deleteNode(gone.nodeId)
        let back = try await attempt(h, machineId: "retired", hostname: "retired", key: "kr_r")
        #expect(code(back)?.0 == 409 && code(back)?.1 == APIErrorCode.registrationPending)
        #expect(try await h.admin.listNodes().nodes.isEmpty, "the deleted node came back by itself")
        let p = try #require(try await h.admin.pendingRegistrations().registrations.first)
        #expect(p.reason == "deleted" && p.holder?.deleted == true)
        // Rejected: still out, and told so.
        _ = try await h.admin.decideRegistration(p.id, accept: false)
        let refused = try await attempt(h, machineId: "retired", hostname: "retired", key: "kr_r")
        #expect(code(refused)?.0 == 403 && code(refused)?.1 == APIErrorCode.registrationRejected)
        // Accepted: a new node.
        _ = try await h.admin.decideRegistration(p.id, accept: true)
        let fresh = try await attempt(h, machineId: "retired", hostname: "retired", key: "kr_r")
        guard case .success(let reg) = fresh else {
            Issue.record("accepted registration did not register: \(fresh)")
            return
        }
        #expect(reg.nodeId != gone.nodeId && !reg.reregistered)
        // The decisions are audited with the credential that made them, like every change.
        let decisions = try await h.admin.audit(action: "registration-accept").entries
        #expect(decisions.count == 1 && decisions.first?.credential == "bootstrap")
        #expect(decisions.first?.credentialId != nil && decisions.first?.source != nil)
    }

    @Test("a re-imaged host comes back through accept; the old holder is then pending, never flipped back by itself")
    func reimagedHostAndNoFlipping() async throws {
        let h = try await Harness.start()
        defer { Task { await h.finish() } }
        let (old, oldClient) = try await h.register(machineId: "host-7", hostname: "host-7")
        let first = try await attempt(h, machineId: "host-7", hostname: "host-7", key: "kr_new")
        #expect(code(first)?.0 == 409)
        // Another host with the same machine id but another key cannot claim the acceptance.
        let p = try #require(try await h.admin.pendingRegistrations().registrations.first)
        _ = try await h.admin.decideRegistration(p.id, accept: true)
        // The holder's token is void at once, not when the accepted host next registers (up to
        // its backoff later, or never): a stolen token of a re-imaged host stops working now.
        let voidNow = await apiError { _ = try await oldClient.config(nodeId: old.nodeId, ifNoneMatch: nil, waitSeconds: nil) }
        #expect(voidNow?.0 == 401, "the holder's token still works after the acceptance")
        let other = try await attempt(h, machineId: "host-7", hostname: "host-7", key: "kr_other")
        #expect(code(other)?.0 == 409)
        let claimed = try await attempt(h, machineId: "host-7", hostname: "host-7", key: "kr_new")
        guard case .success(let reg) = claimed else {
            Issue.record("the accepted host could not claim the node: \(claimed)")
            return
        }
        #expect(reg.nodeId == old.nodeId && reg.reregistered)
        // The old holder's token no longer works, and its proof is refused: pending, not a flip.
        let refused = await apiError { _ = try await oldClient.config(nodeId: old.nodeId, ifNoneMatch: nil, waitSeconds: nil) }
        #expect(refused?.0 == 401)
        let oldBack = try await attempt(h, machineId: "host-7", hostname: "host-7", proof: old.nodeToken, key: "kr_old")
        #expect(code(oldBack)?.0 == 409)
        let newClient = try Fixtures.client(h.server.baseURL, token: reg.nodeToken)
        #expect(try await newClient.config(nodeId: old.nodeId, ifNoneMatch: nil, waitSeconds: nil) != nil)
        // Accepting the decided registration again does not void the newcomer's token.
        _ = try? await h.admin.decideRegistration(p.id, accept: true)
        #expect(try await newClient.config(nodeId: old.nodeId, ifNoneMatch: nil, waitSeconds: nil) != nil)
    }

    /// Rejected by mistake, then accepted: the acceptance voids the holder's token as a first
    /// one does (only a second acceptance leaves the node's token alone).
    @Test("an acceptance after a rejection voids the holder's token")
    func acceptAfterReject() async throws {
        let h = try await Harness.start()
        defer { Task { await h.finish() } }
        let (old, oldClient) = try await h.register(machineId: "host-9", hostname: "host-9")
        #expect(code(try await attempt(h, machineId: "host-9", hostname: "host-9", key: "kr_new"))?.0 == 409)
        let p = try #require(try await h.admin.pendingRegistrations().registrations.first)
        _ = try await h.admin.decideRegistration(p.id, accept: false)
        #expect(try await oldClient.config(nodeId: old.nodeId, ifNoneMatch: nil, waitSeconds: nil) != nil, "a rejection voids nothing")
        _ = try await h.admin.decideRegistration(p.id, accept: true)
        let void = await apiError { _ = try await oldClient.config(nodeId: old.nodeId, ifNoneMatch: nil, waitSeconds: nil) }
        #expect(void?.0 == 401, "the holder's token still works after the acceptance")
    }

    @Test("an agent whose registration answer was lost asks again with its key and gets its node back; another key, or once the node pushed, is pending")
    func lostRegistrationAnswer() async throws {
        let h = try await Harness.start()
        defer { Task { await h.finish() } }
        // The server commits the node, and the answer never reaches the agent (a timeout).
        guard case .success(let lost) = try await attempt(h, machineId: "slow-link", hostname: "slow-link", key: "kr_slow")
        else {
            Issue.record("the first registration failed")
            return
        }
        // Another host with the same machine id and no key, or another key: pending, as before.
        #expect(code(try await attempt(h, machineId: "slow-link", hostname: "slow-link"))?.0 == 409)
        #expect(code(try await attempt(h, machineId: "slow-link", hostname: "slow-link", key: "kr_other"))?.0 == 409)
        // The agent asks again with its key: the same node, a new token; the lost one is dead.
        guard case .success(let again) = try await attempt(h, machineId: "slow-link", hostname: "slow-link", key: "kr_slow")
        else {
            Issue.record("the agent whose answer was lost was not given its node back")
            return
        }
        #expect(again.nodeId == lost.nodeId && again.reregistered && again.nodeToken != lost.nodeToken)
        let lostClient = try Fixtures.client(h.server.baseURL, token: lost.nodeToken)
        let refused = await apiError { _ = try await lostClient.config(nodeId: lost.nodeId, ifNoneMatch: nil, waitSeconds: nil) }
        #expect(refused?.0 == 401)
        #expect(try await h.admin.listNodes().nodes.count == 1)
        // Once the node pushed with its token, the answer evidently arrived: the key alone no longer
        // takes the node (a copy of the agent's state on another host, say).
        let client = try Fixtures.client(h.server.baseURL, token: again.nodeToken)
        _ = try await client.pushSamples(nodeId: again.nodeId, Fixtures.batch(1...1))
        #expect(code(try await attempt(h, machineId: "slow-link", hostname: "slow-link", key: "kr_slow"))?.0 == 409)
        #expect(try await client.config(nodeId: again.nodeId, ifNoneMatch: nil, waitSeconds: nil) != nil)
    }

    @Test("token rotation on demand and on schedule: every push across it is acknowledged and stored")
    func rotationLosesNoSample() async throws {
        let h = try await Harness.start()
        defer { Task { await h.finish() } }
        let (reg, oldClient) = try await h.register(machineId: "rotating", hostname: "rotating")
        var ack = try await oldClient.pushSamples(nodeId: reg.nodeId, Fixtures.batch(1...10))
        #expect(ack.highestSeq == 10 && ack.rotateToken == nil)
        _ = try await h.admin.requestTokenRotation("rotating")
        ack = try await oldClient.pushSamples(nodeId: reg.nodeId, Fixtures.batch(11...20))
        #expect(ack.stored == 10 && ack.rotateToken == true, "the reply tells the agent to rotate")
        let rotated = try await oldClient.rotateNodeToken(nodeId: reg.nodeId)
        #expect(rotated.nodeToken != reg.nodeToken)
        // A push already on its way with the old token still counts.
        ack = try await oldClient.pushSamples(nodeId: reg.nodeId, Fixtures.batch(21...30))
        #expect(ack.stored == 10 && ack.rotateToken == nil)
        let newClient = try Fixtures.client(h.server.baseURL, token: rotated.nodeToken)
        ack = try await newClient.pushSamples(nodeId: reg.nodeId, Fixtures.batch(31...40))
        #expect(ack.stored == 10 && ack.rotateToken == nil)
        // Within the grace after the first use of the new token the old one still works.
        ack = try await oldClient.pushSamples(nodeId: reg.nodeId, Fixtures.batch(41...45))
        #expect(ack.stored == 5)
        #expect(try await newClient.config(nodeId: reg.nodeId, ifNoneMatch: nil, waitSeconds: nil) != nil)
        // The old token, still accepted for pushes in its grace, cannot replace the token the
        // agent now uses: whoever holds it (the reason to rotate may be that it leaked) would
        // lock the agent out and own the node.
        let takeover = await apiError { _ = try await oldClient.rotateNodeToken(nodeId: reg.nodeId) }
        #expect(takeover?.0 == 401, "a used rotation's old token replaced the node's token")
        ack = try await newClient.pushSamples(nodeId: reg.nodeId, Fixtures.batch(46...46))
        #expect(ack.stored == 1)
        let db = try h.database()
        #expect(try await db.sampleSeqs(nodeId: reg.nodeId) == Array(1...46))
    }

    @Test("an agent that lost a rotation's reply is asked to rotate again, not left to run into the old token's end")
    func lostRotationReplyIsAskedAgain() async throws {
        let h = try await Harness.start()
        defer { Task { await h.finish() } }
        let (reg, _) = try await h.register(machineId: "lost-reply", hostname: "lost-reply")
        let db = try h.database()
        defer { try? db.close() }
        let old = Secrets.hash(reg.nodeToken)
        let t = Date()
        #expect(try await db.rotateNodeToken(nodeId: reg.nodeId, presentedHash: old, newHash: Secrets.hash("kn_new"), now: t))
        // Right after the rotation a push still on its way with the old token is not asked again.
        let soon = try #require(try await db.nodeCredential(forTokenHash: old, now: t.addingTimeInterval(5)))
        #expect(soon.isPrevious && !soon.rotationDue(everySeconds: nil, now: t.addingTimeInterval(5)))
        // Minutes later, the new token still unused: the reply was lost; ask again.
        let later = try #require(try await db.nodeCredential(forTokenHash: old, now: t.addingTimeInterval(600)))
        #expect(later.rotationDue(everySeconds: nil, now: t.addingTimeInterval(600)))
        // And it may: the token it never received is replaced, its old one kept as it is.
        #expect(
            try await db.rotateNodeToken(
                nodeId: reg.nodeId, presentedHash: old, newHash: Secrets.hash("kn_new2"), now: t.addingTimeInterval(600)))
        #expect(try await db.nodeID(forTokenHash: Secrets.hash("kn_new")) == nil)
        #expect(try await db.nodeCredential(forTokenHash: old, now: t.addingTimeInterval(600))?.isPrevious == true)
        // Once the new token was used, the old one is only a grace period's leftover: not asked.
        try await db.confirmNewToken(nodeId: reg.nodeId, now: t.addingTimeInterval(600))
        let confirmed = try #require(try await db.nodeCredential(forTokenHash: old, now: t.addingTimeInterval(601)))
        #expect(!confirmed.rotationDue(everySeconds: nil, now: t.addingTimeInterval(601)))
        // Asked again before the new token's use, the old one may rotate (the lost reply); after
        // it, not; and never a token the node never had.
        #expect(
            try await !db.rotateNodeToken(
                nodeId: reg.nodeId, presentedHash: old, newHash: Secrets.hash("kn_thief"), now: t.addingTimeInterval(601)))
        #expect(
            try await !db.rotateNodeToken(
                nodeId: reg.nodeId, presentedHash: Secrets.hash("kn_nobody"), newHash: Secrets.hash("kn_thief"),
                now: t.addingTimeInterval(601)))
        #expect(try await db.nodeID(forTokenHash: Secrets.hash("kn_new2")) == reg.nodeId)
        #expect(try await db.nodeID(forTokenHash: Secrets.hash("kn_thief")) == nil)
    }

    @Test("scheduled rotation: the sample reply says so once the token is older than the server's setting")
    func scheduledRotation() async throws {
        let server = try await TestServer.start(configure: { $0.tokenRotationDays = 0.5 / 86400 })
        let h = Harness(server: server, admin: try Fixtures.client(server.baseURL, token: server.adminToken))
        defer { Task { await h.finish() } }
        let (reg, client) = try await h.register(machineId: "scheduled", hostname: "scheduled")
        try await Task.sleep(for: .milliseconds(700))
        let ack = try await client.pushSamples(nodeId: reg.nodeId, Fixtures.batch(1...2))
        #expect(ack.rotateToken == true && ack.stored == 2)
    }

    @Test(
        "hostile names are refused with a JSON error naming the field",
        arguments: [
            "", "a b", "-lead", "trail-", "a..b", ".a", String(repeating: "x", count: 64),
            Array(repeating: String(repeating: "y", count: 60), count: 5).joined(separator: "."),
            "<script>alert(1)</script>", "=HYPERLINK(\"http://evil\")", "näme", "tab\there", "nul\u{0}", "under_score",
        ])
    func hostileNames(_ name: String) async throws {
        let h = try await Harness.start()
        defer { Task { await h.finish() } }
        let r = try await attempt(h, machineId: "m-hostile", hostname: name)
        guard case .failure(.api(let status, let body, _)) = r else {
            Issue.record("name \(name.debugDescription) was accepted")
            return
        }
        #expect(status == 422 && body.error.field == "hostname" && body.error.code == APIErrorCode.invalidValue)
        #expect(try await h.admin.listNodes().nodes.isEmpty)
    }

    @Test("names are lower case and unique among live nodes: a taken name gets -2; lookup by name is unambiguous")
    func uniqueNames() async throws {
        let h = try await Harness.start()
        defer { Task { await h.finish() } }
        let (a, _) = try await h.register(machineId: "m-web-a", hostname: "Web.Example.COM.")
        let (b, _) = try await h.register(machineId: "m-web-b", hostname: "web.example.com")
        let (c, _) = try await h.register(machineId: "m-web-c", hostname: "web.example.com")
        #expect(try await h.admin.node(a.nodeId).name == "web.example.com")
        #expect(try await h.admin.node(b.nodeId).name == "web-2.example.com")
        #expect(try await h.admin.node(c.nodeId).name == "web-3.example.com")
        #expect(try await h.admin.node("WEB.example.com").id == a.nodeId)
        let applied = try await h.admin.applyConfig(
            ApplyRequest(nodes: ["web.example.com"], change: ConfigPatch(run: .run)))
        #expect(applied.results.map(\.nodeId) == [a.nodeId])
    }
}
