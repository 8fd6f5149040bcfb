import FleetAPI
import Foundation

extension FleetDatabase {
    /// Creates an enrollment token and returns it with its secret, which is shown only here.
    public func createEnrollmentToken(description: String?, expiresAt: Date?, now: Date = Date()) async throws
        -> EnrollmentTokenInfo
    {
        let token = Secrets.newToken(.enrollment)
        let hash = Secrets.hash(token)
        let id = Secrets.newID(prefix: "e-")
        let who = AuditWho.current(default: "admin")
        try await write { db in
            try db.execute(
                sql: """
                    INSERT INTO enrollment_tokens (id, token_hash, description, created_at, expires_at)
                    VALUES (?, ?, ?, ?, ?)
                    """,
                arguments: [id, hash, description, Time.ms(now), expiresAt.map(Time.ms)])
            let info = try StoreRow.fetchOne(db, sql: "SELECT * FROM enrollment_tokens WHERE id = ?", arguments: [id])
            try Self.audit(
                db, who: who, nodeId: nil, action: "enrollment-token-create", target: id, generation: nil,
                beforeJSON: nil, afterJSON: try info.map { try StoredJSON.encode(Self.tokenInfo($0)) }, at: now)
        }
        return EnrollmentTokenInfo(
            id: id, description: description, createdAt: Time.date(Time.ms(now)),
            expiresAt: expiresAt.map { Time.date(Time.ms($0)) }, revokedAt: nil, token: token)
    }

    static func tokenInfo(_ row: StoreRow) -> EnrollmentTokenInfo {
        EnrollmentTokenInfo(
            id: row["id"], description: row["description"], createdAt: Time.date(row["created_at"] as Int64),
            expiresAt: Time.date(row["expires_at"] as Int64?), revokedAt: Time.date(row["revoked_at"] as Int64?))
    }

    /// Whether `hash` is the hash of an enrollment token (active or not), so that a refusal can
    /// say what kind of credential was sent.
    public func isEnrollmentToken(hash: String) async throws -> Bool {
        try await read { db in
            try Bool.fetchOne(
                db, sql: "SELECT EXISTS (SELECT 1 FROM enrollment_tokens WHERE token_hash = ?)", arguments: [hash]) ?? false
        }
    }

    /// Every enrollment token (without secrets), oldest first.
    public func enrollmentTokens() async throws -> [EnrollmentTokenInfo] {
        try await read { db in
            try StoreRow.fetchAll(db, sql: "SELECT * FROM enrollment_tokens ORDER BY created_at, id").map(Self.tokenInfo)
        }
    }

    /// Revokes an enrollment token (idempotent; the first revocation time is kept).
    public func revokeEnrollmentToken(id: String, now: Date = Date()) async throws -> EnrollmentTokenInfo {
        let who = AuditWho.current(default: "admin")
        return try await write { db in
            let before = try StoreRow.fetchOne(db, sql: "SELECT * FROM enrollment_tokens WHERE id = ?", arguments: [id])
            try db.execute(
                sql: "UPDATE enrollment_tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?",
                arguments: [Time.ms(now), id])
            guard let row = try StoreRow.fetchOne(db, sql: "SELECT * FROM enrollment_tokens WHERE id = ?", arguments: [id])
            else { throw StoreError.enrollmentTokenNotFound(id) }
            let after = Self.tokenInfo(row)
            if let before, (before["revoked_at"] as Int64?) == nil {
                try Self.audit(
                    db, who: who, nodeId: nil, action: "enrollment-token-revoke", target: id, generation: nil,
                    beforeJSON: try StoredJSON.encode(Self.tokenInfo(before)), afterJSON: try StoredJSON.encode(after),
                    at: now)
            }
            return after
        }
    }

    /// The stored hash of the admin token, if one was set.
    public func adminTokenHash() async throws -> String? {
        try await read { db in
            try String.fetchOne(db, sql: "SELECT value FROM settings WHERE key = 'admin_token_hash'")
        }
    }

    /// Stores `hash` as the admin token's unless one is stored already; returns the stored one.
    /// Replicas starting together on one database without a given token: the first to commit
    /// wins, the others adopt its token instead of replacing it.
    public func claimAdminTokenHash(_ hash: String) async throws -> String {
        try await write { db in
            try db.execute(
                sql: "INSERT INTO settings (key, value) VALUES ('admin_token_hash', ?) ON CONFLICT (key) DO NOTHING",
                arguments: [hash])
            return try String.fetchOne(db, sql: "SELECT value FROM settings WHERE key = 'admin_token_hash'") ?? hash
        }
    }

    /// Sets the bootstrap admin token's hash. A new token ends the dashboard sessions signed in
    /// with the old one (rotating the token is how a leaked one is taken back).
    public func setAdminTokenHash(_ hash: String) async throws {
        try await write { db in
            let old = try String.fetchOne(db, sql: "SELECT value FROM settings WHERE key = 'admin_token_hash'")
            try db.execute(
                sql: """
                    INSERT INTO settings (key, value) VALUES ('admin_token_hash', ?)
                    ON CONFLICT (key) DO UPDATE SET value = excluded.value
                    """, arguments: [hash])
            if old != hash {
                try db.execute(sql: "DELETE FROM dashboard_sessions WHERE credential_id IS NULL")
            }
        }
    }
}
