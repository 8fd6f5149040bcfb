import FleetAPI
import FleetClient
import FleetTestSupport
import Foundation
import KSMCore
import Testing

/// A refusal speaks of the credential that was tried (issue: a wrong admin token got the
/// message written for node tokens, and an enrollment token used as admin got 401, not 403).
@Suite struct CredentialMessageTests {
    @Test func eachWrongCredentialGetsItsOwnMessageAndStatus() async throws {
        let h = try await Harness.start()
        defer { Task { await h.finish() } }
        let (reg, node) = try await h.register()

        let wrongAdmin = try Fixtures.client(h.server.baseURL, token: "ka_not-the-admin-token")
        let (s1, e1) = try #require(await apiError { _ = try await wrongAdmin.listNodes() })
        #expect(s1 == 401 && e1.error.code == "unauthorized")
        #expect(e1.error.message.contains("admin token"), "\(e1.error.message)")
        #expect(!e1.error.message.contains("re-registration"), "not the node-token message: \(e1.error.message)")

        let enrollment = try await h.server.makeEnrollmentToken()
        let asAdmin = try Fixtures.client(h.server.baseURL, token: enrollment)
        let (s2, e2) = try #require(await apiError { _ = try await asAdmin.listNodes() })
        #expect(s2 == 403 && e2.error.code == "forbidden", "docs/cli.md: not an admin token is 403 (\(s2))")
        #expect(e2.error.message.contains("enrollment token"), "\(e2.error.message)")

        // A node route with an unknown token speaks of node tokens.
        let stale = try Fixtures.client(h.server.baseURL, token: "kn_stale")
        let batch = SampleBatch(samples: [])
        let (s3, e3) = try #require(await apiError { _ = try await stale.pushSamples(nodeId: reg.nodeId, batch) })
        #expect(s3 == 401)
        #expect(e3.error.message.contains("node token"), "\(e3.error.message)")

        // A node token on an admin route: 403, it is a real credential of another kind.
        let (s4, e4) = try #require(await apiError { _ = try await node.listNodes() })
        #expect(s4 == 403, "\(e4.error.message)")
    }
}

/// The agent's goodbye: the node is "agent stopped" at once, not online for another minute.
@Suite struct GoodbyeTests {
    /// A registration is news but no figure: the node was counted online (and a minute later
    /// "offline, last reported …") with nothing it ever reported.
    @Test func aNodeWithoutASampleHasNeverReported() async throws {
        let h = try await Harness.start()
        defer { Task { await h.finish() } }
        let (reg, node) = try await h.register()
        let info = try await h.admin.node(reg.nodeId)
        #expect(info.connection == .never && !info.online, "\(info.connection)")
        #expect(info.lastSeenAt != nil, "the registration is still when the agent was last heard from")
        let list = try await h.admin.listNodes()
        #expect(list.summary?.neverReported == 1 && list.summary?.online == 0, "\(String(describing: list.summary))")
        _ = try await h.admin.replaceConfig(reg.nodeId, KSMConfig(run: .run))
        let drift = try await h.admin.node(reg.nodeId).driftReason ?? ""
        #expect(drift.hasPrefix("not yet applied (the agent has sent no sample yet; registered "), "\(drift)")
        _ = try await node.pushSamples(nodeId: reg.nodeId, Fixtures.batch(1...1))
        #expect(try await h.admin.node(reg.nodeId).connection == .online)
    }

    @Test func aGoodbyeSampleMarksTheNodeAgentStoppedAtOnce() async throws {
        let h = try await Harness.start()
        defer { Task { await h.finish() } }
        let (reg, node) = try await h.register()
        var batch = Fixtures.batch(1...3)
        _ = try await node.pushSamples(nodeId: reg.nodeId, batch)
        #expect(try await h.admin.node(reg.nodeId).connection == .online)
        batch = Fixtures.batch(4...4)
        batch.samples[0].agentStopped = true
        batch.samples[0].phaseReason = "agent stopped: left KSM running (run=1), 100 pages still merged"
        _ = try await node.pushSamples(nodeId: reg.nodeId, batch)
        let info = try await h.admin.node(reg.nodeId)
        #expect(info.connection == .agentStopped)
        #expect(!info.online)
        #expect(info.lastSample?.agentStopped == true)
        let list = try await h.admin.listNodes()
        #expect(list.summary?.agentStopped == 1 && list.summary?.online == 0)
        #expect(list.summary?.savedBytes == 0)
        #expect(list.summary?.lastKnownSavedBytesNotReporting == info.lastSample?.savedBytes)
        // The stored row ends the node's data there.
        let db = try h.database()
        defer { try? db.close() }
        let history = try #require(
            try await db.history(
                nodeId: reg.nodeId, since: Date(timeIntervalSince1970: 1_790_000_000),
                until: Date(timeIntervalSince1970: 1_790_000_000 + 3600), resolution: .raw))
        #expect(history.samples?.count == 4)
        // Data ends at the goodbye (t = 80 s): no 60 s tail after it.
        #expect(history.gaps.first?.from == Date(timeIntervalSince1970: 1_790_000_080), "\(history.gaps)")
    }
}

