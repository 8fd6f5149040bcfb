import FleetStore
import Foundation
import Hummingbird
import Synchronization

/// Dashboard sessions, kept in server memory (a restart logs everyone out): a random session id
/// (the HTTP-only, SameSite=Strict cookie) maps to its CSRF token and expiry. Bounded in number.
final class DashboardSessions: Sendable {
    struct Session: Sendable {
        var csrf: String
        var expires: Date
    }

    static let cookie = "ksmfleet_session"
    static let loginCookie = "ksmfleet_login"
    let lifetime: TimeInterval
    let maxSessions: Int
    private let sessions = Mutex<[String: Session]>([:])

    init(lifetime: TimeInterval = 12 * 3600, maxSessions: Int = 1000) {
        self.lifetime = lifetime
        self.maxSessions = maxSessions
    }

    /// A new session; returns (session id, CSRF token).
    func create(now: Date = Date()) -> (id: String, csrf: String) {
        let id = Secrets.randomHex(bytes: 32)
        let csrf = Secrets.randomHex(bytes: 32)
        let lifetime = self.lifetime
        let maxSessions = self.maxSessions
        sessions.withLock { s in
            s = s.filter { $0.value.expires > now }
            if s.count >= maxSessions, let oldest = s.min(by: { $0.value.expires < $1.value.expires }) {
                s.removeValue(forKey: oldest.key)
            }
            s[id] = Session(csrf: csrf, expires: now.addingTimeInterval(lifetime))
        }
        return (id, csrf)
    }

    /// The live session's CSRF token; sliding expiry.
    func csrf(for id: String?, now: Date = Date()) -> String? {
        guard let id, !id.isEmpty else { return nil }
        let lifetime = self.lifetime
        return sessions.withLock { s -> String? in
            guard var session = s[id] else { return nil }
            guard session.expires > now else {
                s.removeValue(forKey: id)
                return nil
            }
            session.expires = now.addingTimeInterval(lifetime)
            s[id] = session
            return session.csrf
        }
    }

    func remove(_ id: String?) {
        guard let id else { return }
        _ = sessions.withLock { $0.removeValue(forKey: id) }
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
    func signedIn(_ request: Request) -> DashboardSession? {
        guard let csrf = csrf(for: request.cookies[Self.cookie]?.value) else { return nil }
        return DashboardSession(csrf: csrf, nonce: DashboardPages.nonce())
    }
}
