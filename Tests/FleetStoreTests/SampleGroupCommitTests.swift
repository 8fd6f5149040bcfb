import FleetAPI
import FleetStore
import Foundation
import KSMCore
import TestSupport
import Testing

/// Batches pushed at the same time share commits (SampleGroupCommit); each must still be
/// answered for itself: stored once, or refused alone when its node is gone.
@Suite struct SampleGroupCommitTests {
    @Test func concurrentBatchesAreEachStoredOnceAndAFailingOneCostsTheOthersNothing() async throws {
        let (db, dir) = try makeDatabase()
        defer { try? FileManager.default.removeItem(at: dir) }
        var ids: [String] = []
        for i in 0..<8 { ids.append(try await registerNode(db, machine: "m-\(i)", nodeToken: "kn_\(i)").node.id) }
        let gone = try await registerNode(db, machine: "m-gone", nodeToken: "kn_gone").node.id
        try await db.deleteNode(nodeId: gone, purgeHistory: false)

        // 8 nodes × 10 batches of 5 samples, plus 10 batches for the deleted node, all at once;
        // every node's batches also overlap by one sample, so each batch has one duplicate
        // except the first to land.
        let results = await withTaskGroup(of: (String, Int, Result<SampleBatchAck, any Error>).self) { group in
            for id in ids + [gone] {
                for b in 0..<10 {
                    group.addTask {
                        let first = Int64(b * 4 + 1)
                        let batch = (first..<first + 5).map { sample($0) }
                        do { return (id, b, .success(try await db.insertSamples(nodeId: id, batch))) } catch {
                            return (id, b, .failure(error))
                        }
                    }
                }
            }
            var all: [(String, Int, Result<SampleBatchAck, any Error>)] = []
            for await r in group { all.append(r) }
            return all
        }
        #expect(results.count == 90)
        for (id, b, result) in results where id == gone {
            #expect(throws: StoreError.nodeNotFound(gone), "batch \(b) of the deleted node") { try result.get() }
        }
        for id in ids {
            let acks = try results.filter { $0.0 == id }.map { try $0.2.get() }
            #expect(acks.count == 10)
            #expect(acks.reduce(0) { $0 + $1.stored } == 41, "seq 1...41, each stored once")
            #expect(acks.reduce(0) { $0 + $1.duplicates } == 9)
            #expect(acks.allSatisfy { $0.highestSeq >= 5 && $0.highestSeq <= 41 })
            #expect(try await db.sampleSeqs(nodeId: id) == Array(1...41))
            #expect(try await db.node(idOrName: id)?.lastSeq == 41)
        }
        #expect(try await db.sampleSeqs(nodeId: gone).isEmpty)
    }

    /// A batch alone in its transaction (no savepoint then): its failure rolls back the
    /// transaction, fails that batch, and the next commit works as before.
    @Test func aBatchAloneFailsAloneAndTheWriterGoesOn() async throws {
        let (db, dir) = try makeDatabase()
        defer { try? FileManager.default.removeItem(at: dir) }
        let live = try await registerNode(db, machine: "m-live", nodeToken: "kn_live").node.id
        let gone = try await registerNode(db, machine: "m-gone", nodeToken: "kn_gone").node.id
        try await db.deleteNode(nodeId: gone, purgeHistory: false)
        await #expect(throws: StoreError.nodeNotFound(gone)) { try await db.insertSamples(nodeId: gone, [sample(1)]) }
        let ack = try await db.insertSamples(nodeId: live, [sample(1), sample(2)])
        #expect(ack.stored == 2 && ack.highestSeq == 2)
        let again = try await db.insertSamples(nodeId: live, [sample(2)])
        #expect(again.stored == 0 && again.duplicates == 1 && again.highestSeq == 2)
        #expect(try await db.sampleSeqs(nodeId: live) == [1, 2])
        // A larger batch alone (an agent's backlog; on PostgreSQL written the group writer's way):
        // the same acks, a row sent twice counted once.
        await #expect(throws: StoreError.nodeNotFound(gone)) {
            try await db.insertSamples(nodeId: gone, [sample(1), sample(2), sample(3)])
        }
        let backlog = try await db.insertSamples(nodeId: live, [sample(2), sample(3), sample(5), sample(3), sample(4)])
        #expect(backlog.stored == 3 && backlog.duplicates == 2 && backlog.highestSeq == 5)
        #expect(try await db.node(idOrName: live)?.lastSeq == 5)
        #expect(try await db.sampleSeqs(nodeId: live) == [1, 2, 3, 4, 5])
        #expect(try await db.sampleSeqs(nodeId: gone).isEmpty)
    }

    /// WALCheckpointer copies the WAL into the database file while samples stream in: the
    /// file grows although the WAL never reaches the writer's own checkpoint threshold
    /// (4,096 pages, 16 MiB), so nothing else copied those pages.
    @Test func theWALIsCopiedIntoTheDatabaseWhileSamplesStreamIn() async throws {
        let (db, dir) = try makeSQLiteDatabase()
        defer { try? FileManager.default.removeItem(at: dir) }
        let id = try await registerNode(db).node.id
        let main = dir.appending(path: "ksmfleet.sqlite").path
        func size(_ path: String) -> Int {
            (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
        }
        let before = size(main)
        // 100 batches of 40 samples with ~1 kB of JSON each: about 4 MB of rows.
        let padding = String(repeating: "x", count: 900)
        var seq: Int64 = 1
        for _ in 0..<100 {
            let batch = (seq..<seq + 40).map { sample($0) }
            let json = batch.map { #"{"seq":\#($0.seq),"pad":"\#(padding)"}"# }
            _ = try await db.insertSamples(nodeId: id, batch, json: json)
            seq += 40
        }
        #expect(size(dir.appending(path: "ksmfleet.sqlite-wal").path) < 16 << 20, "below the writer's threshold")
        let copied = await waitUntil(timeout: .seconds(5)) { size(main) > before + (2 << 20) }
        #expect(copied, "the database file stayed at \(size(main)) bytes (\(before) before)")
        try db.close()
    }
}
