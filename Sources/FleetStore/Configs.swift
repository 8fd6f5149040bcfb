import FleetAPI
import Foundation
import KSMCore

/// A config write: the config before and after, and whether anything changed (an unchanged
/// write keeps the generation, so agents are not woken for nothing).
public struct ConfigChange: Sendable, Equatable {
    public var nodeId: String
    public var before: NodeConfig
    public var after: NodeConfig
    public var changes: [String]
    public var changed: Bool { before != after }
}

/// A long-poll's first read (`FleetDatabase.config(nodeId:unlessGeneration:)`).
public enum ConfigRead: Sendable, Equatable {
    /// The config, whose generation is not the one the agent has.
    case config(NodeConfig)
    /// The agent has the current generation; the config was not decoded.
    case unchanged(generation: Int64)
}

/// One node's result in a fleet-wide apply.
public struct ApplyItem: Sendable, Equatable {
    public enum Status: String, Sendable {
        case changed, unchanged
        case wouldChange = "would_change"
        case failed
        case notFound = "not_found"
    }
    public var nodeId: String
    public var name: String?
    public var status: Status
    public var generation: Int64?
    public var changes: [String]
    public var error: ConfigValidationError?
    /// The config now in force, when it changed.
    public var config: NodeConfig?
}

extension FleetDatabase {
    /// A live node's desired config.
    public func config(nodeId: String) async throws -> NodeConfig? {
        try await readStatement { db in try Self.fetchConfig(db, nodeId: nodeId) }
    }

    /// What a long-poll reads first: a live node's config, or only that its generation is
    /// still `known` (its agent has this config; nothing is decoded). nil: no such live node.
    public func config(nodeId: String, unlessGeneration known: Int64?) async throws -> ConfigRead? {
        try await readStatement { db in try Self.fetchConfig(db, nodeId: nodeId, unlessGeneration: known) }
    }

    static func fetchConfig(_ db: StoreDB, nodeId: String) throws -> NodeConfig? {
        guard case .config(let c) = try fetchConfig(db, nodeId: nodeId, unlessGeneration: nil) else { return nil }
        return c
    }

    static func fetchConfig(_ db: StoreDB, nodeId: String, unlessGeneration known: Int64?) throws -> ConfigRead? {
        guard
            let row = try StoreRow.fetchOne(
                db,
                sql: """
                    SELECT c.generation, c.kick_counter, c.config_json FROM node_configs c
                    JOIN nodes n ON n.id = c.node_id WHERE c.node_id = ? AND n.deleted_at IS NULL
                    """, arguments: [nodeId])
        else { return nil }
        let generation: Int64 = row["generation"]
        if generation == known { return .unchanged(generation: generation) }
        return .config(
            NodeConfig(
                generation: generation, kickCounter: row["kick_counter"],
                config: try StoredJSON.decode(KSMConfig.self, row["config_json"])))
    }

    /// Writes a new config (inside the transaction) and its audit entry; bumps the generation.
    static func storeConfig(
        _ db: StoreDB, nodeId: String, before: NodeConfig, config: KSMConfig, kick: Bool, who: AuditWho,
        action: String, now: Date
    ) throws -> NodeConfig {
        let after = NodeConfig(
            generation: before.generation + 1, kickCounter: before.kickCounter + (kick ? 1 : 0), config: config)
        try db.execute(
            sql: """
                UPDATE node_configs SET generation = ?, kick_counter = ?, config_json = ?, updated_at = ?, updated_by = ?
                WHERE node_id = ?
                """,
            arguments: [
                after.generation, after.kickCounter, try StoredJSON.encode(config), Time.ms(now), who.name, nodeId,
            ])
        try audit(
            db, who: who, nodeId: nodeId, action: action, generation: after.generation, before: before.config,
            after: config, at: now)
        return after
    }

