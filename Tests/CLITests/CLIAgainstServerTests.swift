import FleetAPI
import FleetClient
import FleetTestSupport
import Foundation
import KSMCore
import Testing

/// The built `ksmfleet` binary as a subprocess against a real server on loopback with
/// registered fake nodes: every command, its JSON parsed and checked, and its exit codes.
@Suite("ksmfleet against a real server")
struct CLIAgainstServerTests {
    @Test("status and nodes list: counts, saved memory, ksmd CPU, phases with their reasons, filters")
    func statusAndList() async throws {
        try await Fleet.with { f in
            let status = try await f.cli(["status", "--output", "json"])
            #expect(status.status == Exit.ok, "\(status)")
            let s = try status.object()
            #expect(s["nodes"] as? Int == 3)
            #expect(s["online"] as? Int == 3)
            #expect(s["offline"] as? Int == 0)
            #expect(s["savedBytes"] as? Int == Int((25_600 + 51_200) * 4096))
            #expect(s["ksmdCPUPercent"] as? Double == 5)
            #expect((s["phases"] as? [String: Int]) == ["Running": 2, "Stopped": 1])

            let table = try await f.cli(["status"])
            #expect(table.status == Exit.ok, "\(table)")
            #expect(table.stdout.contains("3 (3 online, 0 agent stopped, 0 offline)"), "\(table)")
            #expect(table.stdout.contains("300 MiB"), "\(table)")
            #expect(table.stdout.contains(Fleet.stoppedReason), "the phase reason is shown: \(table)")
            #expect(table.stdout.contains("apply failed: \(Fleet.applyError)"), "the apply error is shown: \(table)")

            let all = try await f.cli(["nodes", "list", "-o", "json"]).json(NodeList.self)
            #expect(Set(all.nodes.map(\.name)) == ["web-1", "web-2", "db-1"])
            let prod = try await f.cli(["nodes", "list", "--label", "env=prod", "-o", "json"]).json(NodeList.self)
            #expect(Set(prod.nodes.map(\.name)) == ["web-1", "web-2"])
            // Read a page at a time (of one node here): the same list, the same summary.
            let paged = try await f.cli(["nodes", "list", "--page-size", "1", "-o", "json"]).json(NodeList.self)
            #expect(paged.nodes.map(\.name) == all.nodes.map(\.name) && paged.summary == all.summary && paged.next == nil)
            let pagedProd = try await f.cli(["nodes", "list", "--label", "env=prod", "--page-size", "1", "-o", "json"])
                .json(NodeList.self)
            #expect(pagedProd.nodes.map(\.name) == prod.nodes.map(\.name))
            #expect(try await f.cli(["nodes", "list", "--page-size", "0"]).status == Exit.usage)
            let both = try await f.cli(["nodes", "list", "--label", "env=prod", "--label", "role=db", "-o", "json"])
                .json(NodeList.self)
            #expect(both.nodes.isEmpty)
            // `--selector`, as kick and config apply name it: the same filter.
            let selected = try await f.cli(["nodes", "list", "--selector", "env=prod,role=web", "-o", "json"])
                .json(NodeList.self)
            #expect(selected.nodes.map(\.name).sorted() == ["web-1", "web-2"])
            let stopped = try await f.cli(["nodes", "list", "--phase", "Stopped", "-o", "json"]).json(NodeList.self)
            #expect(stopped.nodes.map(\.name) == ["db-1"])
            let offline = try await f.cli(["nodes", "list", "--offline", "-o", "json"]).json(NodeList.self)
            #expect(offline.nodes.isEmpty)
            let drift = try await f.cli(["nodes", "list", "--drift", "-o", "json"]).json(NodeList.self)
            #expect(drift.nodes.isEmpty)

            let listTable = try await f.cli(["nodes", "list"])
            #expect(listTable.status == Exit.ok)
            let lines = listTable.stdout.split(separator: "\n")
            #expect(lines.count == 4, "\(listTable)")
            #expect(lines.first?.hasPrefix("NAME") == true)
            // Aligned: every row starts its ID column where the header's ID starts.
            let idColumn =
                lines.first.map { String($0) }?.range(of: "ID")?.lowerBound.utf16Offset(in: String(lines[0])) ?? -1
            for line in lines.dropFirst() {
                let text = String(line)
                let id = try f.id(String(text.prefix(while: { $0 != " " })))
                #expect(text.range(of: id)?.lowerBound.utf16Offset(in: text) == idColumn, "\(listTable)")
            }
        }
    }

