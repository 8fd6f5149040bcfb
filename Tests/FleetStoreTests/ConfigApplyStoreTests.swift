import FleetAPI
@testable import FleetStore
import Foundation
import KSMCore
import Synchronization
import TestSupport
import Testing

/// `FleetDatabase.apply`, the fleet-wide change: per-node results, the configs and audit rows it
/// writes (in several multi-row statements), and on PostgreSQL the notifications.
@Suite struct ConfigApplyStoreTests {
    /// Registers a node whose kernel has the KSM advisor, or not.
    static func register(_ db: FleetDatabase, _ name: String, advisor: Bool = true) async throws -> String {
        let enrollment = try await db.createEnrollmentToken(description: nil, expiresAt: nil)
        var request = registerRequest("m-\(name)", host: name)
        request.ksmFeatures = ["run", "pages_to_scan"] + (advisor ? ["advisor_mode"] : [])
        return try await db.register(
            request, enrollmentTokenHash: Secrets.hash(enrollment.token ?? ""), nodeTokenHash: Secrets.hash("kn_\(name)")
        ).node.id
    }

    @Test func statementSizesAreFullChunksThenPowersOfTwo() {
        #expect(StoreDB.statementSizes(0, chunk: 1024) == [])
        #expect(StoreDB.statementSizes(5, chunk: 2) == [2, 2, 1])
        #expect(StoreDB.statementSizes(7, chunk: 8) == [4, 2, 1])
        #expect(StoreDB.statementSizes(10_000, chunk: 1024) == Array(repeating: 1024, count: 9) + [512, 256, 16])
        for count in [1, 2, 3, 1023, 1024, 1025, 4097, 25_000] {
            let sizes = StoreDB.statementSizes(count, chunk: 1024)
            #expect(sizes.reduce(0, +) == count)
            #expect(sizes.allSatisfy { $0 == 1024 || $0.nonzeroBitCount == 1 })
        }
    }

