import FleetAPI
import FleetStore
import Foundation
import Hummingbird
import KSMCore
import Logging

/// Admin: nodes list/show/labels/delete, config replace/patch, kick.
struct NodesController<Context: RequestContext>: Sendable {
    let state: ServerState

    func addRoutes(to router: CheckedRouter<Context>) {
        router.on(.get, "/api/v1/nodes", use: list)
        router.on(.get, "/api/v1/nodes/:id", use: show)
        router.on(.delete, "/api/v1/nodes/:id", use: delete)
        router.on(.put, "/api/v1/nodes/:id/labels", use: setLabels)
        router.on(.put, "/api/v1/nodes/:id/config", use: putConfig)
        router.on(.patch, "/api/v1/nodes/:id/config", use: patchConfig)
        router.on(.post, "/api/v1/nodes/:id/kick", use: kick)
    }

    /// A live node by id or exact name, or 404.
    func resolve(_ context: Context) async throws -> StoredNode {
        let raw = try context.parameters.require("id")
        guard let node = try await state.database.node(idOrName: raw) else {
            throw APIError.notFound("node '\(raw)' not found")
        }
        return node
    }

    @Sendable func list(_ request: Request, context: Context) async throws -> Response {
        var selector: [String: String]?
        // An empty selector is none here (`param`); the apply's body refuses one: there "all"
        // must be said.
        if let s = HTTP.param(request, "selector") {
            do { selector = try parseSelector(s) } catch { throw HTTP.inputError(error) }
        }
        var phase: KSMPhase?
        if let p = HTTP.param(request, "phase") {
            guard let v = KSMPhase.allCases.first(where: { $0.rawValue.lowercased() == p.lowercased() }) else {
                throw APIError.invalidValue(
                    "phase", "'\(p)' is not a phase; expected one of: \(KSMPhase.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            phase = v
        }
        let online = try HTTP.boolQuery(request, "online")
        let drift = try HTTP.boolQuery(request, "drift")
        let limit = try HTTP.intQuery(request, "limit", in: 1...NodePages.maxLimit, what: "a node count")
        let after = HTTP.param(request, "after")
        let now = Date()
        func matches(_ n: NodeInfo) -> Bool {
            if let selector, !selector.allSatisfy({ n.labels[$0.key] == $0.value }) { return false }
            if let phase, n.phase != phase { return false }
            if let online, n.online != online { return false }
            if let drift, n.drift != drift { return false }
            return true
        }
        guard let limit else {
            if after != nil { throw APIError.invalidValue("after", "after pages the list: give limit too") }
            let nodes = try await state.database.nodes().map { state.nodeInfo($0, now: now) }.filter(matches)
            // Written member by member (`NodeList.json()`): the same bytes as `HTTP.json`'s.
            return HTTP.json(bytes: ByteBuffer(bytes: try NodeList(nodes: nodes, summary: FleetNow.of(nodes)).json()))
        }
        let page = try await self.page(after: after, limit: limit, now: now, filtered: selector != nil || phase != nil || online != nil || drift != nil, matches)
        return HTTP.json(bytes: ByteBuffer(bytes: try page.json()))
    }

    /// One page of the listing, read from the store (`NodeListPage.read`).
    func page(after: String?, limit: Int, now: Date, filtered: Bool, _ matches: (NodeInfo) -> Bool) async throws -> NodeList {
        try await NodeListPage.read(
            after: after, limit: limit, batch: filtered ? max(limit + 1, NodeListPage.filteredBatch) : limit + 1,
            from: { try await state.database.nodes(after: $0, limit: $1) }, name: \.name,
            info: { state.nodeInfo($0, now: now) }, matches: matches)
    }

    @Sendable func show(_ request: Request, context: Context) async throws -> Response {
        return HTTP.json(bytes: ByteBuffer(bytes: try state.nodeInfo(try await resolve(context)).json()))
    }

    @Sendable func delete(_ request: Request, context: Context) async throws -> Response {
        let node = try await resolve(context)
        let purge = try HTTP.boolQuery(request, "purgeHistory", emptyIsNone: false) ?? false
        try await state.database.deleteNode(nodeId: node.id, purgeHistory: purge)
        state.auth.forgetNodeTokens(of: node.id)
        state.waiters.notify(node.id, config: nil)
        state.logger.info(
            purge ? "node deleted with its history" : "node deleted (history kept)",
            metadata: ["node": "\(node.id)", "name": "\(node.name)"])
        return Response(status: .noContent)
    }

    @Sendable func setLabels(_ request: Request, context: Context) async throws -> Response {
        let node = try await resolve(context)
        let body = try await HTTP.decode(LabelsRequest.self, request, limit: state.config.maxBodyBytes)
        // Bounded, and only what a selector (`k=v,k2=v2`, values trimmed) can name: a value
        // with spaces at its ends could never be selected.
        if body.labels.count > LabelsRequest.maxLabels {
            throw APIError.invalidValue("labels", "at most \(LabelsRequest.maxLabels) labels a node; got \(body.labels.count)")
        }
        func control(_ c: Character) -> Bool { c.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7F } }
        for key in body.labels.keys.sorted() {
            if key.isEmpty || key.contains(where: { $0 == "=" || $0 == "," || $0.isWhitespace || control($0) }) {
                throw APIError.invalidValue("labels.\(key)", "label keys must be non-empty without '=', ',' or spaces")
            }
            if key.utf8.count > LabelsRequest.maxKeyBytes {
                throw APIError.invalidValue(
                    "labels", "label keys are at most \(LabelsRequest.maxKeyBytes) bytes; '\(key.prefix(40))…' has \(key.utf8.count)")
            }
            guard let v = body.labels[key] else { continue }
            if v.contains(",") || v.contains(where: control) {
                throw APIError.invalidValue("labels.\(key)", "label values may not contain ',' or control characters")
            }
            if v.first?.isWhitespace == true || v.last?.isWhitespace == true {
                throw APIError.invalidValue("labels.\(key)", "label values may not start or end with a space (a selector could not name them)")
            }
            if v.utf8.count > LabelsRequest.maxValueBytes {
                throw APIError.invalidValue("labels.\(key)", "label values are at most \(LabelsRequest.maxValueBytes) bytes; got \(v.utf8.count)")
            }
        }
        let updated = try await state.database.setLabels(nodeId: node.id, body.labels)
        state.logger.info("node labels set", metadata: ["node": "\(node.id)", "labels": "\(body.labels)"])
        return HTTP.json(bytes: ByteBuffer(bytes: try state.nodeInfo(updated).json()))
    }

    /// `If-Match` as a generation, or nil; 400 for a value that is not one.
    func ifMatch(_ request: Request) throws -> Int64? {
        let tag = HTTP.generationTag(request.headers[.ifMatch])
        if tag.invalid {
            throw APIError(
                .badRequest, code: APIErrorCode.invalidValue, message: "If-Match must be a generation such as \"7\"",
                field: "If-Match")
        }
        return tag.generation
    }

    /// PUT: the body is a whole `KSMConfig`, or a `NodeConfig` whose `generation` must be current.
    @Sendable func putConfig(_ request: Request, context: Context) async throws -> Response {
        let node = try await resolve(context)
        let data = try await HTTP.body(request, limit: state.config.maxBodyBytes)
        var expected = try ifMatch(request)
        let config: KSMConfig
        let value: JSONValue
        do { value = try StrictJSON.value(from: data) } catch { throw HTTP.inputError(error) }
        if case .object(let o) = value, o["generation"] != nil || o["kickCounter"] != nil {
            let nc: NodeConfig
            do { nc = try StrictJSON.decode(NodeConfig.self, from: value, originalData: data) } catch {
                throw HTTP.inputError(error)
            }
            // The kick counter is the server's (POST /nodes/{id}/kick raises it): a body read back
            // from GET carries it and any value is left as the server has it; a negative one,
            // which no GET gave, is refused.
            if nc.kickCounter < 0 {
                throw APIError.invalidValue("kickCounter", "kickCounter is the server's (0 or more; POST …/kick raises it); got \(nc.kickCounter)")
            }
            if let e = expected, e != nc.generation {
                throw APIError(
                    .conflict, code: APIErrorCode.generationConflict,
                    message: "If-Match says generation \(e) but the body says \(nc.generation)", field: "generation")
            }
            expected = nc.generation
            config = nc.config
        } else {
            config = try HTTP.decode(KSMConfig.self, data)
        }
        let change = try await state.changeConfig(node: node, ifMatch: expected, actor: "admin", action: "replace") {
            _ throws(ConfigValidationError) in try config.validated()
        }
        return try changed(change)
    }

    @Sendable func patchConfig(_ request: Request, context: Context) async throws -> Response {
        let node = try await resolve(context)
        let expected = try ifMatch(request)
        let patch = try await HTTP.decode(ConfigPatch.self, request, limit: state.config.maxBodyBytes)
        let change = try await state.patchConfig(node: node, patch, ifMatch: expected, actor: "admin")
        return try changed(change)
    }

    /// The node's config after a change (or none), with its generation as the ETag.
    func changed(_ change: ConfigChange) throws -> Response {
        var headers = HTTPFields()
        headers[.eTag] = HTTP.etag(change.after.generation)
        return try HTTP.json(change.after, headers: headers)
    }

    @Sendable func kick(_ request: Request, context: Context) async throws -> Response {
        let node = try await resolve(context)
        let config = try await state.kick(nodeId: node.id, actor: "admin")
        return try HTTP.json(KickResponse(nodeId: node.id, kickCounter: config.kickCounter, generation: config.generation))
    }
}

/// A page of the listing: the first `limit` matching nodes after `after`, by name, read in name
/// ranges of `batch` and filtered here (phase, online and drift are worked out from each node,
/// not stored). One matching node past the page is looked for, so `next` is there only when
/// another follows. The next range starts after the last node read, matching or not.
enum NodeListPage {
    /// The least a filtered page reads at a time: a filter may match few nodes.
    static let filteredBatch = 1_000

    static func read<Stored>(
        after: String?, limit: Int, batch: Int, from read: (String?, Int) async throws -> [Stored],
        name: (Stored) -> String, info: (Stored) -> NodeInfo, matches: (NodeInfo) -> Bool
    ) async throws -> NodeList {
        var nodes: [NodeInfo] = []
        var cursor = after
        scan: while true {
            let stored = try await read(cursor, batch)
            for s in stored {
                let n = info(s)
                guard matches(n) else { continue }
                nodes.append(n)
                if nodes.count > limit { break scan }
            }
            guard stored.count == batch, let last = stored.last else { break }
            cursor = name(last)
        }
        let more = nodes.count > limit
        if more { nodes.removeLast() }
        // The whole list in one page: its summary is the list's.
        let whole = after == nil && !more
        return NodeList(nodes: nodes, summary: whole ? FleetNow.of(nodes) : nil, next: more ? nodes.last?.name : nil)
    }
}