    @Test("offline nodes: nodes list --offline and status say so, with the last time seen")
    func offline() async throws {
        try await Fleet.with(offlineAfterSeconds: 1) { f in
            // Functional deadline: the nodes stop reporting, so they go offline after 1 s.
            let clock = ContinuousClock()
            let deadline = clock.now + .seconds(30)
            while try await f.admin.listNodes().nodes.contains(where: \.online), clock.now < deadline {
                try await Task.sleep(for: .milliseconds(200))
            }
            let offline = try await f.cli(["nodes", "list", "--offline", "-o", "json"]).json(NodeList.self)
            #expect(Set(offline.nodes.map(\.name)) == ["web-1", "web-2", "db-1"])
            let status = try await f.cli(["status", "-o", "json"])
            let s = try status.object()
            #expect(s["offline"] as? Int == 3, "\(status)")
            #expect(s["savedBytes"] as? Int == 0, "only online nodes count: \(status)")
            #expect((s["attention"] as? [Any])?.count == 3, "\(status)")
            let table = try await f.cli(["status"])
            #expect(table.stdout.contains("offline, last reported"), "\(table)")
            #expect(table.stdout.contains("Not reporting:"), "offline nodes' figures are shown apart: \(table)")
        }
    }

    /// A node that registered and sent nothing yet: never reported, seen at its registration,
    /// not "last reported", and no "Not reporting" line of figures it never had.
    @Test("status: a node that never reported says so, seen at its registration")
    func neverReported() async throws {
        try await Fleet.with { f in
            let enroll = try await f.server.makeEnrollmentToken()
            let anonymous = try FleetClient(ClientOptions(serverURL: f.server.baseURL))
            _ = try await anonymous.register(
                RegisterRequest(
                    hostname: "fresh-1", machineId: "machine-fresh-\(UUID().uuidString)", kernel: "6.8.0-test",
                    memTotalBytes: 16 << 30, numaNodes: 1, ksmFeatures: ["run"], agentVersion: "0.1.0-test",
                    pageSize: Fleet.pageSize),
                enrollmentToken: enroll)
            let table = try await f.cli(["status"])
            #expect(table.status == 0, "\(table)")
            #expect(table.stdout.contains("1 never reported)"), "\(table)")
            #expect(table.stdout.contains("never reported, registered"), "\(table)")
            #expect(!table.stdout.contains("never reported, last reported"), "\(table)")
            #expect(!table.stdout.contains("Not reporting:"), "a line of figures it never had: \(table)")
        }
    }

    @Test("nodes show by name and by id, and nodes label set/remove")
    func showAndLabel() async throws {
        try await Fleet.with { f in
            let web1 = try f.id("web-1")
            let byName = try await f.cli(["nodes", "show", "web-1", "-o", "json"]).json(NodeInfo.self)
            #expect(byName.id == web1)
            #expect(byName.lastSample?.seq == 3)
            let byId = try await f.cli(["nodes", "show", web1, "-o", "json"]).json(NodeInfo.self)
            #expect(byId.name == "web-1")

            let db = try await f.cli(["nodes", "show", "db-1"])
            #expect(db.status == Exit.ok, "\(db)")
            for text in [
                Fleet.stoppedReason, "Apply error:  \(Fleet.applyError)", "6.8.0-test", "0.1.0-test", "16 GiB",
                "pages_sharing", "Drift:", "Last seen:", "State:",
            ] {
                #expect(db.stdout.contains(text), "\(text) in \(db)")
            }

            let missing = try await f.cli(["nodes", "show", "nope"])
            #expect(missing.status == Exit.refused, "\(missing)")
            #expect(missing.stderr.contains("nodes list"), "\(missing)")

            let labelled = try await f.cli(["nodes", "label", "web-1", "rack=a12", "env-", "-o", "json"])
            #expect(labelled.status == Exit.ok, "\(labelled)")
            #expect(try labelled.json(NodeInfo.self).labels == ["role": "web", "rack": "a12"])
            #expect(try await f.admin.node(web1).labels == ["role": "web", "rack": "a12"])
        }
    }

