import FleetAPI
import FleetClient
import FleetTestSupport
import TestSupport
import Foundation
import GRDB
import KSMCore
import Testing

/// Hostile text from agents (node names, phase reasons) and admins (labels), and from the
/// query string, is shown as text on every dashboard page: never as markup, never as template.
@Suite struct DashboardEscapingTests {
    static let script = "<script>alert(1)</script>"
    static let image = "\"><img src=x onerror=alert(1)>"
    static let template = "{{x}}{{{y}}}"
    static let name = script + image + template

    /// The markup that must never appear unescaped.
    static let raw = ["<script>alert", "<img src=x", "\"><img", "<img/src"]

    /// `body` shows `name` escaped and never any of the raw markup.
    static func expectEscaped(
        _ body: String, shows text: String = name, page: String, sourceLocation: SourceLocation = #_sourceLocation
    ) {
        for markup in raw {
            #expect(!body.contains(markup), "\(page) contains raw '\(markup)'", sourceLocation: sourceLocation)
        }
        let escaped = text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
            .replacingOccurrences(of: "'", with: "&#39;")
        #expect(
            body.contains(escaped), "\(page) does not show the hostile text as text", sourceLocation: sourceLocation)
    }

    @Test func hostileNamesAndLabelsRenderAsTextOnEveryPage() async throws {
        let harness = try await Harness.start()
        do {
            // Registration refuses such a name now (NodeIdentityTests); a database from before
            // that check may hold one, so it is written directly.
            let (reg, node) = try await harness.register(hostname: "hostile")
            if TestStore.isPostgres {
                try TestStore.psql(
                    try TestStore.location(for: harness.server.dataDir), "UPDATE nodes SET name = :'name' WHERE id = :'id'",
                    variables: ["name": Self.name, "id": reg.nodeId])
            } else {
                let queue = try DatabaseQueue(path: harness.server.dataDir.appending(path: "ksmfleet.sqlite").path)
                try await queue.write { db in
                    try db.execute(sql: "UPDATE nodes SET name = ? WHERE id = ?", arguments: [Self.name, reg.nodeId])
                }
            }
            let labelKey = "k\"><img/src/onerror>"
            try await harness.admin.setLabels(reg.nodeId, [labelKey: Self.script + Self.image, "rack": Self.template])
            let now = Date()
            var samples: [StatusSample] = []
            for seq in Int64(1)...3 {
                var s = Fixtures.sample(seq, takenAt: now.addingTimeInterval(Double(seq - 4) * 60))
                s.phaseReason = Self.name
                samples.append(s)
            }
            _ = try await node.pushSamples(nodeId: reg.nodeId, SampleBatch(samples: samples))

            var browser = try DashboardBrowser(harness.server)
            try await browser.signIn(adminToken: harness.server.adminToken)

            // A hostile `next` is not a path on this origin (SafeRedirect): it never reaches the
            // page, whose form carries "/" instead.
            let login = try await browser.client.send(method: "GET", path: "/login", query: [("next", "/" + Self.name)])
            for markup in Self.raw { #expect(!login.text.contains(markup), "login contains raw '\(markup)'") }
            #expect(login.text.contains("name=\"next\" value=\"/\""))

            let overview = try await browser.get("/")
            #expect(overview.status == 200)
            Self.expectEscaped(overview.text, page: "overview")

            let nodes = try await browser.get("/nodes")
            #expect(nodes.status == 200)
            Self.expectEscaped(nodes.text, page: "nodes")
            Self.expectEscaped(nodes.text, shows: "\(labelKey)=\(Self.script + Self.image)", page: "nodes (labels)")
            let filtered = try await browser.get("/nodes", query: [("label", "rack=" + Self.template)])
            Self.expectEscaped(filtered.text, page: "nodes filtered by a hostile label")
            let badFilter = try await browser.get("/nodes", query: [("label", Self.name)])
            Self.expectEscaped(badFilter.text, page: "nodes with a hostile filter")

            let page = try await browser.get("/nodes/" + reg.nodeId)
            #expect(page.status == 200)
            Self.expectEscaped(page.text, page: "node")
            Self.expectEscaped(page.text, shows: "\(labelKey)=\(Self.script + Self.image)", page: "node (labels)")
            // (A path segment cannot hold a '/' or a space.)
            let missingName = "<script>alert(1)\"><b>{{x}}"
            let missing = try await browser.get("/nodes/" + missingName)
            #expect(missing.status == 404)
            Self.expectEscaped(missing.text, shows: missingName, page: "node not found")

            // A refused config form shows the values as typed, escaped.
            let refused = try await browser.post(
                "/nodes/\(reg.nodeId)/config",
                [
                    ("run", Self.name), ("mode", "customized"), ("thresCoef", Self.name), ("mergeAcrossNodes", ""),
                    ("boost", Self.name), ("decay", "0"), ("minPages", "100"), ("maxPages", "100"), ("sleepMsec", "20"),
                ])
            #expect(refused.status == 422)
            Self.expectEscaped(refused.text, page: "node with a refused form")

            let byNode = try await browser.get("/reports", query: [("since", "-24h")])
            #expect(byNode.status == 200)
            Self.expectEscaped(byNode.text, page: "report by node")
            let byLabel = try await browser.get(
                "/reports", query: [("since", "-24h"), ("by", "label"), ("label", labelKey)])
            Self.expectEscaped(byLabel.text, shows: "\(labelKey)=\(Self.script + Self.image)", page: "report by label")
            let noLabel = try await browser.get("/reports", query: [("by", "label"), ("label", Self.name)])
            Self.expectEscaped(noLabel.text, page: "report by a hostile label key")
            let badTime = try await browser.get("/reports", query: [("since", Self.name)])
            Self.expectEscaped(badTime.text, page: "report with a hostile period")
        } catch {
            await harness.finish()
            throw error
        }
        await harness.finish()
    }
}
