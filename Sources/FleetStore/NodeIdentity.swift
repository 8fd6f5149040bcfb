import FleetAPI
import Foundation
import KSMCore

/// What a node token is, as `Auth` needs it.
public struct NodeCredential: Sendable, Equatable {
    public var nodeId: String
    /// The token is the node's previous one (valid until the agent has used the new one): never
    /// remembered by a cache.
    public var isPrevious: Bool
    /// When the current token was issued (nil for nodes from before the identity migration).
    public var issuedAt: Date?
    /// An admin asked for a rotation at this time.
    public var rotateRequestedAt: Date?
    /// A previous token is still valid with no end in sight yet (the new one was never used):
    /// the first use of the current one should call `confirmNewToken`.
    public var previousAwaitsConfirmation: Bool
    /// A previous token still in use more than a grace period after its rotation while the new
    /// token was never used: the agent lost the rotation's reply.
    public var lostRotationReply: Bool = false

    /// Whether the agent should replace this token now. An agent still on its previous token
    /// while the new one was never used lost the reply of that rotation: it is asked again (and
    /// `rotateNodeToken` keeps the previous token as it is), rather than running into the
    /// previous token's end a day later and becoming a pending registration.
    public func rotationDue(everySeconds: Double?, now: Date) -> Bool {
        if isPrevious { return lostRotationReply }
        if rotateRequestedAt != nil { return true }
        guard let everySeconds, everySeconds > 0, let issuedAt else { return false }
        return now.timeIntervalSince(issuedAt) >= everySeconds
    }
}

extension FleetDatabase {
    /// How long a previous token stays valid after a rotation when the new one is never used.
    public static let previousTokenLifetime: Double = 24 * 3600
    /// How long a previous token stays valid after the new one was first used (requests that
    /// were already on their way, such as a long-poll, finish with it).
    public static let previousTokenGrace: Double = 120

    /// The live node a token belongs to (its current token, or its previous one while valid).
    public func nodeCredential(forTokenHash hash: String, now: Date = Date()) async throws -> NodeCredential? {
        try await read { db in
            if let row = try StoreRow.fetchOne(
                db,
                sql: """
                    SELECT id, token_issued_at, token_rotate_requested_at, previous_token_hash, previous_token_expires_at
                    FROM nodes WHERE token_hash = ? AND deleted_at IS NULL
                    """, arguments: [hash])
            {
                let previous: String? = row["previous_token_hash"]
                let until: Int64? = row["previous_token_expires_at"]
                return NodeCredential(
                    nodeId: row["id"], isPrevious: false, issuedAt: Time.date(row["token_issued_at"] as Int64?),
                    rotateRequestedAt: Time.date(row["token_rotate_requested_at"] as Int64?),
                    previousAwaitsConfirmation: previous != nil
                        && (until ?? 0) > Time.ms(now.addingTimeInterval(Self.previousTokenGrace)))
            }
            if let row = try StoreRow.fetchOne(
                db,
                sql: """
                    SELECT id, previous_token_expires_at FROM nodes WHERE previous_token_hash = ?
                      AND previous_token_expires_at > ? AND deleted_at IS NULL
                    """, arguments: [hash, Time.ms(now)])
            {
                let until: Int64 = row["previous_token_expires_at"]
                // Unconfirmed, the previous token ends `previousTokenLifetime` after the rotation.
                let unconfirmed = until > Time.ms(now.addingTimeInterval(Self.previousTokenGrace))
                let rotatedAt = Double(until) / 1000 - Self.previousTokenLifetime
                return NodeCredential(
                    nodeId: row["id"], isPrevious: true, issuedAt: nil, rotateRequestedAt: nil,
                    previousAwaitsConfirmation: false,
                    lostRotationReply: unconfirmed
                        && now.timeIntervalSince1970 - rotatedAt >= Self.previousTokenGrace)
            }
            return nil
        }
    }

    /// The live node whose current token hashes to `tokenHash`.
    public func nodeID(forTokenHash tokenHash: String) async throws -> String? {
        try await nodeCredential(forTokenHash: tokenHash).map(\.nodeId)
    }

