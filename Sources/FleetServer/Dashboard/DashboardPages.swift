import FleetStore
import Foundation
import HTTPTypes
import Hummingbird

/// Turns a page template and its data into a response with the dashboard's security headers
/// (a CSP whose only script is the page's nonce'd inline one, no caching, no framing), and the
/// redirects the dashboard answers with.
struct DashboardPages: Sendable {
    let templates: DashboardTemplates

    static func nonce() -> String { Secrets.randomHex(bytes: 16) }

    /// A page for a signed-in user (with navigation and the logout form).
    func render<Page: Sendable>(
        _ template: String, title: String, section: PageFrame.Section, session: DashboardSession, page: Page,
        status: HTTPResponse.Status = .ok
    ) throws -> Response {
        let frame = PageFrame(
            title: title, section: section, csrf: session.csrf, nonce: session.nonce, credential: session.credential)
        return Self.html(try templates.render(template, frame: frame, page: page), nonce: session.nonce, status: status)
    }

    /// A page; `csrf` nil for a visitor who is not signed in (no navigation, no logout form).
    func render<Page: Sendable>(
        _ template: String, title: String, section: PageFrame.Section, csrf: String?, nonce: String, page: Page,
        status: HTTPResponse.Status = .ok
    ) throws -> Response {
        let frame = PageFrame(title: title, section: section, csrf: csrf, nonce: nonce, credential: nil)
        return Self.html(try templates.render(template, frame: frame, page: page), nonce: nonce, status: status)
    }

    static func html(_ body: String, nonce: String, status: HTTPResponse.Status = .ok) -> Response {
        var r = HTTP.text(body, contentType: "text/html; charset=utf-8", status: status)
        r.headers[.contentSecurityPolicy] =
            "default-src 'none'; style-src 'unsafe-inline'; script-src 'nonce-\(nonce)'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        r.headers[.cacheControl] = "no-store"
        for (name, value) in [
            ("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", "no-referrer"), ("X-Frame-Options", "DENY"),
        ] {
            if let n = HTTPField.Name(name) { r.headers[n] = value }
        }
        return r
    }

    static func redirect(_ location: String) -> Response {
        var r = Response(status: .seeOther)
        r.headers[.location] = location
        r.headers[.cacheControl] = "no-store"
        return r
    }

    /// To the login page, which comes back here after signing in: to the same page and query
    /// for a GET (a shared report link keeps its period), to the path's page for a form posted
    /// after the session ended (`/nodes/x/config` has no page of its own: its node's).
    static func toLogin(_ request: Request) -> Response {
        var back = request.uri.path
        if request.method == .get, let query = request.uri.query, !query.isEmpty {
            back += "?" + query
        } else if request.method != .get, back.hasPrefix("/nodes/") {
            back = "/nodes/" + (back.dropFirst("/nodes/".count).split(separator: "/").first.map(String.init) ?? "")
        }
        return redirect("/login?next=" + HTML.q(back))
    }

    /// 403: a form without a valid CSRF token.
    func refused(_ session: DashboardSession) throws -> Response {
        try render(
            "refused", title: "Refused", section: .none, session: session, page: NoPageData(), status: .forbidden)
    }
}

extension DashboardPages {
    /// 403: the signed-in credential's role is below what the page or form needs.
    func forbidden(_ session: DashboardSession, needs: String) throws -> Response {
        try render(
            "forbidden", title: "Not allowed", section: .none, session: session,
            page: ForbiddenPage(name: session.credential.name, role: session.credential.role.rawValue, needs: needs),
            status: .forbidden)
    }
}

/// The 403 page (`forbidden.mustache`).
struct ForbiddenPage: Sendable, Equatable {
    var name: String
    var role: String
    var needs: String
}

/// The data of a page that shows nothing but its template's text.
struct NoPageData: Sendable {}
