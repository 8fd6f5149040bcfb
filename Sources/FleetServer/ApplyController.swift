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
        if !dryRun {
            // With the change feed live, this commit's notices wake this replica's long-polls as
            // they wake every other replica's. Waking 20,000 nodes here too, on one of the
            // machine's two cooperative threads, held this replica's answers back until the
            // loop ended: its nodes got the change 0.6–0.8 s after the other replicas' did
            // (docs/benchmarks.md, "The applying replica's answers"). A small apply still wakes
            // them here at once (`ServerConfig.applyDirectWakeLimit`): cheap, and its polls do
            // not wait for a LISTEN connection that may have stopped delivering unnoticed. A
            // larger one checks after a grace period that its notices came back (`wakeUnheard`).
            let changed = items.reduce(0) { $0 + ($1.status == .changed ? 1 : 0) }
            let wakeHere = changed <= state.config.applyDirectWakeLimit || !state.waiters.feedWakesOwnWrites
            if !wakeHere {
                let changes = items.compactMap { i in
                    i.status == .changed ? i.config.map { (nodeId: i.nodeId, generation: $0.generation) } : nil
                }
                let check = ContinuousClock.now + ConfigNotificationService.checkInterval(state.config.applyNoticeGraceSeconds)
                let feedStarts = state.waiters.feedStarts
                Task { await Self.wakeUnheard(state, changes, at: check, feedStarts: feedStarts) }
            }
            for item in items where item.status == .changed {
                guard let config = item.config else { continue }
                if wakeHere { state.waiters.notify(item.nodeId, config: config) }
                state.logger.info(
                    "config changed by fleet apply", metadata: ["node": "\(item.nodeId)", "generation": "\(config.generation)"])
            }
        }
        let results = items.map { i in
            ApplyResult(
                status: i.status.rawValue, nodeId: i.nodeId, name: i.name, generation: i.generation, changes: i.changes,
                error: i.error.map { e in
                    e.issues.first.map { APIErrorBody.Detail(code: $0.code, message: $0.message, field: $0.field) }
                        ?? APIErrorBody.Detail(code: APIErrorCode.invalidValue, message: e.description)
                } ?? (i.status == .notFound ? APIErrorBody.Detail(code: APIErrorCode.notFound, message: "node '\(i.nodeId)' not found") : nil))
        }
        return try HTTP.json(ApplyResponse(results: results, dryRun: dryRun))
    }

    /// A fleet apply that left its wake-ups to its notices, at `deadline` (about
    /// `ServerConfig.applyNoticeGraceSeconds` after its commit): a node still waiting here that
    /// has not heard of its change is woken to read the store (`ConfigWaiters.wakeUnheard`), and
    /// the replica says so. The notices come back well within that (at 30,000 nodes on a
    /// saturated machine within 0.6 s of the apply's answer); one that has not means the LISTEN
    /// connection stalled without an error, which its next check
    /// (`ServerConfig.listenCheckSeconds`) replaces, and the polls here need not wait for that.
    /// The other replicas' polls do: they have nothing but their own LISTEN. If the feed started
    /// again meanwhile, its resync reads every waiting node's config and this check stands down.
    static func wakeUnheard(
        _ state: ServerState, _ changes: [(nodeId: String, generation: Int64)], at deadline: ContinuousClock.Instant,
        feedStarts: UInt64
    ) async {
        guard !changes.isEmpty else { return }
        try? await Task.sleep(until: deadline)
        var woken = 0
        var first: (nodeId: String, generation: Int64)?
        for change in changes
        where state.waiters.wakeUnheard(change.nodeId, generation: change.generation, feedStarts: feedStarts) {
            woken += 1
            if first == nil { first = change }
        }
        guard let first else { return }
        state.logger.warning(
            "notices of a fleet apply had not come back in time (LISTEN stalled, or this replica overloaded); woke the nodes waiting here to read their configs",
            metadata: [
                "nodes": "\(woken)", "changed": "\(changes.count)",
                "after_seconds": "\(state.config.applyNoticeGraceSeconds)",
                "node": "\(first.nodeId)", "generation": "\(first.generation)",
            ])
    }
}