    /// The agent used its new token: its previous one ends after a short grace.
    public func confirmNewToken(nodeId: String, now: Date = Date()) async throws {
        try await write { db in
            try db.execute(
                sql: """
                    UPDATE nodes SET previous_token_expires_at = \(db.least("previous_token_expires_at", "?"))
                    WHERE id = ? AND previous_token_hash IS NOT NULL
                    """, arguments: [Time.ms(now.addingTimeInterval(Self.previousTokenGrace)), nodeId])
        }
    }

    /// Replaces a node's token (the node asked, holding `presentedHash`). The token it presented
    /// stays valid as the previous one until the new one is used; when it presented its previous
    /// token while the new one was never used (it lost the reply of an earlier rotation), that
    /// previous one is kept as it is. False, and nothing changed, for any other token: a previous
    /// token in its grace after the new one was used (the agent holds the new one: whoever
    /// presents the old one now must not displace it), or a token the node no longer has (the
    /// route's check ran before this transaction: an admin's decision or a rotation may have
    /// come between).
    public func rotateNodeToken(nodeId: String, presentedHash: String, newHash: String, now: Date = Date()) async throws -> Bool {
        try await write { db in
            guard
                let row = try StoreRow.fetchOne(
                    db,
                    sql: """
                        SELECT token_hash, previous_token_hash, previous_token_expires_at FROM nodes
                        WHERE id = ? AND deleted_at IS NULL
                        """, arguments: [nodeId])
            else { throw StoreError.nodeNotFound(nodeId) }
            let current: String? = row["token_hash"]
            let previous: String? = row["previous_token_hash"]
            let previousUntil: Int64? = row["previous_token_expires_at"]
            if current == presentedHash {
                try db.execute(
                    sql: """
                        UPDATE nodes SET previous_token_hash = token_hash, previous_token_expires_at = ?, token_hash = ?,
                          token_issued_at = ?, token_rotate_requested_at = NULL WHERE id = ?
                        """,
                    arguments: [
                        Time.ms(now.addingTimeInterval(Self.previousTokenLifetime)), newHash, Time.ms(now), nodeId,
                    ])
                return true
            }
            // The new token never used: its previous one's end is still a lifetime away.
            guard previous == presentedHash, let previousUntil,
                previousUntil > Time.ms(now.addingTimeInterval(Self.previousTokenGrace))
            else { return false }
            try db.execute(
                sql: "UPDATE nodes SET token_hash = ?, token_issued_at = ?, token_rotate_requested_at = NULL WHERE id = ?",
                arguments: [newHash, Time.ms(now), nodeId])
            return true
        }
    }

    /// An admin asks the node's agent to replace its token at its next sample push.
    public func requestTokenRotation(nodeId: String, actor: String = "admin", now: Date = Date()) async throws {
        let who = AuditWho.current(default: actor)
        try await write { db in
            guard try Self.fetchNode(db, id: nodeId) != nil else { throw StoreError.nodeNotFound(nodeId) }
            try db.execute(
                sql: "UPDATE nodes SET token_rotate_requested_at = ? WHERE id = ?", arguments: [Time.ms(now), nodeId])
            try Self.audit(
                db, who: who, nodeId: nodeId, action: "rotate-token", generation: nil, before: nil, after: nil, at: now)
        }
    }

    // MARK: - pending registrations

    static let pendingColumns = """
        p.id, p.machine_id, p.reason, p.node_id, p.hostname, p.kernel, p.agent_version, p.source, p.first_seen_at,
        p.last_seen_at, p.attempts, p.status, p.decided_at,
        n.name AS holder_name, n.kernel AS holder_kernel, n.agent_version AS holder_agent_version,
        n.last_source AS holder_source, n.last_seen_at AS holder_last_seen_at, n.deleted_at AS holder_deleted_at
        """
    static let pendingFrom = "pending_registrations p LEFT JOIN nodes n ON n.id = p.node_id"

