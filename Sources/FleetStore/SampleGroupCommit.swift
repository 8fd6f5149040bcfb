import FleetAPI
import Foundation

/// One agent's batch, waiting for the writer.
struct PendingSampleBatch: Sendable {
    let nodeId: String
    /// Each sample with the JSON stored for it.
    let rows: [(StatusSample, String)]
    /// Unix milliseconds.
    let receivedAt: Int64
}

/// Group commit for sample batches. An agent normally pushes one sample at a time, so the cost of
/// ingest is per transaction (BEGIN, COMMIT and its WAL write), not per row. Batches that arrive
/// while a commit is under way queue here; the next transaction takes them all (up to
/// `maxSamplesPerCommit`), each inside its own savepoint, and every waiting request is answered
/// only after that commit: the acknowledgement means the same as before.
///
/// The commits run on a thread of their own, started when batches arrive and ended after a
/// second without any: on the cooperative pool the next commit waited behind every request
/// being decoded, and the writer sat idle while requests queued.
///
/// Where requests have a deadline (PostgreSQL), a batch's is taken when it is queued, and the
/// wait for its group counts: a group's transaction has the earliest deadline of its batches
/// (at least `leastGroupTime` from its start), and a batch still queued at its deadline fails
/// then, without being written: the engine's deadline checks (`QueueWatch`, four times a
/// second) answer it while the group ahead of it is still under way, and the next group
/// leaves it out. (Until the watch, a batch whose client stated a shorter timeout than its
/// neighbours' waited for the running group to end, up to that group's whole limit. Before,
/// a group took a whole limit from the moment it started: where PostgreSQL took connections but
/// did not finish writes (a lock held, a stalled disk), a push queued behind a group that was
/// cut waited for two limits, twice the minute, long after its agent had given up at 30 s, and
/// with more pushes a minute than a group takes (`maxSamplesPerCommit`) the queue kept
/// growing. A database answering nothing at all fails the next group's new connection within
/// the connect timeout.)
final class SampleGroupCommit: @unchecked Sendable {
    private struct Waiting {
        let batch: PendingSampleBatch
        /// The request's deadline, from when it was queued; nil for none (SQLite).
        let due: PostgresEngine.Due?
        /// Its watch (`QueueWatch.start`), which fails it at its deadline while it is queued.
        let watch: Int?
        let continuation: CheckedContinuation<SampleBatchAck, any Error>
    }

    /// Watches queued batches for their deadlines (PostgreSQL: `PostgresEngine.Deadlines`, the
    /// checks that fail work waiting for an engine thread): `start` registers a batch and how to
    /// fail it, and returns its id; `end` takes it out of the watch when its group takes it,
    /// false when its deadline failed it already (it is then not written).
    struct QueueWatch: Sendable {
        let start: @Sendable (PostgresEngine.Due, @escaping @Sendable (PostgresError) -> Void) -> Int
        let end: @Sendable (Int) -> Bool
    }
    /// A group to commit, and the earliest deadline of its batches.
    private struct Group {
        let batches: [Waiting]
        let due: PostgresEngine.Due?
    }

    /// Upper bound of samples in one transaction (at most five full 1,000-sample batches), so
    /// that one commit never holds the writer for long; a group always takes at least one batch.
    static let maxSamplesPerCommit = 5_000
    /// A lone batch of at most this many rows is written row by row even where a group writer
    /// exists: on PostgreSQL that is 2 + rows round trips against the group writer's 5.
    static let rowsWrittenOneByOne = 2
    /// The commit thread ends after this long without work.
    static let idleSeconds = 1.0
    /// The least time a group's transaction is given, whatever its earliest deadline leaves.
    static let leastGroupTime = Duration.milliseconds(250)

