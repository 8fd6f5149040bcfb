import FleetAPI
import Foundation
import KSMCore

/// A node as stored, with its desired config (nil once the node is deleted).
public struct StoredNode: Sendable, Equatable {
    public var id: String
    public var name: String
    public var machineId: String
    public var labels: [String: String]
    public var kernel: String
    public var memTotalBytes: Int64
    public var numaNodes: Int
    public var ksmFeatures: [String]
    public var agentVersion: String
    public var pageSize: Int?
    public var registeredAt: Date
    public var lastSeenAt: Date?
    public var phase: KSMPhase?
    public var phaseReason: String?
    public var appliedGeneration: Int64?
    public var applyError: String?
    /// Highest sample sequence number stored for this node.
    public var lastSeq: Int64?
    public var lastSample: StatusSample?
    public var deletedAt: Date?
    public var config: NodeConfig?
    /// The newest process report (who benefits) and its sample time.
    public var processes: ProcessReport? = nil
    public var processesAt: Date? = nil
    /// Why the server last refused the node's samples ("samples[i].field: message") and when;
    /// nil when no batch was refused since the newest one stored (`recordSampleRefusal`).
    public var sampleRefusal: (reason: String, at: Date)? {
        guard let sampleRefusalReason, let sampleRefusedAt,
            sampleRefusedAt > (lastSeenAt ?? .distantPast)
        else { return nil }
        return (sampleRefusalReason, sampleRefusedAt)
    }
    /// The last refusal as stored, whether or not a batch was stored since.
    public var sampleRefusalReason: String? = nil
    public var sampleRefusedAt: Date? = nil
}

/// The outcome of `register`.
public struct Registration: Sendable, Equatable {
    public var node: StoredNode
    public var config: NodeConfig
    /// The machine id was already known: same node, token rotated.
    public var reregistered: Bool
}

/// The outcome of `updateNodeFacts`: the node before and after, and the fields that changed.
public struct NodeFactsUpdate: Sendable, Equatable {
    public var before: StoredNode
    public var after: StoredNode
    /// The `NodeFactsRequest` field names whose stored value changed, in the type's order.
    public var changed: [String]

    /// The fields of `facts` that differ from `node`'s (features compared as a set; a page size
    /// left out keeps the stored one).
    public static func changes(from node: StoredNode, to facts: NodeFactsRequest) -> [String] {
        var out: [String] = []
        if node.kernel != facts.kernel { out.append("kernel") }
        if node.memTotalBytes != facts.memTotalBytes { out.append("memTotalBytes") }
        if node.numaNodes != facts.numaNodes { out.append("numaNodes") }
        if Set(node.ksmFeatures) != Set(facts.ksmFeatures) { out.append("ksmFeatures") }
        if node.agentVersion != facts.agentVersion { out.append("agentVersion") }
        if let p = facts.pageSize, p != node.pageSize { out.append("pageSize") }
        return out
    }

    /// What a `host-facts` audit record shows before or after the change: the changed facts
    /// only (features sorted), by their `NodeFactsRequest` names.
    struct ChangedFacts: Encodable {
        var kernel: String?
        var memTotalBytes: Int64?
        var numaNodes: Int?
        var ksmFeatures: [String]?
        var agentVersion: String?
        var pageSize: Int?

        init(_ changed: [String], of f: NodeFactsRequest) {
            let c = Set(changed)
            kernel = c.contains("kernel") ? f.kernel : nil
            memTotalBytes = c.contains("memTotalBytes") ? f.memTotalBytes : nil
            numaNodes = c.contains("numaNodes") ? f.numaNodes : nil
            ksmFeatures = c.contains("ksmFeatures") ? f.ksmFeatures.sorted() : nil
            agentVersion = c.contains("agentVersion") ? f.agentVersion : nil
            pageSize = c.contains("pageSize") ? f.pageSize : nil
        }
    }
}

