import Foundation
import Logging
import NIOCore
import PostgresNIO
import Synchronization

/// The store's statements that run often, prepared on each connection that runs them.
///
/// postgres-nio sends a plain query as an unnamed statement (Parse, Bind, Execute), so PostgreSQL
/// parses, analyses and plans it on every call; for the store's small hot statements that was
/// most of PostgreSQL's work (`pgbench` on the push transaction and the long-poll's config read
/// over 10,000 nodes: 0.50–0.63 ms of PostgreSQL CPU a push as unnamed statements, 0.18 ms
/// prepared; the read 0.107 against 0.027 ms, docs/benchmarks.md). A prepared statement is
/// parsed once per connection and, after a few executions, runs a cached generic plan.
///
/// This registry gives a statement a name once it has run `threshold` times in this process, and
/// postgres-nio prepares a name the first time a connection executes it (its
/// `PostgresPreparedStatement` API, which keeps what each connection has prepared and dies with
/// the connection). The name stands for the SQL text and the types of its arguments (a NULL
/// argument leaves its parameter's type to PostgreSQL, so it is another statement), exactly what
/// the unnamed statement would have declared.
///
/// postgres-nio remembers a failed preparation for the connection's life and answers every later
/// use of the name there with the same error, without asking the server. PostgreSQL takes locks
/// while it parses, so even a deadlock or a lock timeout can fail a preparation. So a failure on a
/// connection where the name has not yet run well gives the statement a new name (a failure of
/// the moment does not stick), unless it cannot have come from preparing (a constraint, a write
/// refused as read-only) or the connection is gone (no answer, a shutdown, a connection failure); a failure where the name ran well before (a serialization failure, most
/// often) leaves it alone. A statement renamed `maxRevisions` times runs unnamed from then on.
final class PreparedStatements: Sendable {
    /// Executions in this process before a statement is prepared (`KSMFLEET_POSTGRES_PREPARE_AFTER`;
    /// 0: never): one-off statements (a report's) stay unnamed and cost nothing on the server.
    let threshold: Int
    static let defaultThreshold = 3
    /// At most this many statements are prepared (each prepared statement holds memory in every
    /// PostgreSQL backend that prepared it); later ones run unnamed.
    static let maxPrepared = 192
    /// Statements with more arguments run unnamed: the multi-row statements of a group commit
    /// or a rollup pass (up to 7,424 arguments) spread their planning over their rows already,
    /// their NULLs make a new statement of nearly every call, and a prepared one would hold a
    /// large plan in every backend. An agent's lone push of one sample has 40.
    static let maxArguments = 64
    /// Statements counted towards the threshold, and statements known never to run prepared;
    /// past this many either starts again.
    static let maxCounted = 4_096
    static let maxRevisions = 32
    /// Connections remembered per statement as having run its name well; past this many the
    /// statement forgets them (a later failure then renames it, which costs one preparation).
    static let maxConfirmed = 64

    struct Key: Hashable {
        /// The text sent (`$n` placeholders).
        var sql: String
        /// The arguments' types as declared to PostgreSQL (`SQLValue.typeCode`).
        var types: [UInt8]

        init(sql: String, types: [UInt8]) {
            self.sql = sql
            self.types = types
        }

        init(sql: String, values: [SQLValue]) {
            self.init(sql: sql, types: values.map(\.typeCode))
        }
    }

    private struct Entry {
        var id: Int
        var kind: Kind
        var revision = 0
        var disabled = false
        /// Connections (`PostgresConnection.id`) on which the current name ran well.
        var confirmed: Set<Int> = []
        var name: String? { disabled ? nil : "ksmfleet_\(id)_\(revision)" }
    }

    private struct State {
        var counts: [Key: Int] = [:]
        var known: [Key: Entry] = [:]
        var unnamed: Set<Key> = []
        var nextID = 1
        var limitLogged = false
    }

    private let state = Mutex(State())
    private let logger: Logger

    init(threshold: Int = PreparedStatements.defaultThreshold, logger: Logger) {
        self.threshold = threshold
        self.logger = logger
    }

    /// The threshold from the environment (`KSMFLEET_POSTGRES_PREPARE_AFTER`), or the default.
    static func thresholdFromEnvironment() -> Int {
        ProcessInfo.processInfo.environment["KSMFLEET_POSTGRES_PREPARE_AFTER"].flatMap { Int($0) }.map { max(0, $0) }
            ?? defaultThreshold
    }

