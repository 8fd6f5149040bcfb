import FleetAPI
import Foundation
import GRDB
import KSMCore
import Logging
import Synchronization

/// The server's database (the `AppDatabase` of STYLE.md): owns a WAL `DatabasePool`, applies the
/// embedded migrations at open and exposes intention-named async methods. Callers never see SQL.
///
/// All writes go through the pool's single writer connection, one transaction per call (sample
/// batches that arrive together share one, see `SampleGroupCommit`), so a sample batch is
/// acknowledged only after its commit.
///
/// Durability: GRDB opens the pool in WAL mode with `synchronous=NORMAL`. A commit then appends
/// the transaction to the `-wal` file with write(2) before `write {}` returns; only the fsync is
/// deferred to checkpoints. A `kill -9` of the server leaves those pages in the kernel's page
/// cache, so every acknowledged commit is still in the WAL when the next process opens the
/// database (FleetServerTests checks this with a real subprocess). What NORMAL can lose is the
/// last commits on a power failure or kernel crash, which is an accepted trade for ingest speed.
public final class FleetDatabase: Sendable {
    /// The engine underneath: a SQLite file (GRDB's WAL pool and the checkpointer) or a
    /// PostgreSQL database (`PostgresEngine`).
    enum Backend: Sendable {
        case sqlite(DatabasePool, WALCheckpointer)
        case postgres(PostgresEngine)
    }
    let backend: Backend
    /// Sample batches go through it: concurrent pushes share one commit.
    let sampleWriter: SampleGroupCommit
    /// The SQLite file, or the PostgreSQL URL without its password.
    public let path: String
    let logger: Logger
    /// When this process last recomputed each pending rollup hour (unix seconds): rollup passes
    /// of the background service refresh an hour that no new sample touched only now and then
    /// (`rollupPass(pendingRefresh:)`).
    let pendingComputedAt = Mutex<[NodeBucket: Double]>([:])

    public var engine: StoreEngine {
        if case .sqlite = backend { return .sqlite }
        return .postgres
    }

    /// GRDB's pool (SQLite only: tests and tools that read the file directly).
    var pool: DatabasePool {
        guard case .sqlite(let pool, _) = backend else { preconditionFailure("a SQLite-only path ran on PostgreSQL") }
        return pool
    }

    /// Opens the store at `location`: a `postgres://` URL, or a SQLite file (a path, or
    /// `sqlite:PATH`).
    public static func open(_ location: String, logger: Logger = FleetDatabase.quietLogger) throws -> FleetDatabase {
        if PostgresLocation.isPostgres(location) {
            return try FleetDatabase(postgres: location, logger: logger)
        }
        let path = location.hasPrefix("sqlite:") ? String(location.dropFirst("sqlite:".count)) : location
        return try FleetDatabase(path: path, logger: logger)
    }

    /// Reads the files the PostgreSQL URL names again (`passfile`, `sslrootcert`, `sslcert`,
    /// `sslkey`; SIGHUP): connections made from now on use them, open ones go on. Throws,
    /// keeping the files read before, when one cannot be used. Returns the parameters re-read:
    /// none on SQLite or for a URL that names no file.
    @discardableResult
    public func reloadConnectionFiles() throws -> [String] {
        guard case .postgres(let engine) = backend else { return [] }
        return try engine.reloadConnectionFiles()
    }

    /// The parameters of the PostgreSQL URL naming files `reloadConnectionFiles` reads again.
    public var connectionFiles: [String] {
        guard case .postgres(let engine) = backend else { return [] }
        return engine.location.files
    }

    /// How much of the database file each SQLite connection maps (SQLite caps it at its
    /// compile-time maximum, 2 GB in Debian's build). The mapped pages are the kernel's page
    /// cache, shared by every connection, and count in the server's RSS while mapped.
    static let sqliteMmapBytes: Int64 = 1 << 31