extension StoredNode {
    /// The host facts as stored, in the shape an agent sends them.
    var facts: NodeFactsRequest {
        NodeFactsRequest(
            kernel: kernel, memTotalBytes: memTotalBytes, numaNodes: numaNodes, ksmFeatures: ksmFeatures,
            agentVersion: agentVersion, pageSize: pageSize)
    }
}

extension FleetDatabase {
    /// The columns `node(_:)` reads, by position: `nodeColumns` lists them in this order, so a
    /// case's raw value is its column's index (a lookup by name, per column and row, was a
    /// tenth of reading a 10,000-node fleet).
    enum NodeColumn: Int, CaseIterable {
        case id, name, machineId, labels, kernel, memTotalBytes, numaNodes, ksmFeatures, agentVersion, pageSize
        case registeredAt, lastSeenAt, phase, phaseReason, appliedGeneration, applyError, lastSeq, lastSample
        case deletedAt, processes, processesAt, sampleRefusal, sampleRefusedAt, generation, kickCounter, config

        var sql: String {
            switch self {
            case .id: "n.id"
            case .name: "n.name"
            case .machineId: "n.machine_id"
            case .labels: "n.labels"
            case .kernel: "n.kernel"
            case .memTotalBytes: "n.mem_total_bytes"
            case .numaNodes: "n.numa_nodes"
            case .ksmFeatures: "n.ksm_features"
            case .agentVersion: "n.agent_version"
            case .pageSize: "n.page_size"
            case .registeredAt: "n.registered_at"
            case .lastSeenAt: "n.last_seen_at"
            case .phase: "n.phase"
            case .phaseReason: "n.phase_reason"
            case .appliedGeneration: "n.applied_generation"
            case .applyError: "n.apply_error"
            case .lastSeq: "n.last_seq"
            case .lastSample: "n.last_sample_json"
            case .deletedAt: "n.deleted_at"
            case .processes: "n.processes_json"
            case .processesAt: "n.processes_at"
            case .sampleRefusal: "n.sample_refusal"
            case .sampleRefusedAt: "n.sample_refused_at"
            case .generation: "c.generation"
            case .kickCounter: "c.kick_counter"
            case .config: "c.config_json"
            }
        }
    }
    static let nodeColumns = NodeColumn.allCases.map(\.sql).joined(separator: ", ")
    static let nodeFrom = "nodes n LEFT JOIN node_configs c ON c.node_id = n.id"

    /// The texts a read of many nodes has decoded: a fleet shares a few configs, label sets and
    /// feature lists, each decoded once per read.
    struct NodeDecoding {
        var configs: [String: KSMConfig] = [:]
        var labels: [String: [String: String]] = [:]
        var features: [String: [String]] = [:]

        static func memo<T: Decodable>(_ text: String, _ known: inout [String: T]) throws -> T {
            if let value = known[text] { return value }
            let value = try StoredJSON.decode(T.self, text)
            if known.count < 10_000 { known[text] = value }
            return value
        }
    }

    static func node(_ row: StoreRow) throws -> StoredNode {
        var decoding = NodeDecoding()
        return try node(row, &decoding)
    }

