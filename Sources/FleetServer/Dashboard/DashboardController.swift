import FleetStore
import Foundation
import HTTPTypes
import Hummingbird

/// The web dashboard: server-rendered pages from Mustache templates (escaping by default), with
/// inline SVG charts. Sign-in and sessions are `DashboardLoginController`'s; each page is its own
/// file (`OverviewPage`, `NodesPage`, `NodePage`, `ReportsPage`: data built by a pure function,
/// plus its route handler). Every form carries the session's CSRF token and every POST checks
/// it. A config edit goes through `ServerState.patchConfig`, the same path as the API's PATCH.
struct DashboardController<Context: RemoteAddressRequestContext>: Sendable {
    let state: ServerState
    let sessions: DashboardSessions
    let pages: DashboardPages

    /// Throws when an embedded template does not parse (a build defect, caught by the tests).
    init(state: ServerState, sessions: DashboardSessions? = nil) throws {
        self.state = state
        self.sessions = sessions ?? DashboardSessions(database: state.database)
        self.pages = DashboardPages(templates: try DashboardTemplates())
    }

    func addRoutes(to routes: CheckedRouter<Context>) {
        DashboardLoginController<Context>(state: state, sessions: sessions, pages: pages).addRoutes(to: self, routes)
        route(.get, "/", routes, use: overview)
        route(.get, "/nodes", routes, use: nodesPage)
        route(.get, "/nodes/:id", routes, use: nodePage)
        route(.post, "/nodes/:id/config", routes, use: saveConfig)
        route(.post, "/nodes/:id/kick", routes, use: kick)
        route(.post, "/registrations/:id/accept", routes, use: decideRegistration)
        route(.post, "/registrations/:id/reject", routes, use: decideRegistration)
        route(.get, "/reports", routes, use: reportsPage)
        route(.get, "/reports/savings.csv", routes, use: reportCSV)
        route(.get, "/audit", routes, use: auditPage)
        route(.get, "/credentials", routes, use: credentialsPage)
        route(.post, "/credentials", routes, use: createCredential)
        route(.post, "/credentials/:id/revoke", routes, use: revokeCredential)
    }

    /// A dashboard route, through the route table like the API's: no session (or a session whose
    /// credential was revoked or expired) goes to the login page; a role below the route's gets
    /// the 403 page from `Auth.allows`, the same check as the API. The handler runs with the
    /// session's credential as the caller of the audit trail.
    func route(
        _ method: HTTPRequest.Method, _ path: String, _ routes: CheckedRouter<Context>,
        use handler: @escaping @Sendable (Request, Context) async throws -> Response
    ) {
        guard let spec = routes.spec(method, path) else { return }
        let state = self.state, sessions = self.sessions, pages = self.pages
        routes.router.on(RouterPath(path), method: method) { request, context in
            if spec.access == .anyone { return try await handler(request, context) }
            guard let session = try await sessions.signedIn(request),
                let credential = try await state.auth.credential(id: session.credential.id)
            else {
                try await sessions.remove(request.cookies[DashboardSessions.cookie]?.value)
                return DashboardPages.toLogin(request)
            }
            let principal = Principal.credential(credential)
            guard state.auth.allows(spec.access, principal, nodeId: nil) else {
                state.logger.notice(
                    "dashboard request refused: role too low",
                    metadata: ["credential": "\(credential.name)", "route": "\(spec.key)"])
                return try pages.forbidden(session, needs: Auth.needs(spec.access))
            }
            let who = AuditWho(
                name: credential.name, credentialId: credential.id, source: state.clientAddress(request, context: context))
            return try await Caller.$current.withValue(principal) {
                try await AuditContext.$current.withValue(who) { try await handler(request, context) }
            }
        }
    }

    /// The live node a dashboard URL names (by id or name), or nil.
    func node(_ context: Context) async throws -> (raw: String, node: StoredNode?) {
        let raw = try context.parameters.require("id")
        return (raw, try await state.database.node(idOrName: raw))
    }

    /// 404: no live node by that id or name.
    func notFound(_ raw: String, session: DashboardSession) throws -> Response {
        try pages.render(
            "not-found", title: "Not found", section: .nodes, session: session, page: NotFoundPage(name: raw),
            status: .notFound)
    }
}

/// The "node not found" page (`not-found.mustache`): the id or name that was asked for.
struct NotFoundPage: Sendable, Equatable {
    var name: String
}
