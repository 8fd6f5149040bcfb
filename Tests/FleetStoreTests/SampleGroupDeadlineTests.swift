import FleetAPI
import Foundation
import Synchronization
import TestSupport
import Testing

@testable import FleetStore

/// The group commit's deadlines without a database: a stand-in transaction that holds a group
/// as long as the test wants (a database that took the writes and does not finish them), and
/// deadlines the test picks per batch. (The same on PostgreSQL:
/// `QueuedDeadlineTests.sampleBatchesQueuedBehindAStuckGroup`.)
@Suite struct SampleGroupDeadlineTests {
    /// The transaction stand-in: the first group waits until `release`, then fails; later
    /// groups succeed at once. Records each group's deadline.
    final class StuckWriter: Sendable {
        private let released = Mutex(false)
        let dues = Mutex<[PostgresEngine.Due?]>([])
        /// The limit `dueForCaller` gives the next batch submitted.
        let nextLimit = Mutex<Duration>(.seconds(10))

        func release() { released.withLock { $0 = true } }

        func transaction(
            _ due: PostgresEngine.Due?, _ body: (StoreDB) throws -> SampleGroupCommit.GroupResults
        ) throws -> SampleGroupCommit.GroupResults {
            let first = dues.withLock { d in
                d.append(due)
                return d.count == 1
            }
            if first {
                while !released.withLock({ $0 }) { Thread.sleep(forTimeInterval: 0.01) }
                throw PostgresError.noAnswer(within: due?.limit ?? .zero)
            }
            throw Stored()
        }

        func commit(watch: SampleGroupCommit.QueueWatch? = nil) -> SampleGroupCommit {
            SampleGroupCommit(
                transaction: { due, body in try self.transaction(due, body) },
                dueForCaller: { PostgresEngine.Due.after(self.nextLimit.withLock { $0 }) },
                afterCommits: {}, write: { _, _ in SampleBatchAck(highestSeq: 1, stored: 1, duplicates: 0) },
                queueWatch: watch)
        }
    }

    /// What a later group "committed": the body is never run (there is no database).
    struct Stored: Error {}

    static func batch(_ node: String) -> PendingSampleBatch {
        PendingSampleBatch(nodeId: node, rows: [(sample(1), "{}")], receivedAt: 0)
    }

    static func submit(_ commit: SampleGroupCommit, _ node: String) -> Task<(Duration, (any Error)?), Never> {
        Task {
            let clock = ContinuousClock()
            let began = clock.now
            do {
                _ = try await commit.submit(batch(node))
                return (clock.now - began, nil)
            } catch { return (clock.now - began, error) }
        }
    }

    /// A group commit whose first group (one batch, node `n-1`) is in its transaction, held.
    static func stuckGroup(watch: SampleGroupCommit.QueueWatch? = nil) async throws -> (
        StuckWriter, SampleGroupCommit, Task<(Duration, (any Error)?), Never>
    ) {
        let writer = StuckWriter()
        let commit = writer.commit(watch: watch)
        let first = submit(commit, "n-1")
        let started = await waitUntil(timeout: .seconds(5), poll: .milliseconds(10)) { writer.dues.withLock { $0.count } == 1 }
        try #require(started, "the first group did not start")
        return (writer, commit, first)
    }

    /// A batch whose deadline passed while the group ahead of it was stuck, and that is all the
    /// queue holds: answered as soon as that group ends, not when the next batch comes or the
    /// commit thread's idle second runs out (which was 1 s later).
    @Test func aLoneOverdueBatchIsAnsweredWhenTheGroupAheadEnds() async throws {
        let (writer, commit, first) = try await Self.stuckGroup()
        writer.nextLimit.withLock { $0 = .milliseconds(100) }
        let late = Self.submit(commit, "n-2")
        try await Task.sleep(for: .milliseconds(400))
        writer.release()
        let (_, firstError) = await first.value
        #expect(firstError is PostgresError, "\(String(describing: firstError))")
        let (took, error) = await late.value
        #expect(error.flatMap(DatabaseUnavailable.of)?.detail.contains("free connection or thread") == true, "\(String(describing: error))")
        #expect(took < .milliseconds(1000), "answered \(took) after it was queued")
        #expect(writer.dues.withLock { $0.count } == 1, "the overdue batch was written")
    }

