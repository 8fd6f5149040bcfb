import FleetAPI
import FleetStore

/// What the shared layout (`layout.mustache`) shows around every page: the title, the navigation
/// and logout form (only when signed in: `csrf` is the session's token) and the CSP nonce of the
/// page's inline script.
struct PageFrame: Sendable {
    struct NavLink: Sendable {
        var href: String
        var label: String
        var active: Bool
    }

    /// Which navigation entry a page belongs to.
    enum Section: String, Sendable {
        case none = ""
        case overview
        case nodes
        case reports
        case audit
        case credentials
    }

    var title: String
    var csrf: String?
    var nonce: String
    var nav: [NavLink]
    /// Who is signed in ("alice (operator)"), nil on the login page.
    var signedInAs: String?
    /// The signed-in role may change configs, labels and kick (operator and up): forms show.
    var canOperate: Bool
    /// The signed-in role is admin: credential management shows.
    var isAdmin: Bool

    init(title: String, section: Section, csrf: String?, nonce: String, credential: Credential? = nil) {
        self.title = title
        self.csrf = csrf
        self.nonce = nonce
        self.signedInAs = credential.map { "\($0.name) (\($0.role.rawValue))" }
        self.canOperate = (credential?.role).map { $0 >= .operator } == true
        self.isAdmin = credential?.role == .admin
        var nav = [
            NavLink(href: "/", label: "Overview", active: section == .overview),
            NavLink(href: "/nodes", label: "Nodes", active: section == .nodes),
            NavLink(href: "/reports", label: "Savings report", active: section == .reports),
            NavLink(href: "/audit", label: "Audit", active: section == .audit),
        ]
        if isAdmin { nav.append(NavLink(href: "/credentials", label: "Credentials", active: section == .credentials)) }
        self.nav = nav
    }
}

/// The object a page template renders: the layout's frame and the page's own data (`{{#page}}`).
struct DashboardView<Page>: Sendable where Page: Sendable {
    var frame: PageFrame
    var page: Page
}