    static func node(_ row: StoreRow, _ decoding: inout NodeDecoding) throws -> StoredNode {
        func at<T: StoreValue>(_ column: NodeColumn) -> T { row[column.rawValue] }
        func at<T: StoreValue>(_ column: NodeColumn) -> T? { row[column.rawValue] }
        var config: NodeConfig?
        if let json: String = at(.config) {
            config = NodeConfig(
                generation: at(.generation), kickCounter: at(.kickCounter),
                config: try NodeDecoding.memo(json, &decoding.configs))
        }
        let phase: String? = at(.phase)
        let lastSample: String? = at(.lastSample)
        let processes: String? = at(.processes)
        var node = StoredNode(
            id: at(.id), name: at(.name), machineId: at(.machineId),
            labels: try NodeDecoding.memo(at(.labels), &decoding.labels),
            kernel: at(.kernel), memTotalBytes: at(.memTotalBytes), numaNodes: at(.numaNodes),
            ksmFeatures: try NodeDecoding.memo(at(.ksmFeatures), &decoding.features),
            agentVersion: at(.agentVersion), pageSize: at(.pageSize),
            registeredAt: Time.date(at(.registeredAt) as Int64),
            lastSeenAt: Time.date(at(.lastSeenAt) as Int64?),
            phase: phase.flatMap(KSMPhase.init(rawValue:)), phaseReason: at(.phaseReason),
            appliedGeneration: at(.appliedGeneration), applyError: at(.applyError),
            lastSeq: at(.lastSeq),
            // Stored as the agent sent it: the push's own decoder reads it, `StrictJSON` what
            // that one leaves.
            lastSample: try lastSample.map { try SampleBatchDecoder.fastSample($0) ?? StoredJSON.decode(StatusSample.self, $0) },
            deletedAt: Time.date(at(.deletedAt) as Int64?), config: config)
        // A report that no longer decodes (an older shape) is left out rather than failing the node.
        node.processes = processes.flatMap { try? StoredJSON.decode(ProcessReport.self, $0) }
        node.processesAt = Time.date(at(.processesAt) as Int64?)
        node.sampleRefusalReason = at(.sampleRefusal)
        node.sampleRefusedAt = Time.date(at(.sampleRefusedAt) as Int64?)
        return node
    }

    static func fetchNode(_ db: StoreDB, id: String) throws -> StoredNode? {
        try StoreRow.fetchOne(
            db, sql: "SELECT \(nodeColumns) FROM \(nodeFrom) WHERE n.id = ? AND n.deleted_at IS NULL",
            arguments: [id]
        ).map(node)
    }

    static func audit(
        _ db: StoreDB, who: AuditWho, nodeId: String, action: String, generation: Int64?,
        before: KSMConfig?, after: KSMConfig?, at: Date
    ) throws {
        try audit(
            db, who: who, nodeId: nodeId, action: action, generation: generation,
            beforeJSON: try before.map { try StoredJSON.encode($0) }, afterJSON: try after.map { try StoredJSON.encode($0) },
            at: at)
    }

    /// Registers a node with an enrollment token (checked in the same transaction).
    ///
    /// - A machine id nobody has: a new node with `KSMConfig.standardDefault` at generation 1.
    /// - A machine id a live node has: the same node (token replaced, config kept) only when
    ///   `request.nodeToken` is that node's current (or still valid previous) token, or when an
    ///   admin accepted this agent's pending registration (matched by its registration key).
    ///   Also when the attempt carries the registration key the node was registered with and
    ///   its token may never have reached the agent (`answerMayHaveBeenLost`): the answer was
    ///   lost (a timeout, a reset connection) and the agent asks again.
    ///   Otherwise the node is left alone and the attempt is kept as a pending registration:
    ///   throws `.registrationPending` (or `.registrationRejected` once an admin rejected it).
    /// - A machine id only a deleted node had: pending too (a deleted node does not come back by
    ///   itself); accepted, it becomes a new node.
    ///
    /// The name is the host name in its stored form (`NodeName`), unique among live nodes: a
    /// name another live node has gets `-2`, `-3`, … on its first label.
    public func register(
        _ request: RegisterRequest, enrollmentTokenHash: String, nodeTokenHash: String, source: String? = nil,
        now: Date = Date()
    ) async throws -> Registration {
        // A pending (or rejected) attempt is recorded, so its transaction must commit: it comes
        // out of the transaction as a value and is thrown after.
        let outcome: Result<Registration, StoreError> = try await write { db in
            do {
                return .success(try Self.register(db, request, enrollmentTokenHash, nodeTokenHash, source, now))
            } catch let e as StoreError {
                switch e {
                case .registrationPending, .registrationRejected: return .failure(e)
                default: throw e
                }
            }
        }
        return try outcome.get()
    }

    /// How long after a registration (or re-registration) an agent that lost the answer may ask
    /// again with its registration key alone: an agent retries within seconds or minutes.
    static let lostAnswerWindowMs: Int64 = 3_600_000

