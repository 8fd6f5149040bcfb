import FleetAPI
import FleetStore
import Foundation
import Hummingbird
import KSMCore
import Logging

/// Admin: named credentials with a role (create with optional expiry, list, revoke), and
/// `whoami` for any credential. The token is in the reply to create only; it is never logged.
struct CredentialsController<Context: RequestContext>: Sendable {
    let state: ServerState

    func addRoutes(to router: CheckedRouter<Context>) {
        router.on(.get, "/api/v1/whoami", use: whoami)
        router.on(.get, "/api/v1/credentials", use: list)
        router.on(.post, "/api/v1/credentials", use: create)
        router.on(.delete, "/api/v1/credentials/:id", use: revoke)
    }

    @Sendable func whoami(_ request: Request, context: Context) async throws -> Response {
        guard case .credential(let c, _) = Caller.current else { throw APIError.forbidden("not a credential") }
        return try HTTP.json(WhoAmI(name: c.name, role: c.role, credentialId: c.id))
    }

    @Sendable func list(_ request: Request, context: Context) async throws -> Response {
        try HTTP.json(CredentialList(credentials: try await state.database.credentials()))
    }

    @Sendable func create(_ request: Request, context: Context) async throws -> Response {
        let body = try await HTTP.decode(CreateCredentialRequest.self, request, limit: state.config.maxBodyBytes)
        let info = try await Self.create(body, state: state)
        return try HTTP.json(info, status: .created, headers: HTTP.noStore)
    }

    /// Validates and creates a credential (the API and the dashboard form).
    static func create(_ body: CreateCredentialRequest, state: ServerState) async throws -> CredentialInfo {
        if let problem = CreateCredentialRequest.nameProblem(body.name) { throw APIError.invalidValue("name", problem) }
        if let e = body.expiresAt, e <= Date() { throw APIError.invalidValue("expiresAt", "expiresAt is in the past") }
        let info = try await state.database.createCredential(name: body.name, role: body.role, expiresAt: body.expiresAt)
        state.logger.info(
            "credential created",
            metadata: [
                "credential": "\(info.id)", "name": "\(info.name)", "role": "\(info.role.rawValue)",
                "by": "\(AuditContext.current?.name ?? "-")",
            ])
        return info
    }

    @Sendable func revoke(_ request: Request, context: Context) async throws -> Response {
        let id = try context.parameters.require("id")
        let info = try await state.auth.revokeCredential(id: id)
        state.logger.info(
            "credential revoked", metadata: ["credential": "\(id)", "by": "\(AuditContext.current?.name ?? "-")"])
        return try HTTP.json(info)
    }
}

/// `GET /api/v1/audit`: who changed what, when, from where (viewer and up).
struct AuditController<Context: RequestContext>: Sendable {
    let state: ServerState

    func addRoutes(to router: CheckedRouter<Context>) {
        router.on(.get, "/api/v1/audit", use: list)
    }

    /// The filter of an audit query (`node`, `credential`, `action`, `since`, `until`, `record`,
    /// `afterNode`, `limit`). Without a `limit` (or with an empty one): `defaultLimit` when given
    /// (the dashboard's page size), the filter's own otherwise.
    /// `form`: the dashboard's GET form (a `+` is a space, `HTTP.formQuery`), not the API's.
    static func filter(_ request: Request, state: ServerState, defaultLimit: Int? = nil, form: Bool = false) async throws
        -> AuditFilter
    {
        func param(_ name: String) -> String? {
            form ? HTTP.formQuery(request, name).flatMap { $0.isEmpty ? nil : $0 } : HTTP.param(request, name)
        }
        var filter = AuditFilter()
        let now = Date()
        for name in ["since", "until"] {
            guard let text = param(name) else { continue }
            guard let d = ReportTime.parseDate(text, now: now) else {
                throw APIError.invalidValue(
                    name, "'\(text)' is not a time: use ISO 8601 (2026-11-01T00:00:00Z), a date (2026-11-01), now, or -24h / -30d")
            }
            if name == "since" { filter.since = d } else { filter.until = d }
        }
        if let v = try HTTP.intQuery(request, "limit", in: 1...10_000, what: "a record count") {
            filter.limit = v
        } else if let defaultLimit {
            filter.limit = defaultLimit
        }
        if let n = param("node") {
            // A name of a live node means its id; else the text as given (a deleted node's id).
            filter.nodeId = try await state.database.node(idOrName: n)?.id ?? n
        }
        if let r = param("record") {
            guard let v = Int64(r), v > 0 else {
                throw APIError.invalidValue("record", "record must be an audit record's id (a whole number from 1)")
            }
            filter.record = v
        }
        if let a = param("afterNode") {
            guard filter.record != nil else {
                throw APIError.invalidValue("afterNode", "afterNode pages the nodes of one record: give record too")
            }
            filter.afterNode = a
        }
        if let c = param("credential") { filter.credential = c }
        if let a = param("action") { filter.action = a }
        return filter
    }

    @Sendable func list(_ request: Request, context: Context) async throws -> Response {
        let filter = try await Self.filter(request, state: state)
        return try HTTP.json(AuditList(entries: try await state.database.auditLog(filter)))
    }
}