    /// Opens (creating if needed) the database file at `path` and brings its schema up to date
    /// in one transaction. Throws `StoreError.databaseTooNew` for a database written by a newer
    /// server.
    public init(path: String, logger: Logger = FleetDatabase.quietLogger) throws {
        self.path = path
        self.logger = logger
        var config = Configuration()
        config.label = "ksmfleet"
        // Another process (a backup, the CLI on the same host) may briefly hold the write lock.
        config.busyMode = .timeout(10)
        config.maximumReaderCount = 8
        // Checkpoints come from `WALCheckpointer` while samples stream in; SQLite's own (in
        // the committing writer) only when that one falls behind.
        config.prepareDatabase { db in
            try db.execute(sql: "PRAGMA wal_autocheckpoint = \(WALCheckpointer.writerAutocheckpointPages)")
            // Reports read tens of megabytes of rollup pages: through the mapping rather than a
            // pread copy of every page into SQLite's small page cache each time.
            try db.execute(sql: "PRAGMA mmap_size = \(FleetDatabase.sqliteMmapBytes)")
            try LeftToRightSum.register(db)
        }
        let pool = try DatabasePool(path: path, configuration: config)
        let checkpointer = WALCheckpointer(path: path)
        backend = .sqlite(pool, checkpointer)
        sampleWriter = SampleGroupCommit(
            transaction: { _, body in try pool.write { db in try body(StoreDB(.sqlite(db))) } },
            afterCommits: { checkpointer.request() }, write: FleetDatabase.writeSampleBatch)
        try migrate()
    }

    /// Connects to the PostgreSQL database at `url` (`postgres://user:password@host:port/db`)
    /// and brings its schema up to date (`migrations/postgres/`), under an advisory lock so that
    /// replicas starting together apply each migration once. Throws `StoreError.databaseNotUTF8`
    /// for a database whose encoding is not UTF8.
    public init(postgres url: String, logger: Logger = FleetDatabase.quietLogger) throws {
        guard let location = try PostgresLocation(url: url) else {
            throw StoreError.badDatabaseURL("not a postgres:// URL: give postgres://user:password@host:port/database")
        }
        path = location.description
        self.logger = logger
        let engine = try PostgresEngine(location: location, logger: logger)
        backend = .postgres(engine)
        sampleWriter = SampleGroupCommit(
            transaction: { due, body in try engine.writeSync(due: due, body) },
            dueForCaller: { engine.dueForCaller() },
            afterCommits: {}, write: FleetDatabase.writeSampleBatch,
            writeGroup: FleetDatabase.writeSampleGroup,
            writeAlone: { batch, due in
                guard FleetDatabase.writesInOneStatement(batch) else { return nil }
                return try engine.writeStatementSync(due: due) { db in try FleetDatabase.writeLoneSampleBatch(db, batch) }
            },
            queueWatch: engine.queueWatch)
        try migrate()
    }

    /// How many entries of each index SQLite's `ANALYZE` reads (`PRAGMA analysis_limit`): enough
    /// for the planner to know a rollup table holds many rows per node (a year's day rows of 1,000
    /// nodes: 30 ms on the bench's 1.7 GB file), bounded whatever the database's size.
    static let sqliteAnalysisLimit = 1000

    /// Refreshes the query planner's statistics on SQLite (`ANALYZE`, within
    /// `sqliteAnalysisLimit`), and makes the readers load them: a reader connection keeps the
    /// statistics it opened with. Without them SQLite's planner assumes few rows per key prefix
    /// and reads the reports' per-node sums through the `bucket_start` indexes, then sorts every
    /// row for the grouping, where with them it reads each node's range of the primary key
    /// (docs/benchmarks.md). The server runs it at start and hourly (`RollupService`). Returns
    /// false on PostgreSQL, whose autovacuum keeps its statistics, with `analyzeGrownTables`
    /// for the tables that grow faster than it comes round (and `migrate-data` analyzes after a
    /// copy).
    @discardableResult
    public func refreshPlannerStatistics() async throws -> Bool {
        guard case .sqlite(let pool, _) = backend else { return false }
        try await pool.write { db in
            try db.execute(sql: "PRAGMA analysis_limit = \(Self.sqliteAnalysisLimit)")
            try db.execute(sql: "ANALYZE")
        }
        pool.invalidateReadOnlyConnections()
        return true
    }

    /// A table has this many pages at least (256 KiB) before `analyzeGrownTables` gathers its
    /// statistics: below it every plan reads a few pages whatever the index.
    static let postgresAnalyzeFloorPages: Int64 = 32