    /// Whether the node's last registration answer (its token) may never have reached the agent:
    /// the token was issued by a registration within `lostAnswerWindowMs` and no sample came since
    /// (an agent that got its token pushes a sample at once; a push moves `last_seen_at` past
    /// `token_issued_at`). A token from a rotation (`rotated`: the node has a previous token, which
    /// every rotation sets and only a registration clears) reached its agent, which asked for it
    /// with the token before: the window stays shut until the node registers again.
    static func answerMayHaveBeenLost(tokenIssuedAt: Int64?, lastSeenAt: Int64?, rotated: Bool, now: Date) -> Bool {
        guard let issued = tokenIssuedAt, !rotated else { return false }
        return Time.ms(now) - issued < lostAnswerWindowMs && (lastSeenAt ?? issued) <= issued
    }

    /// The newest deleted node of a machine id, which a registration with no live node of that
    /// machine looks for: the index of migration 0053 (postgres 0022), not the whole table
    /// (`RegistrationPlanTests`).
    static let newestDeletedOfMachineSQL =
        "SELECT id FROM nodes WHERE machine_id = ? AND deleted_at IS NOT NULL ORDER BY deleted_at DESC LIMIT 1"

    static func register(
        _ db: StoreDB, _ request: RegisterRequest, _ enrollmentTokenHash: String, _ nodeTokenHash: String,
        _ source: String?, _ now: Date
    ) throws -> Registration {
        do {
            guard
                let token = try StoreRow.fetchOne(
                    db, sql: "SELECT id, expires_at, revoked_at FROM enrollment_tokens WHERE token_hash = ?",
                    arguments: [enrollmentTokenHash])
            else { throw StoreError.enrollmentRefused("unknown enrollment token") }
            let tokenId: String = token["id"]
            if let revoked: Int64 = token["revoked_at"] {
                throw StoreError.enrollmentRefused(
                    "enrollment token \(tokenId) was revoked at \(Time.date(revoked).formatted(.iso8601))")
            }
            if let expires: Int64 = token["expires_at"], expires <= Time.ms(now) {
                throw StoreError.enrollmentRefused(
                    "enrollment token \(tokenId) expired at \(Time.date(expires).formatted(.iso8601))")
            }
            let wantedName = (try? NodeName.normalize(request.hostname).get()) ?? request.hostname
            let features = try StoredJSON.encode(request.ksmFeatures)
            let live = try StoreRow.fetchOne(
                db,
                sql: """
                    SELECT id, token_hash, previous_token_hash, previous_token_expires_at, registration_key_hash,
                      token_issued_at, last_seen_at
                    FROM nodes
                    WHERE machine_id = ? AND deleted_at IS NULL
                    """,
                arguments: [request.machineId])
            // Hashed once for the node's row and a pending attempt; an empty key is no key.
            let keyHash = request.registrationKey.flatMap { $0.isEmpty ? nil : Secrets.hash($0) }
            var existing: String?
            if let live {
                let id: String = live["id"]
                var proven = false
                // Taken over through an admin's acceptance: the node's key becomes the newcomer's
                // (none, for an agent without one), so the displaced agent's key no longer proves it.
                var accepted = false
                if let proof = request.nodeToken, !proof.isEmpty {
                    let h = Secrets.hash(proof)
                    let current: String? = live["token_hash"]
                    let previous: String? = live["previous_token_hash"]
                    let previousUntil: Int64? = live["previous_token_expires_at"]
                    proven =
                        current.map { Secrets.constantTimeEqual($0, h) } == true
                        || (previous.map { Secrets.constantTimeEqual($0, h) } == true && (previousUntil ?? 0) > Time.ms(now))
                }
                if !proven, let keyHash, let stored: String = live["registration_key_hash"] {
                    proven =
                        Secrets.constantTimeEqual(stored, keyHash)
                        && Self.answerMayHaveBeenLost(
                            tokenIssuedAt: live["token_issued_at"], lastSeenAt: live["last_seen_at"],
                            rotated: (live["previous_token_hash"] as String?) != nil, now: now)
                }
                if !proven {
                    let claim = try Self.pendingAttempt(
                        db, request, keyHash: keyHash, reason: "conflict", nodeId: id, enrollmentTokenId: tokenId,
                        source: source, now: now)
                    guard claim else {
                        // Unreachable: pendingAttempt throws unless the registration was accepted.
                        throw StoreError.nodeNotFound(id)
                    }
                    accepted = true
                }
                existing = id
                let name = try Self.uniqueName(db, wantedName, exceptNode: id)
                try db.execute(
                    sql: """
                        UPDATE nodes SET name = ?, kernel = ?, mem_total_bytes = ?, numa_nodes = ?, ksm_features = ?,
                          agent_version = ?, page_size = COALESCE(?, page_size), token_hash = ?, last_seen_at = ?,
                          token_issued_at = ?, token_rotate_requested_at = NULL, previous_token_hash = NULL,
                          previous_token_expires_at = NULL, last_source = ?,
                          registration_key_hash = \(accepted ? "?" : "COALESCE(?, registration_key_hash)")
                        WHERE id = ?
                        """,
                    arguments: [
                        name, request.kernel, request.memTotalBytes, request.numaNodes, features,
                        request.agentVersion, request.pageSize, nodeTokenHash, Time.ms(now), Time.ms(now), source,
                        keyHash, id,
                    ])
            } else {
                let deleted = try String.fetchOne(db, sql: Self.newestDeletedOfMachineSQL, arguments: [request.machineId])
                if let deleted {
                    _ = try Self.pendingAttempt(
                        db, request, keyHash: keyHash, reason: "deleted", nodeId: deleted, enrollmentTokenId: tokenId,
                        source: source, now: now)
                }
            }
            let id: String
            if let existing {
                id = existing
            } else {
                var candidate = Secrets.newID(prefix: "n-")
                while try Bool.fetchOne(db, sql: "SELECT 1 FROM nodes WHERE id = ?", arguments: [candidate]) == true {
                    candidate = Secrets.newID(prefix: "n-")
                }
                id = candidate
                let name = try Self.uniqueName(db, wantedName, exceptNode: nil)
                try db.execute(
                    sql: """
                        INSERT INTO nodes (id, name, machine_id, labels, kernel, mem_total_bytes, numa_nodes,
                          ksm_features, agent_version, page_size, registered_at, last_seen_at, token_hash,
                          token_issued_at, last_source, registration_key_hash)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                        """,
                    arguments: [
                        id, name, request.machineId, try StoredJSON.encode([String: String]()), request.kernel,
                        request.memTotalBytes, request.numaNodes, features, request.agentVersion, request.pageSize,
                        Time.ms(now), Time.ms(now), nodeTokenHash, Time.ms(now), source, keyHash,
                    ])
            }
            // A new node's id was just inserted: no config refers to it (node_configs' key is a
            // reference to nodes), so only a node registering again asks.
            let hasConfig =
                try existing != nil
                && Bool.fetchOne(db, sql: "SELECT 1 FROM node_configs WHERE node_id = ?", arguments: [id]) == true
            if !hasConfig {
                let standard = KSMConfig.standardDefault.normalized()
                try db.execute(
                    sql: """
                        INSERT INTO node_configs (node_id, generation, kick_counter, config_json, updated_at, updated_by)
                        VALUES (?, 1, 0, ?, ?, 'registration')
                        """,
                    arguments: [id, try StoredJSON.encode(standard), Time.ms(now)])
                try Self.audit(
                    db, who: AuditWho(name: "registration", credentialId: nil, source: source), nodeId: id, action: "create", generation: 1, before: nil,
                    after: standard, at: now)
            }
            guard let node = try Self.fetchNode(db, id: id), let config = node.config else {
                throw StoreError.nodeNotFound(id)
            }
            return Registration(node: node, config: config, reregistered: existing != nil)
        }
    }