    /// Changes one node's config in one transaction. `change` gets the current config and returns
    /// the new one (validated; throw `ConfigValidationError` to refuse). With `ifMatch`, the
    /// current generation must equal it (`StoreError.generationConflict` otherwise).
    public func updateConfig(
        nodeId: String, ifMatch: Int64? = nil, actor: String = "admin", action: String,
        now: Date = Date(), _ change: @escaping @Sendable (KSMConfig) throws(ConfigValidationError) -> KSMConfig
    ) async throws -> ConfigChange {
        let who = AuditWho.current(default: actor)
        return try await write { db in
            guard let before = try Self.fetchConfig(db, nodeId: nodeId) else { throw StoreError.nodeNotFound(nodeId) }
            if let ifMatch, ifMatch != before.generation {
                throw StoreError.generationConflict(expected: ifMatch, current: before.generation)
            }
            let config: KSMConfig
            do throws(ConfigValidationError) {
                config = try change(before.config)
            } catch {
                throw StoreError.invalidConfig(error)
            }
            if config == before.config {
                return ConfigChange(nodeId: nodeId, before: before, after: before, changes: [])
            }
            let after = try Self.storeConfig(
                db, nodeId: nodeId, before: before, config: config, kick: false, who: who, action: action, now: now)
            return ConfigChange(nodeId: nodeId, before: before, after: after, changes: configDiff(before.config, config))
        }
    }

    /// Kick (throttle mode): bumps the kick counter and the generation, so a waiting long-poll wakes.
    public func kick(nodeId: String, actor: String = "admin", now: Date = Date()) async throws -> NodeConfig {
        let who = AuditWho.current(default: actor)
        return try await write { db in
            guard let before = try Self.fetchConfig(db, nodeId: nodeId) else { throw StoreError.nodeNotFound(nodeId) }
            return try Self.storeConfig(
                db, nodeId: nodeId, before: before, config: before.config, kick: true, who: who, action: "kick",
                now: now)
        }
    }

    /// Applies one change to many nodes in one transaction, each node's result on its own
    /// (a node whose result is invalid fails alone). A dry run changes nothing.
    ///
    /// Set-based, so that a fleet-wide change of 10,000 nodes stays a short transaction on both
    /// engines: one query reads the targets' configs, each new config is encoded once (config and
    /// audit row), and the changed rows are written by multi-row statements, `applyChunkRows`
    /// nodes each (on PostgreSQL every statement is a network round trip: one UPDATE and one
    /// INSERT per node took 1.5 ms a node).
    ///
    /// `target` says which nodes were asked for (`all`, `selector env=prod`), for the audit trail.
    /// Nodes that end up with the same config from the same one are audited together, once
    /// (`storeConfigs`).
    public func apply(
        _ patch: ConfigPatch, to nodeIds: [String], dryRun: Bool, target: String? = nil, actor: String = "admin",
        now: Date = Date()
    ) async throws -> [ApplyItem] {
        try await apply(
            patch, to: nodeIds, dryRun: dryRun, target: target, actor: actor, now: now, chunkRows: Self.applyChunkRows,
            nodesPerSetUpdate: Self.nodesPerSetUpdate)
    }

    /// Nodes per multi-row statement of `apply`: at most 11,264 parameters (an audit row shared
    /// by several nodes has 11; a node's own, 10; `audit_nodes` rows, 3, go 3 × this many a
    /// statement), well below PostgreSQL's 65,535 and SQLite's default
    /// SQLITE_MAX_VARIABLE_NUMBER, 32,766 (Debian's libsqlite3 allows 250,000).
    static let applyChunkRows = 1024

    /// Nodes given the same new config from which `storeConfigs` writes it in one statement for
    /// all of them instead of a row of a VALUES list each: a fleet-wide change to 30,000 nodes
    /// of one config was 30 statements of 1,024 rows and 92,160 parameters.
    static let nodesPerSetUpdate = 64

