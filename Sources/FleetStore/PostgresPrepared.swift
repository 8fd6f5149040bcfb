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
/// postgres-nio remembers a failed preparation for good on that connection and answers every
/// later use of the name with the same error. A failure that can only come from running a
/// statement (a constraint, a serialization failure or deadlock, bad data) leaves the name alone;
/// any other gives the statement a new name, so that a failure of the moment (a lock timeout
/// during a migration, a plan whose result type changed under it) does not stick to a connection;
/// a statement that fails so `maxRevisions` times is run unnamed from then on.
final class PreparedStatements: Sendable {
    /// Executions in this process before a statement is prepared: one-off statements (a
    /// report's) stay unnamed and cost nothing on the server.
    static let threshold = 3
    /// At most this many statements are prepared (each prepared statement holds memory in every
    /// PostgreSQL backend that prepared it; statements that never run prepared count too); later
    /// ones run unnamed.
    static let maxPrepared = 192
    /// Statements counted towards the threshold; past this many the counts start again.
    static let maxCounted = 4_096
    static let maxRevisions = 8

    struct Key: Hashable {
        /// The text sent (`$n` placeholders).
        var sql: String
        /// The arguments' types as declared to PostgreSQL (`SQLValue.typeCode`).
        var types: [UInt8]
    }

    private struct Entry {
        var id: Int
        /// Nil: a statement that never runs prepared (`kind(of:)`).
        var kind: Kind?
        var revision = 0
        var disabled = false
        var name: String? { disabled || kind == nil ? nil : "ksmfleet_\(id)_\(revision)" }
    }

    private struct State {
        var counts: [Key: Int] = [:]
        var known: [Key: Entry] = [:]
        var nextID = 1
    }

    private let state = Mutex(State())
    private let logger: Logger

    init(logger: Logger) { self.logger = logger }

    /// The statement's name and how to read its result when it is to run prepared (counting
    /// this execution); nil to run it unnamed.
    func lookup(_ key: Key) -> (name: String, kind: Kind)? {
        state.withLock { s -> (String, Kind)? in
            if let entry = s.known[key] {
                guard let name = entry.name, let kind = entry.kind else { return nil }
                return (name, kind)
            }
            let count = (s.counts[key] ?? 0) + 1
            guard count >= Self.threshold, s.known.count < Self.maxPrepared else {
                if s.counts.count >= Self.maxCounted { s.counts.removeAll(keepingCapacity: true) }
                s.counts[key] = count
                return nil
            }
            s.counts[key] = nil
            let entry = Entry(id: s.nextID, kind: Self.kind(of: key.sql))
            s.nextID += 1
            s.known[key] = entry
            guard let name = entry.name, let kind = entry.kind else { return nil }
            return (name, kind)
        }
    }

    /// A prepared execution of `key` failed with `error`.
    func failed(_ key: Key, _ error: PostgresError) {
        if let state = error.sqlState, ["22", "23", "40"].contains(state.prefix(2)) { return }
        let (revision, disabled) = state.withLock { s -> (Int, Bool) in
            guard var entry = s.known[key], !entry.disabled else { return (0, false) }
            entry.revision += 1
            entry.disabled = entry.revision >= Self.maxRevisions
            s.known[key] = entry
            return (entry.revision, entry.disabled)
        }
        guard revision > 0 else { return }
        logger.log(
            level: disabled ? .warning : .debug,
            disabled ? "prepared statement failed too often, runs unnamed from now on" : "prepared statement renamed after a failure",
            metadata: ["revision": "\(revision)", "error": "\(error)"])
    }

    /// How many statements run prepared (tests).
    var preparedCount: Int { state.withLock { s in s.known.values.filter { $0.name != nil }.count } }

    /// Whether a statement may run prepared, and how its result is read:
    /// - `.rows`: a query, or a write with RETURNING; its rows are the result, their number the
    ///   count of rows changed or read, as the command tag would say;
    /// - `.count`: an `INSERT … VALUES` without RETURNING, run with `RETURNING 1` added, whose
    ///   rows are counted (as many as the rows it stored, at most its VALUES rows).
    ///
    /// postgres-nio 1.33 gives no command tag for a prepared statement: its rows' sequence keeps
    /// it, and its `execute` for statements without rows stops the process (it reads the tag of a
    /// result nobody consumed). So an UPDATE or DELETE without RETURNING, whose changed rows
    /// could be many, and anything else (transaction control, a WITH, DDL) runs unnamed.
    static func kind(of sql: String) -> Kind? {
        let head = sql.drop(while: { $0.isWhitespace }).prefix(7).uppercased()
        if head.hasPrefix("SELECT") { return .rows }
        guard head.hasPrefix("INSERT") || head.hasPrefix("UPDATE") || head.hasPrefix("DELETE") else { return nil }
        if Placeholders.hasWord("RETURNING", in: sql) { return .rows }
        let end = sql.reversed().drop(while: { $0.isWhitespace }).first
        guard head.hasPrefix("INSERT"), end != ";", Placeholders.hasWord("VALUES", in: sql),
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
        let outcome = Mutex<Result<Int, any Error>?>(nil)
        let done = DispatchSemaphore(value: 0)
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
            outcome.withLock { $0 = result }
            done.signal()
        }
        done.wait()
        return try outcome.withLock { $0! }.get()
    }
}