    /// A table `analyzeGrownTables` analyzed: the pages its statistics knew (0: none) and the
    /// pages it had.
    public struct AnalyzedTable: Sendable, Equatable {
        public var name: String
        public var pagesKnown: Int64
        public var pages: Int64
    }

    /// On PostgreSQL, gathers the planner's statistics (`ANALYZE`) of each of the schema's tables
    /// that has grown to twice the pages its statistics know, and to `postgresAnalyzeFloorPages`
    /// at least; returns those it analyzed (none on SQLite, whose statistics
    /// `refreshPlannerStatistics` keeps). A new database's tables were never analyzed, and on a
    /// never-analyzed table the planner prices every index alike: the registration's machine
    /// look-up, prepared while `nodes` was empty, kept a generic plan that read the whole
    /// `nodes_live_name_bytes` index (1.9 ms at 5,000 nodes, against 0.04 ms through
    /// `nodes_live_machine_id`) until autovacuum's first analyze, up to a minute
    /// (`autovacuum_naptime`) into an enrolment. An `ANALYZE` makes every connection plan such
    /// statements again. Doubling bounds the work: a table that grows to 2^k pages is analyzed
    /// about k times, whatever autovacuum does besides.
    ///
    /// On the background connection, waiting at most 1 s on a lock: the look gives up then (a
    /// migration or an operator's `ALTER` may hold a table; nothing is analyzed this time), and
    /// each table's `ANALYZE (SKIP_LOCKED)` in a transaction of its own skips, without waiting,
    /// a table autovacuum is working on. A table counts as analyzed when its statistics then know its pages; one
    /// skipped, or one this role may not analyze (PostgreSQL skips it with a warning), is looked
    /// at again next time. A table that went away meanwhile is left out.
    public func analyzeGrownTables() async throws -> [AnalyzedTable] {
        guard case .postgres(let engine) = backend else { return [] }
        let floor = Self.postgresAnalyzeFloorPages
        let grown: [AnalyzedTable]
        do {
            grown = try await engine.backgroundWrite { db in
                try db.execute(sql: "SET LOCAL lock_timeout = '1s'")
                return try StoreRow.fetchAll(
                    db,
                    sql: """
                        SELECT relname, relpages, pages FROM (
                          SELECT c.relname::text AS relname, c.relpages::bigint AS relpages,
                            pg_relation_size(c.oid) / current_setting('block_size')::bigint AS pages
                          FROM pg_class c
                          WHERE c.relkind = 'r' AND pg_has_role(c.relowner, 'USAGE')
                            AND c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema())
                        ) t
                        WHERE pages >= GREATEST(2 * relpages, \(floor))
                        ORDER BY pages
                        """
                ).map { AnalyzedTable(name: $0["relname"], pagesKnown: $0["relpages"], pages: $0["pages"]) }
            }
        } catch let error as PostgresError where error.sqlState == "55P03" {
            logger.debug("left the tables' statistics for the next look: a table's lock is held")
            return []
        }
        var analyzed: [AnalyzedTable] = []
        for table in grown {
            let quoted = "\"" + table.name.replacingOccurrences(of: "\"", with: "\"\"") + "\""
            do {
                let known = try await engine.backgroundWrite { db in
                    try db.execute(sql: "ANALYZE (SKIP_LOCKED) \(quoted)")
                    return try Int64.fetchOne(
                        db, sql: "SELECT relpages::bigint FROM pg_class WHERE oid = to_regclass(?)", arguments: [quoted])
                }
                if let known, known != table.pagesKnown {
                    analyzed.append(table)
                } else {
                    logger.debug("left a table's statistics for the next look: skipped", metadata: ["table": "\(table.name)"])
                }
            } catch let error as PostgresError where error.sqlState != nil {
                // PostgreSQL's refusal of this table (it went away, say): the others go on.
                logger.debug(
                    "left a table's statistics for the next look", metadata: ["table": "\(table.name)", "error": "\(error)"])
            }
        }
        return analyzed
    }

    /// The default logger: notices and up (tests and tools open databases often).
    public static var quietLogger: Logger {
        var logger = Logger(label: "ksmfleet.store")
        logger.logLevel = .notice
        return logger
    }

