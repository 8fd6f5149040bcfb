import FleetAPI
import Foundation
import Hummingbird
import KSMCore
import Mustache

/// The savings report's period and grouping from a page's query string. A period that does not
/// parse, or is not one, falls back to the last 7 days with `error` saying why.
struct ReportQuery: Sendable, Equatable {
    var since: Date
    var until: Date
    var sinceText: String
    var untilText: String
    var by: ReportGrouping
    var label: String
    var error: String?

    init(
        since sinceQuery: String?, until untilQuery: String?, by byQuery: String?, label labelQuery: String?, now: Date
    ) {
        let sinceText = sinceQuery.flatMap { $0.isEmpty ? nil : $0 } ?? "-7d"
        let untilText = untilQuery.flatMap { $0.isEmpty ? nil : $0 } ?? "now"
        var by = ReportGrouping(rawValue: byQuery ?? "node") ?? .node
        let label = (labelQuery ?? "").trimmingCharacters(in: .whitespaces)
        var error: String?
        var since = ReportTime.parseDate(sinceText, now: now)
        var until = ReportTime.parseDate(untilText, now: now)
        if since == nil { error = "'\(sinceText)' is not a time (use 2026-11-01, 2026-11-01T12:00:00Z or -7d)" }
        if until == nil { error = "'\(untilText)' is not a time (use 2026-11-01, 2026-11-01T12:00:00Z or now)" }
        if let s = since, let u = until, !(s < u) { error = "the start must be before the end" }
        if let s = since, let u = until, u.timeIntervalSince(s) > 3 * 366 * 86400 {
            error = "the period may be at most 3 years"
        }
        if by == .label && label.isEmpty {
            error = "choose the label key to group by"
            by = .node
        }
        if error != nil {
            since = now.addingTimeInterval(-7 * 86400)
            until = now
        }
        self.since = since ?? now
        self.until = until ?? now
        self.sinceText = sinceText
        self.untilText = untilText
        self.by = by
        self.label = label
        self.error = error
    }

    init(_ request: Request, now: Date) {
        self.init(
            since: HTTP.formQuery(request, "since"), until: HTTP.formQuery(request, "until"), by: HTTP.formQuery(request, "by"),
            label: HTTP.formQuery(request, "label"), now: now)
    }

    /// The query string of this report (for the CSV link).
    var query: String {
        "since=\(HTML.q(sinceText))&until=\(HTML.q(untilText))&by=\(by.rawValue)"
            + (label.isEmpty ? "" : "&label=\(HTML.q(label))")
    }
}

/// The savings report (`reports.mustache`, rows in `report-row.mustache`).
struct ReportsPage: Sendable {
    struct QuickLink: Sendable, Equatable {
        var label: String
        var href: String
    }

    /// A group's row, or the fleet total.
    struct Row: Sendable, Equatable {
        var key: String
        var isTotal: Bool
        /// The node's name, "rack=r1", "(no rack label)", the day or "Fleet total".
        var name: String
        /// The node's page, for a live node.
        var nameHref: String?
        var nameMuted: Bool
        var deleted: Bool
        var nodes: String
        var avgSaved: String
        var peakSaved: String
        var gibHours: String
        var cpuHours: String
        var cores: String
        var efficiency: String
        /// nil when the kernel does not report general_profit.
        var net: String?
        var phases: String
        var coverage: String
        /// "2: <from>–<to>, …"; nil without gaps.
        var gaps: String?
    }

    var since: String
    var until: String
    var labelKey: String
    var groupOptions: [SelectOption]
    var csvHref: String
    var quick: [QuickLink]
    var reportError: String?
    /// "<since> – <until>" in UTC.
    var period: String
    var groupTitle: String
    var rows: [Row]
    var total: Row
    /// Some peak comes from rollups (marked *, with a legend).
    var anyRollupPeak: Bool

