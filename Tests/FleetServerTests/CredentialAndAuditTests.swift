import FleetAPI
import FleetClient
import FleetStore
import FleetTestSupport
import TestSupport
import Foundation
import KSMCore
import Testing

/// The token in the reply to create (a test failure when it is missing).
func secret(_ info: CredentialInfo, sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
    try #require(info.token, sourceLocation: sourceLocation)
}

/// Named credentials with roles and the audit trail (issue 14).
@Suite struct CredentialAndAuditTests {
    @Test func aCredentialWorksWithItsRoleUntilRevokedAndItsSecretIsOnlyStoredHashed() async throws {
        let h = try await Harness.start()
        defer { Task { await h.finish() } }
        let created = try await h.admin.createCredential(CreateCredentialRequest(name: "grafana", role: .viewer))
        let token = try #require(created.token)
        #expect(token.hasPrefix("kc_") && created.role == .viewer && created.createdBy == "bootstrap")
        let viewer = try Fixtures.client(h.server.baseURL, token: token)
        #expect(try await viewer.whoami() == WhoAmI(name: "grafana", role: .viewer, credentialId: created.id))
        _ = try await viewer.listNodes()
        // The list never shows a secret.
        let list = try await h.admin.credentials()
        #expect(list.credentials.map(\.name) == ["grafana"] && list.credentials.allSatisfy { $0.token == nil })
        // Stored hashed only.
        let bytes = try TestStore.storedBytes(of: h.server.dataDir)
        #expect(bytes.range(of: Data(token.utf8)) == nil)
        // One live credential per name.
        let (status, body) = try #require(
            await apiError { _ = try await h.admin.createCredential(CreateCredentialRequest(name: "grafana", role: .admin)) })
        #expect(status == 409 && body.error.field == "name")
        // Names are checked.
        let (s2, b2) = try #require(
            await apiError { _ = try await h.admin.createCredential(CreateCredentialRequest(name: "a b<", role: .admin)) })
        #expect(s2 == 400 || s2 == 422)
        #expect(b2.error.field == "name")
        // Revoked: 401 at once.
        _ = try await h.admin.revokeCredential(created.id)
        let (s3, _) = try #require(await apiError { _ = try await viewer.listNodes() })
        #expect(s3 == 401)
    }

    @Test func anExpiredCredentialStopsWorking() async throws {
        let h = try await Harness.start()
        defer { Task { await h.finish() } }
        let db = try h.database()
        defer { try? db.close() }
        // Three seconds: the first request must finish before the expiry on a loaded machine too
        // (with one second it once did not, at a load of 5).
        let expiresAt = Date().addingTimeInterval(3)
        let info = try await db.createCredential(name: "short", role: .admin, expiresAt: expiresAt, now: Date())
        let client = try Fixtures.client(h.server.baseURL, token: try secret(info))
        _ = try await client.listNodes()
        try await Task.sleep(for: .milliseconds(Int(expiresAt.timeIntervalSinceNow * 1000) + 200))
        let (status, _) = try #require(await apiError { _ = try await client.listNodes() })
        #expect(status == 401)
    }

    @Test func auditRecordsNameTheCredentialAndWhereItCameFrom() async throws {
        let h = try await Harness.start()
        defer { Task { await h.finish() } }
        let op = try await h.admin.createCredential(CreateCredentialRequest(name: "alice", role: .operator))
        let alice = try Fixtures.client(h.server.baseURL, token: try secret(op))
        let (reg, _) = try await h.register(hostname: "audited")
        _ = try await alice.patchConfig(reg.nodeId, ConfigPatch(thresCoef: 33))
        try await alice.setLabels(reg.nodeId, ["rack": "r9"])
        _ = try await alice.kick(reg.nodeId)
        // X-Forwarded-For is ignored: no trusted proxy was named.
        _ = try await alice.send(
            method: "PATCH", path: APIPaths.config(reg.nodeId), headers: ["X-Forwarded-For": "203.0.113.9", "Content-Type": "application/json"],
            body: Data(#"{"thresCoef":34}"#.utf8))
        try await h.admin.deleteNode(reg.nodeId)

        let all = try await h.admin.audit(node: reg.nodeId)
        #expect(all.entries.map(\.action) == ["delete", "patch", "kick", "labels", "patch", "create"])
        let byAlice = all.entries.filter { $0.credential == "alice" }
        #expect(byAlice.count == 4)
        #expect(byAlice.allSatisfy { $0.credentialId == op.id && $0.source == "127.0.0.1" }, "\(byAlice)")
        #expect(all.entries.first?.credential == "bootstrap" && all.entries.first?.credentialId == "bootstrap")
        let labels = try #require(all.entries.first { $0.action == "labels" })
        #expect(labels.before == "{}" && labels.after?.contains("r9") == true)
        // Filters: credential, action, a viewer may read.
        let viewerInfo = try await h.admin.createCredential(CreateCredentialRequest(name: "v", role: .viewer))
        let viewer = try Fixtures.client(h.server.baseURL, token: try secret(viewerInfo))
        let kicks = try await viewer.audit(credential: "alice", action: "kick")
        #expect(kicks.entries.count == 1 && kicks.entries[0].nodeId == reg.nodeId)
        #expect(try await viewer.audit(since: "2099-01-01").entries.isEmpty)
        #expect(try await viewer.audit(limit: 2).entries.count == 2)
        // Credential changes are audited without a node.
        let credentialAudit = try await viewer.audit(action: "credential-create")
        #expect(credentialAudit.entries.count == 2 && credentialAudit.entries.allSatisfy { $0.nodeId == nil })
        #expect(credentialAudit.entries.allSatisfy { $0.credential == "bootstrap" && $0.after?.contains("kc_") == false })
        // A bad filter is a JSON error.
        let bad = try await viewer.send(method: "GET", path: APIPaths.audit, query: [("limit", "0")])
        #expect(bad.status == 422 && errorBody(bad)?.error.field == "limit")
        #expect(errorBody(bad)?.error.message == "'0' is not a record count from 1 to 10000")
        // An empty one is none: the default page.
        #expect(try await viewer.send(method: "GET", path: APIPaths.audit, query: [("limit", "")]).status == 200)
    }

    /// A fleet-wide apply is one audit record (the nodes sharing configs before and after), with
    /// how many nodes and which were asked for; each node finds it by node with its generation.
    @Test func aFleetApplyIsOneAuditRecord() async throws {
        let h = try await Harness.start()
        defer { Task { await h.finish() } }
        var ids: [String] = []
        for name in ["fa", "fb", "fc"] { ids.append(try await h.register(hostname: name).0.nodeId) }
        let response = try await h.admin.applyConfig(ApplyRequest(all: true, change: ConfigPatch(thresCoef: 44)))
        #expect(response.results.map(\.status) == ["changed", "changed", "changed"])
        let records = try await h.admin.audit(action: "apply").entries
        #expect(records.count == 1)
        let record = try #require(records.first)
        #expect(record.nodeCount == 3 && record.nodeId == nil && record.generation == nil && record.target == "all")
        #expect(record.credential == "bootstrap" && record.source == "127.0.0.1")
        #expect(record.after?.contains("44") == true && record.before?.contains("44") == false)
        for result in response.results {
            let mine = try await h.admin.audit(node: result.nodeId, action: "apply").entries
            #expect(mine.count == 1 && mine.first?.id == record.id, "\(result.nodeId)")
            #expect(mine.first?.nodeId == result.nodeId && mine.first?.generation == result.generation)
        }
        // The record's nodes, by node id, with their generations.
        let nodes = try await h.admin.audit(record: record.id).entries
        #expect(nodes.map(\.nodeId) == ids.sorted() && nodes.allSatisfy { $0.id == record.id })
        #expect(nodes.map(\.generation) == ids.sorted().map { id in response.results.first { $0.nodeId == id }?.generation })
        let page = try await h.admin.audit(record: record.id, afterNode: ids.sorted()[0], limit: 1).entries
        #expect(page.map(\.nodeId) == [ids.sorted()[1]])
        // A selector is named as given; a list of nodes by its names.
        try await h.admin.setLabels(ids[0], ["rack": "r1"])
        _ = try await h.admin.applyConfig(ApplyRequest(selector: "rack=r1", change: ConfigPatch(thresCoef: 45)))
        let bySelector = try #require(try await h.admin.audit(action: "apply").entries.first)
        #expect(bySelector.target == "selector rack=r1" && bySelector.nodeId == ids[0] && bySelector.nodeCount == nil)
        _ = try await h.admin.applyConfig(ApplyRequest(nodes: ["fb", "fc"], change: ConfigPatch(thresCoef: 46)))
        let byList = try #require(try await h.admin.audit(action: "apply").entries.first)
        #expect(byList.target == "nodes fb,fc" && byList.nodeCount == 2)
        #expect(try await h.admin.audit(record: byList.id).entries.map(\.nodeId) == [ids[1], ids[2]].sorted())
        // Bad paging is a JSON error naming the field.
        let bad = try await h.admin.send(method: "GET", path: APIPaths.audit, query: [("record", "0")])
        #expect(bad.status == 422 && errorBody(bad)?.error.field == "record")
        let alone = try await h.admin.send(method: "GET", path: APIPaths.audit, query: [("afterNode", "n-1")])
        #expect(alone.status == 422 && errorBody(alone)?.error.field == "afterNode")
        // The raw JSON has the field (the dashboard and the CLI read it).
        let raw = try await h.admin.send(method: "GET", path: APIPaths.audit, query: [("action", "apply"), ("limit", "3")])
        #expect(String(decoding: raw.body, as: UTF8.self).contains(#""nodeCount":3"#))
        // The dashboard's audit page: the shared record as "3 nodes", a link to its nodes; the
        // node's page lists the node's part of it.
        var browser = try DashboardBrowser(h.server)
        try await browser.signIn(adminToken: h.server.adminToken)
        let auditPage = try await browser.get("/audit?action=apply")
        #expect(auditPage.status == 200)
        #expect(auditPage.text.contains(#"<a href="/audit?record=\#(record.id)" class="audit-nodes">3 nodes</a>"#))
        // An empty limit is none: the page's own 500, as without one.
        for query in ["", "&limit="] {
            let page = try await browser.get("/audit?action=apply" + query)
            #expect(page.text.contains("(newest first, at most 500)"), "limit \(query)")
        }
        let recordPage = try await browser.get("/audit?record=\(record.id)")
        #expect(recordPage.status == 200 && recordPage.text.contains("record \(record.id), a change to 3 nodes: 3 nodes on this page"))
        for id in ids { #expect(recordPage.text.contains(">\(id)</a>")) }
        #expect(!recordPage.text.contains("audit-next"))
        // A page of one node links to the next page of one node, which holds the second node.
        let first = try await browser.get("/audit?record=\(record.id)&limit=1")
        let next = "/audit?record=\(record.id)&afterNode=\(ids.sorted()[0])&limit=1"
        #expect(first.text.contains(#"<a href="\#(next.replacingOccurrences(of: "&", with: "&amp;"))" id="audit-next">"#), "\(first.text)")
        #expect(first.text.contains("record \(record.id), a change to 3 nodes: 1 node on this page"))
        let second = try await browser.get(next)
        #expect(second.text.contains(">\(ids.sorted()[1])</a>") && !second.text.contains(">\(ids.sorted()[0])</a>"))
        let past = try await browser.get("/audit?record=\(record.id)&afterNode=\(ids.sorted()[2])&limit=1")
        #expect(past.text.contains("record \(record.id): no more nodes after \(ids.sorted()[2])") && !past.text.contains("audit-next"))
        // A record of one node lists that node, and its page says so without a total.
        let lonePage = try await browser.get("/audit?record=\(bySelector.id)")
        #expect(lonePage.text.contains("record \(bySelector.id): 1 node (by node id") && lonePage.text.contains(">\(ids[0])</a>"))
        let nodePage = try await browser.get("/nodes/\(ids[1])")
        #expect(nodePage.text.contains(#"<td>apply</td><td><a href="/nodes/\#(ids[1])">\#(ids[1])</a></td><td>all</td>"#))
        // A record of no node (a sign-in) has no nodes to list.
        let signIn = try #require(try await h.admin.audit(action: "login").entries.first)
        #expect(try await h.admin.audit(record: signIn.id).entries.isEmpty)
    }

    @Test func xForwardedForCountsOnlyFromANamedTrustedProxy() async throws {
        let h = try await Harness.start(configure: { $0.trustedProxies = ["127.0.0.1"] })
        defer { Task { await h.finish() } }
        let (reg, _) = try await h.register(hostname: "proxied")
        _ = try await h.admin.send(
            method: "POST", path: APIPaths.kick(reg.nodeId), headers: ["X-Forwarded-For": "198.51.100.7, 127.0.0.1"])
        let entry = try #require(try await h.admin.audit(action: "kick").entries.first)
        #expect(entry.source == "198.51.100.7")
    }

    @Test func metricsNeedAViewerUnlessMadePublic() async throws {
        let h = try await Harness.start()
        defer { Task { await h.finish() } }
        let anon = try Fixtures.client(h.server.baseURL, token: nil)
        #expect(try await anon.send(method: "GET", path: "/metrics").status == 401)
        let v = try await h.admin.createCredential(CreateCredentialRequest(name: "prometheus", role: .viewer))
        let viewer = try Fixtures.client(h.server.baseURL, token: try secret(v))
        #expect(try await viewer.send(method: "GET", path: "/metrics").status == 200)
        let open = try await Harness.start(configure: { $0.metricsPublic = true })
        defer { Task { await open.finish() } }
        let anon2 = try Fixtures.client(open.server.baseURL, token: nil)
        #expect(try await anon2.send(method: "GET", path: "/metrics").status == 200)
    }

    @Test func aViewerSeesTheDashboardWithoutFormsAndItsPostsAreRefused() async throws {
        let h = try await Harness.start()
        defer { Task { await h.finish() } }
        let (reg, _) = try await h.register(hostname: "looked-at")
        let v = try await h.admin.createCredential(CreateCredentialRequest(name: "colleague", role: .viewer))
        var browser = try DashboardBrowser(h.server)
        try await browser.signIn(adminToken: try secret(v))
        let page = try await browser.get("/nodes/\(reg.nodeId)")
        #expect(page.status == 200)
        #expect(!page.text.contains("id=\"config-form\"") && !page.text.contains("id=\"save-config\""))
        #expect(page.text.contains("id=\"read-only-note\"") && page.text.contains("colleague (viewer)"))
        #expect(!page.text.contains("href=\"/credentials\""))
        let post = try await browser.post("/nodes/\(reg.nodeId)/kick", [])
        #expect(post.status == 403 && post.text.contains("viewer"))
        #expect(try await h.admin.nodeConfig(reg.nodeId).kickCounter == 0)
        // The sign-in is audited under the credential's name; the audit page shows it.
        let audit = try await browser.get("/audit")
        #expect(audit.status == 200 && audit.text.contains("colleague") && audit.text.contains(">login<"))
        // Revoking the credential ends its session.
        _ = try await h.admin.revokeCredential(v.id)
        let after = try await browser.get("/nodes")
        #expect(after.status == 303 && (after.headers["location"] ?? "").hasPrefix("/login"))
    }

    @Test func anAdminManagesCredentialsFromTheDashboardAndTheTokenIsShownOnce() async throws {
        let h = try await Harness.start()
        defer { Task { await h.finish() } }
        var browser = try DashboardBrowser(h.server)
        try await browser.signIn(adminToken: h.server.adminToken)
        let made = try await browser.post("/credentials", [("name", "ci<bot>"), ("role", "operator"), ("expires", "")])
        #expect(made.status == 422 && made.text.contains("id=\"credential-error\""))
        #expect(!made.text.contains("ci<bot>"), "escaped")
        let ok = try await browser.post("/credentials", [("name", "ci-bot"), ("role", "operator"), ("expires", "30d")])
        #expect(ok.status == 201)
        let range = try #require(ok.text.range(of: "id=\"new-token\">"))
        let token = String(ok.text[range.upperBound...].prefix { $0 != "<" })
        #expect(token.hasPrefix("kc_"))
        let client = try Fixtures.client(h.server.baseURL, token: token)
        #expect(try await client.whoami().role == .operator)
        let list = try await browser.get("/credentials")
        #expect(list.text.contains("ci-bot") && !list.text.contains(token))
        let id = try #require(try await h.admin.credentials().credentials.first?.id)
        let revoked = try await browser.post("/credentials/\(id)/revoke", [])
        #expect(revoked.status == 303)
        #expect(try await h.admin.credentials().credentials.first?.revokedAt != nil)
        let audit = try await h.admin.audit(credential: "bootstrap")
        #expect(Set(audit.entries.map(\.action)).isSuperset(of: ["login", "credential-create", "credential-revoke"]))
    }
}
