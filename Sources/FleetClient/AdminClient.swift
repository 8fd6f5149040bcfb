import FleetAPI
import KSMCore

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// Typed calls for the admin API (admin token). Every path segment is percent-encoded; every
/// status outside 2xx throws `ClientError.api` with the server's code, message and field.
extension FleetClient {
    // MARK: nodes

    /// `GET /api/v1/nodes`, filtered: label selector `k=v,k2=v2` (all must match), phase,
    /// online/offline, drift only. With `limit`, one page: the first `limit` matching nodes by
    /// name after `after`, and `next` when more follow.
    public func listNodes(
        selector: String? = nil, phase: KSMPhase? = nil, online: Bool? = nil, drift: Bool? = nil,
        limit: Int? = nil, after: String? = nil
    ) async throws(ClientError) -> NodeList {
        var query: [(String, String)] = []
        if let selector { query.append(("selector", selector)) }
        if let phase { query.append(("phase", phase.rawValue)) }
        if let online { query.append(("online", online ? "true" : "false")) }
        if let drift { query.append(("drift", drift ? "true" : "false")) }
        if let limit { query.append(("limit", "\(limit)")) }
        if let after { query.append(("after", after)) }
        return try await request("GET", APIPaths.nodes, query: query, as: NodeList.self)
    }

    /// Every matching node, read a page of `pageSize` at a time (no answer the size of the
    /// whole fleet: about 1.1 kB a node). The summary is the server's when one page held them
    /// all, else `FleetNow.of` the nodes read: the same sum of the same nodes' figures. The pages
    /// are read one after the other, not as one snapshot: a node renamed meanwhile (a host
    /// re-registered under another name) may come twice, and is kept once, as last read; renamed
    /// to a name already passed, it is missed.
    public func allNodes(
        selector: String? = nil, phase: KSMPhase? = nil, online: Bool? = nil, drift: Bool? = nil,
        pageSize: Int = NodePages.clientPage
    ) async throws(ClientError) -> NodeList {
        var page = try await listNodes(selector: selector, phase: phase, online: online, drift: drift, limit: pageSize)
        if page.next == nil { return page }
        var nodes = page.nodes
        while let next = page.next {
            page = try await listNodes(selector: selector, phase: phase, online: online, drift: drift, limit: pageSize, after: next)
            nodes += page.nodes
        }
        let nodesOnce = NodeList.lastOfEach(nodes)
        return NodeList(nodes: nodesOnce, summary: FleetNow.of(nodesOnce))
    }

    /// `GET /api/v1/nodes/{id}`: by node id, or by exact name.
    public func node(_ idOrName: String) async throws(ClientError) -> NodeInfo {
        try await request("GET", APIPaths.node(percentEncode(idOrName)), as: NodeInfo.self)
    }

    /// `DELETE /api/v1/nodes/{id}[?purgeHistory=true]`.
    public func deleteNode(_ id: String, purgeHistory: Bool = false) async throws(ClientError) {
        let query: [(String, String)] = purgeHistory ? [("purgeHistory", "true")] : []
        _ = try await request("DELETE", APIPaths.node(percentEncode(id)), query: query, as: NoContent.self)
    }

    /// `PUT /api/v1/nodes/{id}/labels`: replaces the node's whole label set.
    public func setLabels(_ id: String, _ labels: [String: String]) async throws(ClientError) {
        _ = try await request(
            "PUT", APIPaths.labels(percentEncode(id)), json: LabelsRequest(labels: labels), as: NoContent.self)
    }

    // MARK: config

    /// `GET /api/v1/nodes/{id}/config` (unconditional).
    public func nodeConfig(_ id: String) async throws(ClientError) -> NodeConfig {
        try await request("GET", APIPaths.config(percentEncode(id)), as: NodeConfig.self)
    }

