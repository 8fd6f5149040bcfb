import Foundation
import GRDB
import Synchronization
import TestSupport
import Testing

@testable import FleetStore

/// Which failures mean the database cannot serve requests now (the server answers them 503
/// `database_unavailable`; DatabaseOutageTests in the server suite tries real ones), and what a
/// client is told about them: the kind of failure, never the engine's words (which can hold the
/// database's address, user and names), those go to the log.
@Suite("database unavailable: which failures")
struct DatabaseUnavailableTests {
    func postgres(_ state: String?, _ message: String = "m at 10.0.0.5:5432 for user fleet") -> PostgresError {
        PostgresError(sqlState: state, message: message, sql: nil)
    }

    @Test(
        "which failures are an outage: PostgreSQL's shutdown, connection and resource states, SQLite's lock, disk and file errors; not a statement's own error"
    )
    func whichFailuresAreAnOutage() throws {
        let summaries = [
            "57P01": "PostgreSQL is shutting down or restarting", "57P02": "PostgreSQL is shutting down or restarting",
            "57P03": "PostgreSQL is starting up or shutting down", "53300": "PostgreSQL has no free connection slots",
            "53100": "PostgreSQL is out of disk space", "08006": "the connection to PostgreSQL failed",
            "08001": "the connection to PostgreSQL failed",
        ]
        for (state, summary) in summaries {
            let u = try #require(DatabaseUnavailable.of(postgres(state)), "\(state)")
            #expect(u.summary == summary, "\(state)")
            #expect(u.detail == "PostgreSQL: m at 10.0.0.5:5432 for user fleet [SQLSTATE \(state)]")
            #expect(!u.summary.contains("10.0.0.5") && !u.summary.contains("fleet"))
        }
        // A protocol violation (08P01: a bind that does not fit) is this server's mistake.
        for state in ["23505", "40001", "42P01", "22003", "55000", "08P01", "25006"] {
            #expect(DatabaseUnavailable.of(postgres(state)) == nil, "\(state)")
        }
        // SQLite, by result code; extended codes count by their primary one.
        let codes: [ResultCode] = [
            .SQLITE_BUSY, .SQLITE_LOCKED, .SQLITE_FULL, .SQLITE_IOERR, .SQLITE_READONLY, .SQLITE_CANTOPEN,
            .SQLITE_BUSY_SNAPSHOT, .SQLITE_IOERR_SHORT_READ,
        ]
        for code in codes {
            let u = try #require(DatabaseUnavailable.of(DatabaseError(resultCode: code, message: "x")), "\(code)")
            #expect(u.summary.hasPrefix("SQLite: ") && u.detail == u.summary + " (x)", "\(code)")
        }
        #expect(
            DatabaseUnavailable.of(DatabaseError(resultCode: .SQLITE_FULL))?.summary
                == "SQLite: the disk holding the database is full")
        for code in [ResultCode.SQLITE_CONSTRAINT, .SQLITE_ERROR, .SQLITE_MISMATCH, .SQLITE_CONSTRAINT_UNIQUE] {
            #expect(DatabaseUnavailable.of(DatabaseError(resultCode: code)) == nil, "\(code)")
        }
        #expect(DatabaseUnavailable.of(CancellationError()) == nil)
    }

    @Test(
        "a connection that could not be opened is an outage whatever the server said; a write refused as read-only on a write connection, and a request cut at its deadline, too"
    )
    func connectionFailuresReadOnlyAndDeadlines() throws {
        let refused = PostgresError(CancellationError(), sql: nil, connecting: true)
        #expect(
            DatabaseUnavailable.of(refused)?.summary
                == "PostgreSQL refuses this server's connections or cannot be reached")
        #expect(DatabaseUnavailable.of(PostgresError(CancellationError(), sql: nil)) == nil)
        var readOnly = postgres("25006", "cannot execute INSERT in a read-only transaction")
        readOnly.writeRefusedAsReadOnly = true
        let u = try #require(DatabaseUnavailable.of(readOnly))
        #expect(u.summary == "PostgreSQL refuses writes (a standby, or a database made read-only)")
        #expect(u.detail.contains("cannot execute INSERT in a read-only transaction"))
        var cut = PostgresError(PostgresEngine.NoAnswer(waited: .seconds(60)), sql: nil)
        cut.cutAfter = .seconds(60)
        #expect(DatabaseUnavailable.of(cut)?.summary == "PostgreSQL did not finish within 60 s")
        #expect(DatabaseUnavailable.of(cut)?.detail.contains("no answer, or too slow") == true)
        #expect(DatabaseUnavailable.of(cut)?.atShutdown == false)
        // Work the server gave up shutting down: a 503, but no outage of the database's.
        let abandoned = DatabaseUnavailable.of(PostgresError.abandoned())
        #expect(abandoned?.summary == "the server is shutting down" && abandoned?.atShutdown == true)
    }
}

