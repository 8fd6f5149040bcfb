import FleetStore
import Foundation
import HTTPTypes
import Hummingbird
import Logging

/// Dashboard sign-in and sign-out. Sign-in with the admin token gives an HTTP-only,
/// SameSite=Strict session cookie (`DashboardSessions`); the login form itself is protected by a
/// one-off token that is both a cookie (path /login) and a hidden field.
struct DashboardLoginController<Context: RequestContext>: Sendable {
    let state: ServerState
    let sessions: DashboardSessions
    let pages: DashboardPages

    func addRoutes(to router: Router<Context>) {
        router.get("/login", use: loginPage)
        router.post("/login", use: login)
        router.post("/logout", use: logout)
    }

    /// The posted login form.
    struct LoginForm: Decodable {
        var csrf: String?
        var next: String?
        var token: String?
    }

    @Sendable func loginPage(_ request: Request, context: Context) async throws -> Response {
        try renderLogin(request, error: nil)
    }

    func renderLogin(_ request: Request, error: String?) throws -> Response {
        let nonce = DashboardPages.nonce()
        let page = LoginPage(
            error: error, loginToken: Secrets.randomHex(bytes: 16), next: HTTP.query(request, "next") ?? "/")
        var r = try pages.render(
            "login", title: "Sign in", section: .none, csrf: nil, nonce: nonce, page: page,
            status: error == nil ? .ok : .unauthorized)
        r.headers[values: .setCookie].append(
            "\(DashboardSessions.loginCookie)=\(page.loginToken); Path=/login; HttpOnly; SameSite=Strict; Max-Age=1800")
        return r
    }

    @Sendable func login(_ request: Request, context: Context) async throws -> Response {
        let form = try DashboardForm.decode(LoginForm.self, from: try await HTTP.body(request, limit: 16 * 1024))
        guard let pre = request.cookies[DashboardSessions.loginCookie]?.value, let posted = form.csrf,
            Secrets.constantTimeEqual(pre, posted)
        else {
            return try renderLogin(request, error: "The sign-in form expired. Please try again.")
        }
        let token = (form.token ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        guard !token.isEmpty, Secrets.constantTimeEqual(Secrets.hash(token), state.auth.adminTokenHash) else {
            state.logger.notice("dashboard sign-in refused: wrong token")
            return try renderLogin(request, error: "That is not the admin token.")
        }
        let (id, _) = sessions.create()
        state.logger.info("dashboard sign-in")
        var r = DashboardPages.redirect(LoginPage.safeNext(form.next))
        r.headers[values: .setCookie].append(
            "\(DashboardSessions.cookie)=\(id); Path=/; HttpOnly; SameSite=Strict; Max-Age=\(Int(sessions.lifetime))")
        r.headers[values: .setCookie].append(
            "\(DashboardSessions.loginCookie)=; Path=/login; HttpOnly; SameSite=Strict; Max-Age=0")
        return r
    }

    @Sendable func logout(_ request: Request, context: Context) async throws -> Response {
        guard let session = sessions.signedIn(request) else { return DashboardPages.redirect("/login") }
        guard try await DashboardForm.checked(request, session: session, logger: state.logger) != nil else {
            return try pages.refused(session)
        }
        sessions.remove(request.cookies[DashboardSessions.cookie]?.value)
        var r = DashboardPages.redirect("/login")
        r.headers[values: .setCookie].append(
            "\(DashboardSessions.cookie)=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
        return r
    }
}

/// The sign-in page (`login.mustache`).
struct LoginPage: Sendable, Equatable {
    /// Why the last attempt failed, if it did.
    var error: String?
    /// The one-off token of this form (also its cookie).
    var loginToken: String
    /// Where to go after signing in (a path on this server).
    var next: String

    /// `next` when it is a path on this server, else "/" (no open redirect to another host).
    static func safeNext(_ next: String?) -> String {
        guard let next, next.hasPrefix("/"), !next.hasPrefix("//"), !next.hasPrefix("/\\") else { return "/" }
        return next
    }
}
