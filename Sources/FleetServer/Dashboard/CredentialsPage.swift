import FleetAPI
import FleetStore
import Foundation
import Hummingbird
import KSMCore

/// Named credentials (`credentials.mustache`, admin only): the list, the create form (the new
/// token shown once, in the reply to the form) and a revoke button per live credential.
struct CredentialsPage: Sendable, Equatable {
    struct Row: Sendable, Equatable {
        var id: String
        var name: String
        var role: String
        var state: String
        var created: String
        var createdBy: String
        var expires: String
        var active: Bool
    }
    struct Created: Sendable, Equatable {
        var name: String
        var role: String
        var token: String
    }
    var rows: [Row]
    var created: Created?
    var formError: String?
    var formName: String
    var formExpires: String
    var roleOptions: [SelectOption]

    init(
        credentials: [CredentialInfo], created: Created? = nil, formError: String? = nil, formName: String = "",
        formRole: String = Role.viewer.rawValue, formExpires: String = "", now: Date = Date()
    ) {
        self.rows = credentials.map { c in
            Row(
                id: c.id, name: c.name, role: c.role.rawValue, state: c.state(now: now),
                created: c.createdAt.formatted(.iso8601), createdBy: c.createdBy ?? "",
                expires: c.expiresAt.map { $0.formatted(.iso8601) } ?? "never", active: c.state(now: now) == "active")
        }
        self.created = created
        self.formError = formError
        self.formName = formName
        self.formExpires = formExpires
        self.roleOptions = SelectOption.list(Role.allCases.map { ($0.rawValue, $0.rawValue) }, current: formRole)
    }

    /// An expiry as typed: empty (never), ISO 8601 / a date, or a duration from now (7d, 24h, 30m).
    static func expiry(_ text: String, now: Date = Date()) -> Date?? {
        let t = text.trimmingCharacters(in: .whitespaces)
        if t.isEmpty { return .some(nil) }
        guard let seconds = ReportTime.parse(t, now: now.timeIntervalSince1970, direction: .future) else { return nil }
        return .some(Date(timeIntervalSince1970: seconds))
    }
}

extension DashboardController {
    /// The posted new-credential form.
    struct CredentialForm: Decodable {
        var name: String?
        var role: String?
        var expires: String?
    }

    @Sendable func credentialsPage(_ request: Request, context: Context) async throws -> Response {
        guard let session = try await sessions.signedIn(request) else { return DashboardPages.toLogin(request) }
        let page = CredentialsPage(credentials: try await state.database.credentials())
        return try pages.render("credentials", title: "Credentials", section: .credentials, session: session, page: page)
    }

    @Sendable func createCredential(_ request: Request, context: Context) async throws -> Response {
        guard let session = try await sessions.signedIn(request) else { return DashboardPages.toLogin(request) }
        guard let data = try await DashboardForm.checked(request, session: session, logger: state.logger) else {
            return try pages.refused(session)
        }
        let form = try DashboardForm.decode(CredentialForm.self, from: data)
        let name = (form.name ?? "").trimmingCharacters(in: .whitespaces)
        let roleText = form.role ?? ""
        var error: String?
        var created: CredentialsPage.Created?
        if let role = Role(rawValue: roleText) {
            if let expires = CredentialsPage.expiry(form.expires ?? "") {
                do {
                    let info = try await CredentialsController<Context>.create(
                        CreateCredentialRequest(name: name, role: role, expiresAt: expires), state: state)
                    created = .init(name: info.name, role: info.role.rawValue, token: info.token ?? "")
                } catch let e as APIError {
                    error = e.detail.message
                } catch let e as StoreError {
                    error = e.description
                }
            } else {
                error = "Expires: '\(form.expires ?? "")' is not a time (ISO 8601, a date, or 7d / 24h from now)."
            }
        } else {
            error = "Role: '\(roleText)' is not a role (viewer, operator, admin)."
        }
        let page = CredentialsPage(
            credentials: try await state.database.credentials(), created: created, formError: error,
            formName: created == nil ? name : "", formRole: created == nil ? roleText : Role.viewer.rawValue,
            formExpires: created == nil ? (form.expires ?? "") : "")
        var response = try pages.render(
            "credentials", title: "Credentials", section: .credentials, session: session, page: page,
            status: error == nil ? .created : .unprocessableContent)
        response.headers[.cacheControl] = "no-store"
        return response
    }

    @Sendable func revokeCredential(_ request: Request, context: Context) async throws -> Response {
        guard let session = try await sessions.signedIn(request) else { return DashboardPages.toLogin(request) }
        guard try await DashboardForm.checked(request, session: session, logger: state.logger) != nil else {
            return try pages.refused(session)
        }
        let id = try context.parameters.require("id")
        do {
            _ = try await state.auth.revokeCredential(id: id)
        } catch StoreError.credentialNotFound {
            return try pages.render(
                "not-found", title: "Not found", section: .credentials, session: session, page: NotFoundPage(name: id),
                status: .notFound)
        }
        state.logger.info("credential revoked", metadata: ["credential": "\(id)", "by": "\(session.credential.name)"])
        return DashboardPages.redirect("/credentials")
    }
}