    /// Who benefited: a process group on a node over the period (`GET /api/v1/reports/processes`).
    struct ProcessRow: Sendable, Equatable {
        var node: String
        var nodeHref: String
        var group: String
        var kind: String
        var peak: String
        var avg: String
        var last: String
        var lastSeen: String
    }
    var processRows: [ProcessRow]
    /// Stored, not computed: the templates see stored properties only.
    var hasProcessRows: Bool
    /// "rows 501–1000 of 10000" when the report's rows take more than one page; nil otherwise.
    var rowsShown: String?
    /// The pages of rows before and after this one, for the same report; nil at either end.
    var previousHref: String?
    var nextHref: String?

    /// Rows a page shows (the total row is on every page; the CSV has them all): a report by
    /// node of a 10,000-node fleet was a 4.5 MB page.
    static let rowsPerPage = 500

    init(
        query q: ReportQuery, report: SavingsReport, processes: [ProcessSavingsRow] = [], page: Int = 1,
        rowsPerPage: Int = ReportsPage.rowsPerPage
    ) {
        processRows = processes.map {
            ProcessRow(
                node: $0.nodeName ?? $0.nodeId, nodeHref: "/nodes/" + HTML.q($0.nodeId), group: $0.name,
                kind: $0.kind.rawValue, peak: HTML.bytes($0.peakMergedBytes), avg: HTML.bytes($0.avgMergedBytes),
                last: HTML.bytes($0.lastMergedBytes), lastSeen: HTML.time($0.lastAt))
        }
        hasProcessRows = !processRows.isEmpty
        since = q.sinceText
        until = q.untilText
        labelKey = q.label
        groupOptions = SelectOption.list(
            [
                (ReportGrouping.node.rawValue, "node"), (ReportGrouping.label.rawValue, "label"),
                (ReportGrouping.day.rawValue, "day"),
            ],
            current: q.by.rawValue)
        csvHref = "/reports/savings.csv?" + q.query
        let labelParam = q.label.isEmpty ? "" : "&label=\(HTML.q(q.label))"
        quick = [("-24h", "24 h"), ("-7d", "7 days"), ("-30d", "30 days"), ("-90d", "90 days"), ("-365d", "1 year")].map
        {
            QuickLink(label: $0.1, href: "/reports?since=\(HTML.q($0.0))&until=now&by=\(q.by.rawValue)\(labelParam)")
        }
        reportError = q.error
        period = "\(HTML.time(q.since)) – \(HTML.time(q.until))"
        groupTitle = q.by == .day ? "Day (UTC)" : (q.by == .label ? "Label" : "Node")
        let paging = Paging(count: report.rows.count, asked: page, perPage: rowsPerPage)
        rows = report.rows[paging.rows].map { Self.row($0, query: q, total: false) }
        if paging.pages > 1 {
            rowsShown = "rows " + paging.span
            previousHref = paging.previous.map { "/reports?\(q.query)&page=\($0)" }
            nextHref = paging.next.map { "/reports?\(q.query)&page=\($0)" }
        }
        total = Self.row(report.total, query: q, total: true)
        anyRollupPeak = (report.rows + [report.total]).contains { $0.peakBasis != nil && $0.peakBasis != .samples }
    }

    /// Process groups the page lists (the API and the CLI give more).
    static let processRowLimit = 20