/// A process report no scan could produce is refused with the field named, and never traps the
/// server (schemathesis found `mergingPages` near Int64.min crashing the sample insert).
@Suite struct HostileProcessReportTests {
    @Test func impossibleProcessCountsAreRefusedNotTrapped() async throws {
        let h = try await Harness.start()
        defer { Task { await h.finish() } }
        let (reg, node) = try await h.register()
        var batch = Fixtures.batch(1...1)
        batch.samples[0].processes = ProcessReport(
            perProcessStats: true, groups: [
                ProcessGroupSavings(
                    kind: .pod, name: "x", processes: 1, mergingPages: .min, zeroPages: 788, rmapItems: 1,
                    profitBytes: nil)
            ])
        let (status, body) = try #require(await apiError { _ = try await node.pushSamples(nodeId: reg.nodeId, batch) })
        #expect(status == 422)
        #expect(body.error.field == "samples[0].processes.groups[0].mergingPages")
        // The server is still there and takes a plausible report.
        batch.samples[0].processes?.groups[0].mergingPages = 100
        let ack = try await node.pushSamples(nodeId: reg.nodeId, batch)
        #expect(ack.stored == 1)
        #expect(
            ProcessGroupSavings(
                kind: .pod, name: "x", processes: 1, mergingPages: .max, zeroPages: 1, rmapItems: 0, profitBytes: nil
            ).mergedBytes(pageSize: 4096) == .max)
    }
}

/// Every reply that hands out a secret once says `Cache-Control: no-store`: the registration's
/// node token, a new credential's token, a new enrollment token (the rotation's and the
/// dashboard's credentials page already did).
@Suite struct SecretRepliesTests {
    @Test func repliesCarryingASecretAreNotStored() async throws {
        let h = try await Harness.start()
        defer { Task { await h.finish() } }
        let enrollment = try await h.server.makeEnrollmentToken()
        let anon = try Fixtures.client(h.server.baseURL, token: enrollment)
        let register = try await anon.send(
            method: "POST", path: APIPaths.register,
            headers: ["Content-Type": "application/json"],
            body: try jsonBody(Fixtures.registerRequest(machineId: "m-no-store", hostname: "no-store")))
        let credential = try await h.admin.send(
            method: "POST", path: "/api/v1/credentials", headers: ["Content-Type": "application/json"],
            body: Data(#"{"name":"grafana","role":"viewer"}"#.utf8))
        let token = try await h.admin.send(
            method: "POST", path: APIPaths.enrollmentTokens, headers: ["Content-Type": "application/json"],
            body: Data(#"{"description":"rack-a"}"#.utf8))
        for (what, r) in [("register", register), ("credential", credential), ("enrollment token", token)] {
            #expect(r.status == 201, "\(what): \(r.status) \(r.text)")
            #expect(r.headers["cache-control"] == "no-store", "\(what): \(r.headers)")
        }
    }
}

/// A time no integer holds (`@nan`, `@1e17`) in a report or audit query trapped the server (a
/// viewer could end the process with a link): refused as a value, and the server goes on.
@Suite struct UnrepresentableTimeTests {
    @Test func aTimeNoIntegerHoldsIsRefusedNotATrap() async throws {
        let h = try await Harness.start()
        defer { Task { await h.finish() } }
        for (path, name) in [("/api/v1/audit", "since"), (APIPaths.savingsReport, "since"), (APIPaths.savingsReport, "until")] {
            for bad in ["@nan", "@1e17", "@inf"] {
                let r = try await h.admin.send(method: "GET", path: path, query: [(name, bad)])
                #expect(r.status == 422 || r.status == 400, "\(path)?\(name)=\(bad): \(r.status) \(r.text)")
            }
        }
        #expect(try await h.admin.listNodes().nodes.isEmpty, "the server went away")
    }
}
