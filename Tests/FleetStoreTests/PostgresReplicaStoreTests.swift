import FleetStore
import Foundation
import TestSupport
import Testing

/// What makes several server processes on one PostgreSQL database behave as one server, at the
/// store's level: one of them holds the background lock (rollups, retention) and another takes
/// over when it goes; migrations applied by replicas starting together are applied once.
@Suite("replicas on one PostgreSQL database: the store")
struct PostgresReplicaStoreTests {
    static let postgresOnly: Comment =
        "replicas share a PostgreSQL database: runs on the PostgreSQL pass of make test (KSMFLEET_TEST_POSTGRES)"

    @Test("a database that does not exist: the error says so in the server's words")
    func aMissingDatabaseIsNamed() throws {
        guard let server = TestStore.postgresURL else { try Test.cancel(Self.postgresOnly) }
        var c = try #require(URLComponents(string: server))
        c.path = "/ksmfleet_missing_database"
        let error = #expect(throws: (any Error).self) { try FleetDatabase.open(c.string!) }
        let text = "\(error.map { "\($0)" } ?? "")"
        #expect(text.contains("database \"ksmfleet_missing_database\" does not exist") && text.contains("3D000"), "\(text)")
    }

    @Test("two stores on one database: exactly one holds the background lock; the other takes it when the first closes")
    func oneHolderOfTheBackgroundLock() async throws {
        guard let server = TestStore.postgresURL else { try Test.cancel(Self.postgresOnly) }
        let url = try TestStore.createDatabase(on: server)
        let first = try FleetDatabase.open(url)
        let second = try FleetDatabase.open(url)
        var secondClosed = false
        defer {
            try? first.close()
            if !secondClosed { try? second.close() }
        }

        // Both ask at the same time: one gets it.
        async let askFirst = first.holdsBackgroundLock()
        async let askSecond = second.holdsBackgroundLock()
        let (answerOne, answerTwo) = await (askFirst, askSecond)
        guard let one = answerOne, let two = answerTwo else {
            Issue.record("a store could not ask for the background lock: first \(String(describing: answerOne)), second \(String(describing: answerTwo))")
            return
        }
        #expect(one != two, "both asked at once: first \(one), second \(two); exactly one must hold the lock")
        // Asked again, the same one (the holder keeps it; the other still cannot have it).
        #expect(await first.holdsBackgroundLock() == one)
        #expect(await second.holdsBackgroundLock() == two)

        let (holder, waiter) = one ? (first, second) : (second, first)
        try holder.close()
        if holder === second { secondClosed = true }
        let clock = ContinuousClock()
        let closedAt = clock.now
        let tookOver = await waitUntil(timeout: .seconds(15), poll: .milliseconds(50)) {
            await waiter.holdsBackgroundLock() == true
        }
        #expect(tookOver, "the other store did not take the background lock after the holder closed")
        print("PostgresReplicaStoreTests: the background lock changed hands \(clock.now - closedAt) after close()")
        // And keeps it.
        #expect(await waiter.holdsBackgroundLock() == true)
    }

    @Test("four stores opened at once on an empty database: all open, and every migration is applied once")
    func concurrentMigrations() async throws {
        guard let server = TestStore.postgresURL else { try Test.cancel(Self.postgresOnly) }
        let url = try TestStore.createDatabase(on: server)
        let count = 4
        // The four threads start their opens together (a barrier), as replicas restarted at once.
        let gate = StartGate(parties: count)
        let results = await withTaskGroup(of: Result<FleetDatabase, any Error>.self) { group in
            for _ in 0..<count {
                group.addTask {
                    do {
                        return .success(
                            try await offPool {
                                gate.arriveAndWait()
                                return try FleetDatabase.open(url)
                            })
                    } catch {
                        return .failure(error)
                    }
                }
            }
            var all: [Result<FleetDatabase, any Error>] = []
            for await r in group { all.append(r) }
            return all
        }
        let opened = results.compactMap { try? $0.get() }
        defer { for db in opened { try? db.close() } }
        for case .failure(let error) in results {
            Issue.record("a store opened together with others failed: \(error)")
        }
        #expect(opened.count == count)

        let latest = try #require(allPostgresMigrations.map(\.number).max())
        for db in opened {
            #expect(try await db.schemaVersion() == latest)
        }
        let rows = try TestStore.psql(url, "SELECT COUNT(*), COUNT(DISTINCT version) FROM schema_migrations")
        #expect(rows == "\(allPostgresMigrations.count)|\(allPostgresMigrations.count)", "schema_migrations: \(rows)")
        let versions = try TestStore.psql(url, "SELECT string_agg(version::text, ',' ORDER BY version) FROM schema_migrations")
        #expect(versions == allPostgresMigrations.map(\.number).sorted().map(String.init).joined(separator: ","))
        // The config trigger (0002) exists once: applied twice, a change would notify twice or
        // the second CREATE would have failed.
        let triggers = try TestStore.psql(url, "SELECT COUNT(*) FROM pg_trigger WHERE tgname = 'node_configs_notify'")
        #expect(triggers == "1")
    }
}

/// Lets `parties` threads through together: each waits until all have arrived.
final class StartGate: @unchecked Sendable {
    private let condition = NSCondition()
    private let parties: Int
    private var arrived = 0

    init(parties: Int) { self.parties = parties }

    func arriveAndWait() {
        condition.lock()
        arrived += 1
        if arrived >= parties { condition.broadcast() }
        while arrived < parties { condition.wait() }
        condition.unlock()
    }
}