    /// `apply` with the statement sizes given (tests write several chunks with a few nodes, and
    /// a config given to a few nodes in one statement).
    func apply(
        _ patch: ConfigPatch, to nodeIds: [String], dryRun: Bool, target: String? = nil, actor: String, now: Date,
        chunkRows: Int, nodesPerSetUpdate: Int = nodesPerSetUpdate
    ) async throws -> [ApplyItem] {
        let who = AuditWho.current(default: actor)
        return try await write { db in
            let wanted = Set(nodeIds)
            // A fleet shares a few distinct configs and kernels' feature lists: each text is
            // decoded once, and each config's outcome under the patch (the new config, its
            // changes, its JSON) worked out once. Nodes refer to them by index, so no config's
            // text is hashed again per node.
            var configIndex: [String: Int] = [:]
            var configs: [(json: String, config: KSMConfig)] = []
            var featureIndex: [String: Int] = [:]
            var featureLists: [[String]] = []
            struct Target {
                var name: String
                var generation: Int64
                var kickCounter: Int64
                var config: Int
                var kernel: String
                var features: Int
            }
            var current: [String: Target] = [:]
            current.reserveCapacity(wanted.count)
            // Only the targets' rows (a selector's few nodes are not a whole fleet's read).
            let rows = try StoreRow.fetchCursor(
                db,
                sql: """
                    SELECT n.id, n.name, n.kernel, n.ksm_features, c.generation, c.kick_counter, c.config_json
                    FROM nodes n JOIN node_configs c ON c.node_id = n.id
                    WHERE n.deleted_at IS NULL AND \(db.inJSONArray("n.id"))
                    """, arguments: [StoredJSON.strings(wanted)])
            while let row = try rows.next() {
                let json: String = row["config_json"]
                let config: Int
                if let known = configIndex[json] {
                    config = known
                } else {
                    config = configs.count
                    configs.append((json, try StoredJSON.decode(KSMConfig.self, json)))
                    configIndex[json] = config
                }
                let featuresText: String = row["ksm_features"]
                let features: Int
                if let known = featureIndex[featuresText] {
                    features = known
                } else {
                    features = featureLists.count
                    featureLists.append((try? StoredJSON.decode([String].self, featuresText)) ?? [])
                    featureIndex[featuresText] = features
                }
                current[row["id"]] = Target(
                    name: row["name"], generation: row["generation"], kickCounter: row["kick_counter"], config: config,
                    kernel: row["kernel"], features: features)
            }
            // Each old config's outcome: the patch's error, or the new config (nil: unchanged),
            // with its changes, its JSON and that JSON's index among the new configs.
            struct Outcome {
                var result: Result<KSMConfig?, ConfigValidationError>
                var changes: [String] = []
                var json = ""
                var after = 0
            }
            var outcomes: [Outcome?] = Array(repeating: nil, count: configs.count)
            var afterIndex: [String: Int] = [:]
            func outcome(_ index: Int) throws -> Outcome {
                if let known = outcomes[index] { return known }
                let before = configs[index].config
                var o: Outcome
                do throws(ConfigValidationError) {
                    let config = try patch.applied(to: before)
                    o = Outcome(result: .success(config == before ? nil : config))
                } catch {
                    o = Outcome(result: .failure(error))
                }
                if case .success(let changed?) = o.result {
                    o.changes = configDiff(before, changed)
                    if !dryRun {
                        o.json = try StoredJSON.encode(changed)
                        if let known = afterIndex[o.json] {
                            o.after = known
                        } else {
                            o.after = afterIndex.count
                            afterIndex[o.json] = o.after
                        }
                    }
                }
                outcomes[index] = o
                return o
            }
            var items: [ApplyItem] = []
            items.reserveCapacity(nodeIds.count)
            // The changed nodes, in the order of `nodeIds` (their audit rows are inserted in it).
            var writes: [ConfigWrite] = []
            for id in nodeIds {
                guard let target = current[id] else {
                    items.append(ApplyItem(nodeId: id, name: nil, status: .notFound, generation: nil, changes: []))
                    continue
                }
                let o = try outcome(target.config)
                let before = configs[target.config].config
                let config: KSMConfig
                do throws(ConfigValidationError) {
                    guard let changed = try o.result.get() else {
                        items.append(
                            ApplyItem(
                                nodeId: id, name: target.name, status: .unchanged, generation: target.generation,
                                changes: []))
                        continue
                    }
                    config = changed
                    // What this node's kernel cannot do fails this node (mode advisor before 6.7).
                    if config.mode != before.mode {
                        let issues = config.issues(onKernelWith: featureLists[target.features], kernel: target.kernel)
                        if !issues.isEmpty { throw ConfigValidationError(issues) }
                    }
                } catch {
                    items.append(
                        ApplyItem(
                            nodeId: id, name: target.name, status: .failed, generation: target.generation, changes: [],
                            error: error))
                    continue
                }
                if dryRun {
                    items.append(
                        ApplyItem(
                            nodeId: id, name: target.name, status: .wouldChange, generation: target.generation,
                            changes: o.changes))
                    continue
                }
                let after = NodeConfig(generation: target.generation + 1, kickCounter: target.kickCounter, config: config)
                writes.append(
                    ConfigWrite(
                        nodeId: id, generation: after.generation, kickCounter: target.kickCounter,
                        beforeJSON: configs[target.config].json,
                        afterJSON: o.json, pair: target.config, after: o.after))
                items.append(
                    ApplyItem(
                        nodeId: id, name: target.name, status: .changed, generation: after.generation,
                        changes: o.changes, config: after))
            }
            try Self.storeConfigs(
                db, writes, who: who, action: "apply", target: target, at: Time.ms(now), chunkRows: chunkRows,
                nodesPerSetUpdate: nodesPerSetUpdate)
            return items
        }
    }