    /// The statement's name and how to read its result when it is to run prepared (counting
    /// this execution); nil to run it unnamed.
    func lookup(_ key: Key) -> (name: String, kind: Kind)? {
        guard threshold > 0, key.types.count <= Self.maxArguments else { return nil }
        var reachedLimit = false
        let found = state.withLock { s -> (String, Kind)? in
            if let entry = s.known[key] {
                guard let name = entry.name else { return nil }
                return (name, entry.kind)
            }
            if s.unnamed.contains(key) { return nil }
            let count = (s.counts[key] ?? 0) + 1
            guard count >= threshold, s.known.count < Self.maxPrepared else {
                if count >= threshold && !s.limitLogged {
                    s.limitLogged = true
                    reachedLimit = true
                }
                if s.counts.count >= Self.maxCounted { s.counts.removeAll(keepingCapacity: true) }
                s.counts[key] = count
                return nil
            }
            s.counts[key] = nil
            guard let kind = Self.kind(of: key.sql) else {
                if s.unnamed.count >= Self.maxCounted { s.unnamed.removeAll(keepingCapacity: true) }
                s.unnamed.insert(key)
                return nil
            }
            let entry = Entry(id: s.nextID, kind: kind)
            s.nextID += 1
            s.known[key] = entry
            return (entry.name!, kind)
        }
        if reachedLimit {
            logger.notice(
                "PostgreSQL prepared statements: the limit is reached, statements run often from now on run unnamed",
                metadata: ["limit": "\(Self.maxPrepared)"])
        }
        return found
    }

    /// A prepared execution of `key` ran well on `connection`.
    func succeeded(_ key: Key, connection: Int) {
        state.withLock { s in
            guard s.known[key]?.confirmed.contains(connection) == false else { return }
            if s.known[key]!.confirmed.count >= Self.maxConfirmed { s.known[key]!.confirmed.removeAll() }
            s.known[key]!.confirmed.insert(connection)
        }
    }

    /// A prepared execution of `key` failed on `connection` with `error`.
    func failed(_ key: Key, connection: Int, _ error: PostgresError) {
        // No server answer: the connection is gone, and what it had prepared with it; so it is
        // after a shutdown or a connection failure (57P01–57P03, class 08 but for 08P01, a
        // protocol violation such as a wrong bind, which leaves the connection open and may be
        // the preparation's). A constraint, or a write refused in a read-only transaction (25006: a
        // standby, a database made read-only), is checked when a statement runs, never when it
        // is prepared. (Counted, a minute of a read-only database's refused pushes on new
        // connections would rename the push's statement past `maxRevisions`, and it would run
        // unnamed, parsed and planned at every push, for the rest of the process's life.)
        guard let sqlState = error.sqlState, !sqlState.hasPrefix("23"), !sqlState.hasPrefix("08") || sqlState == "08P01",
            !sqlState.hasPrefix("57P"), sqlState != "25006"
        else { return }
        let (revision, disabled) = state.withLock { s -> (Int, Bool) in
            guard var entry = s.known[key], !entry.disabled, !entry.confirmed.contains(connection) || error.planChanged
            else { return (0, false) }
            entry.revision += 1
            entry.confirmed = []
            entry.disabled = entry.revision >= Self.maxRevisions
            s.known[key] = entry
            return (entry.revision, entry.disabled)
        }
        guard revision > 0 else { return }
        logger.log(
            level: disabled ? .warning : .debug,
            disabled ? "prepared statement failed too often, runs unnamed from now on" : "prepared statement renamed after a failure",
            metadata: ["revision": "\(revision)", "connection": "\(connection)", "error": "\(error)"])
    }

    /// How many statements run prepared (tests).
    var preparedCount: Int { state.withLock { s in s.known.values.filter { $0.name != nil }.count } }

    /// The name `key` runs under now (tests).
    func currentName(_ key: Key) -> String? { state.withLock { s in s.known[key]?.name } }