    static func row(_ r: SavingsRow, query q: ReportQuery, total: Bool) -> Row {
        var name = total ? "Fleet total" : r.key
        var href: String?
        var muted = false
        var deleted = false
        switch q.by {
        case .node where !total:
            name = r.name ?? r.key
            deleted = r.deleted == true
            if !deleted { href = "/nodes/" + HTML.q(r.key) }
        case .label where !total:
            muted = r.key.isEmpty
            name = r.key.isEmpty ? "(no \(q.label) label)" : "\(q.label)=\(r.key)"
        default:
            break
        }
        let phases = r.phaseHours.sorted { $0.key < $1.key }.map { "\($0.key) \(HTML.num($0.value)) h" }
            .joined(separator: ", ")
        let gaps =
            r.gaps.isEmpty
            ? nil
            : "\(r.gaps.count): "
                + r.gaps.prefix(2).map { "\(HTML.time($0.from))–\(HTML.time($0.to))" }.joined(separator: ", ")
                + (r.gaps.count > 2 ? " …" : "")
        return Row(
            key: r.key, isTotal: total, name: name, nameHref: href, nameMuted: muted, deleted: deleted,
            nodes: String(r.nodes),
            avgSaved: HTML.bytes(r.avgSavedBytes),
            // A peak from rollups is a lower bound of the peak at one moment: marked, as in the CLI.
            peakSaved: HTML.bytes(r.peakSavedBytes) + (r.peakBasis.map { $0 == .samples ? "" : "*" } ?? ""),
            gibHours: HTML.num(r.savedGiBHours), cpuHours: HTML.num(r.ksmdCPUHours),
            cores: HTML.percent(r.avgKsmdCPUCores.map { $0 * 100 }), efficiency: HTML.num(r.efficiencyGiBPerCore),
            net: r.avgNetProfitBytes.map { HTML.bytes($0) }, phases: phases.isEmpty ? "—" : phases,
            coverage: HTML.fraction(r.coverage), gaps: gaps)
    }
}

extension DashboardController {
    @Sendable func reportsPage(_ request: Request, context: Context) async throws -> Response {
        guard let session = try await sessions.signedIn(request) else { return DashboardPages.toLogin(request) }
        let now = Date()
        let q = ReportQuery(request, now: now)
        // The two reads at once, as the overview's.
        async let report = state.database.savingsReport(
            since: q.since, until: q.until, by: q.by, label: q.by == .label ? q.label : nil, now: now)
        async let processes = state.database.processSavings(
            nodeId: nil, since: q.since, until: q.until, limit: ReportsPage.processRowLimit)
        let page = try await ReportsPage(
            query: q, report: report, processes: processes, page: HTTP.query(request, "page").flatMap { Int($0) } ?? 1)
        return try pages.render("reports", title: "Savings report", section: .reports, session: session, page: page)
    }

    @Sendable func reportCSV(_ request: Request, context: Context) async throws -> Response {
        guard try await sessions.signedIn(request) != nil else { return DashboardPages.toLogin(request) }
        let now = Date()
        let q = ReportQuery(request, now: now)
        if let e = q.error { throw APIError.invalidValue(nil, e) }
        let report = try await state.database.savingsReport(
            since: q.since, until: q.until, by: q.by, label: q.by == .label ? q.label : nil, now: now)
        var r = HTTP.text(report.csv(), contentType: "text/csv; charset=utf-8")
        r.headers[.contentDisposition] =
            "attachment; filename=\"ksm-savings-\(ReportTime.dayKey(q.since.timeIntervalSince1970))-\(ReportTime.dayKey(q.until.timeIntervalSince1970))-by-\(q.by.rawValue).csv\""
        return r
    }
}

/// By name, not by `Mirror`, as the nodes table's rows (`NodesPage.Row`): a page of 500 rows
/// looks up fifteen names a row.
extension ReportsPage.Row: MustacheParent {
    func child(named name: String) -> Any? {
        switch name {
        case "key": return key
        case "isTotal": return isTotal
        case "name": return self.name
        case "nameHref": return nameHref  // nil as Mustache's Mirror gives it: not found here
        case "nameMuted": return nameMuted
        case "deleted": return deleted
        case "nodes": return nodes
        case "avgSaved": return avgSaved
        case "peakSaved": return peakSaved
        case "gibHours": return gibHours
        case "cpuHours": return cpuHours
        case "cores": return cores
        case "efficiency": return efficiency
        case "net": return net
        case "phases": return phases
        case "coverage": return coverage
        case "gaps": return gaps
        default: return nil
        }
    }
}