    /// Runs `body` in a read transaction (a consistent snapshot on both engines).
    func read<T: Sendable>(_ body: @escaping @Sendable (StoreDB) throws -> T) async throws -> T {
        switch backend {
        case .sqlite(let pool, _): return try await pool.read { db in try body(StoreDB(.sqlite(db))) }
        case .postgres(let engine): return try await engine.read(body)
        }
    }

    /// Runs `body`, which makes exactly one query, as `read` does: on SQLite in a read
    /// transaction; on PostgreSQL outside a transaction block, where a lone statement has a
    /// snapshot of its own (`PostgresEngine.readStatement`: a round trip instead of three). For
    /// the reads made per request, such as a long-poll's first.
    func readStatement<T: Sendable>(_ body: @escaping @Sendable (StoreDB) throws -> T) async throws -> T {
        switch backend {
        case .sqlite(let pool, _): return try await pool.read { db in try body(StoreDB(.sqlite(db))) }
        case .postgres(let engine): return try await engine.readStatement(body)
        }
    }

    /// Runs `body` in a write transaction: committed when it returns, rolled back when it throws.
    func write<T: Sendable>(_ body: @escaping @Sendable (StoreDB) throws -> T) async throws -> T {
        switch backend {
        case .sqlite(let pool, _): return try await pool.write { db in try body(StoreDB(.sqlite(db))) }
        case .postgres(let engine): return try await engine.write(body)
        }
    }

    /// Runs `body` in a write transaction of background work (rollups, retention): on PostgreSQL
    /// on a connection of its own, so that ingest does not wait behind it; SQLite has one writer.
    func backgroundWrite<T: Sendable>(_ body: @escaping @Sendable (StoreDB) throws -> T) async throws -> T {
        switch backend {
        case .sqlite(let pool, _): return try await pool.write { db in try body(StoreDB(.sqlite(db))) }
        case .postgres(let engine): return try await engine.backgroundWrite(body)
        }
    }

