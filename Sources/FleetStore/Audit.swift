import FleetAPI
import Foundation

/// Who made a change, as the audit trail records it: the credential's name and id, and the
/// client's address.
public struct AuditWho: Sendable, Equatable {
    public var name: String
    public var credentialId: String?
    public var source: String?
    public init(name: String, credentialId: String?, source: String?) {
        self.name = name
        self.credentialId = credentialId
        self.source = source
    }

    /// The caller of the request being handled (`AuditContext.current`), else `name` alone
    /// (registration, background jobs, tests calling the store directly). Read it in the async
    /// function, before `write`: a task-local is not visible on the database's queue.
    static func current(default name: String) -> AuditWho {
        AuditContext.current ?? AuditWho(name: name, credentialId: nil, source: nil)
    }
}

/// The credential behind the request being handled. The server's route check sets it for the
/// whole handler (`Auth.checked`), so every store write that records an audit row names the
/// credential without every call site passing it along.
public enum AuditContext {
    @TaskLocal public static var current: AuditWho?
}

/// Filters of `GET /api/v1/audit` (all optional; newest first).
public struct AuditFilter: Sendable, Equatable {
    public var nodeId: String?
    /// Credential name or id.
    public var credential: String?
    public var action: String?
    public var since: Date?
    public var until: Date?
    /// The nodes of one record (a change shared by several nodes: one record per node, by node
    /// id; a record of one node: that record; a record of no node, or none: nothing).
    public var record: Int64?
    /// With `record`: the nodes after this node id (the next page).
    public var afterNode: String?
    public var limit: Int
    public init(
        nodeId: String? = nil, credential: String? = nil, action: String? = nil, since: Date? = nil, until: Date? = nil,
        record: Int64? = nil, afterNode: String? = nil, limit: Int = 100
    ) {
        self.nodeId = nodeId
        self.credential = credential
        self.action = action
        self.since = since
        self.until = until
        self.record = record
        self.afterNode = afterNode
        self.limit = limit
    }
}

extension FleetDatabase {
    /// Writes one audit row (inside the caller's transaction).
    static func audit(
        _ db: StoreDB, who: AuditWho, nodeId: String?, action: String, target: String? = nil, generation: Int64?,
        beforeJSON: String?, afterJSON: String?, at: Date
    ) throws {
        try db.execute(
            sql: """
                INSERT INTO audit_log (at, actor, credential_id, source, node_id, action, target, generation,
                  before_json, after_json)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [
                Time.ms(at), who.name, who.credentialId, who.source, nodeId, action, target, generation, beforeJSON,
                afterJSON,
            ])
    }

    /// Records a change the store does not make itself (a dashboard sign-in, an enrollment
    /// token created or revoked by the server), by the current request's credential.
    public func recordAudit(
        action: String, nodeId: String? = nil, target: String? = nil, before: String? = nil, after: String? = nil,
        who: AuditWho? = nil, now: Date = Date()
    ) async throws {
        let who = who ?? AuditWho.current(default: "system")
        try await write { db in
            try Self.audit(
                db, who: who, nodeId: nodeId, action: action, target: target, generation: nil, beforeJSON: before,
                afterJSON: after, at: now)
        }
    }

    /// Audit records matching `filter`, newest first; with `filter.record`, that record's nodes
    /// by node id.
    ///
    /// A change shared by several nodes is one row (`storeConfigs`): listed as such (no node, its
    /// `nodeCount`), and filtered by a node, or listed by `record`, as each node's record (its id
    /// and the generation it got, `nodeCount` still saying how many the change was made to).
    public func auditLog(_ filter: AuditFilter) async throws -> [AuditRecord] {
        try await read { db in
            let columns =
                "id, at, actor, credential_id, source, node_id, action, target, generation, before_json, after_json, node_count"
            let shared = """
                SELECT a.id, a.at, a.actor, a.credential_id, a.source, m.node_id, a.action, a.target, m.generation,
                  a.before_json, a.after_json, a.node_count
                FROM audit_nodes m JOIN audit_log a ON a.id = m.audit_id
                """
            var from = "audit_log"
            var clauses: [String] = []
            var arguments: [(any StoreBindable)?] = []
            if let r = filter.record {
                from = "(\(shared) WHERE m.audit_id = ? UNION ALL SELECT \(columns) FROM audit_log WHERE id = ? AND node_count IS NULL AND node_id IS NOT NULL) AS r"
                arguments.append(r)
                arguments.append(r)
                if let n = filter.nodeId {
                    clauses.append("node_id = ?")
                    arguments.append(n)
                }
                if let after = filter.afterNode {
                    clauses.append("\(db.byteOrder("node_id")) > ?")
                    arguments.append(after)
                }
            } else if let n = filter.nodeId {
                from = "(SELECT \(columns) FROM audit_log WHERE node_id = ? UNION ALL \(shared) WHERE m.node_id = ?) AS r"
                arguments.append(n)
                arguments.append(n)
            }
            if let c = filter.credential {
                clauses.append("(actor = ? OR credential_id = ?)")
                arguments.append(c)
                arguments.append(c)
            }
            if let a = filter.action {
                clauses.append("action = ?")
                arguments.append(a)
            }
            if let s = filter.since {
                clauses.append("at >= ?")
                arguments.append(Time.ms(s))
            }
            if let u = filter.until {
                clauses.append("at < ?")
                arguments.append(Time.ms(u))
            }
            arguments.append(max(1, min(filter.limit, 10_000)))
            let sql =
                "SELECT \(columns) FROM \(from)" + (clauses.isEmpty ? "" : " WHERE " + clauses.joined(separator: " AND "))
                + (filter.record == nil ? " ORDER BY id DESC LIMIT ?" : " ORDER BY \(db.byteOrder("node_id")) LIMIT ?")
            return try StoreRow.fetchAll(db, sql: sql, arguments: StoreArguments(arguments)).map { row in
                AuditRecord(
                    id: row["id"], at: Time.date(row["at"] as Int64), credential: row["actor"],
                    credentialId: row["credential_id"], source: row["source"], nodeId: row["node_id"],
                    action: row["action"], target: row["target"], generation: row["generation"],
                    before: row["before_json"], after: row["after_json"], nodeCount: row["node_count"])
            }
        }
    }

    /// Audit records of one node (or all), newest first.
    public func auditLog(nodeId: String? = nil, limit: Int = 100) async throws -> [AuditRecord] {
        try await auditLog(AuditFilter(nodeId: nodeId, limit: limit))
    }
}
