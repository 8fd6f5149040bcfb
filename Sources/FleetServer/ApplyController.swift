import FleetAPI
import FleetStore
import Foundation
import Hummingbird
import KSMCore
import Logging

/// Admin: one change to many nodes (ids/names, a label selector, or all), per-node results.
struct ApplyController<Context: RequestContext>: Sendable {
    let state: ServerState

    /// A list of nodes as the audit trail's target: `nodes web-1,web-2`, cut at 200 characters.
    static func listTarget(_ names: [String]) -> String {
        let text = "nodes " + names.joined(separator: ",")
        return text.count > 200 ? String(text.prefix(199)) + "…" : text
    }

    func addRoutes(to router: CheckedRouter<Context>) {
        router.on(.post, "/api/v1/config/apply", use: apply)
    }

    @Sendable func apply(_ request: Request, context: Context) async throws -> Response {
        let body = try await HTTP.decode(ApplyRequest.self, request, limit: state.config.maxBodyBytes)
        let given = [body.nodes != nil, body.selector != nil, body.all == true].filter { $0 }.count
        guard given == 1 else {
            throw APIError.invalidValue("nodes", "give exactly one of nodes, selector or all=true")
        }
        let live = try await state.database.liveNodeKeys()
        var ids: [String] = []
        if let names = body.nodes {
            for name in names {
                if let n = live.first(where: { $0.id == name }) ?? live.first(where: { $0.name == name.lowercased() }) {
                    ids.append(n.id)
                } else {
                    ids.append(name)  // reported as not_found
                }
            }
        } else if let s = body.selector {
            let selector: [String: String]
            do { selector = try parseSelector(s) } catch { throw HTTP.inputError(error) }
            ids = live.filter { n in selector.allSatisfy { n.labels[$0.key] == $0.value } }.map(\.id)
        } else {
            ids = live.map(\.id)
        }
        var seen = Set<String>()
        ids = ids.filter { seen.insert($0).inserted }
        let dryRun = body.dryRun ?? false
        // For the audit trail: which nodes were asked for (the nodes a change reached are its
        // record's, `GET /api/v1/audit?record=ID`).
        let target = body.all == true ? "all" : body.selector.map { "selector \($0)" } ?? body.nodes.map(Self.listTarget)
        let items = try await state.database.apply(body.change, to: ids, dryRun: dryRun, target: target)
        if !dryRun { state.fleetApplied(items) }
        let results = items.map { i in
            ApplyResult(
                status: i.status.rawValue, nodeId: i.nodeId, name: i.name, generation: i.generation, changes: i.changes,
                error: i.error.map { e in
                    e.issues.first.map { APIErrorBody.Detail(code: $0.code, message: $0.message, field: $0.field) }
                        ?? APIErrorBody.Detail(code: APIErrorCode.invalidValue, message: e.description)
                } ?? (i.status == .notFound ? APIErrorBody.Detail(code: APIErrorCode.notFound, message: "node '\(i.nodeId)' not found") : nil))
        }
        return HTTP.json(bytes: ByteBuffer(bytes: try ApplyResponse(results: results, dryRun: dryRun).json()))
    }
}
