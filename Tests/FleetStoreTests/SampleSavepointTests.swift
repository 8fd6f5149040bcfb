import FleetAPI
@testable import FleetStore
import Foundation
import GRDB
import KSMCore
import Testing

/// A batch that fails after some of its rows were written leaves none of them behind, and the
/// batches committed with it in the same transaction are stored as if it had never come.
@Suite struct SampleSavepointTests {
    @Test func aBatchThatFailsHalfWrittenIsUndoneAloneInsideItsGroup() async throws {
        let (db, dir) = try makeSQLiteDatabase()
        defer { try? FileManager.default.removeItem(at: dir) }
        var ids: [String] = []
        for i in 0..<6 { ids.append(try await registerNode(db, machine: "sp-\(i)", nodeToken: "kn_sp\(i)").node.id) }
        let failing = ids[3]
        // On the writer's connection only (a trigger takes no bound parameters; node ids are
        // hex): the third row of the failing node's batch is refused,
        // after its first two rows went in (RAISE(ABORT) undoes that one statement, not the batch).
        try await db.pool.writeWithoutTransaction { conn in
            try conn.execute(
                sql: """
                    CREATE TEMP TRIGGER refuse_third AFTER INSERT ON main.samples
                    WHEN NEW.node_id = '\(failing)' AND NEW.seq = 3 BEGIN SELECT RAISE(ABORT, 'refused by the test'); END
                    """)
        }
        let results = await withTaskGroup(of: (String, Result<SampleBatchAck, any Error>).self) { group in
            for id in ids {
                group.addTask {
                    do { return (id, .success(try await db.insertSamples(nodeId: id, (1...4).map { sample($0) }))) } catch {
                        return (id, .failure(error))
                    }
                }
            }
            var all: [(String, Result<SampleBatchAck, any Error>)] = []
            for await r in group { all.append(r) }
            return all
        }
        for (id, result) in results {
            if id == failing {
                #expect(throws: (any Error).self) { try result.get() }
                #expect(try await db.sampleSeqs(nodeId: id).isEmpty, "the rows written before the failure are gone")
                #expect(try await db.node(idOrName: id)?.lastSeq == nil)
            } else {
                #expect(try result.get().stored == 4)
                #expect(try await db.sampleSeqs(nodeId: id) == [1, 2, 3, 4])
            }
        }
        // The savepoint's statements stay usable: the next batch of the same node goes in.
        try await db.pool.writeWithoutTransaction { conn in try conn.execute(sql: "DROP TRIGGER temp.refuse_third") }
        #expect(try await db.insertSamples(nodeId: failing, (1...4).map { sample($0) }).stored == 4)
        #expect(try await db.sampleSeqs(nodeId: failing) == [1, 2, 3, 4])
        try db.close()
    }
}