    static func pending(_ row: StoreRow) -> PendingRegistration {
        let reason: String = row["reason"]
        let nodeId: String? = row["node_id"]
        var holder: RegistrationHost?
        if let nodeId, let name: String = row["holder_name"] {
            holder = RegistrationHost(
                nodeId: nodeId, hostname: name, kernel: row["holder_kernel"], agentVersion: row["holder_agent_version"],
                source: row["holder_source"], lastSeenAt: Time.date(row["holder_last_seen_at"] as Int64?),
                deleted: (row["holder_deleted_at"] as Int64?) != nil ? true : nil)
        }
        let explanation =
            reason == "deleted"
            ? "node \(nodeId ?? "?") with this machine id was deleted; a deleted node does not come back by itself. "
                + "Accept to register this host as a new node, or reject it"
            : "node \(nodeId ?? "?") (\(holder?.hostname ?? "?")) already has this machine id and this host did not "
                + "prove it is that node (no current node token). Accept to let this host take the node over (the "
                + "other host's token stops working), or reject it. Cloned hosts need their own machine id "
                + "(systemd-machine-id-setup, or the agent's --machine-id)"
        return PendingRegistration(
            id: row["id"], machineId: row["machine_id"], reason: reason, explanation: explanation, status: row["status"],
            newcomer: RegistrationHost(
                hostname: row["hostname"], kernel: row["kernel"], agentVersion: row["agent_version"],
                source: row["source"], lastSeenAt: Time.date(row["last_seen_at"] as Int64?)),
            holder: holder, firstSeenAt: Time.date(row["first_seen_at"] as Int64),
            lastSeenAt: Time.date(row["last_seen_at"] as Int64), attempts: row["attempts"],
            decidedAt: Time.date(row["decided_at"] as Int64?))
    }

    static func fetchPending(_ db: StoreDB, id: String) throws -> PendingRegistration? {
        try StoreRow.fetchOne(
            db, sql: "SELECT \(pendingColumns) FROM \(pendingFrom) WHERE p.id = ?", arguments: [id]
        ).map(pending)
    }