    /// `PUT /api/v1/nodes/{id}/config`: replaces the config. With a generation it is sent as
    /// `If-Match: "<generation>"`, and a config changed meanwhile gives 409 `generation_conflict`.
    public func replaceConfig(_ id: String, _ config: KSMConfig, ifMatch generation: Int64? = nil)
        async throws(ClientError) -> NodeConfig
    {
        try await request(
            "PUT", APIPaths.config(percentEncode(id)), headers: Self.ifMatch(generation), json: config,
            as: NodeConfig.self)
    }

    /// `PATCH /api/v1/nodes/{id}/config`: changes only the given fields (`If-Match` as for PUT).
    public func patchConfig(_ id: String, _ patch: ConfigPatch, ifMatch generation: Int64? = nil)
        async throws(ClientError) -> NodeConfig
    {
        try await request(
            "PATCH", APIPaths.config(percentEncode(id)), headers: Self.ifMatch(generation), json: patch,
            as: NodeConfig.self)
    }

    /// `POST /api/v1/config/apply`: one change to many nodes, with a result per node.
    public func applyConfig(_ apply: ApplyRequest) async throws(ClientError) -> ApplyResponse {
        try await request("POST", APIPaths.apply, json: apply, as: ApplyResponse.self)
    }

    /// `POST /api/v1/nodes/{id}/kick` (throttle mode).
    public func kick(_ id: String) async throws(ClientError) -> KickResponse {
        try await request("POST", APIPaths.kick(percentEncode(id)), as: KickResponse.self)
    }

    // MARK: enrollment tokens

    /// `GET /api/v1/enrollment-tokens`.
    public func enrollmentTokens() async throws(ClientError) -> EnrollmentTokenList {
        try await request("GET", APIPaths.enrollmentTokens, as: EnrollmentTokenList.self)
    }

    /// `POST /api/v1/enrollment-tokens`: the reply carries the token itself, shown only once.
    public func createEnrollmentToken(_ create: CreateEnrollmentTokenRequest) async throws(ClientError)
        -> EnrollmentTokenInfo
    {
        try await request("POST", APIPaths.enrollmentTokens, json: create, as: EnrollmentTokenInfo.self)
    }

    /// `DELETE /api/v1/enrollment-tokens/{id}`.
    public func revokeEnrollmentToken(_ id: String) async throws(ClientError) {
        _ = try await request("DELETE", APIPaths.enrollmentToken(percentEncode(id)), as: NoContent.self)
    }

    // MARK: helpers

    static func ifMatch(_ generation: Int64?) -> [String: String] {
        generation.map { ["If-Match": "\"\($0)\""] } ?? [:]
    }
}

// MARK: - node identity

extension FleetClient {
    /// `POST /api/v1/nodes/{id}/token` with the node's token: a new token for the node.
    public func rotateNodeToken(nodeId: String) async throws(ClientError) -> TokenRotationResponse {
        try await request(
            "POST", APIPaths.nodeToken(percentEncode(nodeId)), headers: timeoutHeader, as: TokenRotationResponse.self)
    }

    /// `POST /api/v1/nodes/{id}/rotate-token` (admin): the agent replaces its token at its next push.
    public func requestTokenRotation(_ id: String) async throws(ClientError) -> RotationRequestedResponse {
        try await request("POST", APIPaths.rotateToken(percentEncode(id)), as: RotationRequestedResponse.self)
    }

    /// `GET /api/v1/registrations` (admin): pending (and decided, not yet claimed) registrations.
    public func pendingRegistrations() async throws(ClientError) -> PendingRegistrationList {
        try await request("GET", APIPaths.registrations, as: PendingRegistrationList.self)
    }

    /// `POST /api/v1/registrations/{id}/accept|reject` (admin).
    public func decideRegistration(_ id: String, accept: Bool) async throws(ClientError) -> PendingRegistration {
        try await request(
            "POST", accept ? APIPaths.acceptRegistration(percentEncode(id)) : APIPaths.rejectRegistration(percentEncode(id)),
            as: PendingRegistration.self)
    }
}
