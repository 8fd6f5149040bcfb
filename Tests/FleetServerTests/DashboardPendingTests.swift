import FleetAPI
import Foundation
import Testing

@testable import FleetServer

/// The nodes page's pending registrations panel: both hosts' details, Accept/Reject forms with
/// the session's CSRF token, hostile text escaped.
@Suite struct DashboardPendingTests {
    @Test func pendingRegistrationsShowBothHostsAndTheirButtons() throws {
        let now = Date(timeIntervalSince1970: 1_790_000_000)
        let pending = PendingRegistration(
            id: "p-0123456789ab", machineId: "m-1", reason: "conflict", explanation: "node n-1 already has it",
            status: "pending",
            newcomer: RegistrationHost(
                hostname: "<b>beta</b>", kernel: "6.9", agentVersion: "1.2", source: "10.0.0.9", lastSeenAt: now),
            holder: RegistrationHost(
                nodeId: "n-1", hostname: "alpha", kernel: "6.8", agentVersion: "1.1", source: "10.0.0.1", lastSeenAt: now),
            firstSeenAt: now, lastSeenAt: now, attempts: 3, decidedAt: nil)
        var page = NodesPage(nodes: [], filters: .init(), now: now)
        #expect(!page.hasPending)
        page.pending = NodesPage.pendingRows([pending], now: now)
        #expect(page.hasPending)
        let html = try DashboardTemplates().render(
            "nodes", frame: PageFrame(title: "Nodes", section: .nodes, csrf: "c0ffee", nonce: "n", credential: .bootstrap),
            page: page)
        #expect(html.contains("id=\"pending-registrations\""))
        #expect(html.contains("<form method=\"post\" action=\"/registrations/p-0123456789ab/accept\""))
        #expect(html.contains("<form method=\"post\" action=\"/registrations/p-0123456789ab/reject\""))
        #expect(html.contains("<input type=\"hidden\" name=\"csrf\" value=\"c0ffee\"><button class=\"secondary\" type=\"submit\">Accept</button>"))
        #expect(html.contains("10.0.0.9") && html.contains("n-1 alpha") && html.contains("kernel 6.9"))
        #expect(html.contains("&lt;b&gt;beta&lt;/b&gt;") && !html.contains("<b>beta</b>"))
    }
}
