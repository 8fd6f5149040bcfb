import FleetAPI
import Foundation
import Hummingbird
import KSMCore

/// The fleet overview (`overview.mustache`): cards with the fleet's totals, the saved-memory
/// chart over 7 days and the nodes whose ksmd used the most CPU in the last 24 hours.
struct OverviewPage: Sendable {
    /// A row of the busiest-ksmd table.
    struct TopNode: Sendable, Equatable {
        /// Nil for a deleted node: it has no page (the reports page marks it likewise).
        var href: String?
        var name: String
        var deleted: Bool
        var cpu: String
        var saved: String
        var efficiency: String
    }

    var savedNow: String
    var savedNowSub: String
    var saved24h: String
    var saved24hSub: String
    var saved30d: String
    var saved30dSub: String
    var cpuNow: String
    var cpuNowSub: String
    var online: Int
    /// Silent past the offline threshold without a goodbye (`FleetNow.offline`).
    var offline: Int
    var agentStopped: Int
    var neverReported: Int
    var anyNeverReported: Bool
    var anyAgentStopped: Bool
    var registered: Int
    var drift: Int
    var anyDrift: Bool
    /// SVG, built and escaped by `Charts`.
    var savedChart: String
    /// SVG, built and escaped by `Charts`.
    var topChart: String
    var top: [TopNode]

    /// The page from the nodes, the 24-hour and 30-day savings reports by node, and the fleet's
    /// hourly series since `seriesFrom`.
    init(
        nodes: [NodeInfo], last24h r24: SavingsReport, last30d r30: SavingsReport,
        series: [(start: Date, savedBytes: Double, cpuPercent: Double, nodes: Int)], seriesFrom from: Date, now: Date
    ) {
        // The same summary as GET /nodes, `ksmfleet status` and /metrics (FleetNow).
        let fleet = FleetNow.of(nodes)
        let silent = fleet.agentStopped + fleet.offline
        savedNow = HTML.bytes(fleet.savedBytes)
        savedNowSub =
            "\(fleet.online) online node\(fleet.online == 1 ? "" : "s") reporting"
            + (silent == 0
                ? ""
                : " · not counted: \(silent) not reporting (\(fleet.agentStopped) agent stopped, \(fleet.offline) offline),"
                    + " \(HTML.bytes(fleet.lastKnownSavedBytesNotReporting)) at their last report")
        saved24h = HTML.bytes(r24.total.avgSavedBytes)
        saved24hSub =
            "\(HTML.num(r24.total.savedGiBHours)) GiB-hours · coverage \(HTML.fraction(r24.total.coverage))"
        saved30d = HTML.bytes(r30.total.avgSavedBytes)
        saved30dSub =
            "\(HTML.num(r30.total.savedGiBHours)) GiB-hours · coverage \(HTML.fraction(r30.total.coverage))"
        cpuNow = HTML.percent(fleet.ksmdCPUPercent)
        cpuNowSub = "of one CPU, summed · 24 h: \(HTML.num(r24.total.ksmdCPUHours)) CPU-h"
        self.online = fleet.online
        offline = fleet.offline
        agentStopped = fleet.agentStopped
        neverReported = fleet.neverReported
        anyNeverReported = fleet.neverReported > 0
        anyAgentStopped = fleet.agentStopped > 0
        registered = nodes.count
        drift = nodes.filter(\.drift).count
        anyDrift = drift > 0
        savedChart = Charts.line(
            id: "chart-fleet-saved", title: "Fleet memory saved, last 7 days (hourly)",
            points: series.map { .init(t: $0.start.timeIntervalSince1970, v: $0.savedBytes) }, gaps: [],
            from: from.timeIntervalSince1970, to: now.timeIntervalSince1970, maxStep: 1.5 * 3600,
            unit: { HTML.bytes($0) }, binary: true)
        let busiest = r24.rows.filter { ($0.avgKsmdCPUCores ?? 0) > 0 }
            .sorted { ($0.avgKsmdCPUCores ?? 0) > ($1.avgKsmdCPUCores ?? 0) }.prefix(10)
        topChart = Charts.bars(
            id: "chart-top-cpu", title: "Top 10 nodes by ksmd CPU, last 24 h",
            items: busiest.map { row in
                let pct = (row.avgKsmdCPUCores ?? 0) * 100
                return (row.name ?? row.key, pct, HTML.percent(pct))
            })
        top = busiest.map { row in
            TopNode(
                href: row.deleted == true ? nil : "/nodes/" + HTML.q(row.key), name: row.name ?? row.key,
                deleted: row.deleted == true,
                cpu: HTML.percent((row.avgKsmdCPUCores ?? 0) * 100), saved: HTML.bytes(row.avgSavedBytes),
                efficiency: HTML.num(row.efficiencyGiBPerCore))
        }
    }
}

extension DashboardController {
    @Sendable func overview(_ request: Request, context: Context) async throws -> Response {
        guard let session = try await sessions.signedIn(request) else { return DashboardPages.toLogin(request) }
        let now = Date()
        let database = state.database
        // Four reads of their own, at once (each a read transaction of the pool, or of its own
        // PostgreSQL connection): the page waits for the longest, not for their sum.
        async let nodeRows = database.nodes()
        // The cards show averages, hours and coverage, not peaks: no raw read for exact peaks.
        async let r24 = database.savingsReport(
            since: now.addingTimeInterval(-86400), until: now, by: .node, label: nil, now: now, exactPeaks: false)
        async let r30 = database.savingsReport(
            since: now.addingTimeInterval(-30 * 86400), until: now, by: .node, label: nil, now: now, exactPeaks: false)
        let from = now.addingTimeInterval(-7 * 86400)
        async let series = database.fleetSeries(since: from, until: now, level: .hour)
        let nodes = try await nodeRows.map { state.nodeInfo($0, now: now) }
        let page = try await OverviewPage(nodes: nodes, last24h: r24, last30d: r30, series: series, seriesFrom: from, now: now)
        return try pages.render("overview", title: "Overview", section: .overview, session: session, page: page)
    }
}
