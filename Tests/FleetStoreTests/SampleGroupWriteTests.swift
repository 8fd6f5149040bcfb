import FleetAPI
import Foundation
import KSMCore
import TestSupport
import Testing

@testable import FleetStore

/// PostgreSQL writes a group of sample batches in a few statements (`writeSampleGroup`): the
/// stored rows, the nodes' state and every batch's outcome must be what writing the batches one
/// after the other (`writeSampleBatch`, SQLite's path too) gives.
@Suite(.enabled(if: TestStore.isPostgres, "PostgreSQL's group write (only the PostgreSQL pass runs it)"))
struct SampleGroupWriteTests {
    typealias Outcome = Result<SampleBatchAck, any Error>

    /// Nodes m-0…m-3 with samples 1…3, and m-gone deleted.
    static func store() async throws -> (FleetDatabase, URL, [String: String]) {
        let (db, dir) = try makeDatabase()
        var ids: [String: String] = [:]
        for m in ["m-0", "m-1", "m-2", "m-3", "m-gone"] {
            let id = try await registerNode(db, machine: m, nodeToken: "kn_\(m)").node.id
            ids[m] = id
            if m != "m-gone" {
                _ = try await db.insertSamples(
                    nodeId: id, [sample(1), sample(2), sample(3)], receivedAt: Date(timeIntervalSince1970: 1_700_000_000))
            }
        }
        try await db.deleteNode(nodeId: ids["m-gone"]!, purgeHistory: false)
        return (db, dir, ids)
    }

    /// Random batches: overlapping seqs (replays and duplicates across batches), old batches
    /// replayed after newer ones, several batches of a node, the deleted node; and m-3 sends only
    /// an old batch again (its state must not go back to it).
    static func batches(seed: UInt64, ids: [String: String]) throws -> [PendingSampleBatch] {
        var rng = SeededRandom(seed: seed)
        let machines = ["m-0", "m-1", "m-2", "m-gone"]
        let replay = sample(2, sharing: 999, phase: .pruned, applied: 77)
        let old = PendingSampleBatch(nodeId: ids["m-3"]!, rows: [(replay, try StoredJSON.encode(replay))], receivedAt: 1_800_000_000_999)
        return try [old] + (0..<Int.random(in: 6...14, using: &rng)).map { i in
            let m = machines[Int.random(in: 0..<machines.count, using: &rng)]
            let first = Int64.random(in: 1...12, using: &rng)
            let rows = try (first..<first + Int64.random(in: 1...4, using: &rng)).map { seq in
                var s = sample(
                    seq, sharing: Int64.random(in: 0...1000, using: &rng),
                    phase: [KSMPhase.running, .stopped, .pruned][Int.random(in: 0..<3, using: &rng)],
                    applied: Bool.random(using: &rng) ? Int64(i) : nil)
                if Int.random(in: 0..<4, using: &rng) == 0 { s.applyError = "cannot write run (batch \(i))" }
                return (s, try StoredJSON.encode(s))
            }
            return PendingSampleBatch(nodeId: ids[m]!, rows: rows, receivedAt: 1_800_000_000_000 + Int64(i))
        }
    }

    /// Samples (every column the writers insert but the node id) and node state by machine id.
    static func state(_ db: FleetDatabase) async throws -> [[SQLValue]] {
        let columns = SampleSQL.insertColumns.split(separator: ",").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
            .filter { $0 != "node_id" }.map { "s.\($0)" }.joined(separator: ", ")
        return try await db.read { db in
            try StoreRow.fetchAll(
                db,
                sql: """
                    SELECT n.machine_id, \(columns)
                    FROM samples s JOIN nodes n ON n.id = s.node_id ORDER BY n.machine_id, s.seq
                    """
            ).map(\.values)
                + StoreRow.fetchAll(
                    db,
                    sql: """
                        SELECT machine_id, last_seq, last_seen_at, phase, phase_reason, applied_generation,
                          apply_error, last_sample_json, page_size
                        FROM nodes WHERE deleted_at IS NULL ORDER BY machine_id
                        """
                ).map(\.values)
        }
    }

