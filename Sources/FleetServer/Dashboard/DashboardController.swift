import FleetStore
import Foundation
import Hummingbird

/// The web dashboard: server-rendered pages from Mustache templates (escaping by default), with
/// inline SVG charts. Sign-in and sessions are `DashboardLoginController`'s; each page is its own
/// file (`OverviewPage`, `NodesPage`, `NodePage`, `ReportsPage`: data built by a pure function,
/// plus its route handler). Every form carries the session's CSRF token and every POST checks
/// it. A config edit goes through `ServerState.patchConfig`, the same path as the API's PATCH.
struct DashboardController<Context: RequestContext>: Sendable {
    let state: ServerState
    let sessions: DashboardSessions
    let pages: DashboardPages

    /// Throws when an embedded template does not parse (a build defect, caught by the tests).
    init(state: ServerState, sessions: DashboardSessions = DashboardSessions()) throws {
        self.state = state
        self.sessions = sessions
        self.pages = DashboardPages(templates: try DashboardTemplates())
    }

    func addRoutes(to router: Router<Context>) {
        DashboardLoginController<Context>(state: state, sessions: sessions, pages: pages).addRoutes(to: router)
        router.get("/", use: overview)
        router.get("/nodes", use: nodesPage)
        router.get("/nodes/:id", use: nodePage)
        router.post("/nodes/:id/config", use: saveConfig)
        router.post("/nodes/:id/kick", use: kick)
        router.get("/reports", use: reportsPage)
        router.get("/reports/savings.csv", use: reportCSV)
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
