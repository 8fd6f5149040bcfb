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
    }

    var title: String
    var csrf: String?
    var nonce: String
    var nav: [NavLink]

    init(title: String, section: Section, csrf: String?, nonce: String) {
        self.title = title
        self.csrf = csrf
        self.nonce = nonce
        self.nav = [
            NavLink(href: "/", label: "Overview", active: section == .overview),
            NavLink(href: "/nodes", label: "Nodes", active: section == .nodes),
            NavLink(href: "/reports", label: "Savings report", active: section == .reports),
        ]
    }
}

/// The object a page template renders: the layout's frame and the page's own data (`{{#page}}`).
struct DashboardView<Page>: Sendable where Page: Sendable {
    var frame: PageFrame
    var page: Page
}