/// The request deadline on PostgreSQL (`FleetDatabase.setRequestDeadline`): it cuts a request's
/// transaction that runs past it, and nothing else — not the server's background work (rollup
/// passes over a large fleet), not a store that never set one (`migrate-data`'s copy).
@Suite("PostgreSQL request deadline: what it cuts")
struct RequestDeadlineTests {
    @Test("a read past the deadline is cut as 'did not finish'; the same read as background work, or without a deadline set, finishes")
    func onlyRequestsAreCut() async throws {
        let database = try openFreshPostgresStore()
        defer { try? database.close() }
        let slow: @Sendable (StoreDB) throws -> Int = { db in
            try Int.fetchOne(db, sql: "SELECT 1 FROM (SELECT pg_sleep(2.5)) AS slow") ?? 0
        }
        // No deadline set (a tool's store): the slow read finishes.
        #expect(try await database.read(slow) == 1)

        database.setRequestDeadline(.milliseconds(500))
        do {
            _ = try await database.read(slow)
            Issue.record("a read of 2.5 s finished under a 0.5 s deadline")
        } catch {
            #expect(DatabaseUnavailable.of(error)?.summary == "PostgreSQL did not finish within 0.5 s", "\(error)")
        }
        // Background work is not held to it.
        let background = try await DatabaseWork.$isBackground.withValue(true) { try await database.read(slow) }
        #expect(background == 1)
        // And the store answers requests again on a new connection.
        #expect(await database.ping())
    }

    /// PostgreSQL ends a statement whose connection the server closed at its deadline within
    /// about a second (`client_connection_check_interval`), instead of running it to its end
    /// for nobody (and committing it, for a lone write that waited for a lock).
    @Test("a statement cut at its deadline ends in PostgreSQL too, long before it would have finished")
    func aCutStatementEndsInPostgres() async throws {
        let (server, database) = try freshPostgresStore()
        defer { try? database.close() }
        database.setRequestDeadline(.milliseconds(500))
        let clock = ContinuousClock()
        let began = clock.now
        do {
            _ = try await database.read { db in try Int.fetchOne(db, sql: "SELECT 6 FROM pg_sleep(30)") }
            Issue.record("a read of 30 s finished under a 0.5 s deadline")
        } catch {
            #expect(DatabaseUnavailable.of(error)?.summary == "PostgreSQL did not finish within 0.5 s", "\(error)")
        }
        let gone = await statementsRunning(server, like: "SELECT 6 FROM pg_sleep%", count: 0)
        #expect(gone, "the cut statement still runs in PostgreSQL")
        // The cut at 0.5 s (up to a quarter second late), then PostgreSQL's check once a second.
        #expect(clock.now - began < .seconds(4), "gone after \(clock.now - began)")
    }
}