    /// Records an attempt that claims `nodeId`'s machine id without proof. Returns true when an
    /// admin accepted this agent's registration (the caller goes on to hand out the node; the
    /// pending row is removed); throws `.registrationPending` / `.registrationRejected` otherwise.
    /// `keyHash`: the attempt's registration key, hashed by `register`; attempts without one share
    /// the hash of the empty key.
    static func pendingAttempt(
        _ db: StoreDB, _ request: RegisterRequest, keyHash: String?, reason: String, nodeId: String,
        enrollmentTokenId: String, source: String?, now: Date
    ) throws -> Bool {
        let keyHash = keyHash ?? Secrets.hash("")
        let features = try StoredJSON.encode(request.ksmFeatures)
        if let row = try StoreRow.fetchOne(
            db, sql: "SELECT id, status FROM pending_registrations WHERE machine_id = ? AND registration_key_hash = ?",
            arguments: [request.machineId, keyHash])
        {
            let id: String = row["id"]
            let status: String = row["status"]
            if status == "accepted" {
                try db.execute(sql: "DELETE FROM pending_registrations WHERE id = ?", arguments: [id])
                return true
            }
            try db.execute(
                sql: """
                    UPDATE pending_registrations SET hostname = ?, kernel = ?, agent_version = ?, mem_total_bytes = ?,
                      numa_nodes = ?, ksm_features = ?, page_size = ?, source = ?, last_seen_at = ?, attempts = attempts + 1,
                      reason = CASE WHEN status = 'pending' THEN ? ELSE reason END,
                      node_id = CASE WHEN status = 'pending' THEN ? ELSE node_id END
                    WHERE id = ?
                    """,
                arguments: [
                    request.hostname, request.kernel, request.agentVersion, request.memTotalBytes, request.numaNodes,
                    features, request.pageSize, source, Time.ms(now), reason, nodeId, id,
                ])
            guard let p = try fetchPending(db, id: id) else { throw StoreError.nodeNotFound(id) }
            throw status == "rejected" ? StoreError.registrationRejected(p) : StoreError.registrationPending(p)
        }
        var id = Secrets.newID(prefix: "p-")
        while try Bool.fetchOne(db, sql: "SELECT 1 FROM pending_registrations WHERE id = ?", arguments: [id]) == true {
            id = Secrets.newID(prefix: "p-")
        }
        try db.execute(
            sql: """
                INSERT INTO pending_registrations (id, machine_id, registration_key_hash, reason, node_id, hostname, kernel,
                  agent_version, mem_total_bytes, numa_nodes, ksm_features, page_size, source, enrollment_token_id,
                  first_seen_at, last_seen_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [
                id, request.machineId, keyHash, reason, nodeId, request.hostname, request.kernel, request.agentVersion,
                request.memTotalBytes, request.numaNodes, features, request.pageSize, source, enrollmentTokenId,
                Time.ms(now), Time.ms(now),
            ])
        guard let p = try fetchPending(db, id: id) else { throw StoreError.nodeNotFound(id) }
        throw StoreError.registrationPending(p)
    }

    /// `wanted`, or `wanted` with `-2`, `-3`, … when another live node has it.
    static func uniqueName(_ db: StoreDB, _ wanted: String, exceptNode: String?) throws -> String {
        var candidate = wanted
        var n = 2
        while let holder = try String.fetchOne(
            db, sql: "SELECT id FROM nodes WHERE name = ? AND deleted_at IS NULL", arguments: [candidate]),
            holder != exceptNode
        {
            candidate = NodeName.withSuffix(wanted, n)
            n += 1
        }
        return candidate
    }

    /// Pending registrations (and decided ones not yet claimed), newest first.
    public func pendingRegistrations(includeDecided: Bool = true) async throws -> [PendingRegistration] {
        try await read { db in
            try StoreRow.fetchAll(
                db,
                sql: "SELECT \(Self.pendingColumns) FROM \(Self.pendingFrom)"
                    + (includeDecided ? "" : " WHERE p.status = 'pending'") + " ORDER BY p.last_seen_at DESC, p.id"
            ).map(Self.pending)
        }
    }

    /// An admin accepts (the agent's next attempt takes the node over, or becomes a new node
    /// for a deleted one) or rejects a pending registration.
    /// The audit row names the credential of the request (`AuditContext`), like every other change.
    public func decideRegistration(id: String, accept: Bool, actor: String = "admin", now: Date = Date()) async throws
        -> PendingRegistration
    {
        let who = AuditWho.current(default: actor)
        return try await write { db in
            guard let p = try Self.fetchPending(db, id: id) else { throw StoreError.registrationNotFound(id) }
            try db.execute(
                sql: "UPDATE pending_registrations SET status = ?, decided_at = ?, decided_by = ? WHERE id = ?",
                arguments: [accept ? "accepted" : "rejected", Time.ms(now), who.name, id])
            // Accepting a host for a live node voids the token of the host that holds it now, at
            // once (docs/identity.md): not when the newcomer next registers, up to its backoff
            // later or never. Its registration key no longer proves anything either. Not on a
            // second acceptance: the newcomer may have taken the node since (an acceptance after a
            // rejection does void it).
            if accept, p.status != "accepted", p.reason == "conflict", let holder = p.holder?.nodeId {
                try db.execute(
                    sql: """
                        UPDATE nodes SET token_hash = NULL, previous_token_hash = NULL, previous_token_expires_at = NULL,
                          registration_key_hash = NULL
                        WHERE id = ? AND deleted_at IS NULL
                        """, arguments: [holder])
            }
            try Self.audit(
                db, who: who, nodeId: p.holder?.nodeId, action: accept ? "registration-accept" : "registration-reject",
                target: id, generation: nil, beforeJSON: nil, afterJSON: try StoredJSON.encode(p.newcomer), at: now)
            guard let decided = try Self.fetchPending(db, id: id) else { throw StoreError.registrationNotFound(id) }
            return decided
        }
    }
}
