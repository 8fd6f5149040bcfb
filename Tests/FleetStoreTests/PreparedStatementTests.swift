import Foundation
import Logging
import TestSupport
import Testing

@testable import FleetStore

/// PostgreSQL's prepared statements (`PreparedStatements`): a statement run often enough runs
/// prepared on each connection, with the same results, row counts and errors as unnamed.
@Suite("prepared statements (PostgreSQL)")
struct PreparedStatementTests {
    static let postgresOnly: Comment =
        "PostgreSQL only: runs on the PostgreSQL pass of make test (KSMFLEET_TEST_POSTGRES)"

    func database() throws -> (FleetDatabase, PreparedStatements) {
        guard let server = TestStore.postgresURL else { try Test.cancel(Self.postgresOnly) }
        let db = try FleetDatabase.open(try TestStore.createDatabase(on: server))
        guard case .postgres(let engine) = db.backend else { Issue.record("not PostgreSQL"); throw CancellationError() }
        return (db, engine.prepared)
    }

    /// The ksmfleet statements prepared on the connection running `db`.
    static func preparedHere(_ db: StoreDB) throws -> [String] {
        try StoreRow.fetchAll(
            db, sql: "SELECT statement FROM pg_prepared_statements WHERE name LIKE 'ksmfleet_%' AND statement NOT LIKE '%pg_prepared%'")
            .map { $0[0] as String }
    }

