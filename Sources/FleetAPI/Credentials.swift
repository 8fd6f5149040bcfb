#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import KSMCore

/// What a credential may do. Each role includes the ones below it: a viewer reads everything and
/// changes nothing; an operator also changes configs and labels, kicks and applies (rollouts); an
/// admin also manages credentials and enrollment tokens, deletes and purges nodes.
public enum Role: String, Codable, Sendable, CaseIterable, Comparable {
    case viewer
    case `operator`
    case admin

    var rank: Int {
        switch self {
        case .viewer: 0
        case .operator: 1
        case .admin: 2
        }
    }

    public static func < (a: Role, b: Role) -> Bool { a.rank < b.rank }
}

/// `POST /api/v1/credentials`.
public struct CreateCredentialRequest: Codable, Sendable, Equatable, KnownFields {
    /// Who or what holds it, e.g. `grafana` or `alice`: 1-64 of letters, digits, `.`, `_`, `-`, `@`.
    public var name: String
    public var role: Role
    public var expiresAt: Date?
    public init(name: String, role: Role, expiresAt: Date? = nil) {
        self.name = name
        self.role = role
        self.expiresAt = expiresAt
    }
    public static let fieldNames: Set<String> = ["name", "role", "expiresAt"]

    /// Why `name` is not a valid credential name, or nil.
    public static func nameProblem(_ name: String) -> String? {
        if name.isEmpty || name.count > 64 { return "must be 1 to 64 characters" }
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-@")
        if !name.allSatisfy({ allowed.contains($0) }) {
            return "may contain only letters, digits, '.', '_', '-' and '@'"
        }
        return nil
    }
}

/// A named API credential (never its secret, except `token` in the reply to create).
public struct CredentialInfo: Codable, Sendable, Equatable {
    public var id: String
    public var name: String
    public var role: Role
    public var createdAt: Date
    /// Name of the credential that created it.
    public var createdBy: String?
    public var expiresAt: Date?
    public var revokedAt: Date?
    /// Only in the reply to create: the token itself, shown once.
    public var token: String?
    public init(
        id: String, name: String, role: Role, createdAt: Date, createdBy: String?, expiresAt: Date?, revokedAt: Date?,
        token: String? = nil
    ) {
        self.id = id
        self.name = name
        self.role = role
        self.createdAt = createdAt
        self.createdBy = createdBy
        self.expiresAt = expiresAt
        self.revokedAt = revokedAt
        self.token = token
    }

    /// `active`, `expired` or `revoked` at `now`.
    public func state(now: Date = Date()) -> String {
        if revokedAt != nil { return "revoked" }
        if let e = expiresAt, e <= now { return "expired" }
        return "active"
    }
}

public struct CredentialList: Codable, Sendable, Equatable {
    public var credentials: [CredentialInfo]
    public init(credentials: [CredentialInfo]) { self.credentials = credentials }
}

/// `GET /api/v1/whoami`: the credential a request was made with.
public struct WhoAmI: Codable, Sendable, Equatable {
    public var name: String
    public var role: Role
    public var credentialId: String?
    public init(name: String, role: Role, credentialId: String?) {
        self.name = name
        self.role = role
        self.credentialId = credentialId
    }
}

/// One audit record: who (the credential's name and id), when, from where, what, and the state
/// before and after (JSON values as stored).
public struct AuditRecord: Codable, Sendable, Equatable {
    public var id: Int64
    public var at: Date
    /// The credential's name (`bootstrap` for the bootstrap admin token), or `registration`/`system`.
    public var credential: String
    public var credentialId: String?
    /// The client's address (the first X-Forwarded-For entry only behind a named trusted proxy).
    public var source: String?
    public var nodeId: String?
    public var action: String
    /// What else the change was about (a credential or enrollment token id), or the nodes a
    /// fleet-wide apply asked for (`all`, `selector env=prod`).
    public var target: String?
    public var generation: Int64?
    public var before: String?
    public var after: String?
    /// A change made to several nodes at once with the same configs before and after (a
    /// fleet-wide apply) is one record: how many nodes it changed. Listed alone it names no node
    /// and no generation; filtered by a node it is that node's record, with the generation the
    /// node got.
    public var nodeCount: Int?

    /// The node column as the CLI and the dashboard show it: the node, or "N nodes" for a
    /// change shared by several nodes (nil: a record of no node).
    public var nodeLabel: String? { nodeId ?? nodeCount.map { "\($0) nodes" } }

    public init(
        id: Int64, at: Date, credential: String, credentialId: String?, source: String?, nodeId: String?, action: String,
        target: String?, generation: Int64?, before: String?, after: String?, nodeCount: Int? = nil
    ) {
        self.id = id
        self.at = at
        self.credential = credential
        self.credentialId = credentialId
        self.source = source
        self.nodeId = nodeId
        self.action = action
        self.target = target
        self.generation = generation
        self.before = before
        self.after = after
        self.nodeCount = nodeCount
    }
}

public struct AuditList: Codable, Sendable, Equatable {
    public var entries: [AuditRecord]
    public init(entries: [AuditRecord]) { self.entries = entries }
}

extension APIPaths {
    public static let credentials = "/api/v1/credentials"
    public static func credential(_ id: String) -> String { "/api/v1/credentials/\(id)" }
    public static let audit = "/api/v1/audit"
    public static let whoami = "/api/v1/whoami"
}
