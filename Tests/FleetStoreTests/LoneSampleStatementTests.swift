import FleetAPI
import Foundation
import KSMCore
import TestSupport
import Testing

@testable import FleetStore

/// PostgreSQL writes an agent's normal push, a batch alone, in one statement outside a
/// transaction block (`writeLoneSampleBatch` through `PostgresEngine.writeStatementSync`): the
/// stored rows, the node's state and the acknowledgement must be what `writeSampleBatch` in a
/// transaction gives, and a push racing a change of its node must not slip past it.
@Suite(.enabled(if: TestStore.isPostgres, "PostgreSQL's one-statement push (only the PostgreSQL pass runs it)"))
struct LoneSampleStatementTests {
    typealias Outcome = Result<SampleBatchAck, any Error>

    static func engine(_ db: FleetDatabase) throws -> PostgresEngine {
        guard case .postgres(let engine) = db.backend else { try Test.cancel("not PostgreSQL") }
        return engine
    }

    /// Writes `batch` alone in one statement, on one of the engine's threads.
    static func writeAlone(_ db: FleetDatabase, _ batch: PendingSampleBatch) async throws -> Outcome {
        let engine = try engine(db)
        return await engine.onThread {
            Result { try engine.writeStatementSync(due: nil) { sdb in try FleetDatabase.writeLoneSampleBatch(sdb, batch) } }
        }
    }

    @Test(arguments: [UInt64(1), 2, 3, 4, 5, 6, 7, 8])
    func aBatchAloneWritesWhatItsTransactionWrites(seed: UInt64) async throws {
        let (alone, aloneDir, aloneIds) = try await SampleGroupWriteTests.store()
        let (inTransaction, transactionDir, transactionIds) = try await SampleGroupWriteTests.store()
        defer {
            try? FileManager.default.removeItem(at: aloneDir)
            try? FileManager.default.removeItem(at: transactionDir)
        }
        var batches = try SampleGroupWriteTests.batches(seed: seed, ids: aloneIds)
        var reference = try SampleGroupWriteTests.batches(seed: seed, ids: transactionIds)
        // A batch that holds one seq twice, and one of the most rows the statement takes.
        let twice = [sample(20, sharing: 1, phase: .stopped), sample(20, sharing: 2, phase: .pruned), sample(19)]
        let long = (30..<30 + Int64(FleetDatabase.loneStatementRows)).map { sample($0, sharing: $0) }
        for (m, rows) in [("m-1", twice), ("m-2", long)] {
            let encoded = try rows.map { ($0, try StoredJSON.encode($0)) }
            batches.append(PendingSampleBatch(nodeId: aloneIds[m]!, rows: encoded, receivedAt: 1_900_000_000_000))
            reference.append(PendingSampleBatch(nodeId: transactionIds[m]!, rows: encoded, receivedAt: 1_900_000_000_000))
        }
        #expect(batches.allSatisfy(FleetDatabase.writesInOneStatement))
        for (batch, other) in zip(batches, reference) {
            let got = try await Self.writeAlone(alone, batch)
            let expected: Outcome = try await inTransaction.write { sdb in
                Result { try FleetDatabase.writeSampleBatch(sdb, other) }
            }
            let describe = { (r: Outcome, ids: [String: String]) -> String in
                let highest = (try? r.get()).map { " highest \($0.highestSeq)" } ?? ""
                return SampleGroupWriteTests.describe([r])[0].replacingOccurrences(of: ids["m-gone"]!, with: "gone") + highest
            }
            #expect(describe(got, aloneIds) == describe(expected, transactionIds), "seed \(seed)")
        }
        let got = try await SampleGroupWriteTests.state(alone)
        let expected = try await SampleGroupWriteTests.state(inTransaction)
        #expect(got == expected, "seed \(seed): \(zip(got, expected).filter { $0.0 != $0.1 }.prefix(3))")
    }