    /// Stores what the node's host is now (`NodeFactsRequest`: kernel, KSM features, memory, NUMA nodes,
    /// agent version, page size), as its agent tells at start. Only the fields that differ are
    /// written (nothing when none does), with a `host-facts` audit row of the changed facts
    /// before and after (an agent restart that changed nothing records nothing); the token,
    /// name, config and `last_seen_at` are left alone.
    /// Throws `.nodeNotFound` for an unknown or deleted node.
    public func updateNodeFacts(nodeId: String, _ facts: NodeFactsRequest, now: Date = Date()) async throws
        -> NodeFactsUpdate
    {
        let who = AuditWho.current(default: "agent")
        return try await write { db in
            guard let before = try Self.fetchNode(db, id: nodeId) else { throw StoreError.nodeNotFound(nodeId) }
            let changed = NodeFactsUpdate.changes(from: before, to: facts)
            guard !changed.isEmpty else { return NodeFactsUpdate(before: before, after: before, changed: []) }
            // When the host changed (a new kernel, KSM features, an agent upgrade), and what it
            // was: the audit trail's record, beside the server's log line.
            try Self.audit(
                db, who: who, nodeId: nodeId, action: "host-facts", generation: nil,
                beforeJSON: try StoredJSON.encode(NodeFactsUpdate.ChangedFacts(changed, of: before.facts)),
                afterJSON: try StoredJSON.encode(NodeFactsUpdate.ChangedFacts(changed, of: facts)),
                at: now)
            try db.execute(
                sql: """
                    UPDATE nodes SET kernel = ?, mem_total_bytes = ?, numa_nodes = ?, ksm_features = ?,
                      agent_version = ?, page_size = COALESCE(?, page_size)
                    WHERE id = ? AND deleted_at IS NULL
                    """,
                arguments: [
                    facts.kernel, facts.memTotalBytes, facts.numaNodes, try StoredJSON.encode(facts.ksmFeatures),
                    facts.agentVersion, facts.pageSize, nodeId,
                ])
            guard let after = try Self.fetchNode(db, id: nodeId) else { throw StoreError.nodeNotFound(nodeId) }
            return NodeFactsUpdate(before: before, after: after, changed: changed)
        }
    }