    /// One results array per group.
    typealias GroupResults = [Result<SampleBatchAck, any Error>]
    /// Runs a group's closure in one write transaction of the engine (blocking), by the deadline.
    private let transaction:
        @Sendable (_ due: PostgresEngine.Due?, _ body: (StoreDB) throws -> GroupResults) throws -> GroupResults
    /// The calling request's deadline from now (`PostgresEngine.dueForCaller`); nil for none.
    private let dueForCaller: @Sendable () -> PostgresEngine.Due?
    /// Called every `commitsPerCheckpoint` commits (SQLite: a WAL checkpoint request).
    private let afterCommits: @Sendable () -> Void
    /// Commits between checkpoint requests.
    static let commitsPerCheckpoint = 16
    private var commitsSinceCheckpoint = 0  // the commit thread's own
    private let write: @Sendable (StoreDB, PendingSampleBatch) throws -> SampleBatchAck
    /// A whole group in a few statements (PostgreSQL, where every statement is a round trip):
    /// nil when it did not apply, and the group is then written batch by batch.
    private let writeGroup: (@Sendable (StoreDB, [PendingSampleBatch]) throws -> GroupResults?)?
    /// A batch alone, in a single statement outside `transaction` (PostgreSQL, where BEGIN and
    /// COMMIT are round trips of their own): nil when it does not take this batch, which is then
    /// written in a transaction.
    private let writeAlone: (@Sendable (PendingSampleBatch, PostgresEngine.Due?) throws -> SampleBatchAck?)?
    private let queueWatch: QueueWatch?
    // Guarded by `condition`.
    private let condition = NSCondition()
    private var queue: [Waiting] = []
    private var threadRunning = false

    init(
        transaction: @escaping @Sendable (
            _ due: PostgresEngine.Due?, _ body: (StoreDB) throws -> GroupResults
        ) throws -> GroupResults,
        dueForCaller: @escaping @Sendable () -> PostgresEngine.Due? = { nil },
        afterCommits: @escaping @Sendable () -> Void,
        write: @escaping @Sendable (StoreDB, PendingSampleBatch) throws -> SampleBatchAck,
        writeGroup: (@Sendable (StoreDB, [PendingSampleBatch]) throws -> GroupResults?)? = nil,
        writeAlone: (@Sendable (PendingSampleBatch, PostgresEngine.Due?) throws -> SampleBatchAck?)? = nil,
        queueWatch: QueueWatch? = nil
    ) {
        self.transaction = transaction
        self.dueForCaller = dueForCaller
        self.afterCommits = afterCommits
        self.write = write
        self.writeGroup = writeGroup
        self.writeAlone = writeAlone
        self.queueWatch = queueWatch
    }

    /// Queues the batch and waits for the commit that includes it.
    func submit(_ batch: PendingSampleBatch) async throws -> SampleBatchAck {
        // Taken here, in the request's task: its limit (`DatabaseWork`) and its start.
        let due = dueForCaller()
        let queueWatch = self.queueWatch
        return try await withCheckedThrowingContinuation { continuation in
            let watch = due.flatMap { due in queueWatch?.start(due) { continuation.resume(throwing: $0) } }
            condition.lock()
            queue.append(Waiting(batch: batch, due: due, watch: watch, continuation: continuation))
            let start = !threadRunning
            threadRunning = true
            condition.signal()
            condition.unlock()
            if start { startNamedThread("sample-commit") { self.commitLoop() } }
        }
    }

    /// Commits queued batches, a group per transaction; returns after `idleSeconds` without any.
    private func commitLoop() {
        while let next = nextGroup() {
            let group = next.batches
            if group.isEmpty { continue }  // only overdue batches, answered already
            let results: GroupResults
            do {
                if group.count == 1, let writeAlone, let ack = try writeAlone(group[0].batch, next.due) {
                    results = [.success(ack)]
                } else {
                    results = try inTransaction(group, due: next.due)
                }
            } catch {
                results = Array(repeating: .failure(error), count: group.count)
            }
            for (w, result) in zip(group, results) { w.continuation.resume(with: result) }
            commitsSinceCheckpoint += 1
            if commitsSinceCheckpoint >= Self.commitsPerCheckpoint {
                commitsSinceCheckpoint = 0
                afterCommits()
            }
        }
    }

