import FleetAPI
import GRDB
import Synchronization

/// One agent's batch, waiting for the writer.
struct PendingSampleBatch: Sendable {
    let nodeId: String
    /// Each sample with the JSON stored for it.
    let rows: [(StatusSample, String)]
    /// Unix milliseconds.
    let receivedAt: Int64
}

/// Group commit for sample batches. An agent normally pushes one sample at a time, so the cost of
/// ingest is per transaction (the hop to the writer, BEGIN, COMMIT and its WAL write), not per
/// row. Batches that arrive while a commit is under way queue here; the next transaction takes
/// them all (up to `maxSamplesPerCommit`), each inside its own savepoint, and every waiting
/// request is answered only after that commit: the acknowledgement means the same as before.
final class SampleGroupCommit: Sendable {
    private struct Waiting: Sendable {
        let batch: PendingSampleBatch
        let continuation: CheckedContinuation<SampleBatchAck, any Error>
    }
    private struct State {
        var queue: [Waiting] = []
        var draining = false
    }

    /// Upper bound of samples in one transaction (a full 1,000-sample batch always goes alone
    /// or with small ones), so that one commit never holds the writer for long.
    static let maxSamplesPerCommit = 5_000

    private let state = Mutex(State())
    private let pool: DatabasePool
    private let write: @Sendable (Database, PendingSampleBatch) throws -> SampleBatchAck

    init(pool: DatabasePool, write: @escaping @Sendable (Database, PendingSampleBatch) throws -> SampleBatchAck) {
        self.pool = pool
        self.write = write
    }

    /// Queues the batch and waits for the commit that includes it.
    func submit(_ batch: PendingSampleBatch) async throws -> SampleBatchAck {
        try await withCheckedThrowingContinuation { continuation in
            let startDrain = state.withLock { s -> Bool in
                s.queue.append(Waiting(batch: batch, continuation: continuation))
                if s.draining { return false }
                s.draining = true
                return true
            }
            if startDrain { Task { await self.drain() } }
        }
    }

    /// Commits queued batches, a group per transaction, until the queue is empty.
    private func drain() async {
        while true {
            let group = state.withLock { s -> [Waiting] in
                guard !s.queue.isEmpty else {
                    s.draining = false
                    return []
                }
                var count = 0
                var samples = 0
                for w in s.queue {
                    if count > 0 && samples + w.batch.rows.count > Self.maxSamplesPerCommit { break }
                    samples += w.batch.rows.count
                    count += 1
                }
                let group = Array(s.queue.prefix(count))
                s.queue.removeFirst(count)
                return group
            }
            if group.isEmpty { return }
            let results: [Result<SampleBatchAck, any Error>]
            do {
                let write = self.write
                let batches = group.map(\.batch)
                results = try await pool.write { db in
                    try batches.map { batch in
                        var result: Result<SampleBatchAck, any Error> = .failure(CancellationError())
                        do {
                            try db.inSavepoint {
                                result = .success(try write(db, batch))
                                return .commit
                            }
                        } catch {
                            // Some SQLite failures (disk full, I/O error) roll back the whole
                            // transaction, the batches before this one included: then none of
                            // the group is stored and all of it must fail.
                            guard db.isInsideTransaction else { throw error }
                            result = .failure(error)
                        }
                        return result
                    }
                }
            } catch {
                results = Array(repeating: .failure(error), count: group.count)
            }
            for (w, result) in zip(group, results) { w.continuation.resume(with: result) }
        }
    }
}