    /// A live node by id or, when no id matches, by name (names are unique among live nodes and
    /// compared in lower case, so this is unambiguous).
    public func node(idOrName: String) async throws -> StoredNode? {
        try await read { db in
            if let n = try Self.fetchNode(db, id: idOrName) { return n }
            return try StoreRow.fetchOne(
                db,
                sql: """
                    SELECT \(Self.nodeColumns) FROM \(Self.nodeFrom) WHERE n.name = ? AND n.deleted_at IS NULL
                    LIMIT 1
                    """, arguments: [idOrName.lowercased()]
            ).map(Self.node)
        }
    }

    /// The server refused a batch of the node's samples: why ("samples[i].field: message") and
    /// when, kept until a later batch is stored (`StoredNode.sampleRefusal`). A refused batch
    /// costs this one small write, a transaction of its own (not in the group commit).
    public func recordSampleRefusal(nodeId: String, reason: String, at: Date = Date()) async throws {
        try await write { db in
            try db.execute(
                sql: "UPDATE nodes SET sample_refusal = ?, sample_refused_at = ? WHERE id = ? AND deleted_at IS NULL",
                arguments: [reason, Time.ms(at), nodeId])
        }
    }

    /// Every live node (or every node, deleted ones included), by name (in byte order, as the
    /// listing's pages: `nodes(after:limit:)`).
    public func nodes(includeDeleted: Bool = false) async throws -> [StoredNode] {
        try await read { db in
            var decoding = NodeDecoding()
            return try StoreRow.fetchAll(
                db,
                sql: "SELECT \(Self.nodeColumns) FROM \(Self.nodeFrom)"
                    + (includeDeleted ? "" : " WHERE n.deleted_at IS NULL") + " ORDER BY \(db.byteOrder("n.name")), n.id"
            ).map { row in try Self.node(row, &decoding) }
        }
    }