/// A statement sent on a connection PostgreSQL ended between two statements of a transaction
/// is dropped without an answer (NIO removes a closed channel's handlers): the engine must fail
/// it, not wait for good (`PendingAnswers`).
@Suite("PostgreSQL: a connection ended between two statements")
struct ConnectionEndedMidTransactionTests {
    @Test("the next statement fails at once as the database being unavailable; the store answers again")
    func theNextStatementFails() async throws {
        let database = try openFreshPostgresStore()
        let done = Done()
        let attempt = Task {
            defer { done.set() }
            return try await database.read { db in
                _ = try Int.fetchOne(db, sql: "SELECT 1")
                // PostgreSQL ends this very connection (FATAL 57P01), then the channel closes.
                _ = try? Int.fetchOne(db, sql: "SELECT 1 FROM (SELECT pg_terminate_backend(pg_backend_pid())) AS t")
                Thread.sleep(forTimeInterval: 0.3)
                return try Int.fetchOne(db, sql: "SELECT 2") ?? 0
            }
        }
        let finished = await waitUntil(timeout: .seconds(20), poll: .milliseconds(50)) { done.value }
        guard finished else {
            // The engine's thread waits for good: the store cannot be closed.
            Issue.record("a statement on a connection PostgreSQL ended was never answered")
            return
        }
        switch await attempt.result {
        case .success(let v): Issue.record("the read returned \(v) on an ended connection")
        case .failure(let error): #expect(DatabaseUnavailable.of(error) != nil, "\(error)")
        }
        #expect(await database.ping())
        try database.close()
    }
}

/// A deadline counts the opening of a connection too: with PostgreSQL's host accepting the TCP
/// connection and answering nothing (its postmaster frozen), a read with a 1 s limit that needs
/// a new connection fails after about a second as "did not finish within 1 s", not after the
/// 10 s connect timeout (a scrape's 2 s credential lookup must answer within Prometheus's 10 s).
@Suite("PostgreSQL: a deadline counts the connection's opening")
struct ConnectDeadlineTests {
    @Test("a read that must open a connection to a PostgreSQL answering nothing fails at its deadline, not the connect timeout")
    func connectingCountsAgainstTheDeadline() async throws {
        let (server, location) = try freshPostgresDatabase()
        let name = try #require(URLComponents(string: location)?.path.dropFirst().description)
        let database = try FleetDatabase.open(location)
        defer { try? database.close() }
        database.setRequestDeadline(.seconds(60))
        let backend = try #require(try await database.read { db in try Int.fetchOne(db, sql: "SELECT pg_backend_pid()") })
        guard let ppid = TestStore.postmasterPID(ofBackend: pid_t(backend)) else {
            try Test.cancel("PostgreSQL's processes are not on this machine")
        }
        // Every connection of this store ends, so the next read opens one; then nothing answers.
        _ = try TestStore.psql(server, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '\(name)'")
        try await Task.sleep(for: .milliseconds(300))
        kill(ppid, SIGSTOP)
        defer { kill(ppid, SIGCONT) }
        let clock = ContinuousClock()
        let began = clock.now
        do {
            _ = try await DatabaseWork.$deadline.withValue(.seconds(1)) {
                try await database.read { db in try Int.fetchOne(db, sql: "SELECT 1") }
            }
            Issue.record("a read answered while PostgreSQL's postmaster was frozen")
        } catch {
            #expect(DatabaseUnavailable.of(error)?.summary == "PostgreSQL did not finish within 1 s", "\(error)")
        }
        let took = clock.now - began
        kill(ppid, SIGCONT)
        #expect(took < .seconds(4), "the read waited \(took) for a connection")
        // PostgreSQL answers again: so does the store, on a new connection.
        let back = await waitUntil(timeout: .seconds(20), poll: .milliseconds(200)) { await database.ping() }
        #expect(back)
    }
}

/// A deadline counts the wait for one of the engine's threads too: with every read thread held
/// by slow work (here `pg_sleep` of 6 s; in an outage, requests waiting out their minute on a database
/// that answers nothing), a read with a 1 s limit fails after about a second as "did not finish
/// within 1 s", and never runs. Before, its second began only when it got a thread: it waited
/// the others out and then answered (a scrape's 2 s lookup behind requests held a minute each).
@Suite("PostgreSQL: a deadline counts the wait for a thread")
struct QueuedDeadlineTests {
    @Test("a read queued behind busy threads fails at its deadline and never runs; the busy ones finish")
    func waitingForAThreadCountsAgainstTheDeadline() async throws {
        let (server, database) = try freshPostgresStore()
        defer { try? database.close() }
        database.setRequestDeadline(.seconds(60))
        #expect(await database.ping())
        let threads = PostgresEngine.defaultReaders
        let clock = ContinuousClock()
        let held = try await holdEveryReadThread(of: database, on: server, marker: 7, seconds: 6)
        let ran = Done()
        let began = clock.now
        do {
            _ = try await DatabaseWork.$deadline.withValue(.seconds(1)) {
                try await database.read { db in
                    ran.set()
                    return try Int.fetchOne(db, sql: "SELECT 1")
                }
            }
            Issue.record("a read answered after waiting \(clock.now - began) for a thread, past its 1 s")
        } catch {
            let unavailable = DatabaseUnavailable.of(error)
            #expect(unavailable?.summary == "PostgreSQL did not finish within 1 s", "\(error)")
            #expect(unavailable?.detail.contains("free connection or thread") == true, "\(error)")
        }
        let took = clock.now - began
        #expect(took < .milliseconds(2500), "the read waited \(took) for a thread")
        // The sleeping reads were not disturbed; the one that gave up never ran, not even later.
        #expect(try await held.value == Array(repeating: 7, count: threads))
        try await Task.sleep(for: .milliseconds(300))
        #expect(!ran.value, "the read that failed at its deadline ran when a thread came free")
    }