    /// Applies the embedded migrations that the database lacks, all in one transaction, in
    /// number order: every one not recorded in `schema_migrations`, not only those above the
    /// highest recorded (a migration that landed after a higher-numbered one, from work merged
    /// out of order, is applied too instead of being skipped for good).
    private func migrate() throws {
        let path = self.path
        let migrations = engine == .sqlite ? allMigrations : allPostgresMigrations
        let latest = migrations.map(\.number).max() ?? 0
        let body: (StoreDB) throws -> [String] = { db in
            if db.engine == .postgres {
                // Text goes to the server as UTF-8: a database in another encoding converts it
                // (and fails a request on a character it lacks) or, in SQL_ASCII, stores any bytes.
                let encoding = try String.fetchOne(
                    db, sql: "SELECT pg_encoding_to_char(encoding) FROM pg_database WHERE datname = current_database()")
                guard encoding == "UTF8" else { throw StoreError.databaseNotUTF8(path: path, encoding: encoding ?? "unknown") }
                // Replicas starting together: the second waits here, then finds nothing to do
                // (READ COMMITTED, `migrateSync`: the statements after the wait see what the
                // first one committed).
                try db.execute(sql: "SELECT pg_advisory_xact_lock(\(PostgresLocks.migrations))")
            }
            try db.execute(
                sql: """
                    CREATE TABLE IF NOT EXISTS schema_migrations (
                      version BIGINT PRIMARY KEY NOT NULL, name TEXT NOT NULL, applied_at BIGINT NOT NULL)
                    """)
            let recorded = Set(try Int.fetchAll(db, sql: "SELECT version FROM schema_migrations"))
            let current = recorded.max() ?? 0
            if current > latest {
                throw StoreError.databaseTooNew(path: path, database: current, supported: latest)
            }
            var names: [String] = []
            for m in migrations.sorted(by: { $0.number < $1.number }) where !recorded.contains(m.number) {
                try db.executeScript(m.sql)
                try db.execute(
                    sql: "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    arguments: [m.number, m.name, Time.ms(Date())])
                names.append(m.name)
            }
            return names
        }
        let applied: [String]
        switch backend {
        case .sqlite(let pool, _): applied = try pool.write { db in try body(StoreDB(.sqlite(db))) }
        case .postgres(let engine): applied = try engine.migrateSync(body)
        }
        if !applied.isEmpty {
            logger.info(
                "applied schema migrations",
                metadata: ["migrations": "\(applied.joined(separator: ", "))", "path": "\(path)", "engine": "\(engine)"])
        }
    }

    /// The schema version recorded in the database.
    public func schemaVersion() async throws -> Int {
        try await read { db in try Int.fetchOne(db, sql: "SELECT MAX(version) FROM schema_migrations") ?? 0 }
    }

    /// True when the database answers a query (for `/readyz`).
    public func ping() async -> Bool {
        do {
            return try await read { db in try Int.fetchOne(db, sql: "SELECT 1") } == 1
        } catch {
            return false
        }
    }

    /// Closes the connections (tests that reopen the same file; the server simply exits).
    public func close() throws {
        switch backend {
        case .sqlite(let pool, let checkpointer):
            checkpointer.close()
            try pool.close()
        case .postgres(let engine):
            engine.close()
        }
    }
}

/// Advisory lock keys (PostgreSQL), one per job; arbitrary constants ("ksmf" + a number).
enum PostgresLocks {
    static let migrations: Int64 = 0x6B73_6D66_0001
    static let background: Int64 = 0x6B73_6D66_0002
}

/// Unix milliseconds, the time unit of the schema.
enum Time {
    static func ms(_ date: Date) -> Int64 { Int64((date.timeIntervalSince1970 * 1000).rounded()) }
    static func date(_ ms: Int64) -> Date { Date(timeIntervalSince1970: Double(ms) / 1000) }
    static func date(_ ms: Int64?) -> Date? { ms.map { date($0) } }
}

/// JSON as stored in TEXT columns (the wire encoding: ISO 8601 dates, sorted keys). Written by
/// `SortedJSONEncoder`: the bytes of `StrictJSON.encoder()` in about half the time.
enum StoredJSON {
    static func encode<T: Encodable>(_ value: T) throws -> String {
        String(decoding: try SortedJSONEncoder().encode(value), as: UTF8.self)
    }
    /// A JSON array of strings, as `encode` writes it, without going through `Encodable`: node
    /// ids bound to a statement (`StoreDB.inJSONArray`), 30,000 of them for a fleet-wide change,
    /// and a group commit's on every group.
    static func strings(_ values: some Collection<String>) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(values.count * 18 + 2)
        JSONText.strings(values, into: &out)
        return String(decoding: out, as: UTF8.self)
    }
    static func decode<T: Decodable>(_ type: T.Type, _ text: String) throws -> T {
        try StrictJSON.decoder().decode(type, from: Data(text.utf8))
    }
}

/// A config change another replica committed (PostgreSQL notifications). The config itself is
/// decoded only when asked for (`config`): a replica hears every change of the fleet, its own
/// included, and most of them concern nodes that wait on another replica or that it has woken
/// already (`ConfigWaiters.interest`).
public struct ConfigChangeNotice: Sendable, Equatable {
    public var nodeId: String
    /// The node was deleted.
    public var deleted: Bool
    /// The new generation (nil when deleted, or in an unreadable notice).
    public var generation: Int64?
    var kickCounter: Int64
    /// The new config as stored; nil when deleted or when it did not fit the notification.
    var configJSON: String?
    /// Not a config change: the node's token changed (a rotation, a re-registration, an admin's
    /// rotation request, the node's deletion; postgres migration 0019). A replica forgets what
    /// it remembered of the node's tokens.
    public var tokenChanged = false

    /// The new config, decoded; nil when the node was deleted, or when the config must be read
    /// from the store (it was too long to travel with the notice, or its JSON does not decode).
    public var config: NodeConfig? {
        var once = ConfigDecoding()
        return config(decoding: &once)
    }

    /// `config`, decoding each config text once across the notices given the same `decoding`:
    /// the nodes of one notification share their config (a change of 10,000 nodes to one
    /// config came as 66 notifications of up to 153 nodes in `psql`).
    public func config(decoding: inout ConfigDecoding) -> NodeConfig? {
        guard !deleted, let generation, let configJSON else { return nil }
        let config: KSMConfig?
        if let last = decoding.last, last.json == configJSON {
            config = last.config
        } else {
            config = try? StoredJSON.decode(KSMConfig.self, configJSON)
            decoding.last = (configJSON, config)
        }
        guard let config else { return nil }
        return NodeConfig(generation: generation, kickCounter: kickCounter, config: config)
    }

