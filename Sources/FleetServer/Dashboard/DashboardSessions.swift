import FleetStore
import Foundation
import Hummingbird

/// Dashboard sessions, stored in the database (`dashboard_sessions`) so that a restart signs
/// nobody out: a random session id (the HTTP-only, SameSite=Strict cookie) whose SHA-256 is the
/// row's key, with a sliding expiry. The session's CSRF token is derived from the id (a hash
/// with its own prefix), so neither secret is stored. Bounded in number.
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

    /// A new session; returns (session id, CSRF token).
    func create(address: String?, now: Date = Date()) async throws -> (id: String, csrf: String) {
        let id = Secrets.randomHex(bytes: 32)
        try await database.createDashboardSession(
            idHash: Self.idHash(id), expiresAt: now.addingTimeInterval(lifetime), address: address,
            maxSessions: maxSessions, now: now)
        return (id, Self.csrf(id))
    }

    /// The live session's CSRF token; sliding expiry.
    func csrf(for id: String?, now: Date = Date()) async throws -> String? {
        guard let id, !id.isEmpty, id.count <= 128 else { return nil }
        guard try await database.touchDashboardSession(idHash: Self.idHash(id), lifetime: lifetime, now: now) else {
            return nil
        }
        return Self.csrf(id)
    }

    func remove(_ id: String?) async throws {
        guard let id, !id.isEmpty else { return }
        try await database.deleteDashboardSession(idHash: Self.idHash(id))
    }
}

/// A signed-in request: its session's CSRF token (for the forms on the page) and a fresh nonce
/// for the page's inline script.
struct DashboardSession: Sendable {
    var csrf: String
    var nonce: String
}

extension DashboardSessions {
    /// The request's live session, or nil (then the caller redirects to the login page).
    func signedIn(_ request: Request) async throws -> DashboardSession? {
        guard let csrf = try await csrf(for: request.cookies[Self.cookie]?.value) else { return nil }
        return DashboardSession(csrf: csrf, nonce: DashboardPages.nonce())
    }
}