    /// One node's new config, as `storeConfigs` writes it.
    struct ConfigWrite {
        var nodeId: String
        var generation: Int64
        /// The node's kick counter (unchanged by the write; its notification carries it).
        var kickCounter: Int64
        var beforeJSON: String
        var afterJSON: String
        /// Equal for writes with equal configs before and after (`apply`: the old config's index;
        /// one patch gives one old config one new one).
        var pair: Int
        /// Equal for writes with an equal `afterJSON`.
        var after: Int
    }

    /// `writes` in groups of equal `key`, the groups in the order of their first write, each in
    /// the order given.
    static func grouped(_ writes: [ConfigWrite], by key: (ConfigWrite) -> Int) -> [[ConfigWrite]] {
        var groups: [[ConfigWrite]] = []
        var slot: [Int: Int] = [:]
        for w in writes {
            if let i = slot[key(w)] {
                groups[i].append(w)
            } else {
                slot[key(w)] = groups.count
                groups.append([w])
            }
        }
        return groups
    }

    /// Writes new configs (generation and config; the kick counter stays) and their audit record,
    /// in the order given, `chunkRows` nodes a statement (inside the caller's transaction). On
    /// PostgreSQL the nodes of a config written in one statement are announced from here
    /// (`ConfigNotices`, the trigger off for those statements: postgres migration 0018); the
    /// VALUES lists' rows by the statement trigger, grouped by config
    /// (migrations/postgres/0015_config_notify_grouped.sql).
    ///
    /// The audit record is one row for each distinct pair of configs before and after: a node
    /// alone in its pair gets its own row (`node_id` set), as a one-node change does; two or more
    /// share one row (`node_id` NULL, `node_count` set) and each has a narrow `audit_nodes` row
    /// with its new generation (migrations 0051 / postgres 0017). A fleet-wide change of 30,000
    /// nodes wrote 30,000 audit rows, each with the config twice (about 11 MB of JSON, a third of
    /// the apply's transaction on PostgreSQL); a fleet sharing one config now writes one.
    ///
    /// Each write's generation is its node's current one plus one, read in the same transaction
    /// (`apply`'s): a new config given to at least `nodesPerSetUpdate` nodes is written in one
    /// statement for all of them, `generation = generation + 1`, the nodes named by a JSON array,
    /// and a pair of configs shared by that many nodes has its `audit_nodes` rows inserted from
    /// their configs just written, in one statement too.
    static func storeConfigs(
        _ db: StoreDB, _ writes: [ConfigWrite], who: AuditWho, action: String, target: String? = nil, at: Int64,
        chunkRows: Int, nodesPerSetUpdate: Int
    ) throws {
        // Each node once (a node named twice is written once), in the order of `writes`.
        var seen = Set<String>()
        seen.reserveCapacity(writes.count)
        let unique = writes.filter { seen.insert($0.nodeId).inserted }
        // The nodes of each new config, the configs in the order of their first node.
        var rest: [ConfigWrite] = []
        // PostgreSQL: these statements' notifications are sent from here, not by the statement
        // trigger, which the setting turns off until the end of them (postgres migration 0018).
        let announcesHere = db.engine == .postgres
        var notices: [String] = []
        for group in Self.grouped(unique, by: \.after) {
            guard group.count >= nodesPerSetUpdate else {
                rest += group
                continue
            }
            // The first such statement turns the trigger off (`notices` is empty until then).
            if announcesHere && notices.isEmpty {
                try db.execute(sql: "SELECT set_config('\(ConfigNotices.setting)', 'on', true)")
            }
            try db.execute(
                sql: """
                    UPDATE node_configs SET generation = generation + 1, config_json = ?, updated_at = ?, updated_by = ?
                    WHERE \(db.inJSONArray("node_id"))
                    """, arguments: [group[0].afterJSON, at, who.name, StoredJSON.strings(group.map(\.nodeId))])
            if announcesHere {
                notices += ConfigNotices.payloads(
                    configJSON: group[0].afterJSON, group.map { ($0.nodeId, $0.generation, $0.kickCounter) })
            }
        }
        if !notices.isEmpty {
            try db.execute(sql: "SELECT set_config('\(ConfigNotices.setting)', 'off', true)")
            try db.execute(
                sql: """
                    SELECT count(*) FROM (SELECT pg_notify('ksmfleet_config', p) FROM json_array_elements_text(?::json) AS p) AS sent
                    """,
                arguments: [StoredJSON.strings(notices)])
        }
        // The rest by a VALUES list of each node's generation and config. Both engines name a
        // VALUES list's columns column1, column2, …; the parameters' types (bigint, text) come
        // with the values on PostgreSQL, so the list needs no casts.
        try db.executeValues(
            "UPDATE node_configs SET generation = v.column2, config_json = v.column3, updated_at = ?, updated_by = ? FROM (",
            rest.map { [$0.nodeId, $0.generation, $0.afterJSON] },
            leading: [at, who.name], tail: ") AS v WHERE node_configs.node_id = v.column1", chunk: chunkRows)
        // The pairs in the order their first node comes in `writes`, each with its nodes once.
        let groups = Self.grouped(unique, by: \.pair)
        let alone = groups.filter { $0.count == 1 }.map { $0[0] }
        let shared = groups.filter { $0.count > 1 }
        // One multi-row VALUES: rows are inserted (and their ids assigned) in list order.
        try db.executeValues(
            "INSERT INTO audit_log (at, actor, credential_id, source, node_id, action, target, generation, before_json, after_json)",
            alone.map {
                [at, who.name, who.credentialId, who.source, $0.nodeId, action, target, $0.generation, $0.beforeJSON, $0.afterJSON]
            },
            chunk: chunkRows)
        guard !shared.isEmpty else { return }
        // The shared rows' ids come back with their pair (RETURNING's order is not the list's
        // on either engine); a pair is unique among them.
        struct Pair: Hashable {
            var before: String
            var after: String
        }
        var ids: [Pair: Int64] = [:]
        try db.executeValues(
            "INSERT INTO audit_log (at, actor, credential_id, source, node_id, action, target, generation, before_json, after_json, node_count)",
            shared.map {
                [at, who.name, who.credentialId, who.source, nil, action, target, nil, $0[0].beforeJSON, $0[0].afterJSON, $0.count]
            },
            tail: "RETURNING id, before_json, after_json", chunk: chunkRows
        ) { row in
            ids[Pair(before: row["before_json"], after: row["after_json"])] = row["id"]
        }
        var nodeRows: [StoreArguments] = []
        for group in shared {
            guard let id = ids[Pair(before: group[0].beforeJSON, after: group[0].afterJSON)] else {
                throw SharedAuditRowMissing()
            }
            guard group.count >= nodesPerSetUpdate else {
                for w in group { nodeRows.append([id, w.nodeId, w.generation]) }
                continue
            }
            // Each node's generation as just written (its `generation`).
            try db.execute(
                sql: """
                    INSERT INTO audit_nodes (audit_id, node_id, generation)
                    SELECT ?, node_id, generation FROM node_configs WHERE \(db.inJSONArray("node_id"))
                    """, arguments: [id, StoredJSON.strings(group.map(\.nodeId))])
        }
        try db.executeValues("INSERT INTO audit_nodes (audit_id, node_id, generation)", nodeRows, chunk: 3 * chunkRows)
    }
}