    /// Parses a `ksmfleet_config` payload: one node's change or deletion
    /// (migrations/postgres/0002_config_notify.sql), one node's token change (0019), or the
    /// nodes an UPDATE gave one config (0015_config_notify_grouped.sql, or the apply's own:
    /// `ConfigNotices`). nil: unreadable.
    ///
    /// A replica parses every notice of the fleet, its own included: `NoticeScanner` reads the
    /// objects PostgreSQL's `json_build_object` writes in about a tenth of Foundation's
    /// `JSONDecoder`'s time (a fifth of the replicas' CPU in the second after a fleet-wide
    /// change went to it when each node came alone). What the scanner does not take (another
    /// key, a number that is not a whole one) goes to `JSONDecoder`, which then decides.
    static func parse(_ payload: String) -> [ConfigChangeNotice]? {
        if let f = NoticeScanner.scan(payload) {
            return notices(n: f.n, g: f.g, k: f.k, c: f.c, deleted: f.deleted, u: f.u, token: f.token)
        }
        return decoded(payload)
    }

    /// `parse` by Foundation's `JSONDecoder` (what the scanner leaves, and the tests' reference).
    static func decoded(_ payload: String) -> [ConfigChangeNotice]? {
        struct Entry: Decodable {
            var entry: NoticeScanner.Entry
            init(from decoder: any Decoder) throws {
                var a = try decoder.unkeyedContainer()
                entry = NoticeScanner.Entry(
                    n: try a.decode(String.self), g: try a.decode(Int64.self), k: try a.decode(Int64.self))
                guard a.isAtEnd else {
                    throw DecodingError.dataCorruptedError(in: a, debugDescription: "more than three values")
                }
            }
        }
        struct Payload: Decodable {
            var n: String?
            var g: Int64?
            var k: Int64?
            var c: String?
            var deleted: Bool?
            var u: [Entry]?
            var token: Bool?
        }
        guard let p = try? JSONDecoder().decode(Payload.self, from: Data(payload.utf8)) else { return nil }
        return notices(n: p.n, g: p.g, k: p.k, c: p.c, deleted: p.deleted, u: p.u?.map(\.entry), token: p.token)
    }

    /// The notices of a payload's fields: with `u`, each of its nodes with config `c` (`n`, `g`,
    /// `k`, `deleted` and `token` must be absent); with `token`, node `n`'s token change (nothing
    /// else may be there); otherwise node `n`'s change or deletion.
    private static func notices(
        n: String?, g: Int64?, k: Int64?, c: String?, deleted: Bool?, u: [NoticeScanner.Entry]?, token: Bool?
    ) -> [ConfigChangeNotice]? {
        if let token {
            guard token, let n, g == nil, k == nil, c == nil, deleted == nil, u == nil else { return nil }
            return [ConfigChangeNotice(nodeId: n, deleted: false, generation: nil, kickCounter: 0, configJSON: nil, tokenChanged: true)]
        }
        if let u {
            guard n == nil, g == nil, k == nil, deleted == nil else { return nil }
            return u.map { ConfigChangeNotice(nodeId: $0.n, deleted: false, generation: $0.g, kickCounter: $0.k, configJSON: c) }
        }
        guard let n else { return nil }
        if deleted == true {
            return [ConfigChangeNotice(nodeId: n, deleted: true, generation: nil, kickCounter: 0, configJSON: nil)]
        }
        return [ConfigChangeNotice(nodeId: n, deleted: false, generation: g, kickCounter: k ?? 0, configJSON: c)]
    }
}

/// The config text last decoded by `ConfigChangeNotice.config(decoding:)`, and what it gave.
public struct ConfigDecoding {
    var last: (json: String, config: KSMConfig?)?
    public init() {}
}

extension FleetDatabase {
    /// Whether several server processes may share this store (PostgreSQL).
    public var isShared: Bool { engine == .postgres }

