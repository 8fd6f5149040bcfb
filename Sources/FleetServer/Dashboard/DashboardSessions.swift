import FleetStore
import Foundation
import Hummingbird

/// Dashboard sessions, stored in the database (`dashboard_sessions`) so that a restart signs
/// nobody out: a random session id (the HTTP-only, SameSite=Strict cookie) whose SHA-256 is the
/// row's key, with a sliding expiry, and the credential that signed in (every request re-checks
/// that it still works; its role decides what the dashboard shows and accepts). The session's
/// CSRF token is derived from the id (a hash with its own prefix), so neither secret is stored.
/// Bounded in number.
final class DashboardSessions: Sendable {
    static let cookie = "ksmfleet_session"
    static let loginCookie = "ksmfleet_login"
    let database: FleetDatabase
    let lifetime: TimeInterval
    let maxSessions: Int

    init(database: FleetDatabase, lifetime: TimeInterval = 12 * 3600, maxSessions: Int = 1000) {
        self.database = database
        self.lifetime = lifetime
        self.maxSessions = maxSessions
    }

    /// The stored key of a session id.
    static func idHash(_ id: String) -> String { Secrets.hash("session:" + id) }
    /// The CSRF token of a session id.
    static func csrf(_ id: String) -> String { Secrets.hash("csrf:" + id) }

    /// A new session of `credential`; returns (session id, CSRF token).
    func create(_ credential: Credential, address: String?, now: Date = Date()) async throws -> (id: String, csrf: String) {
        let id = Secrets.randomHex(bytes: 32)
        try await database.createDashboardSession(
            idHash: Self.idHash(id), expiresAt: now.addingTimeInterval(lifetime), address: address,
            credentialId: credential.id == Credential.bootstrap.id ? nil : credential.id, maxSessions: maxSessions,
            now: now)
        return (id, Self.csrf(id))
    }

    /// The live session (CSRF token and its credential's id, nil for the bootstrap admin);
    /// sliding expiry.
    func session(for id: String?, now: Date = Date()) async throws -> (csrf: String, credentialId: String?)? {
        guard let id, !id.isEmpty, id.count <= 128 else { return nil }
        guard let live = try await database.touchDashboardSession(idHash: Self.idHash(id), lifetime: lifetime, now: now)
        else { return nil }
        return (Self.csrf(id), live.credentialId)
    }

    func remove(_ id: String?) async throws {
        guard let id, !id.isEmpty else { return }
        try await database.deleteDashboardSession(idHash: Self.idHash(id))
    }
}

/// A signed-in request: its session's CSRF token (for the forms on the page), a fresh nonce for
/// the page's inline script, and the credential that signed in.
struct DashboardSession: Sendable {
    var csrf: String
    var nonce: String
    var credential: Credential
}

extension DashboardSessions {
    /// The request's live session whose credential still works, or nil (then the caller
    /// redirects to the login page).
    func signedIn(_ request: Request) async throws -> DashboardSession? {
        guard let s = try await session(for: request.cookies[Self.cookie]?.value) else { return nil }
        let credential: Credential?
        if let id = s.credentialId {
            credential = try await database.credential(id: id)
        } else {
            credential = .bootstrap
        }
        guard let credential else { return nil }
        return DashboardSession(csrf: s.csrf, nonce: DashboardPages.nonce(), credential: credential)
    }
}