    /// An agent's normal push, one sample, must be written by the one statement, and run it
    /// prepared (planned once per connection):
    /// unnamed, PostgreSQL planned the statement on every push, which cost it more than the five
    /// statements the one replaces (docs/benchmarks.md, "A push in one statement").
    @Test func aOneSamplePushRunsPrepared() async throws {
        let (db, dir) = try makeDatabase()
        defer { try? FileManager.default.removeItem(at: dir) }
        let engine = try Self.engine(db)
        guard engine.prepared.threshold > 0 else { try Test.cancel("prepared statements are off (KSMFLEET_POSTGRES_PREPARE_AFTER=0)") }
        let node = try await registerNode(db).node.id
        // Through the store's own push path (the group commit hands a lone batch to the statement).
        for seq in 1...Int64(engine.prepared.threshold + 1) {
            #expect(try await db.insertSamples(nodeId: node, [sample(seq)]).stored == 1)
        }
        let prepared = await engine.onThread {
            Result { try engine.writeStatementSync(due: nil) { sdb in try PreparedStatementTests.preparedHere(sdb) } }
        }
        let names = try prepared.get()
        #expect(names.contains { $0.contains("WITH node AS") }, "\(names)")
    }

    @Test func theStatementRunsAtRepeatableReadAndAlone() async throws {
        let (db, dir) = try makeDatabase()
        defer { try? FileManager.default.removeItem(at: dir) }
        let engine = try Self.engine(db)
        let sql = "SELECT current_setting('transaction_isolation')"
        let level = await engine.onThread { Result { try engine.writeStatementSync(due: nil) { sdb in try String.fetchOne(sdb, sql: sql) } } }
        #expect(try level.get() == "repeatable read")
        let node = try await registerNode(db).node.id
        let second = await engine.onThread {
            Result {
                try engine.writeStatementSync(due: nil) { sdb in
                    try sdb.execute(sql: "UPDATE nodes SET name = 'renamed' WHERE id = ?", arguments: [node])
                    try sdb.execute(sql: "UPDATE nodes SET name = 'twice' WHERE id = ?", arguments: [node])
                }
            }
        }
        #expect(throws: PostgresError.self) { try second.get() }
        // The first statement was its own transaction; the second never ran.
        #expect(try await db.node(idOrName: node)?.name == "renamed")
        // A push through the store still works on the same connection.
        #expect(try await db.insertSamples(nodeId: node, [sample(1)]).stored == 1)
    }

    /// Another replica deletes the node while the push waits for the node's row: the push must
    /// fail as for a deleted node and store nothing (at READ COMMITTED the statement's UPDATE
    /// would go ahead on the deleted row, after its INSERT had stored the sample).
    @Test func aPushRacingTheNodesDeletionStoresNothing() async throws {
        let (db, dir) = try makeDatabase()
        defer { try? FileManager.default.removeItem(at: dir) }
        let other = try FleetDatabase.open(try TestStore.location(for: dir))
        defer { try? other.close() }
        let node = try await registerNode(db).node.id
        #expect(try await db.insertSamples(nodeId: node, [sample(1)]).stored == 1)
        let held = Counter()
        let deleting = Task {
            try await other.write { sdb in
                try sdb.execute(sql: "UPDATE nodes SET deleted_at = 1 WHERE id = ?", arguments: [node])
                _ = held.next()
                _ = try String.fetchOne(sdb, sql: "SELECT pg_sleep(2)::text")
            }
        }
        // The push starts once the deletion holds the node's row (its UPDATE ran, uncommitted).
        for _ in 0..<1000 where held.value == 0 { try await Task.sleep(for: .milliseconds(10)) }
        #expect(held.value == 1)
        let batch = PendingSampleBatch(nodeId: node, rows: [(sample(2), try StoredJSON.encode(sample(2)))], receivedAt: 1)
        let pushed = try await Self.writeAlone(db, batch)
        try await deleting.value
        #expect(throws: StoreError.self) { try pushed.get() }
        #expect(try await db.sampleSeqs(nodeId: node) == [1])
    }
}