    /// The writer's one connection is shared by the write thread and the sample group commit's:
    /// a write with a 1 s limit waiting for it behind a 6 s transaction fails after about a
    /// second, and never runs (before: it waited the 6 s, then ran past its deadline).
    @Test("a write waiting for the writer connection fails at its deadline and never runs")
    func waitingForTheWriterCountsAgainstTheDeadline() async throws {
        let (server, database) = try freshPostgresStore()
        defer { try? database.close() }
        guard case .postgres(let engine) = database.backend else { try Test.cancel("not PostgreSQL") }
        let holding = Task {
            await engine.onThread {
                Result { try engine.writeSync(due: nil) { db in try Int.fetchOne(db, sql: "SELECT 8 FROM pg_sleep(6)") } }
            }
        }
        let busy = await statementsRunning(server, like: "SELECT 8 FROM pg_sleep%", count: 1)
        try #require(busy, "the 6 s write did not start")
        let ran = Done()
        let clock = ContinuousClock()
        let began = clock.now
        let outcome = await engine.onThread {
            Result {
                try engine.writeSync(due: PostgresEngine.Due.after(.seconds(1))) { db in
                    ran.set()
                    return try Int.fetchOne(db, sql: "SELECT 1")
                }
            }
        }
        let took = clock.now - began
        switch outcome {
        case .success: Issue.record("the write ran after waiting \(took) for the writer connection, past its 1 s")
        case .failure(let error):
            let unavailable = DatabaseUnavailable.of(error)
            #expect(unavailable?.summary == "PostgreSQL did not finish within 1 s", "\(error)")
            #expect(unavailable?.detail.contains("free connection or thread") == true, "\(error)")
        }
        #expect(took < .milliseconds(2500), "the write waited \(took) for the writer connection")
        #expect(try await holding.value.get() == 8)
        #expect(!ran.value, "the write that failed at its deadline ran")
    }