/// The database did not return the id of a shared audit row it inserted (never seen: the
/// transaction is rolled back rather than leave nodes out of the audit trail).
struct SharedAuditRowMissing: Error, CustomStringConvertible {
    var description: String { "the audit row of a change shared by several nodes was not returned by its INSERT" }
}

/// The notifications of config updates that `FleetDatabase.storeConfigs` sends itself on
/// PostgreSQL for the statements that give one config to many nodes, in the structure of the
/// statement trigger's (postgres migration 0015), written compactly: `{"c":config,"u":[[node_id,
/// generation,kick_counter],…]}`, the nodes chunked at about 4,000 bytes of entries, `"c"` null
/// for a config longer than 3,000 bytes as a JSON string (the replica reads it then), so a
/// payload stays under PostgreSQL's 8,000 bytes. The length is the string as written here, with
/// `/` escaped (`to_json` leaves it): a config with slashes near the limit goes without `"c"`
/// a little sooner than the trigger's would. The trigger built them in PL/pgSQL with a sort, a
/// window and an aggregate over the statement's rows: 103 ms of a 30,000-node `UPDATE`'s
/// 275–340 ms (EXPLAIN ANALYZE); the apply has every value at hand.
enum ConfigNotices {
    /// While `on` (for the rest of the transaction, `set_config(…, true)`), the statement
    /// trigger sends nothing: the statements' notifications are the writer's to send.
    static let setting = "ksmfleet.announced"
    /// The entries' bytes after which a chunk ends (the trigger's 4,000).
    static let chunkBytes = 4000
    /// A config longer than this as a JSON string goes without `"c"`.
    static let maxConfigBytes = 3000