    @Test("config get/set: PATCH with the values given, refusal of values the node's config makes invalid, drift shown")
    func configGetSet() async throws {
        try await Fleet.with { f in
            let before = try await f.cli(["config", "get", "db-1", "-o", "json"]).json(NodeConfig.self)
            #expect(before == (try await f.config("db-1")))

            let set = try await f.cli(["config", "set", "db-1", "--thres-coef", "35", "--run", "run", "-o", "json"])
            #expect(set.status == Exit.ok, "\(set)")
            let after = try set.json(NodeConfig.self)
            #expect(after.config.thresCoef == 35)
            #expect(after.config.run == .run)
            #expect(after.generation > before.generation)
            #expect(try await f.config("db-1") == after)

            // A preset mode with its own parameters: refused before the PATCH, nothing changes.
            let preset = try await f.cli(["config", "set", "db-1", "--boost", "10"])
            #expect(preset.status == Exit.usage, "\(preset)")
            #expect(preset.stderr.contains("preset"), "\(preset)")
            #expect(try await f.config("db-1").generation == after.generation)

            let table = try await f.cli(["config", "set", "db-1", "--mode", "customized", "--max-pages", "3000"])
            #expect(table.status == Exit.ok, "\(table)")
            #expect(table.stdout.contains("mode: standard → customized"), "\(table)")
            #expect(table.stdout.contains("parameters.maxPages: 100 → 3000"), "\(table)")

            // The node has not applied the new generations: drift, with the reason.
            let drift = try await f.cli(["nodes", "list", "--drift", "-o", "json"]).json(NodeList.self)
            #expect(drift.nodes.map(\.name) == ["db-1"])
            #expect(drift.nodes.first?.driftReason != nil)
            let status = try await f.cli(["status"])
            #expect(status.stdout.contains("Needs attention"), "\(status)")
            #expect(status.stdout.contains("db-1"), "\(status)")

            let unknown = try await f.cli(["config", "set", "nope", "--thres-coef", "30"])
            #expect(unknown.status == Exit.refused, "\(unknown)")
        }
    }

    @Test("config apply --selector changes exactly the selected nodes; --dry-run changes nothing")
    func applyBySelector() async throws {
        try await Fleet.with { f in
            var before: [String: NodeConfig] = [:]
            for name in ["web-1", "web-2", "db-1"] { before[name] = try await f.config(name) }

            let dry = try await f.cli([
                "config", "apply", "--selector", "env=prod", "--mode", "customized", "--max-pages", "5000", "--dry-run",
                "-o", "json",
            ])
            #expect(dry.status == Exit.ok, "\(dry)")
            let dryResult = try dry.json(ApplyResponse.self)
            #expect(dryResult.dryRun)
            #expect(Set(dryResult.results.map(\.name)) == ["web-1", "web-2"])
            #expect(dryResult.results.allSatisfy { $0.status == "would_change" && !$0.changes.isEmpty })
            for name in ["web-1", "web-2", "db-1"] { #expect(try await f.config(name) == before[name]) }

            let dryTable = try await f.cli([
                "config", "apply", "--selector", "env=prod", "--mode", "customized", "--max-pages", "5000", "--dry-run",
            ])
            #expect(
                dryTable.stdout.contains("would_change") && dryTable.stdout.contains("nothing was changed"),
                "\(dryTable)")

            let real = try await f.cli([
                "config", "apply", "--selector", "env=prod", "--mode", "customized", "--max-pages", "5000", "-o",
                "json",
            ])
            #expect(real.status == Exit.ok, "\(real)")
            let result = try real.json(ApplyResponse.self)
            #expect(!result.dryRun)
            #expect(Set(result.results.map(\.nodeId)) == [try f.id("web-1"), try f.id("web-2")])
            #expect(result.results.allSatisfy { $0.status == "changed" })
            for name in ["web-1", "web-2"] {
                let c = try await f.config(name)
                #expect(c.config.mode == .customized)
                #expect(c.config.parameters?.maxPages == 5000)
                #expect(c.generation > (before[name]?.generation ?? .max))
            }
            #expect(try await f.config("db-1") == before["db-1"])
        }
    }

