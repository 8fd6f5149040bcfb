import FleetAPI
import Foundation

/// A credential as the server checks it: who (its name, for the audit trail), its id and role,
/// and when it expires (nil: never).
public struct Credential: Sendable, Equatable {
    public var id: String
    public var name: String
    public var role: Role
    public var expiresAt: Date?
    public init(id: String, name: String, role: Role, expiresAt: Date? = nil) {
        self.id = id
        self.name = name
        self.role = role
        self.expiresAt = expiresAt
    }

    /// The bootstrap admin token (`KSMFLEET_ADMIN_TOKEN` or the generated `admin-token` file).
    public static let bootstrap = Credential(id: "bootstrap", name: "bootstrap", role: .admin)
}

extension FleetDatabase {
    /// Creates a named credential and returns it with its token, which is shown only here.
    /// Throws `StoreError.credentialNameTaken` when a live credential has the name. The audit
    /// record names the credential that created it (`AuditContext`).
    public func createCredential(name: String, role: Role, expiresAt: Date?, now: Date = Date()) async throws
        -> CredentialInfo
    {
        let who = AuditWho.current(default: "admin")
        let token = Secrets.newToken(.credential)
        let hash = Secrets.hash(token)
        let id = Secrets.newID(prefix: "c-")
        return try await write { db in
            let taken =
                try Bool.fetchOne(
                    db, sql: "SELECT 1 FROM credentials WHERE name = ? AND revoked_at IS NULL", arguments: [name]) == true
            if name == Credential.bootstrap.name || taken { throw StoreError.credentialNameTaken(name) }
            try db.execute(
                sql: """
                    INSERT INTO credentials (id, name, role, token_hash, created_at, created_by, expires_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [id, name, role.rawValue, hash, Time.ms(now), who.name, expiresAt.map(Time.ms)])
            var info = try Self.credentialInfo(db, id: id)
            try Self.audit(
                db, who: who, nodeId: nil, action: "credential-create", target: id, generation: nil,
                beforeJSON: nil, afterJSON: try StoredJSON.encode(info), at: now)
            info.token = token
            return info
        }
    }

    /// A live credential's row (`id`, `name`, `role`, `expires_at`) as the server checks it.
    static func credential(_ row: StoreRow) -> Credential? {
        Role(rawValue: row["role"]).map {
            Credential(id: row["id"], name: row["name"], role: $0, expiresAt: Time.date(row["expires_at"] as Int64?))
        }
    }

    static func credentialInfo(_ row: StoreRow) -> CredentialInfo {
        CredentialInfo(
            id: row["id"], name: row["name"], role: Role(rawValue: row["role"]) ?? .viewer,
            createdAt: Time.date(row["created_at"] as Int64), createdBy: row["created_by"],
            expiresAt: Time.date(row["expires_at"] as Int64?), revokedAt: Time.date(row["revoked_at"] as Int64?))
    }

    static func credentialInfo(_ db: StoreDB, id: String) throws -> CredentialInfo {
        guard let row = try StoreRow.fetchOne(db, sql: "SELECT * FROM credentials WHERE id = ?", arguments: [id]) else {
            throw StoreError.credentialNotFound(id)
        }
        return credentialInfo(row)
    }

    /// Every named credential (without secrets), oldest first.
    public func credentials() async throws -> [CredentialInfo] {
        try await read { db in
            try StoreRow.fetchAll(db, sql: "SELECT * FROM credentials ORDER BY created_at, id").map(Self.credentialInfo)
        }
    }

    /// The live (not revoked, not expired) credential whose token hashes to `hash`.
    public func credential(forTokenHash hash: String, now: Date = Date()) async throws -> Credential? {
        try await read { db in
            try StoreRow.fetchOne(
                db,
                sql: """
                    SELECT id, name, role, expires_at FROM credentials WHERE token_hash = ? AND revoked_at IS NULL
                      AND (expires_at IS NULL OR expires_at > ?)
                    """, arguments: [hash, Time.ms(now)]
            ).flatMap(Self.credential)
        }
    }

    /// The live credential with this id (a dashboard session re-checks its credential on every
    /// request, so a revocation ends its sessions).
    public func credential(id: String, now: Date = Date()) async throws -> Credential? {
        try await read { db in
            try StoreRow.fetchOne(
                db,
                sql: """
                    SELECT id, name, role, expires_at FROM credentials WHERE id = ? AND revoked_at IS NULL
                      AND (expires_at IS NULL OR expires_at > ?)
                    """, arguments: [id, Time.ms(now)]
            ).flatMap(Self.credential)
        }
    }

    /// Revokes a credential (idempotent; the first revocation time is kept), audited.
    public func revokeCredential(id: String, now: Date = Date()) async throws -> CredentialInfo {
        let who = AuditWho.current(default: "admin")
        return try await write { db in
            let before = try Self.credentialInfo(db, id: id)
            try db.execute(
                sql: "UPDATE credentials SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?",
                arguments: [Time.ms(now), id])
            let after = try Self.credentialInfo(db, id: id)
            if before.revokedAt == nil {
                try Self.audit(
                    db, who: who, nodeId: nil, action: "credential-revoke", target: id, generation: nil,
                    beforeJSON: try StoredJSON.encode(before), afterJSON: try StoredJSON.encode(after), at: now)
            }
            return after
        }
    }
}