    /// Hands every config change committed by any process on this store to `handler`, one
    /// notification's changes at a time (several nodes for an UPDATE of several), until the
    /// task is cancelled. Only PostgreSQL has other processes to hear from (LISTEN/NOTIFY); on
    /// SQLite it returns at once. `resync(first)` is called each time listening starts (at
    /// start, `first`, and after a lost connection came back): changes committed before it were
    /// not heard. `interrupted` is called when listening stops (a lost connection, or one that
    /// did not answer a check within `check`: it is asked every `check`).
    public func followConfigChanges(
        _ handler: @escaping @Sendable ([ConfigChangeNotice]) -> Void, resync: @escaping @Sendable (_ first: Bool) -> Void,
        interrupted: @escaping @Sendable () -> Void = {}, check: Duration = .seconds(10)
    ) async {
        guard case .postgres(let engine) = backend else { return }
        let logger = self.logger
        await engine.listen(
            channel: "ksmfleet_config",
            handler: { payload in
                guard let notices = ConfigChangeNotice.parse(payload) else {
                    // Some node's config changed and nobody can tell whose: as after a lost
                    // connection, what was heard is not trusted and the waiting polls read the
                    // store again, rather than seeing the change at their timeout.
                    logger.warning("unreadable config notification", metadata: ["payload": "\(payload.prefix(200))"])
                    resync(false)
                    return
                }
                handler(notices)
            }, onListening: resync, onInterrupted: interrupted, check: check)
    }

    /// True when this process should run the background work (rollups, retention) now. On
    /// SQLite always (one server per file); on PostgreSQL for the one replica holding the
    /// background advisory lock; another takes over when that replica's connection ends. Nil
    /// when PostgreSQL could not be asked (it does not answer): neither this replica nor, as far
    /// as it knows, another runs the work.
    public func holdsBackgroundLock() async -> Bool? {
        guard case .postgres(let engine) = backend else { return true }
        return await engine.onThread { engine.holdsBackgroundLock() }
    }
}

extension FleetDatabase {
    /// How long a request's transaction may wait for PostgreSQL before its connection is closed
    /// and the request fails as the database being unavailable (none until set: the server sets
    /// it; work marked `DatabaseWork.isBackground` has none); SQLite has its own busy timeout
    /// and nothing to wait for over a network.
    public func setRequestDeadline(_ deadline: Duration?) {
        guard case .postgres(let engine) = backend else { return }
        engine.requestDeadline.withLock { $0 = deadline }
    }
}

/// The database work a shutdown gave up (`FleetDatabase.abandonWorkUnderWay`).
public struct AbandonedWork: Sendable, Equatable {
    /// Transactions whose connections were closed under them (they roll back).
    public var transactions: Int
    /// Connections being opened, given up before PostgreSQL answered.
    public var connecting: Int
    /// Work still waiting for a connection thread, and sample batches waiting for their group
    /// commit (with a deadline: `SampleGroupCommit.QueueWatch`), answered as the shutdown
    /// without running.
    public var queued: Int
    public var isEmpty: Bool { transactions == 0 && connecting == 0 && queued == 0 }

    public init(transactions: Int, connecting: Int, queued: Int = 0) {
        self.transactions = transactions
        self.connecting = connecting
        self.queued = queued
    }
}

extension FleetDatabase {
    /// At the end of a shutdown's grace: gives up the database work still under way (PostgreSQL:
    /// closes its connections, its transactions roll back, connections being opened are given
    /// up, and nothing new starts) so that a database that stopped answering does not hold the
    /// process. What was given up. SQLite has nothing to wait for over a network: none.
    public func abandonWorkUnderWay() -> AbandonedWork {
        guard case .postgres(let engine) = backend else { return AbandonedWork(transactions: 0, connecting: 0) }
        return engine.abandonWorkUnderWay()
    }

    /// Whether `abandonWorkUnderWay` was called: work failing from then on fails because of it.
    public var workAbandoned: Bool {
        guard case .postgres(let engine) = backend else { return false }
        return engine.workAbandoned
    }

    /// Gives up the background lock (at shutdown: another replica takes the work over at once
    /// instead of when this process's connection ends).
    public func releaseBackgroundLock() async {
        guard case .postgres(let engine) = backend else { return }
        await engine.releaseBackgroundLock()
    }
}