    static func describe(_ results: [Outcome]) -> [String] {
        results.map { r in
            switch r {
            case .success(let a): return "stored \(a.stored) duplicates \(a.duplicates)"
            case .failure(let e): return "\(e)"
            }
        }
    }

    @Test(arguments: [UInt64(1), 2, 3, 4, 5, 6]) func aGroupWritesWhatItsBatchesWriteOneByOne(seed: UInt64) async throws {
        let (group, groupDir, groupIds) = try await Self.store()
        let (single, singleDir, singleIds) = try await Self.store()
        defer {
            try? FileManager.default.removeItem(at: groupDir)
            try? FileManager.default.removeItem(at: singleDir)
        }
        let groupBatches = try Self.batches(seed: seed, ids: groupIds)
        let singleBatches = try Self.batches(seed: seed, ids: singleIds)
        let together: [Outcome]? = try await group.write { db in try FleetDatabase.writeSampleGroup(db, groupBatches) }
        let oneByOne: [Outcome] = try await single.write { db in
            singleBatches.map { b in
                Result { try SampleGroupCommit.inSavepoint(db) { try FleetDatabase.writeSampleBatch(db, b) } }
            }
        }
        let results = try #require(together, "the group was written at once")
        #expect(Self.describe(results).map { $0.replacingOccurrences(of: groupIds["m-gone"]!, with: "gone") }
            == Self.describe(oneByOne).map { $0.replacingOccurrences(of: singleIds["m-gone"]!, with: "gone") })
        let got = try await Self.state(group)
        let expected = try await Self.state(single)
        #expect(got == expected, "seed \(seed): \(zip(got, expected).filter { $0.0 != $0.1 }.prefix(3))")
        // A batch's ack: its node's highest seq after the group (batch by batch: after that batch).
        for (b, (r, alone)) in zip(results, oneByOne).enumerated() {
            guard case .success(let ack) = r, case .success(let one) = alone else { continue }
            let node = try #require(try await group.node(idOrName: groupBatches[b].nodeId))
            #expect(ack.highestSeq == node.lastSeq && ack.highestSeq >= one.highestSeq)
        }
    }

    /// A row PostgreSQL refuses (a NUL in a text) fails the group's statement: nothing of the
    /// group is kept, the batches are written one by one, and only that batch fails.
    @Test func aGroupThatCannotBeWrittenAtOnceIsWrittenBatchByBatch() async throws {
        let (db, dir, ids) = try await Self.store()
        defer { try? FileManager.default.removeItem(at: dir) }
        var bad = sample(10)
        bad.phaseReason = "nul \u{0} here"
        let batches = [
            PendingSampleBatch(nodeId: ids["m-0"]!, rows: [(sample(4), "{}")], receivedAt: 1),
            PendingSampleBatch(nodeId: ids["m-1"]!, rows: [(bad, "{}")], receivedAt: 2),
            PendingSampleBatch(nodeId: ids["m-2"]!, rows: [(sample(4), "{}")], receivedAt: 3),
        ]
        let together = try await db.write { db in try FleetDatabase.writeSampleGroup(db, batches) }
        #expect(together == nil)
        #expect(try await db.sampleSeqs(nodeId: ids["m-0"]!) == [1, 2, 3], "nothing of the group kept")
        // What the group commit then does.
        let results = await withTaskGroup(of: Outcome.self) { tasks in
            for b in batches {
                tasks.addTask {
                    do { return .success(try await db.insertSamples(nodeId: b.nodeId, b.rows.map(\.0))) } catch {
                        return .failure(error)
                    }
                }
            }
            var all: [Outcome] = []
            for await r in tasks { all.append(r) }
            return all
        }
        #expect(results.filter { if case .failure = $0 { return true } else { return false } }.count == 1)
        #expect(try await db.sampleSeqs(nodeId: ids["m-0"]!) == [1, 2, 3, 4])
        #expect(try await db.sampleSeqs(nodeId: ids["m-1"]!) == [1, 2, 3])
        #expect(try await db.sampleSeqs(nodeId: ids["m-2"]!) == [1, 2, 3, 4])
    }
}