    /// The sample group commit counts a batch's wait for its group: the group's transaction has
    /// the earliest deadline of its batches, and a batch queued past its own fails then,
    /// unwritten, while the group ahead is still under way (the engine's deadline checks watch
    /// the queue). Before, a group took a whole limit from its start, so a push queued behind a
    /// group that was cut waited for nearly two limits (here about 5 s of a 3 s limit; with the
    /// server's minute, two minutes, where the agent gives up after 30 s).
    ///
    /// Nothing of the cut batches is stored once the lock is gone: PostgreSQL ends a statement
    /// whose connection was closed within a second (`client_connection_check_interval`). The
    /// writer's connection has run the push's statement before the lock (as a server's has): a
    /// statement not yet prepared there waits for the lock in its Parse, and its Execute is
    /// never sent; one prepared already waits in its Execute, with its Sync sent, and commits
    /// when it gets the lock unless PostgreSQL ended it.
    @Test("a sample batch queued behind a stuck group fails at its own deadline, unwritten; nothing cut is stored later")
    func sampleBatchesQueuedBehindAStuckGroup() async throws {
        let (server, database) = try freshPostgresStore()
        defer { try? database.close() }
        guard case .postgres(let engine) = database.backend else { try Test.cancel("not PostgreSQL") }
        var registered: [String] = []
        for i in 0..<4 { registered.append(try await registerNode(database, machine: "m-\(i)", nodeToken: "kn_\(i)").node.id) }
        let nodes = Array(registered.prefix(3))
        // The writer's connection runs the push's statement (prepared, where statements are).
        for seq in 1...3 { _ = try await database.insertSamples(nodeId: registered[3], [sample(Int64(seq))]) }
        database.setRequestDeadline(.seconds(3))
        // Every write of samples waits for this lock for 8 s (another connection; background
        // work, so its own limit is long).
        let holding = Task {
            try await DatabaseWork.$isBackground.withValue(true) {
                try await engine.backgroundWrite { db in
                    try db.execute(sql: "LOCK TABLE samples IN EXCLUSIVE MODE")
                    return try Int.fetchOne(db, sql: "SELECT 9 FROM pg_sleep(8)")
                }
            }
        }
        let locked = await statementsRunning(server, like: "SELECT 9 FROM pg_sleep%", count: 1)
        try #require(locked, "the lock was not taken")
        let clock = ContinuousClock()
        func push(_ node: Int, limit: Duration? = nil) -> Task<(Duration, (any Error)?), Never> {
            Task {
                let began = clock.now
                do {
                    _ = try await DatabaseWork.$deadline.withValue(limit) {
                        try await database.insertSamples(nodeId: nodes[node], [sample(1)])
                    }
                    return (clock.now - began, nil)
                } catch { return (clock.now - began, error) }
            }
        }
        // The first batch's group waits for the lock; two more queue behind it, one with a
        // shorter limit than the group's.
        let first = push(0)
        let waiting = await waitUntil(timeout: .seconds(5), poll: .milliseconds(20)) {
            let n = try? TestStore.psql(
                server, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%samples%'")
            return n?.trimmingCharacters(in: .whitespacesAndNewlines) == "1"
        }
        try #require(waiting, "the first batch's write did not wait for the lock")
        try await Task.sleep(for: .seconds(1))
        let second = push(1)
        let third = push(2, limit: .milliseconds(500))

        let (firstTook, firstError) = await first.value
        #expect(firstError.flatMap(DatabaseUnavailable.of)?.summary == "PostgreSQL did not finish within 3 s", "\(String(describing: firstError))")
        #expect(firstTook < .seconds(4), "the first batch took \(firstTook)")
        let (secondTook, secondError) = await second.value
        #expect(secondError.flatMap(DatabaseUnavailable.of)?.summary == "PostgreSQL did not finish within 3 s", "\(String(describing: secondError))")
        #expect(secondTook < .seconds(4), "the batch queued behind the stuck group was answered after \(secondTook) (limit 3 s)")
        let (thirdTook, thirdError) = await third.value
        #expect(thirdError.flatMap(DatabaseUnavailable.of)?.detail.contains("free connection or thread") == true, "\(String(describing: thirdError))")
        #expect(thirdTook < .seconds(2), "the batch past its deadline was answered after \(thirdTook), not at its 0.5 s")

        // Nothing of them was stored; once the lock is gone the writer goes on. (A cut statement
        // PostgreSQL had not ended would get the lock now and commit within milliseconds.)
        #expect(try await holding.value == 9)
        let settled = await waitUntil(timeout: .seconds(5), poll: .milliseconds(50)) {
            let n = try? TestStore.psql(
                server, "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%INTO samples%' AND state = 'active' AND pid <> pg_backend_pid()")
            return n?.trimmingCharacters(in: .whitespacesAndNewlines) == "0"
        }
        #expect(settled, "a cut push's statement was still running after the lock")
        for node in nodes { #expect(try await database.sampleSeqs(nodeId: node).isEmpty) }
        let ack = try await database.insertSamples(nodeId: nodes[2], [sample(1)])
        #expect(ack.stored == 1)
    }
}

/// At shutdown the rollup service gives the background lock up, so that another replica takes
/// the work over at once. Every read thread may then be held by work a database that stopped
/// answering holds: the release must not wait for one of them.
@Suite("PostgreSQL: the background lock given up at shutdown")
struct BackgroundLockReleaseTests {
    @Test("given up while every read thread is busy: another store holds it before they finish")
    func releasedWhileEveryReadThreadIsBusy() async throws {
        let (server, url) = try freshPostgresDatabase()
        let holder = try FleetDatabase.open(url)
        defer { try? holder.close() }
        let other = try FleetDatabase.open(url)
        defer { try? other.close() }
        #expect(await holder.holdsBackgroundLock() == true)
        #expect(await other.holdsBackgroundLock() == false)
        let threads = PostgresEngine.defaultReaders
        let finished = Done()
        let held = try await holdEveryReadThread(of: holder, on: server, marker: 3, seconds: 4, finished: finished)
        // The reads sleep 4 s from before this point: a release that waited for one of their
        // threads took 3.9 s (6.0 s of a 6 s sleep, when it ran on a read thread).
        let clock = ContinuousClock()
        let began = clock.now
        await holder.releaseBackgroundLock()
        let took = clock.now - began
        #expect(took < .seconds(2), "the release took \(took): it waited for a read thread")
        // PostgreSQL frees the lock when it sees the connection end, a moment after the close.
        let tookOver = await waitUntil(timeout: .seconds(2), poll: .milliseconds(50)) {
            await other.holdsBackgroundLock() == true
        }
        #expect(tookOver, "the other store could not take the lock")
        #expect(!finished.value, "the other store took the lock only after the sleeping reads")
        #expect(try await held.value == Array(repeating: 3, count: threads))
    }
}

/// After a shutdown gave the work up, nothing new starts: a connection asked for (the
/// background lock's ask opens one directly, outside any transaction) fails at once as the
/// shutdown, without trying, and so does a transaction.
@Suite("PostgreSQL: after the work was given up at shutdown")
struct AbandonedWorkTests {
    @Test("a new connection and a new transaction fail at once as 'shutting down'; nothing was under way to give up")
    func nothingNewStarts() async throws {
        let database = try openFreshPostgresStore()
        defer { try? database.close() }
        #expect(await database.ping())
        #expect(database.abandonWorkUnderWay() == AbandonedWork(transactions: 0, connecting: 0))
        #expect(database.workAbandoned)
        // A connection of its own, refused before it is tried: no answer, not an outage.
        #expect(await database.holdsBackgroundLock() == nil)
        do {
            _ = try await database.read { db in try Int.fetchOne(db, sql: "SELECT 1") }
            Issue.record("a read started after the work was given up")
        } catch {
            #expect(DatabaseUnavailable.of(error)?.atShutdown == true, "\(error)")
        }
    }

    /// What the shutdown's log line counts (`FleetServerService`): the transactions it closed
    /// under their work, and the work still waiting for a thread, which is answered as the
    /// shutdown and never runs.
    @Test("work under way and work queued for a thread are given up, counted apart, and answered as the shutdown")
    func queuedWorkIsCounted() async throws {
        let (server, database) = try freshPostgresStore()
        defer { try? database.close() }
        database.setRequestDeadline(.seconds(60))
        #expect(await database.ping())
        let threads = PostgresEngine.defaultReaders
        let ran = Done()
        let reads = (0...threads).map { i in
            Task { () -> (any Error)? in
                do {
                    _ = try await database.read { db in
                        if i == threads { ran.set() }
                        return try Int.fetchOne(db, sql: i == threads ? "SELECT 1" : "SELECT 5 FROM pg_sleep(6)")
                    }
                    return nil
                } catch { return error }
            }
        }
        let busy = await statementsRunning(server, like: "SELECT 5 FROM pg_sleep%", count: threads)
        try #require(busy, "the \(threads) sleeping reads did not all start")
        try await Task.sleep(for: .milliseconds(200))
        #expect(database.abandonWorkUnderWay() == AbandonedWork(transactions: threads, connecting: 0, queued: 1))
        for (i, read) in reads.enumerated() {
            let error = await read.value
            #expect(error.flatMap(DatabaseUnavailable.of)?.atShutdown == true, "read \(i): \(String(describing: error))")
        }
        try await Task.sleep(for: .milliseconds(300))
        #expect(!ran.value, "the queued read ran after the shutdown gave it up")
    }
}

/// Set once, read from anywhere.
private final class Done: Sendable {
    private let state = Mutex(false)
    func set() { state.withLock { $0 = true } }
    var value: Bool { state.withLock { $0 } }
}

/// Every read thread of `database` in `SELECT marker FROM pg_sleep(seconds)`, all of them
/// running (each statement shows in pg_stat_activity) when this returns; the task ends with
/// their answers, after setting `finished`.
private func holdEveryReadThread(
    of database: FleetDatabase, on server: String, marker: Int, seconds: Int, finished: Done? = nil
) async throws -> Task<[Int?], any Error> {
    let threads = PostgresEngine.defaultReaders
    let held = Task { () async throws -> [Int?] in
        defer { finished?.set() }
        return try await withThrowingTaskGroup(of: Int?.self) { group in
            for _ in 0..<threads {
                group.addTask {
                    try await database.read { db in try Int.fetchOne(db, sql: "SELECT \(marker) FROM pg_sleep(\(seconds))") }
                }
            }
            return try await group.reduce(into: [Int?]()) { $0.append($1) }
        }
    }
    let busy = await statementsRunning(server, like: "SELECT \(marker) FROM pg_sleep%", count: threads)
    try #require(busy, "the \(threads) sleeping reads did not all start")
    return held
}

/// Whether `count` statements matching `pattern` (LIKE) run at once on `server` within 10 s.
private func statementsRunning(_ server: String, like pattern: String, count: Int) async -> Bool {
    await waitUntil(timeout: .seconds(10), poll: .milliseconds(50)) {
        let n = try? TestStore.psql(
            server, "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '\(pattern)' AND state = 'active'")
        return n?.trimmingCharacters(in: .whitespacesAndNewlines) == "\(count)"
    }
}

/// A store on a new database of the test PostgreSQL (cancels the test on the SQLite pass).
private func openFreshPostgresStore() throws -> FleetDatabase {
    try freshPostgresStore().database
}

/// The test PostgreSQL's URL and a store on a new database of it (cancels the test on the
/// SQLite pass).
private func freshPostgresStore() throws -> (server: String, database: FleetDatabase) {
    let (server, location) = try freshPostgresDatabase()
    return (server, try FleetDatabase.open(location))
}

/// The test PostgreSQL's URL and a new database on it, its location (cancels the test on the
/// SQLite pass).
private func freshPostgresDatabase() throws -> (server: String, location: String) {
    guard let server = TestStore.postgresURL else {
        try Test.cancel("needs PostgreSQL: runs on the PostgreSQL pass of make test (KSMFLEET_TEST_POSTGRES)")
    }
    return (server, try TestStore.createDatabase(on: server))
}