    /// The payloads announcing `nodes` (id, new generation, kick counter) given `configJSON`.
    static func payloads(configJSON: String, _ nodes: [(id: String, generation: Int64, kick: Int64)]) -> [String] {
        var config: [UInt8] = []
        JSONText.string(configJSON, into: &config)
        if config.count > maxConfigBytes { config = Array("null".utf8) }
        var payloads: [String] = []
        var entries: [UInt8] = []
        func flush() {
            guard !entries.isEmpty else { return }
            var payload = Array(#"{"c":"#.utf8)
            payload += config
            payload += #","u":["#.utf8
            payload += entries
            payload += "]}".utf8
            payloads.append(String(decoding: payload, as: UTF8.self))
            entries.removeAll(keepingCapacity: true)
        }
        var entry: [UInt8] = []
        for node in nodes {
            entry.removeAll(keepingCapacity: true)
            entry.append(UInt8(ascii: "["))
            JSONText.string(node.id, into: &entry)
            entry.append(UInt8(ascii: ","))
            JSONText.integer(node.generation, into: &entry)
            entry.append(UInt8(ascii: ","))
            JSONText.integer(node.kick, into: &entry)
            entry.append(UInt8(ascii: "]"))
            if !entries.isEmpty && entries.count + 1 + entry.count > chunkBytes { flush() }
            if !entries.isEmpty { entries.append(UInt8(ascii: ",")) }
            entries += entry
        }
        flush()
        return payloads
    }
}