    /// A group's transaction has the earliest deadline of its batches, but at least `leastGroupTime`:
    /// a batch with milliseconds left does not fail the fresh ones queued with it.
    @Test func aGroupHasItsOldestBatchsDeadlineButSomeTime() async throws {
        let clock = ContinuousClock()
        let (writer, commit, first) = try await Self.stuckGroup()
        // Queued behind the stuck group: one with 0.6 s, then one with 10 s.
        writer.nextLimit.withLock { $0 = .milliseconds(600) }
        let soon = Self.submit(commit, "n-2")
        try await Task.sleep(for: .milliseconds(100))
        writer.nextLimit.withLock { $0 = .seconds(10) }
        let fresh = Self.submit(commit, "n-3")
        try await Task.sleep(for: .milliseconds(100))
        // Released with about 0.4 s left to the first of them: the group's deadline is its.
        writer.release()
        _ = await first.value
        _ = await (soon.value, fresh.value)
        let dues = writer.dues.withLock { $0 }
        try #require(dues.count == 2, "\(dues)")
        let groupDue = try #require(dues[1])
        #expect(groupDue.limit == .milliseconds(600))
        #expect(groupDue.at - clock.now < .milliseconds(600), "the group got the fresh batch's deadline, not the earliest")
        // Released with less than a quarter second left: the group still gets a quarter second.
        let (writer2, commit2, first2) = try await Self.stuckGroup()
        writer2.nextLimit.withLock { $0 = .milliseconds(500) }
        let almost = Self.submit(commit2, "n-2")
        try await Task.sleep(for: .milliseconds(300))
        let releasedAt = clock.now
        writer2.release()
        _ = await (first2.value, almost.value)
        let dues2 = writer2.dues.withLock { $0 }
        try #require(dues2.count == 2, "\(dues2)")
        let due2 = try #require(dues2[1])
        #expect(due2.at - releasedAt >= SampleGroupCommit.leastGroupTime, "the group got \(due2.at - releasedAt)")
    }

    /// With the engine's deadline checks watching the queue (as on PostgreSQL), a batch whose
    /// client gave less time than the group ahead of it has is answered at its own deadline,
    /// while that group is still under way, and is never written. Before, it waited for the
    /// group to end: up to the group's whole limit.
    @Test func aQueuedBatchIsAnsweredAtItsDeadlineWhileTheGroupAheadRuns() async throws {
        let deadlines = PostgresEngine.Deadlines()
        let checks = Task {
            // The engine's checks, four times a second.
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(250))
                deadlines.cutOverdue()
            }
        }
        defer { checks.cancel() }
        let (writer, commit, first) = try await Self.stuckGroup(watch: deadlines.queueWatch)
        writer.nextLimit.withLock { $0 = .milliseconds(300) }
        let short = Self.submit(commit, "n-2")
        // The group ahead is held for 2.5 s (without the watch, the short batch waited for it).
        let release = Task {
            try? await Task.sleep(for: .milliseconds(2500))
            writer.release()
        }
        let (took, error) = await short.value
        #expect(
            error.flatMap(DatabaseUnavailable.of)?.detail.contains("free connection or thread") == true,
            "\(String(describing: error))")
        #expect(took >= .milliseconds(300) && took < .milliseconds(1500), "answered \(took) after it was queued")
        // The group ahead ends; the short batch is not written, the next one is.
        writer.nextLimit.withLock { $0 = .seconds(10) }
        let later = Self.submit(commit, "n-3")
        await release.value
        _ = await first.value
        let (_, laterError) = await later.value
        #expect(laterError is Stored, "\(String(describing: laterError))")
        #expect(writer.dues.withLock { $0.count } == 2, "the failed batch was written, or the next was not")
    }
}
