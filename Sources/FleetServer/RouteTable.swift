import FleetAPI
import HTTPTypes

/// Who may call a route. Checked in one place, `Auth.allows` (the API through `CheckedRouter`,
/// the dashboard through `DashboardController.route`).
enum Access: Sendable, Equatable, CustomStringConvertible {
    /// No credential: health checks, the API description, the sign-in form.
    case anyone
    /// A credential (bootstrap admin token or named credential) with at least this role.
    case role(Role)
    /// The node's own token (the `:id` of the path).
    case node
    /// The node's own token, or a credential with at least this role.
    case nodeOrRole(Role)
    /// An enrollment token (checked by the registration itself, in its transaction).
    case enrollment
    /// A viewer credential, or anyone when the server runs with `--metrics-public`.
    case metrics

    var description: String {
        switch self {
        case .anyone: "anyone"
        case .role(let r): r.rawValue
        case .node: "node (own)"
        case .nodeOrRole(let r): "node (own) or \(r.rawValue)"
        case .enrollment: "enrollment token"
        case .metrics: "viewer (anyone with --metrics-public)"
        }
    }
}

/// One route: method, path (Hummingbird syntax, `:id` for a parameter) and who may call it.
struct RouteSpec: Sendable, Equatable, Hashable {
    var method: HTTPRequest.Method
    var path: String
    var access: Access
    /// A dashboard page or form (session cookie, HTML) rather than the JSON API (bearer token).
    var dashboard: Bool = false
    /// The query parameters an API route reads (openapi.yaml lists the same: `RouteRoleTests`);
    /// any other, or one given twice, is refused (`HTTP.checkQuery`).
    var query: Set<String> = []

    var key: String { "\(method.rawValue) \(path)" }

    static func == (a: RouteSpec, b: RouteSpec) -> Bool { a.key == b.key }
    func hash(into hasher: inout Hasher) { hasher.combine(key) }
}

