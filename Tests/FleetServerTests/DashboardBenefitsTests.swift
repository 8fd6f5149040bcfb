import FleetAPI
import FleetClient
import FleetTestSupport
import Foundation
import KSMCore
import Testing

/// The node page's "Why KSM saves little" and "Who benefits" panels.
@Suite struct DashboardBenefitsTests {
    /// A guest name comes from a process's command line: anyone on the node can choose it.
    static let hostile = "<script>alert(1)</script>"

    @Test func theNodePageShowsTheGroupsEscapedAndTheFindings() async throws {
        let h = try await Harness.start()
        defer { Task { await h.finish() } }
        let (reg, node) = try await h.register()
        var s = Fixtures.sample(1, takenAt: Date().addingTimeInterval(-30))
        s.status.pagesSharing = 0
        s.status.pagesShared = 0
        s.status.fullScans = 4
        s.processes = ProcessReport(
            perProcessStats: true, processesScanned: 90, mergeableProcesses: 1, mergingProcesses: 1, rmapItems: 4096,
            mergingPages: 2048, anonHugePagesKB: 3_000_000, anonymousKB: 4_000_000, transparentHugePages: "always",
            scanMillis: 1.5,
            groups: [
                ProcessGroupSavings(
                    kind: .vm, name: Self.hostile, processes: 1, mergingPages: 2048, zeroPages: 0, rmapItems: 4096,
                    profitBytes: 8_000_000)
            ])
        _ = try await node.pushSamples(nodeId: reg.nodeId, SampleBatch(samples: [s]))
        var browser = try DashboardBrowser(h.server)
        try await browser.signIn(adminToken: h.server.adminToken)
        let page = try await browser.get("/nodes/" + reg.nodeId)
        #expect(page.status == 200)
        let html = page.text
        #expect(html.contains("id=\"who-benefits\""))
        #expect(html.contains("1 of 90 processes have mergeable memory, 1 has merged pages"), "\(html)")
        #expect(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"))
        #expect(!html.contains(Self.hostile))
        #expect(html.contains("Why KSM saves little"))
        #expect(html.contains("id=\"finding-transparent_huge_pages\""))
        #expect(html.contains("transparent_hugepage/enabled is [always]"))

        // The savings report page lists who benefited over its period, escaped too.
        let report = try await browser.get("/reports", query: [("since", "-24h"), ("until", "now")])
        #expect(report.status == 200)
        #expect(report.text.contains("id=\"process-report-table\""), "\(report.text)")
        #expect(report.text.contains("&lt;script&gt;alert(1)&lt;/script&gt;"))
        #expect(!report.text.contains(Self.hostile))
        // Its average ksmd CPU is the API's cores in % of one CPU, written as the CLI writes it.
        let api = try await h.admin.savingsReport(since: Date().addingTimeInterval(-86400), until: Date())
        let cores = try #require(api.rows.first { $0.key == reg.nodeId }?.avgKsmdCPUCores)
        #expect(report.text.contains("<td class=\"num\">\(Display.percent(cores * 100))</td>"), "\(cores)")
        #expect(report.text.contains("Avg ksmd CPU"))

        // A node without a report says why there is no table.
        let (other, _) = try await h.register(hostname: "node-b")
        let empty = try await browser.get("/nodes/" + other.nodeId)
        #expect(empty.text.contains("No process report yet"))
        #expect(!empty.text.contains("Why KSM saves little"))
    }
}