    /// Writes a group in one transaction.
    private func inTransaction(_ group: [Waiting], due: PostgresEngine.Due?) throws -> GroupResults {
        let write = self.write
        let writeGroup = self.writeGroup
        return try transaction(due) { db in
            // One small batch (an agent's normal push on a quiet server): the transaction
            // is its savepoint, a failure rolls it back and fails the batch alone — two
            // statements fewer (on PostgreSQL two round trips) on the common path. A
            // larger one (an agent's backlog after an outage) goes the group's way where
            // there is one: a statement per row was a round trip per row on PostgreSQL.
            if group.count == 1, writeGroup == nil || group[0].batch.rows.count <= Self.rowsWrittenOneByOne {
                return [.success(try write(db, group[0].batch))]
            }
            if let writeGroup, let results = try writeGroup(db, group.map(\.batch)) { return results }
            return try group.map { w in
                do {
                    return .success(try Self.inSavepoint(db) { try write(db, w.batch) })
                } catch {
                    // Some SQLite failures (disk full, I/O error) roll back the whole
                    // transaction, the batches before this one included: then none of
                    // the group is stored and all of it must fail. So must it when the
                    // failed batch could not be undone on its own. (On PostgreSQL a
                    // serialization failure or deadlock ends the transaction too; the
                    // engine then runs the whole group again.)
                    guard db.isInsideTransaction, !(error is SavepointRollbackFailed) else { throw error }
                    return .failure(error)
                }
            }
        }
    }

    /// Runs `body` in a savepoint of the current transaction: released when it returns, rolled
    /// back (and released) when it throws. What GRDB's `inSavepoint` does, with the SAVEPOINT and
    /// RELEASE statements prepared once: `inSavepoint` parses them anew on every call, two
    /// statement compilations per batch, and an agent's normal batch is one sample.
    static func inSavepoint<T>(_ db: StoreDB, _ body: () throws -> T) throws -> T {
        try db.cachedStatement(sql: "SAVEPOINT sample_batch").execute()
        let value: T
        do {
            value = try body()
        } catch {
            // After an error that ended the whole transaction there is no savepoint to undo.
            guard db.isInsideTransaction else { throw error }
            do {
                try db.cachedStatement(sql: "ROLLBACK TO SAVEPOINT sample_batch").execute()
                try db.cachedStatement(sql: "RELEASE SAVEPOINT sample_batch").execute()
            } catch let undo {
                throw SavepointRollbackFailed(batchError: error, rollbackError: undo)
            }
            throw error
        }
        try db.cachedStatement(sql: "RELEASE SAVEPOINT sample_batch").execute()
        return value
    }

    /// A failed batch's writes could not be rolled back on their own: the whole group fails.
    struct SavepointRollbackFailed: Error {
        let batchError: any Error
        let rollbackError: any Error
    }

    /// The next group to commit, waiting for one; nil (and the thread ends) after
    /// `idleSeconds` without work. Batches the watch failed at their deadline are left out, and
    /// those past it that it has not failed yet fail here, unwritten (an empty group when they
    /// were all there was).
    private func nextGroup() -> Group? {
        var overdue: [Waiting] = []
        defer {
            for w in overdue {
                guard let due = w.due else { continue }
                w.continuation.resume(throwing: PostgresError.noAnswer(within: due.limit, queued: true))
            }
        }
        condition.lock()
        defer { condition.unlock() }
        while queue.isEmpty {
            if !condition.wait(until: Date(timeIntervalSinceNow: Self.idleSeconds)) && queue.isEmpty {
                threadRunning = false
                return nil
            }
        }
        let now = ContinuousClock.now
        var group: [Waiting] = []
        var samples = 0
        var taken = 0
        for w in queue {
            if !group.isEmpty && samples + w.batch.rows.count > Self.maxSamplesPerCommit { break }
            taken += 1
            // Answered by the watch at its deadline already: nothing to write or answer.
            if let watch = w.watch, let queueWatch, !queueWatch.end(watch) { continue }
            // Answered now (the defer), not when the next batch comes or the thread ends.
            if let due = w.due, due.at <= now {
                overdue.append(w)
                continue
            }
            samples += w.batch.rows.count
            group.append(w)
        }
        queue.removeFirst(taken)
        // The earliest deadline of its batches, but some time for the group: a batch with
        // milliseconds left (it waited out a stall in the queue) would otherwise fail the whole
        // group on a database that just came back. It may be answered up to that much past its
        // own, about what the deadline checks' own interval allows.
        let due = group.compactMap(\.due).min { $0.at < $1.at }.map { earliest in
            PostgresEngine.Due(at: max(earliest.at, now + Self.leastGroupTime), limit: earliest.limit)
        }
        return Group(batches: group, due: due)
    }
}