/// Who may do what: every route of the server and the role it needs. A route is registered
/// only through this table (`CheckedRouter.on`, `DashboardController.route`): the server refuses
/// to start when a registration has no entry here or an entry is never registered, and
/// `RouteRoleTests` walks every entry with every kind of credential. docs/security.md shows it.
enum RouteTable {
    static let routes: [RouteSpec] = [
        // Operations
        RouteSpec(method: .get, path: "/healthz", access: .anyone),
        RouteSpec(method: .get, path: "/readyz", access: .anyone),
        RouteSpec(method: .get, path: "/metrics", access: .metrics),
        RouteSpec(method: .get, path: "/openapi.yaml", access: .anyone),
        // Agents
        RouteSpec(method: .post, path: "/api/v1/register", access: .enrollment),
        RouteSpec(method: .get, path: "/api/v1/nodes/:id/config", access: .nodeOrRole(.viewer), query: ["wait"]),
        RouteSpec(method: .post, path: "/api/v1/nodes/:id/samples", access: .node),
        RouteSpec(method: .post, path: "/api/v1/nodes/:id/token", access: .node),
        RouteSpec(method: .put, path: "/api/v1/nodes/:id/facts", access: .node),
        // Reading
        RouteSpec(method: .get, path: "/api/v1/whoami", access: .role(.viewer)),
        RouteSpec(
            method: .get, path: "/api/v1/nodes", access: .role(.viewer),
            query: ["selector", "phase", "online", "drift", "limit", "after"]),
        RouteSpec(method: .get, path: "/api/v1/nodes/:id", access: .role(.viewer)),
        RouteSpec(
            method: .get, path: "/api/v1/nodes/:id/history", access: .role(.viewer), query: ["since", "until", "resolution"]),
        RouteSpec(
            method: .get, path: "/api/v1/reports/savings", access: .role(.viewer),
            query: ["since", "until", "by", "label", "format"]),
        RouteSpec(
            method: .get, path: "/api/v1/reports/processes", access: .role(.viewer), query: ["since", "until", "node", "limit"]),
        RouteSpec(method: .get, path: "/api/v1/registrations", access: .role(.viewer), query: ["all"]),
        RouteSpec(
            method: .get, path: "/api/v1/audit", access: .role(.viewer),
            query: ["node", "credential", "action", "since", "until", "record", "afterNode", "limit"]),
        // Operating
        RouteSpec(method: .put, path: "/api/v1/nodes/:id/labels", access: .role(.operator)),
        RouteSpec(method: .put, path: "/api/v1/nodes/:id/config", access: .role(.operator)),
        RouteSpec(method: .patch, path: "/api/v1/nodes/:id/config", access: .role(.operator)),
        RouteSpec(method: .post, path: "/api/v1/nodes/:id/kick", access: .role(.operator)),
        RouteSpec(method: .post, path: "/api/v1/config/apply", access: .role(.operator)),
        // Administering
        RouteSpec(method: .delete, path: "/api/v1/nodes/:id", access: .role(.admin), query: ["purgeHistory"]),
        RouteSpec(method: .post, path: "/api/v1/registrations/:id/accept", access: .role(.admin)),
        RouteSpec(method: .post, path: "/api/v1/registrations/:id/reject", access: .role(.admin)),
        RouteSpec(method: .post, path: "/api/v1/nodes/:id/rotate-token", access: .role(.admin)),
        RouteSpec(method: .get, path: "/api/v1/enrollment-tokens", access: .role(.admin)),
        RouteSpec(method: .post, path: "/api/v1/enrollment-tokens", access: .role(.admin)),
        RouteSpec(method: .delete, path: "/api/v1/enrollment-tokens/:id", access: .role(.admin)),
        RouteSpec(method: .get, path: "/api/v1/credentials", access: .role(.admin)),
        RouteSpec(method: .post, path: "/api/v1/credentials", access: .role(.admin)),
        RouteSpec(method: .delete, path: "/api/v1/credentials/:id", access: .role(.admin)),
        // Dashboard (session cookie; a viewer sees the pages without their forms)
        RouteSpec(method: .get, path: "/login", access: .anyone, dashboard: true),
        RouteSpec(method: .post, path: "/login", access: .anyone, dashboard: true),
        RouteSpec(method: .post, path: "/logout", access: .role(.viewer), dashboard: true),
        RouteSpec(method: .get, path: "/", access: .role(.viewer), dashboard: true),
        RouteSpec(method: .get, path: "/nodes", access: .role(.viewer), dashboard: true),
        RouteSpec(method: .get, path: "/nodes/:id", access: .role(.viewer), dashboard: true),
        RouteSpec(method: .post, path: "/nodes/:id/config", access: .role(.operator), dashboard: true),
        RouteSpec(method: .post, path: "/nodes/:id/kick", access: .role(.operator), dashboard: true),
        RouteSpec(method: .post, path: "/registrations/:id/accept", access: .role(.admin), dashboard: true),
        RouteSpec(method: .post, path: "/registrations/:id/reject", access: .role(.admin), dashboard: true),
        RouteSpec(method: .get, path: "/reports", access: .role(.viewer), dashboard: true),
        RouteSpec(method: .get, path: "/reports/savings.csv", access: .role(.viewer), dashboard: true),
        RouteSpec(method: .get, path: "/audit", access: .role(.viewer), dashboard: true),
        RouteSpec(method: .get, path: "/credentials", access: .role(.admin), dashboard: true),
        RouteSpec(method: .post, path: "/credentials", access: .role(.admin), dashboard: true),
        RouteSpec(method: .post, path: "/credentials/:id/revoke", access: .role(.admin), dashboard: true),
    ]

    static func spec(_ method: HTTPRequest.Method, _ path: String) -> RouteSpec? {
        routes.first { $0.method == method && $0.path == path }
    }

    /// The table as Markdown (docs/security.md is checked against it by a test).
    static var markdown: String {
        var out = "| Method | Path | Who may call it |\n|---|---|---|\n"
        for r in routes {
            out += "| \(r.method.rawValue) | `\(r.path)`\(r.dashboard ? " (dashboard)" : "") | \(r.access) |\n"
        }
        return out
    }
}
