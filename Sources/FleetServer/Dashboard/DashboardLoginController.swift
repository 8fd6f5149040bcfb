import FleetStore
import Foundation
import HTTPTypes
import Hummingbird
import Logging

/// Dashboard sign-in and sign-out. Sign-in with a credential (the bootstrap admin token or a named
/// credential of any role; the session carries it, audited as a "login") gives an HTTP-only,
/// SameSite=Strict session cookie (`DashboardSessions`); the login form itself is protected by a
/// one-off token that is both a cookie (path /login) and a hidden field. Failed sign-ins are
/// throttled per client address (`LoginThrottle`: 429 with Retry-After). Over HTTPS the cookies
/// get `Secure` from `TransportSecurityMiddleware`.
struct DashboardLoginController<Context: RemoteAddressRequestContext>: Sendable {
    let state: ServerState
    let sessions: DashboardSessions
    let pages: DashboardPages

    func addRoutes(to dashboard: DashboardController<Context>, _ routes: CheckedRouter<Context>) {
        dashboard.route(.get, "/login", routes, use: loginPage)
        dashboard.route(.post, "/login", routes, use: login)
        dashboard.route(.post, "/logout", routes, use: logout)
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

    func renderLogin(_ request: Request, error: String?, status: HTTPResponse.Status? = nil) throws -> Response {
        let nonce = DashboardPages.nonce()
        let page = LoginPage(
            error: error, loginToken: Secrets.randomHex(bytes: 16),
            next: LoginPage.safeNext(HTTP.query(request, "next")))
        var r = try pages.render(
            "login", title: "Sign in", section: .none, csrf: nil, nonce: nonce, page: page,
            status: status ?? (error == nil ? .ok : .unauthorized))
        r.headers[values: .setCookie].append(
            "\(DashboardSessions.loginCookie)=\(page.loginToken); Path=/login; HttpOnly; SameSite=Strict; Max-Age=1800")
        return r
    }

    @Sendable func login(_ request: Request, context: Context) async throws -> Response {
        let address = state.clientAddress(request, context: context)
        // Counted as failed from here on, until it succeeds (`attempt`).
        if let wait = state.loginThrottle.attempt(address) {
            state.logger.notice(
                "dashboard sign-in throttled", metadata: ["address": "\(address)", "retryAfter": "\(wait)"])
            var r = try renderLogin(
                request, error: "Too many failed sign-ins from your address. Try again in \(wait) seconds.",
                status: .tooManyRequests)
            r.headers[.retryAfter] = "\(wait)"
            return r
        }
        // An attempt that fails before a token is checked (a bad body, the database away during
        // the look-up) gives its count back: an admin retrying through an outage is no guesser.
        let form: LoginForm
        let found: Credential?
        do {
            form = try DashboardForm.decode(LoginForm.self, from: try await HTTP.body(request, limit: 16 * 1024))
            guard let pre = request.cookies[DashboardSessions.loginCookie]?.value, let posted = form.csrf,
                Secrets.constantTimeEqual(pre, posted)
            else {
                state.loginThrottle.checkedNoToken(address)
                return try renderLogin(request, error: "The sign-in form expired. Please try again.")
            }
            let token = (form.token ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
            found = token.isEmpty ? nil : try await state.auth.credential(token: token)
        } catch {
            state.loginThrottle.checkedNoToken(address)
            throw error
        }
        guard let credential = found else {
            state.logger.notice("dashboard sign-in refused: wrong token", metadata: ["address": "\(address)"])
            return try renderLogin(
                request, error: "That is neither the admin token nor a live credential (revoked or expired ones stop working).")
        }
        state.loginThrottle.succeeded(address)
        let (id, _) = try await sessions.create(credential, address: address)
        let who = AuditWho(
            name: credential.name, credentialId: credential.id, source: address)
        try await state.database.recordAudit(
            action: "login", target: credential.id, after: "{\"role\":\"\(credential.role.rawValue)\"}", who: who)
        state.logger.info(
            "dashboard sign-in",
            metadata: [
                "credential": "\(credential.name)", "role": "\(credential.role.rawValue)", "address": "\(address)",
            ])
        var r = DashboardPages.redirect(LoginPage.safeNext(form.next))
        r.headers[values: .setCookie].append(
            "\(DashboardSessions.cookie)=\(id); Path=/; HttpOnly; SameSite=Strict; Max-Age=\(Int(sessions.lifetime))")
        r.headers[values: .setCookie].append(
            "\(DashboardSessions.loginCookie)=; Path=/login; HttpOnly; SameSite=Strict; Max-Age=0")
        return r
    }

    @Sendable func logout(_ request: Request, context: Context) async throws -> Response {
        guard let session = try await sessions.signedIn(request) else { return DashboardPages.redirect("/login") }
        guard try await DashboardForm.checked(request, session: session, logger: state.logger) != nil else {
            return try pages.refused(session)
        }
        try await sessions.remove(request.cookies[DashboardSessions.cookie]?.value)
        try await state.database.recordAudit(action: "logout", target: session.credential.id)
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

    /// `next` when it is a path on this server, else "/" (no open redirect to another host;
    /// see `SafeRedirect`).
    static func safeNext(_ next: String?) -> String {
        SafeRedirect.path(next)
    }
}
