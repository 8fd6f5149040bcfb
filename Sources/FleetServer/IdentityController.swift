import FleetAPI
import FleetStore
import Foundation
import Hummingbird
import Logging

/// Admin routes for node identity: pending registrations (accept/reject) and on-demand token
/// rotation.
struct IdentityController<Context: RequestContext>: Sendable {
    let state: ServerState

    func addRoutes(to router: CheckedRouter<Context>) {
        router.on(.get, "/api/v1/registrations", use: list)
        router.on(.post, "/api/v1/registrations/:id/accept", use: accept)
        router.on(.post, "/api/v1/registrations/:id/reject", use: reject)
        router.on(.post, "/api/v1/nodes/:id/rotate-token", use: requestRotation)
    }

    @Sendable func list(_ request: Request, context: Context) async throws -> Response {
        let all = try HTTP.boolQuery(request, "all") ?? true
        return try HTTP.json(PendingRegistrationList(registrations: try await state.database.pendingRegistrations(includeDecided: all)))
    }

    @Sendable func accept(_ request: Request, context: Context) async throws -> Response {
        try await decide(request, context, accept: true)
    }

    @Sendable func reject(_ request: Request, context: Context) async throws -> Response {
        try await decide(request, context, accept: false)
    }

    func decide(_ request: Request, _ context: Context, accept: Bool) async throws -> Response {
        let id = try context.parameters.require("id")
        let decided = try await state.decideRegistration(id: id, accept: accept, by: AuditContext.current?.name ?? "admin")
        return try HTTP.json(decided)
    }

    @Sendable func requestRotation(_ request: Request, context: Context) async throws -> Response {
        let raw = try context.parameters.require("id")
        guard let node = try await state.database.node(idOrName: raw) else { throw APIError.notFound("node '\(raw)' not found") }
        let now = Date()
        try await state.database.requestTokenRotation(nodeId: node.id, now: now)
        state.auth.forgetNodeTokens(of: node.id)
        state.logger.info("node token rotation requested", metadata: ["node": "\(node.id)"])
        return try HTTP.json(RotationRequestedResponse(nodeId: node.id, requestedAt: now))
    }
}
