import FleetAPI
import FleetStore
import Foundation
import Hummingbird
import Logging

/// Admin: enrollment tokens (create with optional expiry, list, revoke).
struct EnrollmentTokensController<Context: RequestContext>: Sendable {
    let state: ServerState

    func addRoutes(to router: CheckedRouter<Context>) {
        router.on(.get, "/api/v1/enrollment-tokens", use: list)
        router.on(.post, "/api/v1/enrollment-tokens", use: create)
        router.on(.delete, "/api/v1/enrollment-tokens/:id", use: revoke)
    }

    @Sendable func list(_ request: Request, context: Context) async throws -> Response {
        return try HTTP.json(EnrollmentTokenList(tokens: try await state.database.enrollmentTokens()))
    }

    @Sendable func create(_ request: Request, context: Context) async throws -> Response {
        let data = try await HTTP.body(request, limit: state.config.maxBodyBytes)
        let body =
            data.allSatisfy({ $0 == 0x20 || $0 == 0x0a || $0 == 0x0d || $0 == 0x09 })
            ? CreateEnrollmentTokenRequest() : try HTTP.decode(CreateEnrollmentTokenRequest.self, data)
        if let e = body.expiresAt, e <= Date() {
            throw APIError.invalidValue("expiresAt", "expiresAt is in the past")
        }
        let info = try await state.database.createEnrollmentToken(description: body.description, expiresAt: body.expiresAt)
        state.logger.info("enrollment token created", metadata: ["token": "\(info.id)"])
        return try HTTP.json(info, status: .created, headers: HTTP.noStore)
    }

    @Sendable func revoke(_ request: Request, context: Context) async throws -> Response {
        let id = try context.parameters.require("id")
        let info = try await state.database.revokeEnrollmentToken(id: id)
        state.logger.info("enrollment token revoked", metadata: ["token": "\(id)"])
        return try HTTP.json(info)
    }
}