    /// At most `limit` live nodes whose names sort after `after` (all when nil), by name in byte
    /// order on both engines: a page of the listing. Live names are unique, so the last name of a
    /// page is where the next one starts, whatever was registered or deleted in between; the read
    /// is the index range after it (`nodes_live_name` on SQLite, `nodes_live_name_bytes` on
    /// PostgreSQL, whose default collation may order `web-2` after `web1`).
    public func nodes(after: String?, limit: Int) async throws -> [StoredNode] {
        try await read { db in
            var decoding = NodeDecoding()
            let arguments: StoreArguments = after.map { [$0, limit] } ?? [limit]
            return try StoreRow.fetchAll(db, sql: Self.nodesPageSQL(db, after: after != nil), arguments: arguments)
                .map { row in try Self.node(row, &decoding) }
        }
    }

    /// The page's statement: (the name after, when `after`) and the count.
    static func nodesPageSQL(_ db: StoreDB, after: Bool) -> String {
        let name = db.byteOrder("n.name")
        return "SELECT \(nodeColumns) FROM \(nodeFrom) WHERE n.deleted_at IS NULL" + (after ? " AND \(name) > ?" : "")
            + " ORDER BY \(name) LIMIT ?"
    }

    /// Every live node's id, name and labels, by name: what picking nodes by name or label
    /// needs (a fleet-wide change), without reading each node's last sample and config.
    public func liveNodeKeys() async throws -> [(id: String, name: String, labels: [String: String])] {
        try await read { db in
            // A fleet shares a few label sets: each text is decoded once.
            var decoded: [String: [String: String]] = [:]
            // By name in byte order, as the listing: a fleet-wide apply answers node by node in it.
            return try StoreRow.fetchAll(
                db, sql: "SELECT id, name, labels FROM nodes WHERE deleted_at IS NULL ORDER BY \(db.byteOrder("name")), id")
                .map { r in
                    let text: String = r[2]
                    if let known = decoded[text] { return (r[0], r[1], known) }
                    let labels = try StoredJSON.decode([String: String].self, text)
                    decoded[text] = labels
                    return (r[0], r[1], labels)
                }
        }
    }

    /// Replaces a node's labels.
    public func setLabels(nodeId: String, _ labels: [String: String], actor: String = "admin", now: Date = Date())
        async throws -> StoredNode
    {
        let who = AuditWho.current(default: actor)
        return try await write { db in
            guard let before = try Self.fetchNode(db, id: nodeId) else { throw StoreError.nodeNotFound(nodeId) }
            try db.execute(
                sql: "UPDATE nodes SET labels = ? WHERE id = ?", arguments: [try StoredJSON.encode(labels), nodeId])
            // Label groups are the nodes' current labels: every stored hour peak and sum of a
            // label group may now be wrong (the rollup service computes them again), and so may
            // one being computed on a snapshot from before (a new version: see `fleetPeakPass`;
            // on PostgreSQL this update makes such a write conflict: see `flushLabelSums`).
            if before.labels != labels {
                try db.execute(
                    sql: "UPDATE rollup_fleet_hour SET labels_known = 0, label_sums_known = 0, peak_version = ?",
                    arguments: [try Self.nextPeakVersion(db)])
            }
            try Self.audit(
                db, who: who, nodeId: nodeId, action: "labels", generation: nil,
                beforeJSON: try StoredJSON.encode(before.labels), afterJSON: try StoredJSON.encode(labels), at: now)
            guard let node = try Self.fetchNode(db, id: nodeId) else { throw StoreError.nodeNotFound(nodeId) }
            return node
        }
    }