    @Test("config apply from a JSON file to a node list (YAML refused); a failing node gives exit 65 with the reason")
    func applyFileAndFailures() async throws {
        try await Fleet.with { f in
            let dir = makeTemporaryDirectory(prefix: "ksmfleet-cli-apply")
            defer { try? FileManager.default.removeItem(at: dir) }
            let yaml = dir.appending(path: "change.yaml")
            try "# slower scanning\nthresCoef: 40\nrun: run\n".write(to: yaml, atomically: true, encoding: .utf8)
            let notJSON = try await f.cli(["config", "apply", "db-1", "--file", yaml.path])
            #expect(notJSON.status == Exit.usage, "\(notJSON)")
            #expect(notJSON.stderr.contains("YAML") && notJSON.stderr.contains("JSON"), "\(notJSON)")
            let change = dir.appending(path: "change.json")
            try #"{"thresCoef": 40, "run": "run"}"#.write(to: change, atomically: true, encoding: .utf8)
            let r = try await f.cli(["config", "apply", "db-1", "web-2", "--file", change.path, "-o", "json"])
            #expect(r.status == Exit.ok, "\(r)")
            #expect(try r.json(ApplyResponse.self).results.count == 2)
            #expect(try await f.config("db-1").config.thresCoef == 40)
            #expect(try await f.config("web-2").config.thresCoef == 40)
            #expect(try await f.config("web-1").config.thresCoef == 20)

            let bad = dir.appending(path: "bad.json")
            try #"{"thresCoef": 30, "speed": "fast"}"#.write(to: bad, atomically: true, encoding: .utf8)
            let refused = try await f.cli(["config", "apply", "--all", "--file", bad.path])
            #expect(refused.status == Exit.usage, "\(refused)")
            #expect(refused.stderr.contains("speed"), "\(refused)")

            let partly = try await f.cli(["config", "apply", "web-1", "ghost", "--thres-coef", "25"])
            #expect(partly.status == Exit.refused, "\(partly)")
            #expect(partly.stdout.contains("not_found") && partly.stdout.contains("changed"), "\(partly)")
            #expect(try await f.config("web-1").config.thresCoef == 25)
        }
    }

    @Test("kick by node and by selector raises the kick counter")
    func kick() async throws {
        try await Fleet.with { f in
            let set = try await f.cli(["config", "apply", "--selector", "role=web", "--mode", "throttle"])
            #expect(set.status == Exit.ok, "\(set)")
            let one = try await f.cli(["kick", "web-1", "-o", "json"])
            #expect(one.status == Exit.ok, "\(one)")
            let results = try #require(try one.object()["results"] as? [[String: Any]])
            #expect(results.count == 1)
            #expect(results.first?["kickCounter"] as? Int == 1)
            #expect(results.first?["mode"] as? String == "throttle")
            let many = try await f.cli(["kick", "--selector", "role=web"])
            #expect(many.status == Exit.ok, "\(many)")
            #expect(try await f.config("web-1").kickCounter == 2)
            #expect(try await f.config("web-2").kickCounter == 1)
            #expect(try await f.config("db-1").kickCounter == 0)
            // Not in throttle mode: the kick is recorded, and the CLI says it does nothing there.
            let standard = try await f.cli(["kick", "db-1"])
            #expect(standard.status == Exit.ok, "\(standard)")
            #expect(standard.stdout.contains("no effect while mode is standard"), "\(standard)")
        }
    }

    @Test("nodes delete refuses without --yes off a terminal, deletes with it")
    func delete() async throws {
        try await Fleet.with { f in
            let refused = try await f.cli(["nodes", "delete", "db-1"])
            #expect(refused.status == Exit.usage, "\(refused)")
            #expect(try await f.admin.listNodes().nodes.count == 3)
            let deleted = try await f.cli(["nodes", "delete", "db-1", "--yes", "--purge-history", "-o", "json"])
            #expect(deleted.status == Exit.ok, "\(deleted)")
            #expect(try deleted.object()["deleted"] as? String == (try f.id("db-1")))
            #expect(try await f.admin.listNodes().nodes.map(\.name).sorted() == ["web-1", "web-2"])
            let again = try await f.cli(["nodes", "delete", "db-1", "--yes"])
            #expect(again.status == Exit.refused, "\(again)")
        }
    }