    /// Whether a statement may run prepared, and how its result is read:
    /// - `.rows`: a query, or a write with RETURNING; its rows are the result, their number the
    ///   count of rows changed or read, as the command tag would say;
    /// - `.count`: an `INSERT … VALUES` without RETURNING, run with `RETURNING 1` added, whose
    ///   rows are counted (as many as the rows it stored, at most its VALUES rows).
    ///
    /// postgres-nio 1.33 gives no command tag for a prepared statement: its rows' sequence keeps
    /// it, and its `execute` for statements without rows stops the process (it reads the tag of a
    /// result nobody consumed). So an UPDATE or DELETE without RETURNING, whose changed rows
    /// could be many, and anything else (transaction control, a WITH whose main part is not a
    /// SELECT, DDL) runs unnamed.
    static func kind(of sql: String) -> Kind? {
        let head = sql.drop(while: { $0.isWhitespace }).prefix(7).uppercased()
        // Common table expressions (data-modifying ones included) before a main SELECT: rows.
        // Before an INSERT, UPDATE or DELETE a RETURNING may be a CTE's, not the main part's.
        if head.hasPrefix("WITH") {
            return Placeholders.mainVerb(sql) == "SELECT" ? .rows : nil
        }
        if head.hasPrefix("SELECT") { return .rows }
        guard head.hasPrefix("INSERT") || head.hasPrefix("UPDATE") || head.hasPrefix("DELETE") else { return nil }
        if Placeholders.hasWord("RETURNING", in: sql) { return .rows }
        guard head.hasPrefix("INSERT"), !Placeholders.hasCode(";", in: sql), Placeholders.hasWord("VALUES", in: sql),
            !Placeholders.hasWord("SELECT", in: sql)
        else { return nil }
        return .count
    }

    enum Kind { case rows, count }
}

/// The name and text of the statement being executed: postgres-nio reads a prepared statement's
/// name and SQL from its type (static members, for statements known when the program is
/// compiled); the store's come from the task running it.
private enum CurrentStatement {
    @TaskLocal static var value: (name: String, sql: String) = ("", "")
}

/// A prepared statement that returns rows, handed over as postgres-nio reads them.
private struct RowsStatement: PostgresPreparedStatement {
    static var name: String { CurrentStatement.value.name }
    static var sql: String { CurrentStatement.value.sql }
    typealias Row = PostgresRow
    let bindings: PostgresBindings
    func makeBindings() throws -> PostgresBindings { bindings }
    func decodeRow(_ row: PostgresRow) throws -> PostgresRow { row }
}

/// Runs a task's jobs on a connection's event loop: a prepared execution (async in postgres-nio)
/// then costs the thread switches a plain query's future does (the engine's thread to the event
/// loop and back), and never waits for Swift's shared pool, which a busy server keeps full.
private final class EventLoopTaskExecutor: TaskExecutor {
    let loop: any EventLoop
    init(_ loop: any EventLoop) { self.loop = loop }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        loop.execute { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}

extension PostgresConnection {
    /// Executes the prepared statement `name` (prepared on this connection first if it is not
    /// yet), blocking this thread: returns the rows it changed or returned, handing each
    /// returned row to `onRow`. The thread must be one of the engine's, never one of Swift
    /// concurrency's pool (`PostgresEngine.migrateSync` runs on its caller's thread, so its
    /// sessions prepare nothing).
    func executePrepared(
        name: String, sql: String, bindings: PostgresBindings, kind: PreparedStatements.Kind, logger: Logger,
        _ onRow: @escaping @Sendable (PostgresRow) throws -> Void
    ) throws -> Int {
        precondition(!eventLoop.inEventLoop, "a prepared statement waited for on its own connection's event loop")
        let outcome = Mutex<Result<Int, any Error>?>(nil)
        let done = DispatchSemaphore(value: 0)
        // Ends the wait if the connection closes before the answer (`PendingAnswers`).
        PendingAnswers.waiting(on: self) {
            outcome.withLock { if $0 == nil { $0 = .failure(PostgresError.connectionClosed(sql: sql)) } }
            done.signal()
        }
        defer { PendingAnswers.answered(self) }
        Task(executorPreference: EventLoopTaskExecutor(eventLoop)) {
            let result: Result<Int, any Error>
            do {
                let text = kind == .count ? sql + "\nRETURNING 1" : sql
                let count = try await CurrentStatement.$value.withValue((name, text)) {
                    var count = 0
                    for try await row in try await self.execute(RowsStatement(bindings: bindings), logger: logger) {
                        if kind == .rows { try onRow(row) }
                        count += 1
                    }
                    return count
                }
                result = .success(count)
            } catch {
                result = .failure(error)
            }
            outcome.withLock { if $0 == nil { $0 = result } }
            done.signal()
        }
        done.wait()
        return try outcome.withLock { $0! }.get()
    }
}