    /// Deletes a node: its config and token go at once; its samples stay for reports unless
    /// `purgeHistory`, which also removes the node row and every other row keyed by its id
    /// (samples, rollups) except the audit log.
    public func deleteNode(nodeId: String, purgeHistory: Bool, actor: String = "admin", now: Date = Date())
        async throws
    {
        let who = AuditWho.current(default: actor)
        try await write { db in
            guard let node = try Self.fetchNode(db, id: nodeId) else { throw StoreError.nodeNotFound(nodeId) }
            try db.execute(sql: "DELETE FROM node_configs WHERE node_id = ?", arguments: [nodeId])
            try Self.audit(
                db, who: who, nodeId: nodeId, action: purgeHistory ? "purge" : "delete",
                generation: node.config?.generation, before: node.config?.config, after: nil, at: now)
            if purgeHistory {
                // Samples not rolled up yet have no hour rows whose deletion would make their
                // hours' fleet peaks unknown, yet a peak may have been computed from them.
                let unrolled = try Self.firstUnrolledSample(db, nodeId: nodeId)
                let tables = try db.tablesWithColumn("node_id").filter { !["nodes", "audit_log", "audit_nodes", "node_configs"].contains($0) }
                for table in tables {
                    try db.execute(sql: "DELETE FROM \(StoreDB.quoted(table)) WHERE node_id = ?", arguments: [nodeId])
                }
                try db.execute(sql: "DELETE FROM nodes WHERE id = ?", arguments: [nodeId])
                // SQLite numbers a new row one past the highest rowid left (samples has no
                // AUTOINCREMENT): when this node held the newest samples, the next ones would get
                // rowids at or below the watermark and never be rolled up. Nothing lies between
                // the newest row left and the watermark now, so the watermark comes down to it
                // (retention keeps the newest row for the same reason; PostgreSQL's identity never
                // reuses a value, and lowering it there re-reads nothing).
                let newest = try Int64.fetchOne(db, sql: "SELECT COALESCE(MAX(rowid), 0) FROM samples") ?? 0
                if newest < (try Self.stateValue(db, Self.watermarkKey) ?? 0) {
                    try db.execute(
                        sql: "UPDATE rollup_state SET value = ? WHERE key = ?", arguments: [newest, Self.watermarkKey])
                }
                // Its hour rows' triggers marked the fleet hours they were in dirty; the hours of
                // its samples not rolled up yet (and those their tail reaches) are made dirty here.
                // Either way a peak computed from its samples is not stored, nor a rollup pass
                // that read them (the pass counter).
                if let unrolled {
                    try Self.invalidateFleetHours(db, from: unrolled - ReportPolicy.default.maxGapSeconds)
                } else {
                    try Self.bumpRollupPass(db)
                }
                // Its samples were in the slice packs too.
                try Self.invalidateSlicePacks(db)
            } else {
                try db.execute(
                    sql: """
                        UPDATE nodes SET deleted_at = ?, token_hash = NULL, previous_token_hash = NULL,
                          previous_token_expires_at = NULL WHERE id = ?
                        """,
                    arguments: [Time.ms(now), nodeId])
                // The node's data ends at its deletion: the next rollup pass recomputes the hours
                // its last sample's tail reached into (as raw reads already stop there).
                let t = now.timeIntervalSince1970
                for h in Set([ReportTime.hourStart(t), ReportTime.hourStart(t + ReportPolicy.default.tailSeconds)]) {
                    try db.execute(
                        sql: "INSERT INTO rollup_pending (node_id, bucket_start) VALUES (?, ?) ON CONFLICT DO NOTHING",
                        arguments: [nodeId, Int64(h)])
                }
                // Fleet peaks from its deletion on no longer count its samples.
                try Self.invalidateFleetHours(db, from: t)
            }
        }
    }

    /// Number of samples stored for a node (tests, diagnostics).
    public func sampleCount(nodeId: String) async throws -> Int {
        try await read { db in
            try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM samples WHERE node_id = ?", arguments: [nodeId]) ?? 0
        }
    }

    /// Sequence numbers stored for a node, ascending (tests, diagnostics).
    public func sampleSeqs(nodeId: String) async throws -> [Int64] {
        try await read { db in
            try Int64.fetchAll(db, sql: "SELECT seq FROM samples WHERE node_id = ? ORDER BY seq", arguments: [nodeId])
        }
    }
}
