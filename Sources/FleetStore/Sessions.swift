import Foundation

/// Dashboard sessions (`dashboard_sessions`, migration 0030): keyed by the SHA-256 of the
/// session id, with a sliding expiry. The id itself never reaches the database.
extension FleetDatabase {
    /// Stores a new session and removes expired ones; keeps at most `maxPerCredential` of the
    /// credential's own and `maxSessions` in all (the ones closest to expiry go first). The cap
    /// per credential comes first: with the overall cap alone, one viewer signing in a thousand
    /// times pushed every other session out, the admins' too.
    /// `credentialId`: the credential that signed in (nil: the bootstrap admin token).
    public func createDashboardSession(
        idHash: String, expiresAt: Date, address: String?, credentialId: String? = nil, maxSessions: Int,
        maxPerCredential: Int = 20, now: Date = Date()
    ) async throws {
        try await write { db in
            try db.execute(sql: "DELETE FROM dashboard_sessions WHERE expires_at <= ?", arguments: [Time.ms(now)])
            let same = credentialId == nil ? "credential_id IS NULL" : "credential_id = ?"
            let sameArguments: StoreArguments =
                credentialId.map { [$0, max(0, maxPerCredential - 1)] } ?? [max(0, maxPerCredential - 1)]
            try db.execute(
                sql: """
                    DELETE FROM dashboard_sessions WHERE id_hash IN (
                      SELECT id_hash FROM dashboard_sessions WHERE \(same) ORDER BY expires_at DESC \(db.noLimit) OFFSET ?)
                    """,
                arguments: sameArguments)
            try db.execute(
                sql: """
                    DELETE FROM dashboard_sessions WHERE id_hash IN (
                      SELECT id_hash FROM dashboard_sessions ORDER BY expires_at DESC \(db.noLimit) OFFSET ?)
                    """,
                arguments: [max(0, maxSessions - 1)])
            try db.execute(
                sql: """
                    INSERT INTO dashboard_sessions (id_hash, created_at, expires_at, address, credential_id)
                    VALUES (?, ?, ?, ?, ?)
                    """,
                arguments: [idHash, Time.ms(now), Time.ms(expiresAt), address, credentialId])
        }
    }

    /// A live session: who signed in (nil: the bootstrap admin token).
    public struct LiveDashboardSession: Sendable, Equatable {
        public var credentialId: String?
    }

    /// The session if it is live at `now`. A live session whose expiry would move by more than
    /// `slideGranularity` is extended to `now + lifetime` (sliding expiry, without a write on
    /// every page view). An expired one is removed.
    public func touchDashboardSession(
        idHash: String, lifetime: TimeInterval, slideGranularity: TimeInterval = 60, now: Date = Date()
    ) async throws -> LiveDashboardSession? {
        let found: (expires: Int64, live: LiveDashboardSession)? = try await read { db in
            guard
                let row = try StoreRow.fetchOne(
                    db, sql: "SELECT expires_at, credential_id FROM dashboard_sessions WHERE id_hash = ?",
                    arguments: [idHash])
            else { return nil }
            return (row[0], LiveDashboardSession(credentialId: row[1]))
        }
        guard let (expires, live) = found else { return nil }
        let nowMs = Time.ms(now)
        guard expires > nowMs else {
            try await deleteDashboardSession(idHash: idHash)
            return nil
        }
        let newExpiry = Time.ms(now.addingTimeInterval(lifetime))
        if newExpiry - expires > Int64(slideGranularity * 1000) {
            try await write { db in
                try db.execute(
                    sql: "UPDATE dashboard_sessions SET expires_at = ? WHERE id_hash = ? AND expires_at > ?",
                    arguments: [newExpiry, idHash, nowMs])
            }
        }
        return live
    }

    public func deleteDashboardSession(idHash: String) async throws {
        try await write { db in
            try db.execute(sql: "DELETE FROM dashboard_sessions WHERE id_hash = ?", arguments: [idHash])
        }
    }

    /// How many sessions are stored (live or not yet purged).
    public func dashboardSessionCount() async throws -> Int {
        try await read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM dashboard_sessions") ?? 0 }
    }
}