    @Test("the registry: names after the threshold, renames after a failure that may be a preparation's, never prepares some statements")
    func registryRules() {
        let r = PreparedStatements(threshold: 3, logger: Logger(label: "test"))
        let key = PreparedStatements.Key(sql: "SELECT a FROM t WHERE k = $1", types: [1])
        #expect(r.lookup(key) == nil && r.lookup(key) == nil)
        let first = r.lookup(key)
        #expect(first?.name == "ksmfleet_1_0" && first?.kind == .rows)
        // The same text with a NULL argument is another statement.
        #expect(r.lookup(.init(sql: key.sql, types: [0])) == nil)
        func error(_ state: String?, _ message: String = "x") -> PostgresError {
            PostgresError(sqlState: state, message: message, sql: key.sql)
        }
        // A deadlock on a connection where the name never ran: maybe the preparation's (it
        // takes locks), which postgres-nio would answer on that connection for good.
        r.failed(key, connection: 7, error("40P01"))
        #expect(r.currentName(key) == "ksmfleet_1_1")
        // Where it ran well, a serialization failure is the execution's: the name stays.
        r.succeeded(key, connection: 7)
        r.failed(key, connection: 7, error("40001"))
        #expect(r.currentName(key) == "ksmfleet_1_1")
        // On another connection, where it has not run yet, it is renamed.
        r.failed(key, connection: 8, error("40001"))
        #expect(r.currentName(key) == "ksmfleet_1_2")
        // A lost connection, or a constraint: never a preparation's failure. Nor a write refused
        // as read-only, nor a shutdown or connection failure (the connection ends with it).
        for state in [nil, "23505", "25006", "57P01", "57P03", "08006"] {
            r.failed(key, connection: 9, error(state))
        }
        #expect(r.currentName(key) == "ksmfleet_1_2")
        // A protocol violation (a bind that does not fit the statement) may be the preparation's.
        r.failed(key, connection: 9, error("08P01"))
        #expect(r.currentName(key) == "ksmfleet_1_3")
        // A changed result type breaks the statement wherever it ran.
        r.succeeded(key, connection: 7)
        r.failed(key, connection: 7, error("0A000", "cached plan must not change result type"))
        #expect(r.currentName(key) == "ksmfleet_1_4")
        // Renamed too often: unnamed from then on.
        for _ in 0..<PreparedStatements.maxRevisions { r.failed(key, connection: 10, error("55P03")) }
        #expect(r.currentName(key) == nil && r.lookup(key) == nil)
        // Many arguments, or a threshold of 0: never.
        let wide = PreparedStatements.Key(sql: "INSERT INTO t VALUES ($1)", types: Array(repeating: 1, count: PreparedStatements.maxArguments + 1))
        let off = PreparedStatements(threshold: 0, logger: Logger(label: "test"))
        for _ in 0..<5 { #expect(r.lookup(wide) == nil && off.lookup(key) == nil) }
    }

    @Test(
        "which statements may run prepared, and how their count is read",
        arguments: [
            ("SELECT 1", PreparedStatements.Kind?.some(.rows)),
            ("  select a FROM t", .rows),
            ("INSERT INTO t (a) VALUES ($1) ON CONFLICT DO NOTHING", .count),
            ("INSERT INTO t (x1values) VALUES ($1)", .count),
            ("INSERT INTO t (a) VALUES ('returning')", .count),
            ("INSERT INTO t (a) VALUES ($1) RETURNING a", .rows),
            ("UPDATE t SET a = $1 WHERE k = $2 RETURNING a", .rows),
            ("DELETE FROM t WHERE k = $1 RETURNING k", .rows),
            ("UPDATE t SET a = $1", nil),
            ("DELETE FROM t WHERE k = $1", nil),
            ("INSERT INTO t (a) SELECT a FROM u", nil),
            ("INSERT INTO t (a) VALUES ((SELECT max(a) FROM u))", nil),
            ("INSERT INTO t (a) VALUES ($1); -- done", nil),
            ("WITH x AS (SELECT 1) SELECT * FROM x", .rows),
            ("with x as (insert into t (a) values ($1) returning a), y AS (SELECT 2) select (select count(*) from x)", .rows),
            ("WITH x AS (SELECT 1) UPDATE t SET a = 1", nil),
            ("WITH x AS (UPDATE t SET a = 1 RETURNING a) DELETE FROM u WHERE k IN (SELECT a FROM x)", nil),
            ("WITH x AS (SELECT ')') INSERT INTO t (a) SELECT 1 RETURNING a", nil),
            ("WITH x AS (SELECT 1)", nil),
            ("WITH x AS (SELECT 1) /* select */ UPDATE t SET a = 1", nil),
            ("WITH \"update\" AS (SELECT 1) SELECT * FROM \"update\"", .rows),
            ("BEGIN ISOLATION LEVEL REPEATABLE READ", nil),
            ("SAVEPOINT sample_group", nil),
        ])
    func kinds(_ sql: String, _ kind: PreparedStatements.Kind?) {
        #expect(PreparedStatements.kind(of: sql) == kind)
    }

    @Test("random values round-trip the same prepared or not; row counts are the same too")
    func sameResultsPreparedOrNot() async throws {
        let (db, prepared) = try database()
        defer { try? db.close() }
        try await db.write { sdb in
            try sdb.execute(sql: "CREATE TABLE t (k BIGINT PRIMARY KEY, a BIGINT, b DOUBLE PRECISION, c TEXT, d BYTEA)")
        }
        var generator = SystemRandomNumberGenerator()
        let texts = ["", "plain", "it's \"quoted\"", "ünïcødé ✓", "$1 ? --", String(repeating: "x", count: 3000)]
        let doubles: [Double] = [0, -0.0, 1.5, -1e300, 1e-300, .greatestFiniteMagnitude]
        let ints: [Int64] = [0, 1, -1, .min, .max]
        var rows: [Int64: [SQLValue]] = [:]
        for k in Int64(0)..<40 {
            func maybe(_ v: SQLValue) -> SQLValue { Bool.random(using: &generator) && k % 3 == 0 ? .null : v }
            let row: [SQLValue] = [
                maybe(.int(ints.randomElement(using: &generator)! &+ Int64.random(in: -3...3, using: &generator))),
                maybe(.double(doubles.randomElement(using: &generator)!)),
                maybe(.text(texts.randomElement(using: &generator)!)),
                maybe(.blob((0..<Int.random(in: 0...40, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) })),
            ]
            rows[k] = row
            let changed = try await db.write { sdb -> Int in
                try sdb.execute(
                    sql: "INSERT INTO t (k, a, b, c, d) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    arguments: StoreArguments(values: [.int(k)] + row))
                return sdb.changesCount
            }
            #expect(changed == 1)
        }
        // A duplicate key: 0 rows (counted from the RETURNING 1 a prepared INSERT is given).
        let duplicate = try await db.write { sdb -> Int in
            try sdb.execute(
                sql: "INSERT INTO t (k, a, b, c, d) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                arguments: StoreArguments(values: [.int(0), .int(1), .double(1), .text("x"), .blob([1])]))
            return sdb.changesCount
        }
        #expect(duplicate == 0)
        // Every row read back by a query that runs unnamed until the threshold, then prepared.
        for (k, row) in rows.sorted(by: { $0.key < $1.key }) {
            let read = try await db.read { sdb in
                try StoreRow.fetchAll(sdb, sql: "SELECT a, b, c, d FROM t WHERE k = ?", arguments: [k]).map(\.values)
            }
            #expect(read == [row], "row \(k)")
        }
        // An UPDATE without RETURNING runs unnamed (postgres-nio gives no prepared statement's
        // command tag, and its rows could be many): the tag's count.
        for (threshold, expected) in [(Int64.max, 0), (10, 29), (30, 9), (38, 1), (-1, 40)] {
            let updated = try await db.write { sdb -> Int in
                try sdb.execute(sql: "UPDATE t SET c = c WHERE k > ?", arguments: [threshold])
                return sdb.changesCount
            }
            #expect(updated == expected, "k > \(threshold)")
        }
        // With RETURNING: the rows' (unnamed until the threshold, then prepared).
        for (k, expected) in [(Int64(1000), 0), (39, 1), (35, 4), (0, 35)] {
            let deleted = try await db.write { sdb -> (Int, [Int64]) in
                let keys = try Int64.fetchAll(sdb, sql: "DELETE FROM t WHERE k >= ? RETURNING k", arguments: [k])
                return (sdb.changesCount, keys)
            }
            #expect(deleted.0 == expected && deleted.1.count == expected, "k >= \(k)")
        }
        // A multi-row INSERT without RETURNING: the rows it stored, conflicts skipped.
        for (keys, expected) in [([100, 101, 102], 3), ([100, 101, 103], 1), ([104, 105, 100], 2), ([100, 101, 102], 0), ([106, 107, 108], 3)] {
            let stored = try await db.write { sdb -> Int in
                try sdb.execute(
                    sql: "INSERT INTO t (k) VALUES (?), (?), (?) ON CONFLICT (k) DO NOTHING", arguments: StoreArguments(keys.map { Int64($0) }))
                return sdb.changesCount
            }
            #expect(stored == expected, "\(keys)")
        }
        // They ran prepared on the writer connection (one, so the same each time), the INSERT
        // with the RETURNING its count comes from; a statement with a NULL argument is another
        // statement.
        let here = try await db.write { sdb in try Self.preparedHere(sdb) }
        #expect(here.contains { $0.hasPrefix("INSERT INTO t") && $0.hasSuffix("RETURNING 1") })
        #expect(here.contains { $0.hasPrefix("DELETE FROM t") })
        #expect(!here.contains { $0.hasPrefix("UPDATE t SET c = c") })
        #expect(prepared.preparedCount >= 3)
    }

    @Test("a statement of many arguments, or an UPDATE without RETURNING, runs unnamed however often it runs")
    func someStatementsStayUnnamed() async throws {
        let (db, prepared) = try database()
        defer { try? db.close() }
        try await db.write { sdb in try sdb.execute(sql: "CREATE TABLE wide (k BIGINT)") }
        let many = Array(repeating: "(?)", count: PreparedStatements.maxArguments + 1).joined(separator: ", ")
        let few = Array(repeating: "(?)", count: PreparedStatements.maxArguments).joined(separator: ", ")
        for round in 0..<(prepared.threshold + 2) {
            let counts = try await db.write { sdb -> [Int] in
                var counts: [Int] = []
                for (values, n) in [(many, PreparedStatements.maxArguments + 1), (few, PreparedStatements.maxArguments)] {
                    try sdb.execute(
                        sql: "INSERT INTO wide (k) VALUES \(values)",
                        arguments: StoreArguments((0..<n).map { Int64($0 + round * 1000) }))
                    counts.append(sdb.changesCount)
                }
                try sdb.execute(sql: "UPDATE wide SET k = k WHERE k < ?", arguments: [Int64(1)])
                counts.append(sdb.changesCount)
                return counts
            }
            #expect(counts == [PreparedStatements.maxArguments + 1, PreparedStatements.maxArguments, 2])
        }
        let here = try await db.write { sdb in try Self.preparedHere(sdb) }
        #expect(here.count == 1 && here.first?.hasSuffix("($\(PreparedStatements.maxArguments))\nRETURNING 1") == true)
    }

    @Test("a statement whose preparation failed is prepared again under a new name once it can be")
    func aFailedPreparationDoesNotStick() async throws {
        let (db, prepared) = try database()
        defer { try? db.close() }
        let sql = "SELECT v FROM appears_later WHERE v > ?"
        // Unnamed until the threshold, then prepared on the writer connection: all fail (no such table).
        for _ in 0..<(prepared.threshold + 1) {
            await #expect(throws: PostgresError.self) {
                try await db.write { sdb in try Int64.fetchAll(sdb, sql: sql, arguments: [0]) }
            }
        }
        try await db.write { sdb in
            try sdb.execute(sql: "CREATE TABLE appears_later (v BIGINT)")
            try sdb.execute(sql: "INSERT INTO appears_later VALUES (1), (2), (3)")
        }
        // postgres-nio answers a name whose preparation failed with that failure for as long as
        // the connection lives: the statement must have moved to another name.
        for _ in 0..<3 {
            #expect(try await db.write { sdb in try Int64.fetchAll(sdb, sql: sql, arguments: [1]) } == [2, 3])
        }
        #expect(try await db.write { sdb in try Self.preparedHere(sdb) }.contains { $0.hasPrefix("SELECT v FROM appears_later") })
    }

    @Test("a table changed under a prepared statement: the transaction runs again and reads the new shape")
    func aChangedTableIsReadAgain() async throws {
        let (db, prepared) = try database()
        defer { try? db.close() }
        try await db.write { sdb in
            try sdb.execute(sql: "CREATE TABLE grows (a BIGINT)")
            try sdb.execute(sql: "INSERT INTO grows VALUES (1)")
        }
        let sql = "SELECT * FROM grows WHERE a >= ?"
        for _ in 0..<(prepared.threshold + 2) {
            #expect(try await db.write { sdb in try StoreRow.fetchAll(sdb, sql: sql, arguments: [0]).map(\.values.count) } == [1])
        }
        // A migration of another replica, say.
        try await db.write { sdb in try sdb.execute(sql: "ALTER TABLE grows ADD COLUMN b TEXT DEFAULT 'new'") }
        // PostgreSQL refuses the prepared plan ("cached plan must not change result type"); the
        // transaction is run again and the statement prepared again.
        let after = try await db.write { sdb in
            try StoreRow.fetchAll(sdb, sql: sql, arguments: [0]).map { ($0.values.count, $0[1] as String) }
        }
        #expect(after.map(\.0) == [2] && after.map(\.1) == ["new"])
    }
}
