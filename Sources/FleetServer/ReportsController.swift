import FleetAPI
import FleetStore
import Foundation
import Hummingbird
import KSMCore

/// Admin: a node's history and the fleet savings report (JSON or CSV).
struct ReportsController<Context: RequestContext>: Sendable {
    let state: ServerState

    func addRoutes(to router: CheckedRouter<Context>) {
        router.on(.get, "/api/v1/nodes/:id/history", use: history)
        router.on(.get, "/api/v1/reports/savings", use: savings)
        router.on(.get, "/api/v1/reports/processes", use: processes)
    }

    /// Longest period a report or a history answers.
    static var maxPeriodDays: Double { 3 * 366 }

    /// `since`/`until` from the query: until defaults to now, since to until − `defaultSpan`.
    static func period(_ request: Request, now: Date, defaultSpan: Double) throws -> (Date, Date) {
        func parse(_ name: String) throws -> Date? {
            guard let text = HTTP.param(request, name) else { return nil }
            guard let d = ReportTime.parseDate(text, now: now) else {
                throw APIError.invalidValue(
                    name, "'\(text)' is not a time: use ISO 8601 (2026-11-01T00:00:00Z), a date (2026-11-01), now, or -24h / -30d")
            }
            return d
        }
        let until = try parse("until") ?? now
        let since = try parse("since") ?? until.addingTimeInterval(-defaultSpan)
        guard since < until else {
            throw APIError.invalidValue("since", "since (\(since.formatted(.iso8601))) must be before until (\(until.formatted(.iso8601)))")
        }
        guard until.timeIntervalSince(since) <= maxPeriodDays * 86400 else {
            throw APIError.invalidValue("since", "the period may be at most \(Int(maxPeriodDays)) days")
        }
        return (since, until)
    }

    @Sendable func history(_ request: Request, context: Context) async throws -> Response {
        let raw = try context.parameters.require("id")
        let now = Date()
        let (since, until) = try Self.period(request, now: now, defaultSpan: 86400)
        var resolution = HistoryResolution.automatic(spanSeconds: until.timeIntervalSince(since))
        var automatic = true
        if let r = HTTP.param(request, "resolution") {
            guard let v = HistoryResolution(rawValue: r.lowercased()) else {
                throw APIError.invalidValue("resolution", "'\(r)' is not a resolution; expected raw, hour or day")
            }
            resolution = v
            automatic = false
        }
        // A live node by id or name; a deleted node's history by its id.
        let id = try await state.database.node(idOrName: raw)?.id ?? raw
        guard
            var answer = try await state.database.history(
                nodeId: id, since: since, until: until, resolution: resolution)
        else { throw APIError.notFound("node '\(raw)' not found") }
        // Picked for the span, raw would leave samples out (a node sampling every few seconds
        // over a day): hours instead. Asked for, the answer says how many it left out.
        if automatic, answer.omittedSamples != nil,
            let hourly = try await state.database.history(nodeId: id, since: since, until: until, resolution: .hour)
        {
            answer = hourly
        }
        // Written member by member (`HistoryResponse.json()`): the same bytes as `HTTP.json`'s.
        return HTTP.json(bytes: ByteBuffer(bytes: try answer.json()))
    }

    @Sendable func savings(_ request: Request, context: Context) async throws -> Response {
        let now = Date()
        let (since, until) = try Self.period(request, now: now, defaultSpan: 86400)
        var by = ReportGrouping.node
        if let b = HTTP.param(request, "by") {
            guard let v = ReportGrouping(rawValue: b.lowercased()) else {
                throw APIError.invalidValue("by", "'\(b)' is not a grouping; expected node, label or day")
            }
            by = v
        }
        let label = HTTP.param(request, "label")
        if by == .label && label == nil {
            throw APIError.invalidValue("label", "by=label needs label=KEY (the label to group by)")
        }
        var csv = request.headers[.accept].map { $0.lowercased().contains("text/csv") } ?? false
        if let f = HTTP.param(request, "format") {
            switch f.lowercased() {
            case "csv": csv = true
            case "json": csv = false
            default: throw APIError.invalidValue("format", "'\(f)' is not a format; expected json or csv")
            }
        }
        let report = try await state.database.savingsReport(since: since, until: until, by: by, label: label, now: now)
        state.logger.debug(
            "savings report", metadata: ["by": "\(by.rawValue)", "rows": "\(report.rows.count)", "csv": "\(csv)"])
        if csv {
            var response = HTTP.text(report.csv(), contentType: "text/csv; charset=utf-8")
            let name = "ksm-savings-\(ReportTime.dayKey(since.timeIntervalSince1970))-\(ReportTime.dayKey(until.timeIntervalSince1970))-by-\(by.rawValue).csv"
            response.headers[.contentDisposition] = "attachment; filename=\"\(name)\""
            return response
        }
        // Written member by member (`SavingsReport.json()`): the same bytes as `HTTP.json`'s.
        return HTTP.json(bytes: ByteBuffer(bytes: try report.json()))
    }

    /// Who benefited: per node and process group, peak, mean and last merged bytes over the
    /// period (default the last 24 h); `node=` (id or name) for one node, `limit=` rows.
    @Sendable func processes(_ request: Request, context: Context) async throws -> Response {
        let now = Date()
        let (since, until) = try Self.period(request, now: now, defaultSpan: 86400)
        var nodeId: String?
        if let raw = HTTP.param(request, "node") {
            // A live node by id or name; a deleted node's history by its id.
            nodeId = try await state.database.node(idOrName: raw)?.id ?? raw
        }
        let limit = try HTTP.intQuery(request, "limit", in: 1...10_000, what: "a row count") ?? 100
        let rows = try await state.database.processSavings(nodeId: nodeId, since: since, until: until, limit: limit)
        return try HTTP.json(
            ProcessSavingsReport(since: since, until: until, node: nodeId, generatedAt: now, rows: rows))
    }
}
