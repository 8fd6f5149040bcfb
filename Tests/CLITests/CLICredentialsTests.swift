import FleetAPI
import FleetClient
import FleetTestSupport
import Foundation
import KSMCore
import Testing

/// `ksmfleet credentials` and `ksmfleet audit` (issue 14) with the built binary.
@Suite("ksmfleet credentials and audit")
struct CLICredentialsTests {
    @Test("create (token once), whoami, a viewer is refused a change, the audit names the credential, revoke")
    func credentialsAndAudit() async throws {
        try await Fleet.with { f in
            let made = try await f.cli(["credentials", "create", "ops-alice", "--role", "operator", "-o", "json"])
            #expect(made.status == Exit.ok, "\(made)")
            let info = try made.json(CredentialInfo.self)
            let token = try #require(info.token)
            #expect(info.role == .operator && token.hasPrefix("kc_"))

            let who = try await f.cli(["credentials", "whoami"], token: token)
            #expect(who.stdout.contains("ops-alice (operator)"), "\(who)")

            let kick = try await f.cli(["kick", "web-1"], token: token)
            #expect(kick.status == Exit.ok, "\(kick)")

            let viewer = try await f.cli(["credentials", "create", "looker", "--role", "viewer", "-o", "json"])
                .json(CredentialInfo.self)
            let viewerToken = try #require(viewer.token)
            let refused = try await f.cli(["kick", "web-1"], token: viewerToken)
            #expect(refused.status == Exit.auth, "403 for a viewer: \(refused)")
            #expect(refused.stderr.contains("viewer"), "\(refused)")

            let audit = try await f.cli(["audit", "--credential", "ops-alice", "-o", "json"], token: viewerToken)
            #expect(audit.status == Exit.ok, "\(audit)")
            let entries = try audit.json(AuditList.self).entries
            let web1 = try f.id("web-1")
            #expect(entries.map(\.action) == ["kick"] && entries.first?.nodeId == web1)
            let table = try await f.cli(["audit", "--action", "credential-create"])
            #expect(table.stdout.contains("bootstrap") && table.stdout.contains("credential-create"), "\(table)")
            // docs/cli.md's signed form: `--since -24h` is a value, not an unknown option.
            let signed = try await f.cli(["audit", "--action", "credential-create", "--since", "-24h"])
            #expect(signed.status == Exit.ok && signed.stdout.contains("credential-create"), "\(signed)")

            // A change to a selector's nodes is one record: how many nodes, which selector; by
            // node, the node's own record with the generation it got.
            let applied = try await f.cli(["config", "apply", "--selector", "env=prod", "--thres-coef", "44"], token: token)
            #expect(applied.status == Exit.ok, "\(applied)")
            let fleetTable = try await f.cli(["audit", "--action", "apply"])
            #expect(fleetTable.stdout.contains("2 nodes") && fleetTable.stdout.contains("selector env=prod"), "\(fleetTable)")
            let byNode = try await f.cli(["audit", "--node", "web-2", "--action", "apply", "-o", "json"])
            let record = try #require(try byNode.json(AuditList.self).entries.first)
            let web2 = try f.id("web-2")
            #expect(record.nodeId == web2 && record.nodeCount == 2 && record.credential == "ops-alice", "\(byNode)")
            #expect(record.generation != nil && record.after?.contains("44") == true, "\(byNode)")
            let nodes = try await f.cli(["audit", "--record", String(record.id)])
            let db1 = try f.id("db-1")
            #expect(nodes.status == Exit.ok && nodes.stdout.contains(web2) && nodes.stdout.contains(web1), "\(nodes)")
            #expect(!nodes.stdout.contains(db1), "\(nodes)")
            // A page of one node names the next page, of one node too; following it gives the other.
            let firstPage = try await f.cli(["audit", "--record", String(record.id), "--limit", "1"])
            let (low, high) = (min(web1, web2), max(web1, web2))
            let hint = "ksmfleet audit --record \(record.id) --after-node \(low) --limit 1"
            #expect(firstPage.stdout.contains(low) && firstPage.stdout.contains(hint), "\(firstPage)")
            let nextPage = try await f.cli(["audit", "--record", String(record.id), "--after-node", low, "--limit", "1"])
            #expect(nextPage.stdout.contains(high) && !nextPage.stdout.contains(low), "\(nextPage)")
            let noRecord = try await f.cli(["audit", "--after-node", web2])
            #expect(noRecord.status == Exit.usage, "\(noRecord)")

            let list = try await f.cli(["credentials", "list"])
            #expect(list.stdout.contains("ops-alice") && !list.stdout.contains(token), "\(list)")
            let revoked = try await f.cli(["credentials", "revoke", info.id])
            #expect(revoked.status == Exit.ok, "\(revoked)")
            let after = try await f.cli(["credentials", "whoami"], token: token)
            #expect(after.status == Exit.auth, "\(after)")
            let bad = try await f.cli(["credentials", "create", "no spaces", "--role", "viewer"])
            #expect(bad.status == Exit.usage, "\(bad)")
            let past = try await f.cli(["credentials", "create", "late", "--role", "viewer", "--expires", "2020-01-01"])
            #expect(past.status == Exit.usage && past.stderr.contains("in the past"), "\(past)")
            let unknown = try await f.cli(["credentials", "revoke", "c-no-such"])
            #expect(unknown.status == Exit.refused && unknown.stderr.contains("no credential has the id"), "\(unknown)")
        }
    }
}