    /// Needs util-linux's `script` for a pseudo-terminal (`make deps` installs it); without it the
    /// test is reported as skipped, not passed.
    @Test(
        "nodes delete asks on a terminal: n keeps the node, y deletes it",
        .enabled(if: CLI.canRunOnTerminal, "/usr/bin/script (util-linux) is not installed"))
    func deleteOnATerminal() async throws {
        try await Fleet.with { f in
            let auth = ["--server", f.server.baseURL, "--token", f.server.adminToken, "--timeout", "180"]
            let no = try await CLI.runOnTerminal(["nodes", "delete", "web-2"] + auth, input: "n\n")
            #expect(no.stdout.contains("Delete node web-2"), "\(no)")
            #expect(no.status == Exit.usage, "\(no)")
            #expect(try await f.admin.listNodes().nodes.map(\.name).sorted() == ["db-1", "web-1", "web-2"])
            let yes = try await CLI.runOnTerminal(["nodes", "delete", "web-2"] + auth, input: "y\n")
            #expect(yes.status == Exit.ok, "\(yes)")
            #expect(try await f.admin.listNodes().nodes.map(\.name).sorted() == ["db-1", "web-1"])
        }
    }

    @Test("tokens create/list/revoke; a revoked token no longer registers")
    func tokens() async throws {
        try await Fleet.with { f in
            let created = try await f.cli([
                "tokens", "create", "--expires", "7d", "--description", "rack a12", "-o", "json",
            ])
            #expect(created.status == Exit.ok, "\(created)")
            let info = try created.json(EnrollmentTokenInfo.self)
            let token = try #require(info.token)
            #expect(info.description == "rack a12")
            let expires = try #require(info.expiresAt)
            #expect(abs(expires.timeIntervalSinceNow - 7 * 86400) < 3600)

            let list = try await f.cli(["tokens", "list", "-o", "json"]).json(EnrollmentTokenList.self)
            #expect(list.tokens.contains { $0.id == info.id && $0.token == nil && $0.revokedAt == nil })
            let table = try await f.cli(["tokens", "list"])
            #expect(table.stdout.contains(info.id) && table.stdout.contains("active"), "\(table)")

            let revoked = try await f.cli(["tokens", "revoke", info.id])
            #expect(revoked.status == Exit.ok, "\(revoked)")
            let after = try await f.cli(["tokens", "list", "-o", "json"]).json(EnrollmentTokenList.self)
            #expect(after.tokens.first { $0.id == info.id }?.revokedAt != nil)

            let anonymous = try FleetClient(ClientOptions(serverURL: f.server.baseURL))
            await #expect(throws: ClientError.self) {
                _ = try await anonymous.register(
                    RegisterRequest(
                        hostname: "late", machineId: "late-\(UUID().uuidString)", kernel: "6.8", memTotalBytes: 1 << 30,
                        numaNodes: 1, ksmFeatures: [], agentVersion: "t"),
                    enrollmentToken: token)
            }
            let unknown = try await f.cli(["tokens", "revoke", "no-such-token"])
            #expect(unknown.status == Exit.refused, "\(unknown)")
            let past = try await f.cli(["tokens", "create", "--expires", "2020-01-01"])
            #expect(past.status == Exit.usage && past.stderr.contains("in the past"), "\(past)")
        }
    }

    @Test("a wrong token gives the auth exit code; a node token is not an admin token")
    func auth() async throws {
        try await Fleet.with { f in
            for args in [
                ["status"], ["nodes", "list"], ["config", "set", "web-1", "--thres-coef", "30"], ["tokens", "list"],
            ] {
                let r = try await f.cli(args, token: "wrong-token")
                #expect(r.status == Exit.auth, "\(args): \(r)")
                #expect(r.stderr.contains("KSMFLEET_TOKEN"), "\(r)")
                #expect(r.stderr.split(separator: "\n").count == 1, "\(r)")
            }
            #expect(try await f.config("web-1").config.thresCoef == 20)

            let nodeToken = try #require(f.nodeTokens["web-1"])
            let asNode = try await f.cli(["nodes", "list"], token: nodeToken)
            #expect(asNode.status == Exit.auth, "\(asNode)")
        }
    }

    @Test("a stale admin token (replaced when the server restarted with a new one) gives the auth exit code")
    func staleToken() async throws {
        let first = try await TestServer.start(adminToken: "old-admin-token-\(UUID().uuidString)")
        let ok = try await CLI.run([
            "status", "--server", first.baseURL, "--token", first.adminToken, "--timeout", "180",
        ])
        await first.stop()
        #expect(ok.status == Exit.ok, "\(ok)")
        let second = try await TestServer.start(
            dataDir: first.dataDir, adminToken: "new-admin-token-\(UUID().uuidString)")
        defer { second.removeDataDir() }
        let stale = try await CLI.run([
            "status", "--server", second.baseURL, "--token", first.adminToken, "--timeout", "180",
        ])
        let fresh = try await CLI.run([
            "status", "--server", second.baseURL, "--token", second.adminToken, "--timeout", "180",
        ])
        await second.stop()
        #expect(stale.status == Exit.auth, "\(stale)")
        #expect(stale.stderr.contains("authentication failed"), "\(stale)")
        #expect(fresh.status == Exit.ok, "\(fresh)")
    }

    @Test("history: the node's samples over a period")
    func history() async throws {
        try await Fleet.with { f in
            let r = try await f.cli(["history", "web-2", "--since", "1h", "--resolution", "raw", "-o", "json"])
            #expect(r.status == Exit.ok, "\(r)")
            let h = try r.json(HistoryResponse.self)
            #expect(h.nodeId == (try f.id("web-2")))
            #expect(h.samples?.count == 3)
            let saved = h.samples?.map(\.savedBytes) ?? []
            #expect(saved == [Int64](repeating: 51_200 * 4096, count: 3), "\(r)")
            let table = try await f.cli(["history", "web-2", "--since", "1h", "--resolution", "raw"])
            #expect(table.status == Exit.ok, "\(table)")
            #expect(table.stdout.contains("200 MiB"), "\(table)")
            let hourly = try await f.cli(["history", "web-2", "--since", "-2d", "--until", "now", "-o", "json"])
            #expect(hourly.status == Exit.ok, "\(hourly)")
            #expect(try hourly.json(HistoryResponse.self).resolution == .hour)
            // A node that registered a minute ago and missed no sample is covered whole in its
            // hours (as its report says), not 60 s of 3,600.
            let hourTable = try await f.cli(["history", "web-2", "--since", "-2d", "--until", "now"])
            let rows = hourTable.stdout.split(separator: "\n").filter { $0.hasPrefix("20") }
            #expect(!rows.isEmpty && rows.allSatisfy { $0.hasSuffix("100 %") }, "\(hourTable)")
        }
    }

    @Test("report savings as JSON, CSV and a table, by node and by label")
    func savingsReport() async throws {
        try await Fleet.with { f in
            let json = try await f.cli(["report", "savings", "--since", "1h", "--by", "node", "-o", "json"])
            #expect(json.status == Exit.ok, "\(json)")
            let report = try json.json(SavingsReport.self)
            #expect(report.by == .node)
            #expect(Set(report.rows.compactMap(\.name)) == ["web-1", "web-2", "db-1"])

            let csv = try await f.cli(["report", "savings", "--since", "1h", "--format", "csv"])
            #expect(csv.status == Exit.ok, "\(csv)")
            let lines = csv.stdout.split(separator: "\n")
            #expect(lines.first.map(String.init) == SavingsReport.csvHeader)
            #expect(lines.count == 5, "header, 3 nodes, fleet: \(csv)")

            let byLabel = try await f.cli([
                "report", "savings", "--since", "1h", "--by", "label", "--label", "env", "-o", "json",
            ])
            #expect(byLabel.status == Exit.ok, "\(byLabel)")
            #expect(Set(try byLabel.json(SavingsReport.self).rows.map(\.key)) == ["prod", "staging"])

            let table = try await f.cli(["report", "savings", "--since", "1h"])
            #expect(table.status == Exit.ok, "\(table)")
            #expect(table.stdout.contains("TOTAL") && table.stdout.contains("web-2"), "\(table)")
        }
    }
}
