import FleetAPI
import FleetStore
import Foundation
import Hummingbird
import KSMCore
import Mustache

/// Audit records as the dashboard shows them (`audit-table.mustache`), on the audit page and
/// the node page.
struct AuditTable: Sendable, Equatable {
    struct Row: Sendable, Equatable {
        var at: String
        var credential: String
        var source: String
        var action: String
        var nodeId: String
        var nodeHref: String?
        /// A change shared by several nodes: the page of its nodes.
        var nodesHref: String?
        var target: String
        /// The generation the change gave the node (blank for a record of several nodes listed
        /// as one, or of no node), as the CLI's GEN column.
        var generation: String
        var before: String
        var after: String
    }
    var tableId: String
    var rows: [Row]

    /// A long JSON value is cut for the table (the API has it whole).
    static func cut(_ s: String?) -> String {
        guard let s else { return "" }
        return s.count > 160 ? String(s.prefix(160)) + "…" : s
    }

    static func row(_ r: AuditRecord) -> Row {
        Row(
            at: r.at.formatted(.iso8601), credential: r.credential, source: r.source ?? "", action: r.action,
            nodeId: r.nodeLabel ?? "", nodeHref: r.nodeId.map { "/nodes/" + HTML.q($0) },
            nodesHref: r.nodeId == nil && r.nodeCount != nil ? "/audit?record=\(r.id)" : nil, target: r.target ?? "",
            generation: r.generation.map(String.init) ?? "", before: cut(r.before), after: cut(r.after))
    }
}

/// The audit rows by name, not by `Mirror` (as the nodes table's rows): 500 records a page at
/// 93–156 ms, most of it reflecting each row whole for each of its names.
/// `DashboardPageDataTests.auditRowsByNameGiveWhatMirrorGives` holds every field to `Mirror`.
extension AuditTable.Row: MustacheParent {
    func child(named name: String) -> Any? {
        switch name {
        case "at": return at
        case "credential": return credential
        case "source": return source
        case "action": return action
        case "nodeId": return nodeId
        case "nodeHref": return nodeHref  // nil as Mustache's Mirror gives it: not found here
        case "nodesHref": return nodesHref
        case "target": return target
        case "generation": return generation
        case "before": return before
        case "after": return after
        default: return nil
        }
    }
}

/// The fleet-wide audit page (`audit.mustache`): filters as typed, the matching records.
struct AuditPage: Sendable, Equatable {
    /// Records a page without a `limit`; a next link keeps any other size asked for.
    static let pageSize = 500
    var node: String
    var credential: String
    var action: String
    var since: String
    var until: String
    var filterError: String?
    var table: AuditTable
    var count: String
    /// The next page of a record's nodes.
    var nextHref: String?
}

extension DashboardController {
    @Sendable func auditPage(_ request: Request, context: Context) async throws -> Response {
        guard let session = try await sessions.signedIn(request) else { return DashboardPages.toLogin(request) }
        var page = AuditPage(
            node: HTTP.formQuery(request, "node") ?? "", credential: HTTP.formQuery(request, "credential") ?? "",
            action: HTTP.formQuery(request, "action") ?? "", since: HTTP.formQuery(request, "since") ?? "",
            until: HTTP.formQuery(request, "until") ?? "", filterError: nil,
            table: AuditTable(tableId: "audit-table", rows: []), count: "", nextHref: nil)
        var status = HTTPResponse.Status.ok
        do {
            // Without a limit (or with an empty one, as in the API), the page's own.
            let filter = try await AuditController<Context>.filter(
                request, state: state, defaultLimit: AuditPage.pageSize, form: true)
            let records = try await state.database.auditLog(filter)
            page.table.rows = records.map(AuditTable.row)
            if let record = filter.record {
                let here = "\(records.count) node\(records.count == 1 ? "" : "s")"
                if records.isEmpty, let after = filter.afterNode {
                    // Past the last page (the one before was exactly full).
                    page.count = "record \(record): no more nodes after \(after) (by node id)"
                } else if let total = records.first?.nodeCount {
                    // A page of a shared record: how many it reached in all, how many are here.
                    page.count = "record \(record), a change to \(total) nodes: \(here) on this page (by node id, at most \(filter.limit) a page)"
                } else {
                    page.count = "record \(record): \(here) (by node id, at most \(filter.limit) a page)"
                }
                if records.count == filter.limit, let last = records.last?.nodeId {
                    // The next page keeps a page size asked for.
                    let size = filter.limit == AuditPage.pageSize ? "" : "&limit=\(filter.limit)"
                    page.nextHref = "/audit?record=\(record)&afterNode=" + HTML.q(last) + size
                }
            } else {
                page.count = "\(records.count) record\(records.count == 1 ? "" : "s") (newest first, at most \(filter.limit))"
            }
        } catch let e as APIError {
            page.filterError = e.detail.message
            status = .badRequest
        }
        return try pages.render("audit", title: "Audit trail", section: .audit, session: session, page: page, status: status)
    }
}