    /// Several nodes, more changed ones than one statement takes: every changed node gets its
    /// config and generation, and its audit record (shared by the nodes that had the same
    /// config and got the same one), the others nothing.
    @Test func applyWritesEachChangedNodeAndItsAuditRecord() async throws {
        let (db, dir) = try makeDatabase()
        defer {
            try? db.close()
            try? FileManager.default.removeItem(at: dir)
        }
        let c1 = try await Self.register(db, "c1")
        let c2 = try await Self.register(db, "c2")
        let c3 = try await Self.register(db, "c3")
        let c4 = try await Self.register(db, "c4")
        let c5 = try await Self.register(db, "c5")
        let same = try await Self.register(db, "same")
        let noAdvisor = try await Self.register(db, "no-advisor", advisor: false)
        let gone = try await Self.register(db, "gone")
        // Configs and generations that differ from node to node.
        _ = try await db.updateConfig(nodeId: c2, action: "patch") { base throws(ConfigValidationError) in
            try ConfigPatch(run: .run, thresCoef: 30).applied(to: base)
        }
        _ = try await db.kick(nodeId: c3)
        _ = try await db.updateConfig(nodeId: same, action: "patch") { base throws(ConfigValidationError) in
            try ConfigPatch(mode: .advisor).applied(to: base)
        }
        _ = try await db.deleteNode(nodeId: gone, purgeHistory: false)

        let ids = [c5, same, c1, "ghost", noAdvisor, c3, gone, c2, c4]
        var before: [String: NodeConfig] = [:]
        for id in ids { before[id] = try await db.config(nodeId: id) }
        let auditBefore = try await db.auditLog(limit: 1000)
        let patch = ConfigPatch(mode: .advisor)
        let now = Date(timeIntervalSince1970: 1_750_000_000.123)
        let who = AuditWho(name: "ops", credentialId: "cred-1", source: "192.0.2.7")

        // A dry run: the same verdicts, nothing written.
        let dry = try await AuditContext.$current.withValue(who) {
            try await db.apply(patch, to: ids, dryRun: true, actor: "admin", now: now, chunkRows: 2)
        }
        #expect(dry.map(\.status) == [
            .wouldChange, .unchanged, .wouldChange, .notFound, .failed, .wouldChange, .notFound, .wouldChange,
            .wouldChange,
        ])
        #expect(try await db.auditLog(limit: 1000) == auditBefore, "a dry run writes no audit row")
        for id in ids { #expect(try await db.config(nodeId: id) == before[id], "a dry run changes no config") }

        // 5 changed nodes: the four given the same config in one UPDATE (generation + 1; c3's was
        // raised by its kick), c2 alone by a VALUES list.
        let items = try await AuditContext.$current.withValue(who) {
            try await db.apply(
                patch, to: ids, dryRun: false, target: "all", actor: "admin", now: now, chunkRows: 2, nodesPerSetUpdate: 3)
        }
        #expect(items.map(\.nodeId) == ids)
        #expect(items.map(\.status) == [
            .changed, .unchanged, .changed, .notFound, .failed, .changed, .notFound, .changed, .changed,
        ])
        #expect(items.map(\.name) == ["c5", "same", "c1", nil, "no-advisor", "c3", nil, "c2", "c4"])
        #expect(items[4].error?.issues.first?.code == "unsupported")
        let changed = [c5, c1, c3, c2, c4]
        for item in items {
            guard let old = before[item.nodeId] ?? nil else {
                #expect(item.generation == nil && item.config == nil)
                continue
            }
            let stored = try #require(try await db.config(nodeId: item.nodeId))
            if changed.contains(item.nodeId) {
                #expect(item.generation == old.generation + 1)
                #expect(item.config == stored)
                #expect(stored.generation == old.generation + 1)
                #expect(stored.kickCounter == old.kickCounter)
                #expect(stored.config == (try patch.applied(to: old.config)))
                #expect(stored.config.mode == .advisor)
                #expect(item.changes == configDiff(old.config, stored.config) && !item.changes.isEmpty)
            } else {
                #expect(item.generation == old.generation)
                #expect(stored == old, "\(item.nodeId) was not changed")
            }
        }
        #expect(try await db.config(nodeId: c3)?.kickCounter == 1, "the kick counter stays")

        // The audit: c2's config was its own (one row naming it); c5, c1, c3 and c4 went from the
        // same config to the same one (one row for the four, each node in `audit_nodes`).
        let all = try await db.auditLog(limit: 1000)
        let added = Array(all.filter { a in !auditBefore.contains { $0.id == a.id } }.reversed())
        #expect(added.count == 2)
        let own = try #require(added.first { $0.nodeId != nil })
        let shared = try #require(added.first { $0.nodeId == nil })
        #expect(own.nodeId == c2 && own.nodeCount == nil && own.generation == (before[c2] ?? nil).map { $0.generation + 1 })
        #expect(shared.nodeCount == 4 && shared.generation == nil)
        for record in added {
            #expect(record.action == "apply")
            #expect(record.credential == "ops" && record.credentialId == "cred-1" && record.source == "192.0.2.7")
            #expect(record.at == Time.date(Time.ms(now)))
            #expect(record.target == "all")
        }
        // Filtered by node, each changed node's record: its generation, its configs before and after.
        for id in changed {
            let records = try await db.auditLog(AuditFilter(nodeId: id, action: "apply"))
            #expect(records.count == 1, "\(id)")
            let record = try #require(records.first)
            let old = try #require(before[id] ?? nil)
            #expect(record.id == (id == c2 ? own.id : shared.id))
            #expect(record.nodeId == id)
            #expect(record.nodeCount == (id == c2 ? nil : 4))
            #expect(record.generation == old.generation + 1)
            #expect(record.credential == "ops" && record.target == "all")
            let recordedBefore = try StoredJSON.decode(KSMConfig.self, try #require(record.before))
            let recordedAfter = try StoredJSON.decode(KSMConfig.self, try #require(record.after))
            #expect(recordedBefore == old.config)
            #expect(recordedAfter == (try patch.applied(to: old.config)))
            // The other filters apply to the shared row too.
            #expect(try await db.auditLog(AuditFilter(nodeId: id, credential: "cred-1", action: "apply")).count == 1)
            #expect(try await db.auditLog(AuditFilter(nodeId: id, credential: "someone-else", action: "apply")).isEmpty)
            #expect(try await db.auditLog(AuditFilter(nodeId: id, action: "apply", since: now.addingTimeInterval(1))).isEmpty)
        }
        for id in [same, noAdvisor] {
            #expect(try await db.auditLog(AuditFilter(nodeId: id, action: "apply")).isEmpty, "\(id) was not changed")
        }

        // Applied again: nothing left to change, nothing written.
        let again = try await db.apply(patch, to: ids, dryRun: false, actor: "admin", now: now, chunkRows: 2)
        #expect(again.filter { $0.status == .changed }.isEmpty)
        #expect(try await db.auditLog(limit: 1000).count == all.count)
    }

    /// A fleet of four configs changed at once: one audit row for each pair of configs before
    /// and after that two or more nodes share, a row of its own for a node alone in its pair;
    /// each node's record found by node and in its record's node list (paged), also after
    /// another node of its group is purged. Small statements: the shared rows and their nodes
    /// take several statements each.
    @Test func aFleetChangeIsAuditedOncePerPairOfConfigs() async throws {
        let (db, dir) = try makeDatabase()
        defer {
            try? db.close()
            try? FileManager.default.removeItem(at: dir)
        }
        var ids: [String] = []
        for i in 0..<12 { ids.append(try await Self.register(db, "f\(i)")) }
        // Group A keeps the standard config, B gets 30, C 35; the last node alone 40.
        func group(_ i: Int) -> String { i == 11 ? "alone" : ["A", "B", "C", "A"][i % 4] }
        let coef = ["B": 30, "C": 35, "alone": 40]
        for (i, id) in ids.enumerated() {
            guard let c = coef[group(i)] else { continue }
            _ = try await db.updateConfig(nodeId: id, action: "patch") { base throws(ConfigValidationError) in
                try ConfigPatch(thresCoef: c).applied(to: base)
            }
        }
        let members = { (g: String) in ids.enumerated().filter { group($0.offset) == g }.map(\.element) }
        let standard = try #require(try await db.config(nodeId: ids[0])).config.thresCoef
        #expect(members("A").count == 5 && members("B").count == 3 && members("C").count == 3)
        // Two rows a statement: the three shared rows in two statements, their 11 nodes in three.
        let generations = try await db.apply(
            ConfigPatch(thresCoef: 50), to: ids, dryRun: false, target: "selector env=prod", actor: "admin", now: Date(),
            chunkRows: 2
        ).reduce(into: [String: Int64]()) { $0[$1.nodeId] = $1.generation }
        #expect(generations.count == 12)

        let records = try await db.auditLog(AuditFilter(action: "apply"))
        #expect(records.count == 4)
        let nodeCounts: [Int?] = records.map(\.nodeCount).sorted { ($0 ?? 0) < ($1 ?? 0) }
        #expect(nodeCounts == [nil, 3, 3, 5])
        #expect(records.allSatisfy { $0.target == "selector env=prod" })
        #expect(records.first { $0.nodeCount == nil }?.nodeId == ids[11])
        struct Member: Sendable {
            var auditId: Int64
            var nodeId: String
            var generation: Int64
        }
        let stored = try await db.read { db in
            try StoreRow.fetchAll(db, sql: "SELECT audit_id, node_id, generation FROM audit_nodes ORDER BY node_id").map {
                Member(auditId: $0["audit_id"], nodeId: $0["node_id"], generation: $0["generation"])
            }
        }
        #expect(stored.map(\.nodeId) == (members("A") + members("B") + members("C")).sorted())
        for m in stored { #expect(m.generation == generations[m.nodeId]) }
        let groups: [(String, Int)] = [("A", standard), ("B", 30), ("C", 35)]
        for (g, before) in groups {
            // The shared row whose config before was this group's.
            let shared = records.filter { $0.nodeCount != nil }
            let befores = try shared.map { try StoredJSON.decode(KSMConfig.self, $0.before ?? "").thresCoef }
            let row = try #require(zip(shared, befores).first { $0.1 == before }?.0)
            #expect(row.nodeCount == members(g).count)
            #expect(Set(stored.filter { $0.auditId == row.id }.map(\.nodeId)) == Set(members(g)), "\(g)")
            #expect(try StoredJSON.decode(KSMConfig.self, try #require(row.after)).thresCoef == 50)
            // The record's nodes, by node id, two a page.
            var listed: [AuditRecord] = []
            var after: String?
            for _ in 0..<10 {  // bounded: a filter that ignored afterNode would repeat its first page
                let page = try await db.auditLog(AuditFilter(record: row.id, afterNode: after, limit: 2))
                listed += page
                guard page.count == 2 else { break }
                after = page.last?.nodeId
            }
            #expect(listed.map(\.nodeId) == members(g).sorted(), "\(g)")
            #expect(listed.allSatisfy { $0.id == row.id && $0.nodeCount == row.nodeCount && $0.after == row.after })
            #expect(listed.map(\.generation) == members(g).sorted().map { generations[$0] })
        }
        // A record of one node lists that node.
        let own = try #require(records.first { $0.nodeCount == nil })
        #expect(try await db.auditLog(AuditFilter(record: own.id)) == [own])

        // A purged node's history goes; the audit trail of the change stays, for it and the others.
        try await db.deleteNode(nodeId: members("A")[0], purgeHistory: true)
        for id in members("A") {
            let mine = try await db.auditLog(AuditFilter(nodeId: id, action: "apply"))
            #expect(mine.map(\.nodeCount) == [5] && mine.map(\.generation) == [generations[id]], "\(id)")
        }
        #expect(try await db.auditLog(AuditFilter(action: "apply")).count == 4)
    }

    /// A node named twice gets its change once (one generation), reported twice and audited once:
    /// written by a VALUES list (up to 64 nodes of a config), and in one statement for the nodes
    /// of a config.
    @Test(arguments: [64, 2]) func aNodeNamedTwiceChangesOnce(nodesPerSetUpdate: Int) async throws {
        let (db, dir) = try makeDatabase()
        defer {
            try? db.close()
            try? FileManager.default.removeItem(at: dir)
        }
        let a = try await Self.register(db, "a")
        let b = try await Self.register(db, "b")
        let items = try await db.apply(
            ConfigPatch(run: .run), to: [a, b, a], dryRun: false, actor: "admin", now: Date(), chunkRows: 2,
            nodesPerSetUpdate: nodesPerSetUpdate)
        #expect(items.map(\.status) == [.changed, .changed, .changed])
        #expect(items.map(\.generation) == [2, 2, 2])
        #expect(try await db.config(nodeId: a)?.generation == 2)
        #expect(try await db.config(nodeId: b)?.generation == 2)
        let records = try await db.auditLog(AuditFilter(action: "apply"))
        #expect(records.map(\.nodeCount) == [2] && records.map(\.nodeId) == [nil])
        for id in [a, b] {
            #expect(try await db.auditLog(AuditFilter(nodeId: id, action: "apply")).map(\.generation) == [2])
        }
    }

    /// On PostgreSQL, every changed node's new config is announced to the replicas: one
    /// notification per UPDATE statement here (three statements of at most two nodes, one
    /// config), not one per node.
    @Test func everyChangedNodeIsAnnounced() async throws {
        guard TestStore.isPostgres else {
            try Test.cancel("notifications: runs on the PostgreSQL pass of make test (KSMFLEET_TEST_POSTGRES)")
        }
        let (db, dir) = try makeDatabase()
        defer {
            try? db.close()
            try? FileManager.default.removeItem(at: dir)
        }
        var ids: [String] = []
        for i in 0..<5 { ids.append(try await Self.register(db, "n\(i)")) }
        let recorder = try await NoticeRecorder(db)
        defer { recorder.stop() }

        let items = try await db.apply(
            ConfigPatch(run: .run), to: ids, dryRun: false, actor: "admin", now: Date(), chunkRows: 2)
        #expect(items.allSatisfy { $0.status == .changed })
        let all = await waitUntil(timeout: .seconds(15)) {
            let heard = recorder.byNode
            return ids.allSatisfy { heard[$0]?.last?.generation == 2 }
        }
        let heard = recorder.byNode
        #expect(all, "announced: \(heard.keys.sorted()) of \(ids.sorted())")
        for item in items { #expect(heard[item.nodeId]?.last?.config == item.config) }
        #expect(recorder.notifications == 3)
    }

    /// Nodes n-000000000001… with SQL (PostgreSQL), their configs `configSQL` (of `i`, the
    /// node's number), every fifth generation and seventh kick counter of 19 digits.
    static func insertNodes(_ db: FleetDatabase, count: Int, configSQL: String) async throws {
        try await db.write { db in
            try db.execute(
                sql: """
                    INSERT INTO nodes (id, name, machine_id, kernel, mem_total_bytes, numa_nodes, agent_version, registered_at)
                    SELECT 'n-' || lpad(to_hex(i), 12, '0'), 'host-' || i, 'm-' || i, '6.8.0', 1, 1, 'test', 0
                    FROM generate_series(1, \(count)) AS i
                    """)
            try db.execute(
                sql: """
                    INSERT INTO node_configs (node_id, generation, kick_counter, config_json, updated_at, updated_by)
                    SELECT 'n-' || lpad(to_hex(i), 12, '0'),
                           CASE WHEN i % 5 = 0 THEN 9000000000000000000 + i ELSE i END,
                           CASE WHEN i % 7 = 0 THEN 9100000000000000000 + i ELSE i % 3 END, \(configSQL), 0, 'test'
                    FROM generate_series(1, \(count)) AS i
                    """)
        }
    }

    /// On PostgreSQL an UPDATE of many nodes is announced grouped by config, in chunks that fit
    /// a notification (8,000 bytes: the UPDATE fails otherwise): each node exactly once, with its
    /// generation, kick counter and config, and without the config when that is longer than
    /// 3,000 bytes as a JSON string (the replica reads it then). Nodes and configs are written
    /// with SQL here, to reach the edges: configs of exactly 3,000 and 3,002 bytes once escaped,
    /// and generations and kick counters of 19 digits.
    @Test func updatesAreAnnouncedGroupedInChunksThatFit() async throws {
        guard TestStore.isPostgres else {
            try Test.cancel("notifications: runs on the PostgreSQL pass of make test (KSMFLEET_TEST_POSTGRES)")
        }
        let (db, dir) = try makeDatabase()
        defer {
            try? db.close()
            try? FileManager.default.removeItem(at: dir)
        }
        let count = 3000
        try await Self.insertNodes(db, count: count, configSQL: "'{}'")
        let recorder = try await NoticeRecorder(db)
        defer { recorder.stop() }

        // 1,499 quotes are 3,000 bytes as a JSON string (each escaped, and the two around);
        // 1,500 are 3,002. So are 1,499 and 1,500 "é" (two bytes each in UTF-8).
        let fits = String(repeating: "\"", count: 1499)
        let tooLong = String(repeating: "\"", count: 1500)
        let fitsInBytes = String(repeating: "é", count: 1499)
        let tooManyBytes = String(repeating: "é", count: 1500)
        let small = #"{"run":"stop"}"#
        try await db.write { db in
            try db.execute(
                sql: """
                    UPDATE node_configs SET generation = generation + 1,
                      config_json = CASE generation % 5 WHEN 0 THEN ? WHEN 1 THEN ? WHEN 2 THEN ? WHEN 3 THEN ? ELSE ? END
                    """, arguments: [fits, tooLong, small, fitsInBytes, tooManyBytes])
        }
        try await recorder.sentinel(db)
        #expect(recorder.byNode.count == count, "heard of \(recorder.byNode.count) of \(count) nodes")
        let stored = try await db.read { db in
            try StoreRow.fetchAll(db, sql: "SELECT node_id, generation, kick_counter, config_json FROM node_configs")
                .map { row -> ConfigChangeNotice in
                    let json: String = row["config_json"]
                    return ConfigChangeNotice(
                        nodeId: row["node_id"], deleted: false, generation: row["generation"],
                        kickCounter: row["kick_counter"],
                        configJSON: json == tooLong || json == tooManyBytes ? nil : json)
                }
        }
        #expect(stored.count == count)
        #expect(Set(stored.map(\.configJSON)) == [fits, nil, small, fitsInBytes])
        let byNode = recorder.byNode
        var mismatches: [String] = []
        for expected in stored {
            let id = expected.nodeId
            if byNode[id] != [expected] { mismatches.append("\(id): \(byNode[id] ?? []) ≠ \(expected)") }
        }
        #expect(mismatches.isEmpty, "\(mismatches.count) nodes: \(mismatches.prefix(3))")
        // Five configs of 600 nodes each; an entry is 26 to 62 bytes, so a chunk of about
        // 4,000 bytes holds 65 to 154 nodes: 5 × 4 to 5 × 10 notifications, not 3,000.
        let sent = recorder.notifications - 1  // the sentinel
        #expect((20...50).contains(sent), "\(sent) notifications")
    }

    /// A fleet-wide apply on PostgreSQL announces the nodes of a config given to many of them
    /// itself (`ConfigNotices`, the trigger off for those statements: postgres migration 0018);
    /// the rest are the trigger's. Every changed node is heard exactly once (the trigger and the
    /// writer both sending would be twice), with the generation, kick counter and config stored;
    /// generations and kick counters of 19 digits included.
    @Test func anApplyAnnouncesEachChangedNodeOnceWithWhatItStored() async throws {
        guard TestStore.isPostgres else {
            try Test.cancel("notifications: runs on the PostgreSQL pass of make test (KSMFLEET_TEST_POSTGRES)")
        }
        let (db, dir) = try makeDatabase()
        defer {
            try? db.close()
            try? FileManager.default.removeItem(at: dir)
        }
        // 1,000 nodes: 700 of one config and 280 of another (each written in one statement),
        // 20 of a third (a VALUES list: announced by the trigger).
        let count = 1000
        try await Self.insertNodes(
            db, count: count,
            configSQL: """
                CASE WHEN i <= 700 THEN '{"mode":"standard","run":"stop","thresCoef":20}'
                     WHEN i <= 980 THEN '{"mode":"standard","run":"run","thresCoef":20}'
                     ELSE '{"mode":"advisor","run":"run","thresCoef":30}' END
                """)
        let ids = (1...count).map { "n-" + String(repeating: "0", count: 12 - String($0, radix: 16).count) + String($0, radix: 16) }
        let recorder = try await NoticeRecorder(db)
        defer { recorder.stop() }
        let items = try await db.apply(ConfigPatch(thresCoef: 25), to: ids, dryRun: false, actor: "admin", now: Date())
        #expect(items.filter { $0.status == .changed }.count == count)
        try await recorder.sentinel(db)
        let stored = try await db.read { db in
            try StoreRow.fetchAll(db, sql: "SELECT node_id, generation, kick_counter, config_json FROM node_configs")
                .map { row -> ConfigChangeNotice in
                    ConfigChangeNotice(
                        nodeId: row["node_id"], deleted: false, generation: row["generation"],
                        kickCounter: row["kick_counter"], configJSON: row["config_json"])
                }
        }
        #expect(Set(stored.compactMap(\.configJSON)).count == 3)
        let byNode = recorder.byNode
        var mismatches: [String] = []
        for expected in stored where byNode[expected.nodeId] != [expected] {
            mismatches.append("\(expected.nodeId): \(byNode[expected.nodeId] ?? []) ≠ \(expected)")
        }
        #expect(mismatches.isEmpty, "\(mismatches.count) nodes: \(mismatches.prefix(3))")
        #expect(byNode.count == count, "heard of \(byNode.count) nodes")
        // About 117 entries a chunk with these numbers: 6 + 3 + 1 notifications, not 1,000.
        let sent = recorder.notifications - 1  // the sentinel
        #expect((6...20).contains(sent), "\(sent) notifications")
    }

    /// The writer's notifications are the trigger's form and limits: parsed back to every node
    /// once, each payload within PostgreSQL's 8,000 bytes, and a config over 3,000 bytes as a JSON
    /// string left out (3,000 fit: 1,499 quotes, each escaped, and the two around).
    @Test func theWritersNoticesParseBackAndFit() {
        var nodes: [(id: String, generation: Int64, kick: Int64)] = []
        for i in 0..<2000 {
            let generation: Int64 = i % 3 == 0 ? Int64.max - Int64(i) : Int64(i)
            let kick: Int64 = i % 7 == 0 ? Int64.max : 0
            let hex = String(i, radix: 16)
            nodes.append((id: "n-" + String(repeating: "0", count: 12 - hex.count) + hex, generation: generation, kick: kick))
        }
        let configs: [(String, Bool)] = [
            (#"{"run":"stop"}"#, true), (String(repeating: "\"", count: 1499), true),
            (String(repeating: "\"", count: 1500), false), (String(repeating: "é", count: 1500), false),
            (#"{"run":"stop","note":"a/b"}"#, true),
        ]
        for (config, travels) in configs {
            let payloads = ConfigNotices.payloads(configJSON: config, nodes)
            let longest = payloads.map { $0.utf8.count }.max() ?? 0
            #expect(longest < 8000, "\(longest) bytes")
            #expect(payloads.count > 10 && payloads.count < 40, "\(payloads.count) payloads")
            // Read by the fast scanner, not left to the decoder.
            #expect(payloads.allSatisfy { NoticeScanner.scan($0) != nil })
            let notices = payloads.flatMap { ConfigChangeNotice.parse($0) ?? [] }
            #expect(notices.map { $0.nodeId } == nodes.map { $0.id })
            #expect(notices.map { $0.generation } == nodes.map { Optional($0.generation) })
            #expect(notices.map { $0.kickCounter } == nodes.map { $0.kick })
            #expect(notices.allSatisfy { $0.configJSON == (travels ? config : nil) && !$0.deleted })
        }
        #expect(ConfigNotices.payloads(configJSON: "{}", []).isEmpty)
    }

    /// On PostgreSQL an inserted config is announced per row (0002's form) and left out of the
    /// notification when it is longer than 7,000 bytes as a JSON string: 4,000 "é" are 4,000
    /// characters but 8,002 bytes (the INSERT failed with "payload string too long" when the
    /// limit counted characters), 3,499 are 7,000 bytes and travel with it.
    @Test func anInsertedConfigTooLongInBytesIsAnnouncedWithoutIt() async throws {
        guard TestStore.isPostgres else {
            try Test.cancel("notifications: runs on the PostgreSQL pass of make test (KSMFLEET_TEST_POSTGRES)")
        }
        let (db, dir) = try makeDatabase()
        defer {
            try? db.close()
            try? FileManager.default.removeItem(at: dir)
        }
        let recorder = try await NoticeRecorder(db)
        defer { recorder.stop() }
        let long = String(repeating: "é", count: 4000)
        let fits = String(repeating: "é", count: 3499)
        try await db.write { db in
            for (id, config) in [("n-00000000000a", long), ("n-00000000000b", fits)] {
                try db.execute(
                    sql: """
                        INSERT INTO nodes (id, name, machine_id, kernel, mem_total_bytes, numa_nodes, agent_version, registered_at)
                        VALUES (?, ?, ?, '6.8.0', 1, 1, 'test', 0)
                        """, arguments: [id, id, id])
                try db.execute(
                    sql: """
                        INSERT INTO node_configs (node_id, generation, kick_counter, config_json, updated_at, updated_by)
                        VALUES (?, 1, 0, ?, 0, 'test')
                        """, arguments: [id, config])
            }
        }
        try await recorder.sentinel(db)
        #expect(
            recorder.byNode == [
                "n-00000000000a": [ConfigChangeNotice(nodeId: "n-00000000000a", deleted: false, generation: 1, kickCounter: 0, configJSON: nil)],
                "n-00000000000b": [ConfigChangeNotice(nodeId: "n-00000000000b", deleted: false, generation: 1, kickCounter: 0, configJSON: fits)],
            ])
    }
}

/// Follows a store's config notifications (PostgreSQL) and keeps every notice, per node in the
/// order heard, and how many notifications brought them.
private final class NoticeRecorder: Sendable {
    private struct Heard {
        var byNode: [String: [ConfigChangeNotice]] = [:]
        var notifications = 0
        /// Notifications with no node in them (`sentinel`'s).
        var empty = 0
    }
    private final class Box: Sendable {
        let state = Mutex(Heard())
    }
    private let heard: Box
    private let follower: Task<Void, Never>

    /// Starts following; returns once listening (throws if it is not within 15 s).
    init(_ db: FleetDatabase) async throws {
        let heard = Box()
        self.heard = heard
        let listening = Mutex(false)
        follower = Task {
            await db.followConfigChanges(
                { notices in
                    heard.state.withLock { h in
                        h.notifications += 1
                        if notices.isEmpty { h.empty += 1 }
                        for n in notices { h.byNode[n.nodeId, default: []].append(n) }
                    }
                }, resync: { _ in listening.withLock { $0 = true } })
        }
        guard await waitUntil(timeout: .seconds(15), { listening.withLock { $0 } }) else {
            follower.cancel()
            throw RecorderError.neverListening
        }
    }

    enum RecorderError: Error { case neverListening, noSentinel }

    /// Commits a notification of no node and waits until it is heard: every notification
    /// committed before it has been heard then (PostgreSQL delivers them in commit order).
    func sentinel(_ db: FleetDatabase) async throws {
        let before = heard.state.withLock { $0.empty }
        try await db.write { db in
            try db.execute(sql: #"SELECT pg_notify('ksmfleet_config', '{"u" : []}')"#)
        }
        let heard = self.heard
        guard await waitUntil(timeout: .seconds(30), { heard.state.withLock { $0.empty } > before }) else {
            throw RecorderError.noSentinel
        }
    }

    var byNode: [String: [ConfigChangeNotice]] { heard.state.withLock { $0.byNode } }
    var notifications: Int { heard.state.withLock { $0.notifications } }
    func stop() { follower.cancel() }
}
