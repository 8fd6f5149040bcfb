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
        try render(
            template, title: title, section: section, csrf: session.csrf, nonce: session.nonce, page: page,
            status: status)
    }

    /// A page; `csrf` nil for a visitor who is not signed in (no navigation, no logout form).
    func render<Page: Sendable>(
        _ template: String, title: String, section: PageFrame.Section, csrf: String?, nonce: String, page: Page,
        status: HTTPResponse.Status = .ok
    ) throws -> Response {
        let frame = PageFrame(title: title, section: section, csrf: csrf, nonce: nonce)
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

    /// To the login page, which comes back here after signing in.
    static func toLogin(_ request: Request) -> Response {
        redirect("/login?next=" + HTML.q(request.uri.path))
    }

    /// 403: a form without a valid CSRF token.
    func refused(_ session: DashboardSession) throws -> Response {
        try render(
            "refused", title: "Refused", section: .none, session: session, page: NoPageData(), status: .forbidden)
    }
}

/// The data of a page that shows nothing but its template's text.
struct NoPageData: Sendable {}
