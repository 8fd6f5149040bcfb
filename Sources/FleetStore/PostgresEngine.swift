import FleetAPI
import Foundation
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import PostgresNIO
import Synchronization

/// One PostgreSQL connection lent to a store closure, inside a transaction. Its calls block the
/// calling thread (never a Swift concurrency thread: `PostgresEngine` runs closures on threads
/// of its own), so the store's logic is the same synchronous code on both engines.
public final class PostgresSession {
    let connection: PostgresConnection
    let logger: Logger
    /// Rows changed by the latest statement.
    private(set) var lastChanges = 0
    /// A failure that ended the transaction as a whole (serialization, deadlock, lost
    /// connection): savepoints cannot undo it, the engine retries or fails the transaction.
    private(set) var transactionDoomed = false

    /// What a session outside a transaction block may still run (`PostgresEngine.readStatementSync`,
    /// `writeStatementSync`): one statement, because a second would see another snapshot and
    /// commit on its own. Nil inside a transaction block.
    enum Limit {
        /// One query (SELECT or WITH) and nothing else.
        case oneQuery
        /// One statement of any kind.
        case oneStatement
    }
    private let limit: Limit?
    /// The one statement `limit` allows has run.
    private var spent = false
    /// The engine's prepared statements (nil: every statement runs unnamed).
    let prepared: PreparedStatements?

    init(connection: PostgresConnection, logger: Logger, limit: Limit? = nil, prepared: PreparedStatements? = nil) {
        self.connection = connection
        self.logger = logger
        self.limit = limit
        self.prepared = prepared
    }

    /// Runs a statement with `?` placeholders; returns its rows (engine-neutral values).
    ///
    /// Rows arrive through postgres-nio's row callback and are decoded as they come: its
    /// collect-everything `query(…) -> EventLoopFuture<PostgresQueryResult>` copies the rows read
    /// so far on every network read (its row stream appends to an array still held by its state),
    /// so a result of 3.5 million rows took 52 s of CPU, quadratic in the rows.
    @discardableResult
    func run(_ sql: String, _ arguments: StoreArguments) throws -> [ValueRow] {
        let collected = RowCollector()
        try each(sql, arguments) { row in try collected.add(row) }
        return collected.rows
    }

    /// Runs a statement and hands each row to `onRow` as postgres-nio reads it, on its event
    /// loop while this thread waits for the statement's end (which orders the two): for large
    /// results read into something other than engine-neutral rows (`rawSamples`).
    func each(_ sql: String, _ arguments: StoreArguments, _ onRow: @escaping @Sendable (PostgresRow) throws -> Void) throws {
        if let limit {
            let head = sql.drop(while: { $0.isWhitespace }).prefix(6).uppercased()
            guard !spent, limit == .oneStatement || head == "SELECT" || head.hasPrefix("WITH") else {
                throw PostgresError(SingleStatementMisuse(limit: limit), sql: sql)
            }
            spent = true
        }
        var binds = PostgresBindings(capacity: arguments.values.count)
        for value in arguments.values {
            switch value {
            case .null: binds.appendNull()
            case .int(let v): binds.append(v)
            case .double(let v): binds.append(v)
            case .text(let v): binds.append(v)
            case .blob(let v): binds.append(ByteBuffer(bytes: v))
            }
        }
        let text = Placeholders.numbered(sql)
        let key = prepared.map { _ in PreparedStatements.Key(sql: text, values: arguments.values) }
        let named = key.flatMap { prepared?.lookup($0) }
        do {
            if let (name, kind) = named, let key {
                lastChanges = try connection.executePrepared(
                    name: name, sql: text, bindings: binds, kind: kind, logger: logger, onRow)
                prepared?.succeeded(key, connection: connection.id)
            } else {
                let answer = connection.eventLoop.makePromise(of: PostgresQueryMetadata.self)
                PendingAnswers.waiting(on: connection) { answer.fail(PostgresError.connectionClosed(sql: sql)) }
                defer { PendingAnswers.answered(connection) }
                connection.query(PostgresQuery(unsafeSQL: text, binds: binds), logger: logger, onRow).cascade(to: answer)
                lastChanges = try answer.futureResult.wait().rows ?? 0
            }
        } catch {
            let e = PostgresError(error, sql: sql)
            if e.endsTransaction { transactionDoomed = true }
            if named != nil, let key { prepared?.failed(key, connection: connection.id, e) }
            throw e
        }
    }

    /// Several statements without arguments, one after the other (postgres-nio speaks only the
    /// extended protocol, one statement per query).
    func script(_ sql: String) throws {
        for statement in Placeholders.statements(sql) { try run(statement, []) }
    }

    /// Rows of a query, as engine-neutral values.
    func rows(_ sql: String, _ arguments: StoreArguments) throws -> [ValueRow] {
        try run(sql, arguments)
    }

    static func value(_ cell: PostgresCell) throws -> SQLValue {
        guard var bytes = cell.bytes else { return .null }
        // The common cells of a report's rows read from their binary form here: postgres-nio's
        // generic `decode` costs several times the read.
        if cell.format == .binary {
            switch cell.dataType {
            case .int8 where bytes.readableBytes == 8:
                return .int(bytes.readInteger(as: Int64.self)!)
            case .float8 where bytes.readableBytes == 8:
                return .double(Double(bitPattern: bytes.readInteger(as: UInt64.self)!))
            case .text, .varchar:
                return .text(bytes.readString(length: bytes.readableBytes)!)
            default: break
            }
        }
        switch cell.dataType {
        case .int8: return .int(try cell.decode(Int64.self))
        case .int4: return .int(Int64(try cell.decode(Int32.self)))
        case .int2: return .int(Int64(try cell.decode(Int16.self)))
        case .float8: return .double(try cell.decode(Double.self))
        case .float4: return .double(Double(try cell.decode(Float.self)))
        case .bool: return .int(try cell.decode(Bool.self) ? 1 : 0)
        case .numeric:
            // SUM and AVG of integers: whole numbers stay integers (as in SQLite).
            let text = NSDecimalNumber(decimal: try cell.decode(Decimal.self)).stringValue
            if let i = Int64(text) { return .int(i) }
            return .double(Double(text) ?? .nan)
        case .bytea:
            var buffer = cell.bytes!
            return .blob(buffer.readBytes(length: buffer.readableBytes) ?? [])
        default:
            return .text(try cell.decode(String.self))
        }
    }
}

/// A session outside a transaction block (`PostgresEngine.readStatementSync`,
/// `writeStatementSync`) asked for a second statement, or a single-query read for one that is not
/// a query: a mistake in the store's code, which its tests catch.
struct SingleStatementMisuse: Error, CustomStringConvertible {
    let limit: PostgresSession.Limit
    var description: String {
        limit == .oneQuery
            ? "a single-statement read may run one query (SELECT or WITH) and nothing else"
            : "a single-statement session may run one statement and nothing else"
    }
}

/// Decodes rows as postgres-nio hands them over (on its event loop; read after the query's
/// future completed, which orders the two).
private final class RowCollector: @unchecked Sendable {
    private(set) var rows: [ValueRow] = []
    private var columns: ColumnIndex?

    func add(_ row: PostgresRow) throws {
        let columns = self.columns ?? ColumnIndex(row.map(\.columnName))
        self.columns = columns
        rows.append(ValueRow(columns: columns, values: try row.map(PostgresSession.value)))
    }
}

/// A PostgreSQL failure, with the server's message and SQLSTATE (postgres-nio's `PSQLError`
/// prints only "Generic description" so that it never leaks data; ours holds the statement's
/// text, never its bound values).
public struct PostgresError: Error, CustomStringConvertible {
    public let sqlState: String?
    public let message: String
    public let sql: String?
    /// The connection could not be made (whatever the server said: not accepting connections,
    /// starting up, too many clients, a password changed) or was lost with no answer from the
    /// server (refused, reset, closed, timed out): PostgreSQL is down, restarting, out of reach
    /// or refuses this server.
    private(set) var connectionFailed: Bool
    /// A write connection was refused a write as read-only (SQLSTATE 25006): the database is a
    /// standby (a failover pointed the server at the old primary) or was made read-only
    /// (`default_transaction_read_only`). On a reader connection, read-only by design, the same
    /// code would be the server's own mistake, not an outage.
    var writeRefusedAsReadOnly = false
    /// The error came from opening a connection.
    let connecting: Bool
    /// The request's transaction was cut at this deadline (`Deadlines`).
    var cutAfter: Duration?
    /// The server is shutting down and gave up its database work under way (`abandonAll`).
    var abandonedAtShutdown = false

    init(sqlState: String?, message: String, sql: String?) {
        self.sqlState = sqlState
        self.message = message
        self.sql = sql
        connectionFailed = false
        connecting = false
    }

    /// The connection closed before the statement was answered: a statement written to a closed
    /// channel is dropped without an answer (NIO removes its handlers), so a wait for one (after
    /// a cut between two statements, say) must end on the close instead.
    static func connectionClosed(sql: String?) -> PostgresError {
        var e = PostgresError(sqlState: nil, message: "the connection closed before the statement was answered", sql: sql)
        e.connectionFailed = true
        return e
    }

    /// Work cut at its deadline (`PostgresEngine.NoAnswer`): "did not finish within …".
    /// `queued`: it never got one of the engine's threads or connections, every one busy.
    static func noAnswer(within limit: Duration, queued: Bool = false) -> PostgresError {
        var e = PostgresError(PostgresEngine.NoAnswer(waited: limit, queued: queued), sql: nil)
        e.cutAfter = limit
        return e
    }

    /// The work was given up by a server shutting down (`PostgresEngine.abandonWorkUnderWay`).
    static func abandoned() -> PostgresError {
        var e = PostgresError(
            sqlState: nil, message: "the server is shutting down and gave up its database work under way", sql: nil)
        e.abandonedAtShutdown = true
        return e
    }

    /// `connecting`: the error came from opening a connection.
    init(_ error: any Error, sql: String?, connecting: Bool = false) {
        if let e = error as? PostgresError {
            self = e
            return
        }
        self.sql = sql
        self.connecting = connecting
        if let e = error as? PSQLError {
            sqlState = e.serverInfo?[.sqlState]
            connectionFailed =
                connecting
                || (e.serverInfo == nil
                    && [.connectionError, .serverClosedConnection, .clientClosedConnection, .uncleanShutdown].contains(e.code))
            if let info = e.serverInfo {
                var text = info[.message] ?? "error"
                if let detail = info[.detail] { text += " (\(detail))" }
                message = text
            } else {
                // No server answer: what failed underneath (connection refused, TLS). A
                // PSQLError underneath prints only postgres-nio's "Generic description".
                let words: String =
                    switch e.code {
                    case .sslUnsupported:
                        "PostgreSQL does not offer TLS (its ssl setting is off), and the URL's sslmode asks for it"
                    case .serverClosedConnection: "PostgreSQL closed the connection"
                    case .clientClosedConnection: "the connection was closed (lost, or cut by this server)"
                    case .uncleanShutdown: "the connection ended without a proper shutdown"
                    default: "\(e.code)"
                    }
                // An underlying PSQLError prints only its generic text: its code says more.
                let underneath = e.underlying.map { ($0 as? PSQLError).map { ": \($0.code)" } ?? ": \($0)" } ?? ""
                message = (e.underlying.flatMap(Self.tlsFailure).map { $0 + "; " } ?? "") + words + underneath
            }
        } else {
            sqlState = nil
            message = "\(error)"
            connectionFailed = connecting
        }
    }

    /// What a TLS failure under a connection attempt means to an operator, in the URL's terms
    /// (`PostgresLocation`), or nil for any other failure.
    static func tlsFailure(_ error: any Error) -> String? {
        if let e = error as? NIOSSLExtraError, e == .failedToValidateHostname {
            return "TLS to PostgreSQL failed: its certificate does not name the URL's host "
                + "(sslmode=verify-full checks the name, or the IP address for an IP host; verify-ca does not)"
        }
        guard error is NIOSSLError || error is BoringSSLError || error is NIOSSLExtraError else { return nil }
        if "\(error)".contains("CERTIFICATE_VERIFY_FAILED") {
            return "TLS to PostgreSQL failed: its certificate did not verify "
                + "(not signed by a CA of the URL's sslrootcert, expired, or not valid yet)"
        }
        return "TLS to PostgreSQL failed"
    }

    /// Why PostgreSQL cannot serve requests now, when this error says so: no connection (down,
    /// restarting, out of reach, refusing this server), a request cut at its deadline or given
    /// up by a server shutting down, writes
    /// refused as read-only, a shutdown under way (SQLSTATE 57P01–57P03: a restart, a fast stop,
    /// a crash's recovery, a server still starting), a connection exception (class 08, but not
    /// 08P01: a protocol violation, such as a bind with the wrong number of parameters, is this
    /// server's mistake and leaves the connection open), no free connection slot (53300) or no
    /// disk space (53100). Nil for anything else (a statement's own error is not an outage).
    var unavailable: DatabaseUnavailable? {
        let summary: String
        switch sqlState {
        case _ where writeRefusedAsReadOnly: summary = "PostgreSQL refuses writes (a standby, or a database made read-only)"
        case _ where cutAfter != nil: summary = "PostgreSQL did not finish within \(PostgresEngine.NoAnswer.seconds(cutAfter!))"
        case _ where abandonedAtShutdown: summary = "the server is shutting down"
        case "57P01", "57P02": summary = "PostgreSQL is shutting down or restarting"
        case "57P03": summary = "PostgreSQL is starting up or shutting down"
        case "53300": summary = "PostgreSQL has no free connection slots"
        case "53100": summary = "PostgreSQL is out of disk space"
        case let state? where state.hasPrefix("08") && state != "08P01": summary = "the connection to PostgreSQL failed"
        case _ where connecting: summary = "PostgreSQL refuses this server's connections or cannot be reached"
        case nil where connectionFailed: summary = "the connection to PostgreSQL was lost"
        default: return nil
        }
        var unavailable = DatabaseUnavailable(
            summary: summary, detail: "PostgreSQL: \(message)" + (sqlState.map { " [SQLSTATE \($0)]" } ?? ""))
        unavailable.atShutdown = abandonedAtShutdown
        return unavailable
    }

    /// Serialization failure or deadlock, or a prepared statement whose table changed shape under
    /// it (`planChanged`): the transaction may succeed when run again.
    var retryable: Bool { sqlState == "40001" || sqlState == "40P01" || planChanged }
    /// A prepared statement's table changed (a migration by another replica, say) so that its
    /// rows would not have the shape it was prepared with; PostgreSQL refuses it from then on,
    /// and it is prepared again under a new name (`PreparedStatements.failed`).
    var planChanged: Bool { sqlState == "0A000" && message.hasPrefix("cached plan must not change result type") }
    /// No server answer (a lost connection), or a failure that aborts the transaction as a whole.
    var endsTransaction: Bool { sqlState == nil || retryable }

    public var description: String {
        var text = "PostgreSQL: \(message)"
        if let sqlState { text += " [SQLSTATE \(sqlState)]" }
        if let sql { text += " in `\(sql.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.joined(separator: " ").prefix(160))`" }
        return text
    }
}

/// `?` placeholders → PostgreSQL's `$1, $2, …` (outside quotes and comments), cached per SQL text.
enum Placeholders {
    private static let cache = Mutex<[String: String]>([:])

    static func numbered(_ sql: String) -> String {
        if let hit = cache.withLock({ $0[sql] }) { return hit }
        var out = ""
        out.reserveCapacity(sql.utf8.count + 16)
        var n = 0
        scan(sql) { ch, code in
            if code && ch == "?" {
                n += 1
                out += "$\(n)"
            } else {
                out.append(ch)
            }
        }
        cache.withLock { if $0.count < 4096 { $0[sql] = out } }
        return out
    }

    /// Whether `word` appears in `sql` as a word of code (outside quotes and comments), in any case.
    static func hasWord(_ word: String, in sql: String) -> Bool {
        let target = word.uppercased()
        var current = ""
        var found = false
        scan(sql) { ch, code in
            if code && (ch.isLetter || ch.isNumber || ch == "_") {
                current.append(contentsOf: ch.uppercased())
            } else {
                if current == target { found = true }
                current = ""
            }
        }
        return found || current == target
    }

    /// The verb of a statement's main part: its first word of code outside parentheses among
    /// SELECT, INSERT, UPDATE and DELETE, uppercased. For `WITH … (…) SELECT …` that is the
    /// SELECT after the common table expressions, whatever they hold. Nil when there is none.
    static func mainVerb(_ sql: String) -> String? {
        let verbs: Set<String> = ["SELECT", "INSERT", "UPDATE", "DELETE"]
        var depth = 0
        var current = ""
        var found: String?
        scan(sql) { ch, code in
            guard found == nil else { return }
            if code && (ch.isLetter || ch.isNumber || ch == "_") {
                current.append(contentsOf: ch.uppercased())
                return
            }
            if depth == 0, verbs.contains(current) { found = current }
            current = ""
            if code && ch == "(" { depth += 1 }
            if code && ch == ")" { depth = max(0, depth - 1) }
        }
        if found == nil, depth == 0, verbs.contains(current) { found = current }
        return found
    }

    /// Whether `character` appears in `sql` as code (outside quotes and comments).
    static func hasCode(_ character: Character, in sql: String) -> Bool {
        var found = false
        scan(sql) { ch, code in if code && ch == character { found = true } }
        return found
    }

    /// A script's statements: split at `;` outside quotes, `$$` bodies and comments; what is
    /// only blanks and comments is dropped.
    static func statements(_ sql: String) -> [String] {
        var out: [String] = []
        var current = ""
        var hasCode = false
        scan(sql) { ch, code in
            if code && ch == ";" {
                if hasCode { out.append(current) }
                (current, hasCode) = ("", false)
                return
            }
            current.append(ch)
            if code && !ch.isWhitespace { hasCode = true }
        }
        if hasCode { out.append(current) }
        return out
    }

    /// Hands every character of `sql` to `body`, saying whether it is code: false inside quotes
    /// ('…', "…"), `$$` bodies, `--` comments and `/* */` comments, which nest in PostgreSQL
    /// (their delimiters included).
    static func scan(_ sql: String, _ body: (Character, Bool) -> Void) {
        let chars = Array(sql)
        var quote: Character? = nil
        var dollar = false
        var lineComment = false
        var blockDepth = 0
        var i = 0
        /// Whether `a` and `b` start at `i`; if so, both are handed over as not code.
        func delimiter(_ a: Character, _ b: Character) -> Bool {
            guard chars[i] == a, i + 1 < chars.count, chars[i + 1] == b else { return false }
            body(a, false)
            body(b, false)
            i += 2
            return true
        }
        while i < chars.count {
            let ch = chars[i]
            if blockDepth > 0 {
                if delimiter("/", "*") { blockDepth += 1; continue }
                if delimiter("*", "/") { blockDepth -= 1; continue }
            } else if lineComment {
                if ch == "\n" { lineComment = false }
            } else if dollar {
                if delimiter("$", "$") { dollar = false; continue }
            } else if let q = quote {
                if ch == q { quote = nil }
            } else if ch == "'" || ch == "\"" {
                quote = ch
            } else if delimiter("-", "-") {
                lineComment = true
                continue
            } else if delimiter("/", "*") {
                blockDepth = 1
                continue
            } else if delimiter("$", "$") {
                dollar = true
                continue
            } else {
                body(ch, true)
                i += 1
                continue
            }
            body(ch, false)
            i += 1
        }
    }
}

/// The PostgreSQL side of `FleetDatabase`: connections, transactions with retries, migrations
/// under a lock, the background lock shared by replicas, and config-change notifications.
///
/// Like the SQLite side it has one writer per process (writes queue for it; sample batches
/// share its transactions through `SampleGroupCommit`) and several readers. Replicas write
/// concurrently; write transactions run at REPEATABLE READ, so two replicas changing the same
/// row conflict instead of losing an update, and a transaction that hits a serialization
/// failure or a deadlock is run again from the start (up to `maxAttempts` times).
final class PostgresEngine: @unchecked Sendable {
    let location: PostgresLocation
    let logger: Logger
    /// How new connections are made: from the URL and the files it names, which
    /// `reloadConnectionFiles` reads again (SIGHUP).
    struct Configurations {
        var base: PostgresConnection.Configuration
        /// The readers': read-only outside a transaction block too, so that PostgreSQL refuses a
        /// write inside a single-statement read (`readStatementSync`) that its text check lets
        /// through (a WITH holding an UPDATE). The store's own SQL, not a defence against hostile
        /// SQL: a `set_config` could still turn it off for the connection.
        var reader: PostgresConnection.Configuration
        /// The writer's: a statement it runs outside a transaction block (`writeStatementSync`)
        /// runs at REPEATABLE READ, as its transactions do, so that a concurrent change of a row it
        /// updates is a serialization failure (run again) rather than an update of a row its other
        /// parts read in an older state.
        var writer: PostgresConnection.Configuration

        init(_ location: PostgresLocation) throws {
            base = try location.configuration()
            // A statement whose connection the server closed (a request's deadline, a shutdown)
            // ends within a second in PostgreSQL too: by default the backend notices only when it
            // answers, so a query ran to its end for nobody, and a lone write waiting for a lock
            // (a sample push) committed once it got it, after its request was answered 503.
            // PostgreSQL 14 or newer.
            base.options.additionalStartupParameters.append(
                ("client_connection_check_interval", "\(PostgresEngine.clientCheckMilliseconds)"))
            reader = base
            reader.options.additionalStartupParameters.append(("default_transaction_read_only", "on"))
            // Named, so that operators (and tests) tell the requests' connections in pg_stat_activity
            // from the background work's, the background lock's and LISTEN's.
            reader.options.additionalStartupParameters.append(("application_name", "ksmfleet-read"))
            writer = base
            writer.options.additionalStartupParameters.append(("default_transaction_isolation", "repeatable read"))
            writer.options.additionalStartupParameters.append(("application_name", "ksmfleet-write"))
        }
    }
    private let configurations: Mutex<Configurations>
    private var configuration: PostgresConnection.Configuration { configurations.withLock { $0.base } }
    private let group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    private let readers: ConnectionSlots
    private let writer: ConnectionSlots
    /// Background work (rollups, retention) writes on a connection of its own, so that a rollup
    /// pass never holds the connection that sample pushes and config changes commit on. The
    /// tables it writes are not the ones ingest writes (it only reads samples), so the two do not
    /// conflict; SQLite has one writer and shares it.
    private let background: ConnectionSlots
    /// Threads the blocking closures run on: threads of their own, not Dispatch's shared pool
    /// (on Linux it is also the pool of Swift concurrency; blocking it stalls the server).
    private let readThreads: WorkerThreads
    private let writeThread = WorkerThreads(name: "pg-write", max: 1)
    private let backgroundThread = WorkerThreads(name: "pg-background", max: 1)
    static let maxAttempts = 8
    /// How long a request's transaction may take before its connection is closed (the request
    /// then fails as the database being unavailable): a PostgreSQL that stopped answering (a
    /// network partition, a hung host) would otherwise hold every request, and the engine's
    /// threads, until TCP gives up (about 15 minutes on Linux). Nil (the default: tools such as
    /// `migrate-data`) for no limit; the server sets it (`FleetDatabase.setRequestDeadline`).
    /// Work marked `DatabaseWork.isBackground` (rollups, retention), background writes and
    /// migrations have no limit.
    let requestDeadline = Mutex<Duration?>(nil)

    /// The deadline for work submitted now by the calling task (on a thread outside Swift
    /// concurrency, such as the sample group commit's, a request's).
    func deadlineForCaller() -> Duration? {
        guard let deadline = requestDeadline.withLock({ $0 }) else { return nil }
        if DatabaseWork.isBackground { return max(deadline, Self.backgroundDeadline) }
        return DatabaseWork.deadline.map { min($0, deadline) } ?? deadline
    }

    /// The limit of background work's transactions where requests have one: a pass takes
    /// seconds, and one held for good by a partition would hold the background thread, which
    /// reports also use to catch their rollups up, until TCP gives up.
    static let backgroundDeadline = Duration.seconds(600)

    private let deadlines = Deadlines()
    /// The last failed attempt to connect, and when (`connect`).
    private let lastConnectFailure = Mutex<(at: ContinuousClock.Instant, error: PostgresError)?>(nil)
    /// When a write connection was last closed for refusing writes as read-only.
    private let lastReadOnlyClose = Mutex<ContinuousClock.Instant?>(nil)
    /// Whether the last ask for the background lock failed (logged once until one succeeds).
    private let lockAskFailing = Mutex(false)
    private var reaper: RepeatedTask? = nil
    private var deadlineChecks: RepeatedTask? = nil
    private let nextID = Mutex(0)
    /// Statements run often enough to be prepared on the connections that run them.
    let prepared: PreparedStatements

    /// Reader connections and threads of an engine.
    static let defaultReaders = 8
    /// How often PostgreSQL checks, while it runs a statement, that the connection is still
    /// there (`client_connection_check_interval`).
    static let clientCheckMilliseconds = 1000

    init(location: PostgresLocation, maxReaders: Int = defaultReaders, logger: Logger) throws {
        self.location = location
        self.logger = logger
        prepared = PreparedStatements(threshold: PreparedStatements.thresholdFromEnvironment(), logger: logger)
        configurations = Mutex(try Configurations(location))
        readers = ConnectionSlots(limit: maxReaders)
        writer = ConnectionSlots(limit: 1)
        background = ConnectionSlots(limit: 1)
        readThreads = WorkerThreads(name: "pg-read", max: maxReaders)
        // Connections idle for a while are closed (a quiet server holds none; a busy one keeps
        // what it uses). The task holds the slots, not the engine.
        let slots = [self.readers, self.writer, self.background]
        reaper = group.next().scheduleRepeatedTask(initialDelay: .seconds(5), delay: .seconds(5)) { _ in
            for s in slots { s.closeIdle(olderThan: ConnectionSlots.idleSeconds) }
        }
        let deadlines = self.deadlines
        // Four times a second: a scrape's 2 s lookup and 7 s read, each cut up to one check
        // late, must still answer within Prometheus's 10 s (at one a second: up to 11 s).
        deadlineChecks = group.next().scheduleRepeatedTask(initialDelay: .milliseconds(250), delay: .milliseconds(250)) { _ in
            deadlines.cutOverdue()
        }
    }

    /// A new connection (blocking).
    func connect() throws -> PostgresConnection { try connect(configuration) }

    /// The configuration of a new connection of `slots`.
    private func configuration(for slots: ConnectionSlots) -> PostgresConnection.Configuration {
        configurations.withLock { c in slots === readers ? c.reader : slots === writer ? c.writer : c.base }
    }

    /// Reads the files the URL names again (`passfile`, `sslrootcert`, `sslcert`, `sslkey`):
    /// connections made from now on use them; open ones go on as they are (as a rotated
    /// password or certificate leaves PostgreSQL's open sessions). Throws, keeping the files
    /// read before, when one cannot be read or is refused. Returns the parameters re-read (none
    /// when the URL names no file).
    @discardableResult
    func reloadConnectionFiles() throws -> [String] {
        let files = location.files
        guard !files.isEmpty else { return [] }
        let fresh = try Configurations(try location.rereadingPassword())
        configurations.withLock { $0 = fresh }
        // A failure of the files read before (a password changed) is not this one's: try again.
        // (An attempt under way with the files read before may still fail after this and be
        // remembered for its second; harmless.)
        lastConnectFailure.withLock { $0 = nil }
        return files
    }

    /// A new connection (blocking). `due`: the caller's deadline, which the attempt counts
    /// against: past it the caller gets `NoAnswer` (a scrape's 2 s lookup must not wait the 10 s
    /// connect timeout of a host that accepts connections and answers nothing).
    private func connect(_ configuration: PostgresConnection.Configuration, due: Due? = nil) throws -> PostgresConnection {
        let id = nextID.withLock { v -> Int in
            v += 1
            return v
        }
        // Within a second of a failed attempt the same failure, without trying: while PostgreSQL
        // is out of reach every attempt waits up to the connect timeout (10 s), and requests
        // queued behind the one write thread would each wait that long in turn.
        if let recent = lastConnectFailure.withLock({ $0 }), ContinuousClock.now - recent.at < .seconds(1) {
            throw recent.error
        }
        // The caller waits on `answer`, not on the attempt itself, so that a shutdown can give
        // the attempt up (`Deadlines.abandonAll`): a PostgreSQL that accepts the TCP connection
        // and answers nothing would hold the caller, and the process's stop, for the connect
        // timeout (10 s). A connection that comes after that is closed.
        let loop = group.next()
        let answer = loop.makePromise(of: PostgresConnection.self)
        let watch: Int
        do {
            watch = try deadlines.startConnect(answer, due: due)
        } catch {
            answer.fail(error)  // a promise dropped unfulfilled is a crash in debug builds (NIO's leak check)
            throw error
        }
        let deadlines = self.deadlines
        PostgresConnection.connect(on: loop, configuration: configuration, id: id, logger: logger).whenComplete { result in
            if deadlines.endConnect(watch) {
                answer.completeWith(result)
            } else if case .success(let late) = result {
                late.close().whenComplete { _ in _ = late }  // kept until closed (postgres-nio asserts it)
            }
        }
        // With the server's own words (postgres-nio's error prints only "Generic description"):
        // a start on a database that does not exist must say so.
        do {
            let connection = try answer.futureResult.wait()
            PendingAnswers.watch(connection)
            lastConnectFailure.withLock { $0 = nil }
            return connection
        } catch let given as PostgresError where given.abandonedAtShutdown || given.cutAfter != nil {
            // Given up (shutdown) or past the caller's deadline: not a failure of the database
            // to connect that the next callers should share (`lastConnectFailure`).
            throw given
        } catch {
            let failure = PostgresError(error, sql: nil, connecting: true)
            lastConnectFailure.withLock { $0 = (ContinuousClock.now, failure) }
            throw failure
        }
    }

    /// Runs `body` in a write transaction on the writer connection (blocking).
    func writeSync<T>(due: Due?, _ body: (StoreDB) throws -> T) throws -> T {
        try transaction(slots: writer, begin: "BEGIN ISOLATION LEVEL REPEATABLE READ", due: due, body)
    }

    /// Runs `body` in a READ COMMITTED write transaction on the writer connection (blocking):
    /// each statement sees what other transactions committed before it began. Migrations need
    /// it: they wait for the migrations lock inside their transaction and must then see the
    /// schema that the replica which held the lock committed meanwhile. In REPEATABLE READ the
    /// snapshot is the one the lock statement took before its wait, and the replica that waited
    /// applies every migration again (`relation "nodes" already exists`).
    func migrateSync<T>(_ body: (StoreDB) throws -> T) throws -> T {
        try transaction(slots: writer, begin: "BEGIN ISOLATION LEVEL READ COMMITTED", prepare: false, body)
    }

    /// Runs `body` in a read-only snapshot on a reader connection (blocking).
    func readSync<T>(due: Due?, _ body: (StoreDB) throws -> T) throws -> T {
        try transaction(slots: readers, begin: "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", due: due, body)
    }

    /// Runs `body`, which makes exactly one query, on a reader connection outside a transaction
    /// block (blocking). PostgreSQL runs a lone statement in a transaction of its own, with one
    /// snapshot, so the result is what `readSync` would give, without the `BEGIN` and `COMMIT`
    /// round trips: two of the three a long-poll's first read cost. A second statement, or one
    /// that is not a query, throws (`PostgresSession`); a write inside a query (a WITH holding an
    /// UPDATE) is refused by the reader connection, read-only by default (`Configurations.reader`).
    func readStatementSync<T>(due: Due?, _ body: (StoreDB) throws -> T) throws -> T {
        try transaction(slots: readers, begin: nil, limit: .oneQuery, due: due, body)
    }

    /// Runs `body`, which makes exactly one statement, on the writer connection outside a
    /// transaction block (blocking): the statement is its own transaction (at REPEATABLE READ,
    /// `Configurations.writer`), run again on a serialization failure or deadlock like any write
    /// transaction. One round trip instead of the three of `BEGIN`, the statement and `COMMIT`:
    /// an agent's normal sample push (`FleetDatabase.writeLoneSampleBatch`). A second statement
    /// throws (`PostgresSession`).
    func writeStatementSync<T>(due: Due?, _ body: (StoreDB) throws -> T) throws -> T {
        try transaction(slots: writer, begin: nil, limit: .oneStatement, due: due, body)
    }

    /// The calling task's deadline from now (`deadlineForCaller`).
    func dueForCaller() -> Due? { Due.after(deadlineForCaller()) }

    /// The deadline checks for work queued outside the engine (the group commit's batches), as
    /// for work waiting for an engine thread.
    var queueWatch: SampleGroupCommit.QueueWatch { deadlines.queueWatch }

    func readStatement<T: Sendable>(_ body: @escaping @Sendable (StoreDB) throws -> T) async throws -> T {
        try await submit(to: readThreads) { due in try self.readStatementSync(due: due, body) }
    }

    func write<T: Sendable>(_ body: @escaping @Sendable (StoreDB) throws -> T) async throws -> T {
        try await submit(to: writeThread) { due in try self.writeSync(due: due, body) }
    }

    /// A write transaction of background work, on its own connection and thread.
    func backgroundWrite<T: Sendable>(_ body: @escaping @Sendable (StoreDB) throws -> T) async throws -> T {
        // A report catching its rollups up comes this way too, with a request's limit.
        try await submit(to: backgroundThread) { due in
            try self.transaction(slots: self.background, begin: "BEGIN ISOLATION LEVEL REPEATABLE READ", due: due, body)
        }
    }

    func read<T: Sendable>(_ body: @escaping @Sendable (StoreDB) throws -> T) async throws -> T {
        try await submit(to: readThreads) { due in try self.readSync(due: due, body) }
    }

    /// Runs `job` on one of `threads` with the calling task's deadline, which counts from now:
    /// the wait for a free thread is part of it. While PostgreSQL answers nothing every thread
    /// can be held by work waiting out its own limit (a minute for a request), and work queued
    /// behind it would start its limit only when it got a thread: a scrape's 2 s credential
    /// lookup could wait a minute before its 2 s began. Queued work past its deadline fails then
    /// (`NoAnswer`, as a cut transaction does; `Deadlines.cutOverdue`) and never runs.
    private func submit<T: Sendable>(
        to threads: WorkerThreads, _ job: @escaping @Sendable (Due?) throws -> T
    ) async throws -> T {
        let due = dueForCaller()
        let deadlines = self.deadlines
        return try await withCheckedThrowingContinuation { continuation in
            let queued = due.map { deadlines.startQueued(due: $0) { continuation.resume(throwing: $0) } }
            threads.submit {
                // Failed at its deadline while it waited: its caller has the error already.
                if let queued, !deadlines.endQueued(queued) { return }
                continuation.resume(with: Result { try job(due) })
            }
        }
    }

    /// Runs `body` on one of the engine's threads (blocking calls from async code).
    func onThread<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in readThreads.submit { continuation.resume(returning: body()) } }
    }

    /// Runs `body` in a transaction that `begin` starts, or with `begin` nil outside a
    /// transaction block, where the session allows one statement (`limit`, given only then).
    /// Run again from the start after a serialization failure or a deadlock. `prepare`: whether
    /// the session may run prepared statements, which block on a task
    /// (`PostgresConnection.executePrepared`): not on a thread that may be Swift concurrency's.
    /// `due`: a request's deadline, for every attempt; its connection is closed when the
    /// transaction runs past it (up to a quarter second late, the time between checks; it then
    /// throws `NoAnswer`).
    private func transaction<T>(
        slots: ConnectionSlots, begin: String?, limit: PostgresSession.Limit? = nil, prepare: Bool = true,
        due: Due? = nil, _ body: (StoreDB) throws -> T
    ) throws -> T {
        var attempt = 1
        while true {
            // Given up at shutdown: no new connection either (one that does not answer would
            // hold the caller for the connect timeout).
            if deadlines.abandoned { throw PostgresError.abandoned() }
            // The deadline covers every attempt (and the caller's wait for a thread, `submit`);
            // opening a connection, if it takes one, counts against it too.
            if let due, due.at <= .now { throw PostgresError.noAnswer(within: due.limit, queued: attempt == 1) }
            let connection: PostgresConnection
            do {
                // The configuration as it is when a connection is opened: the wait for a slot may
                // outlast a reload (SIGHUP).
                connection = try slots.acquire(due: due, connect: { try self.connect(self.configuration(for: slots), due: due) })
            } catch {
                throw deadlines.abandoned ? PostgresError.abandoned() : error
            }
            let session = PostgresSession(connection: connection, logger: logger, limit: limit, prepared: prepare ? prepared : nil)
            let watch: Int
            do {
                watch = try deadlines.start(connection, due: due)
            } catch {
                slots.release(connection, broken: false)
                throw error
            }
            // Ends the watch (once per attempt): why it cut the connection, if it did.
            let cut = { self.deadlines.end(watch) }
            do {
                let value: T
                if let begin {
                    try session.run(begin, [])
                    do {
                        value = try body(StoreDB(.postgres(session)))
                    } catch {
                        // Not on a connection that is gone or closing (no server answer: lost,
                        // or cut at its deadline): postgres-nio never answers a query sent to a
                        // connection being closed, and PostgreSQL ends the transaction itself.
                        if (error as? PostgresError)?.connectionFailed != true && !connection.isClosed {
                            _ = try? session.run("ROLLBACK", [])
                        }
                        throw error
                    }
                    try session.run("COMMIT", [])
                } else {
                    value = try body(StoreDB(.postgres(session)))
                }
                // Cut just as it ended: the answer came, the connection is closing.
                slots.release(connection, broken: cut() != nil || connection.isClosed)
                return value
            } catch {
                let wasCut = cut()
                // A write connection refused writes: its session keeps the read-only setting it
                // started with, so it is closed, and the next write connects anew (to the new
                // primary, or to the database made writable again).
                let readOnly = slots !== readers && (error as? PostgresError)?.sqlState == "25006"
                // At most once a second: a standby refuses every push, and reconnecting for each
                // would be a connection a push.
                let reconnect =
                    readOnly
                    && lastReadOnlyClose.withLock { last in
                        let now = ContinuousClock.now
                        guard last.map({ now - $0 >= .seconds(1) }) ?? true else { return false }
                        last = now
                        return true
                    }
                let lost = (error as? PostgresError)?.connectionFailed == true
                slots.release(connection, broken: wasCut != nil || reconnect || lost || connection.isClosed)
                if let wasCut { throw wasCut.error(limit: due?.limit) }
                if readOnly, var e = error as? PostgresError {
                    e.writeRefusedAsReadOnly = true
                    throw e
                }
                guard Self.retryable(error), attempt < Self.maxAttempts else { throw error }
                logger.debug(
                    "postgres transaction retried", metadata: ["attempt": "\(attempt)", "error": "\(Self.describe(error))"])
                attempt += 1
                // A little jitter so that two replicas do not collide again in step.
                usleep(UInt32.random(in: 1_000...(5_000 * UInt32(attempt))))
            }
        }
    }

    /// Serialization failure or deadlock: the transaction may succeed when run again.
    static func retryable(_ error: any Error) -> Bool {
        (error as? PostgresError)?.retryable ?? false
    }

    /// The server's message (and SQLSTATE) for logs; PSQLError's own description hides it.
    static func describe(_ error: any Error) -> String {
        "\(error as? PostgresError ?? PostgresError(error, sql: nil))"
    }

    // MARK: The background lock (one replica runs rollups and retention)

    /// The connection holding the background advisory lock, while this process holds it.
    private let leader = Mutex<PostgresConnection?>(nil)

    /// True while this process holds the background lock: takes it when free (a session lock on
    /// a connection of its own, so it ends with the process or its connection), keeps it while
    /// that connection lives; false while another holds it; nil when it could not ask (the
    /// database does not answer: logged). Blocking.
    func holdsBackgroundLock() -> Bool? {
        if let held = leader.withLock({ $0 }), !held.isClosed { return true }
        var opened: PostgresConnection?
        do {
            // Watched like a transaction: a database that stops answering mid-ask would hold the
            // rollup service (and a shutdown) for good.
            let due = Due.after(deadlineForCaller())
            let connection = try connect(configuration, due: due)
            opened = connection
            let watch = try deadlines.start(connection, due: due)
            let rows: [PostgresRow]
            do {
                rows = try connection.query(
                    PostgresQuery(unsafeSQL: "SELECT pg_try_advisory_lock(\(PostgresLocks.background))"), logger: logger
                ).wait().rows
            } catch {
                _ = deadlines.end(watch)
                throw error
            }
            // Cut as the answer came: the connection (and the lock with it) is going away.
            if let cut = deadlines.end(watch) { throw cut.error(limit: due?.limit) }
            let got = try rows.first?.first.map { try $0.decode(Bool.self) } ?? false
            lockAskFailing.withLock { $0 = false }
            if got {
                leader.withLock { $0 = connection }
                return true
            }
            connection.close().whenComplete { _ in _ = connection }  // kept until closed (postgres-nio asserts it)
            return false
        } catch {
            if let opened { opened.close().whenComplete { _ in _ = opened } }
            // The shutdown gave the work up: nothing to say.
            if deadlines.abandoned { return nil }
            // Once per outage (the server logs the outage itself); again after an answer.
            let first = lockAskFailing.withLock { failing in
                defer { failing = true }
                return !failing
            }
            logger.log(
                level: first ? .warning : .debug, "could not ask for the background lock",
                metadata: ["error": "\(Self.describe(error))"])
            return nil
        }
    }

    // MARK: Config-change notifications

    /// Listens on `channel` until the task is cancelled, handing every payload to `handler`;
    /// reconnects after a lost connection. `onListening(first)` is called each time LISTEN is in
    /// place: changes committed before (at start, or while disconnected) were not heard.
    /// `onInterrupted` is called when it no longer is (the connection was lost). Every `check`
    /// the connection must answer a `SELECT 1` within twice `check`, or it is closed and a new
    /// one listens (`checkAnswers`).
    func listen(
        channel: String, handler: @escaping @Sendable (String) -> Void,
        onListening: @escaping @Sendable (_ first: Bool) -> Void,
        onInterrupted: @escaping @Sendable () -> Void = {},
        check: Duration
    ) async {
        var delay = 0.5
        var first = true
        while !Task.isCancelled {
            var answered = false
            // Named, so that operators (and tests) find it in pg_stat_activity: its `query` column
            // shows the last check's `SELECT 1`, not the LISTEN. Taken at each attempt: a reload
            // (SIGHUP) may have changed the password or certificates since the last.
            var listenConfiguration = configuration
            listenConfiguration.options.additionalStartupParameters.append(("application_name", Self.listenApplicationName))
            do {
                let connection = try await PostgresConnection.connect(
                    on: group.next(), configuration: listenConfiguration, id: 0, logger: logger)
                let wasFirst = first
                let checks = ListenChecks()
                do {
                    defer { onInterrupted() }
                    let logger = self.logger
                    try await withThrowingTaskGroup(of: Void.self) { tasks in
                        tasks.addTask {
                            try await connection.listen(on: channel) { notifications in
                                checks.noteListening()
                                onListening(wasFirst)
                                for try await n in notifications { handler(n.payload) }
                            }
                        }
                        tasks.addTask { try await Self.checkAnswers(connection, every: check, checks: checks, logger: logger) }
                        // The first to end ends the other: a failed check has closed the
                        // connection, which ends the notifications.
                        defer { tasks.cancelAll() }
                        try await tasks.next()
                    }
                } catch {
                    if !Task.isCancelled {
                        // After a failed check the notifications usually end first ("the client
                        // closed the connection"): the check says why.
                        let reason = checks.failure.map { $0 is ListenCheckFailed ? "\($0)" : Self.describe($0) } ?? Self.describe(error)
                        logger.warning("config notifications interrupted", metadata: ["error": "\(reason)"])
                    }
                }
                answered = checks.answered
                // "Resumed" only after a LISTEN that was in place.
                if checks.listened { first = false }
                // Not waited for: a TLS close waits up to 5 s for a vanished peer's reply.
                connection.close().whenComplete { _ in _ = connection }
            } catch {
                logger.warning(
                    "cannot listen for config changes", metadata: ["error": "\(Self.describe(error))", "retryIn": "\(delay)s"])
            }
            // A connection that answered a check was sound: after its loss the wait starts short
            // again. One lost before (or failing its first check, a PostgreSQL too slow to
            // answer) waits longer each time, up to 10 s, instead of re-reading every waiting
            // node's config every few seconds.
            if answered { delay = 0.5 }
            try? await Task.sleep(for: .seconds(delay))
            delay = min(delay * 2, 10)
        }
    }

    /// A request's transaction ran past its deadline: PostgreSQL stopped answering, or the
    /// work was too slow.
    struct NoAnswer: Error, CustomStringConvertible {
        let waited: Duration
        /// It waited for a free engine thread or connection all that time (every one held by work
        /// on a slow or silent PostgreSQL), and never started.
        var queued = false
        /// "60 s", "0.5 s".
        static func seconds(_ d: Duration) -> String { "\(SecondsText.of(d)) s" }
        var description: String {
            queued
                ? "did not finish within \(Self.seconds(waited)): waited all of it for a free connection or thread, every one busy with earlier work (PostgreSQL slow or not answering)"
                : "did not finish within \(Self.seconds(waited)) (no answer, or too slow); closed the connection"
        }
    }

    /// A caller's deadline: the instant, and the limit it came from (for the message).
    struct Due: Sendable {
        let at: ContinuousClock.Instant
        let limit: Duration

        /// `limit` from now; nil for none.
        static func after(_ limit: Duration?) -> Due? {
            limit.map { Due(at: ContinuousClock.now + $0, limit: $0) }
        }
    }

    /// Transactions under way, each with its connection and deadline (nil: none, such as
    /// `migrate-data`'s): `cutOverdue` (four times a second) closes the connection of one past its
    /// deadline, which fails the query waiting on it (a blocked `wait()` returns with an error);
    /// `abandonAll` (at shutdown) closes every one's. A lock and a dictionary entry per
    /// transaction: a timer scheduled per transaction from an engine thread would wake an event
    /// loop (a syscall and a loop tick) at every push.
    final class Deadlines: Sendable {
        /// Why a transaction's connection was closed under it.
        enum Cut: Sendable {
            case deadline, shutdown

            /// What the transaction's caller gets: "did not finish within `limit`", or the
            /// shutdown's.
            func error(limit: Duration?) -> PostgresError {
                self == .deadline ? .noAnswer(within: limit ?? .zero) : .abandoned()
            }
        }
        private struct Entry {
            let connection: PostgresConnection
            let deadline: ContinuousClock.Instant?
            var cut: Cut?
        }
        /// A connection attempt: what its caller waits on, and the caller's deadline.
        private struct Attempt {
            let answer: EventLoopPromise<PostgresConnection>
            let due: Due?
        }
        /// Work waiting for an engine thread.
        private struct Queued {
            let due: Due
            let fail: @Sendable (PostgresError) -> Void
        }
        private struct State {
            var next = 0
            var byId: [Int: Entry] = [:]
            /// Connection attempts under way.
            var connecting: [Int: Attempt] = [:]
            /// Work waiting for a thread (`PostgresEngine.submit`): its deadline, and how to fail
            /// its caller.
            var queued: [Int: Queued] = [:]
            /// `abandonAll` was called: no transaction or connection attempt starts from then on.
            var abandoned = false
        }
        private let entries = Mutex(State())

        /// Watches a transaction on `connection` from now; the id to end the watch with. Throws
        /// once the work under way was abandoned (under the same lock as `abandonAll`, so no
        /// transaction starts unwatched after it).
        func start(_ connection: PostgresConnection, due: Due?) throws -> Int {
            try entries.withLock { e in
                if e.abandoned { throw PostgresError.abandoned() }
                e.next &+= 1
                e.byId[e.next] = Entry(connection: connection, deadline: due?.at)
                return e.next
            }
        }

        /// Whether `abandonAll` was called.
        var abandoned: Bool { entries.withLock { $0.abandoned } }

        /// Watches a connection attempt whose caller waits on `answer` (and fails it with
        /// `NoAnswer` once `due` is past); the id to end the watch with. Throws once the work
        /// under way was abandoned.
        func startConnect(_ answer: EventLoopPromise<PostgresConnection>, due: Due?) throws -> Int {
            try entries.withLock { e in
                if e.abandoned { throw PostgresError.abandoned() }
                e.next &+= 1
                e.connecting[e.next] = Attempt(answer: answer, due: due)
                return e.next
            }
        }

        /// Watches work waiting for a thread: `fail` gets `NoAnswer` once `due` is past (and the
        /// work, when it gets its thread, must not run: `endQueued`). The id to end the watch with.
        func startQueued(due: Due, fail: @escaping @Sendable (PostgresError) -> Void) -> Int {
            entries.withLock { e in
                e.next &+= 1
                e.queued[e.next] = Queued(due: due, fail: fail)
                return e.next
            }
        }

        /// Ends the watch of queued work `id`, which got its thread: true when it was still
        /// watched (it runs), false when its deadline failed it already (it must not).
        func endQueued(_ id: Int) -> Bool {
            entries.withLock { $0.queued.removeValue(forKey: id) != nil }
        }

        /// `startQueued` and `endQueued` as the group commit's watch of its queued batches.
        var queueWatch: SampleGroupCommit.QueueWatch {
            SampleGroupCommit.QueueWatch(start: { due, fail in self.startQueued(due: due, fail: fail) }, end: self.endQueued)
        }

        /// Ends the watch of connection attempt `id`: true when it was still watched (the
        /// attempt's result goes to its caller), false when its deadline or `abandonAll` failed
        /// it already.
        func endConnect(_ id: Int) -> Bool {
            entries.withLock { $0.connecting.removeValue(forKey: id) != nil }
        }

        /// Ends the watch of transaction `id`: why its connection was cut, if it was.
        func end(_ id: Int) -> Cut? {
            entries.withLock { $0.byId.removeValue(forKey: id)?.cut }
        }

        /// Closes the connections of the transactions past their deadlines (once each), and
        /// fails the connection attempts past theirs.
        func cutOverdue(now: ContinuousClock.Instant = .now) {
            _ = cut(.deadline) { $0.deadline.map { $0 <= now } ?? false }
            let (overdue, waited) = entries.withLock { e in
                (Self.take(from: &e.connecting) { $0.due.map { $0.at <= now } ?? false }, Self.take(from: &e.queued) { $0.due.at <= now })
            }
            for attempt in overdue { attempt.answer.fail(PostgresError.noAnswer(within: attempt.due?.limit ?? .zero)) }
            for work in waited { work.fail(PostgresError.noAnswer(within: work.due.limit, queued: true)) }
        }

        /// Removes from `entries` the values `due` picks, and returns them.
        private static func take<V>(from entries: inout [Int: V], _ due: (V) -> Bool) -> [V] {
            let ids = entries.filter { due($0.value) }.map(\.key)
            return ids.compactMap { entries.removeValue(forKey: $0) }
        }

        /// Closes the connection of every transaction under way, gives up every connection
        /// attempt under way and all work waiting for a thread (their callers get
        /// `PostgresError.abandoned`) and refuses new ones:
        /// how many of each were given up.
        @discardableResult
        func abandonAll() -> AbandonedWork {
            let (attempts, waiting) = entries.withLock { e -> ([Attempt], [Queued]) in
                e.abandoned = true
                defer {
                    e.connecting = [:]
                    e.queued = [:]
                }
                return (Array(e.connecting.values), Array(e.queued.values))
            }
            for attempt in attempts { attempt.answer.fail(PostgresError.abandoned()) }
            // Work still waiting for a thread is answered now, as the shutdown, and never runs.
            for work in waiting { work.fail(PostgresError.abandoned()) }
            return AbandonedWork(transactions: cut(.shutdown) { _ in true }, connecting: attempts.count, queued: waiting.count)
        }

        private func cut(_ why: Cut, _ due: (Entry) -> Bool) -> Int {
            let closing = entries.withLock { e -> [PostgresConnection] in
                var closing: [PostgresConnection] = []
                for (id, entry) in e.byId where entry.cut == nil && due(entry) {
                    e.byId[id]?.cut = why
                    closing.append(entry.connection)
                }
                return closing
            }
            for connection in closing {
                connection.close().whenComplete { _ in _ = connection }  // kept until closed (postgres-nio asserts it)
            }
            return closing.count
        }
    }

    /// The `application_name` of the listening connection.
    static let listenApplicationName = "ksmfleet-listen"

    /// The listening connection did not answer a check in time.
    struct ListenCheckFailed: Error, CustomStringConvertible {
        let waited: Duration
        var description: String {
            "the listening connection did not answer a check within \(waited); closed it to listen on a new one"
        }
    }

    /// What became of one listening connection: whether LISTEN was in place, whether it
    /// answered a check, and why a check failed (`checkAnswers`).
    final class ListenChecks: Sendable {
        private struct State {
            var listened = false
            var answered = false
            var failure: (any Error)?
        }
        private let state = Mutex(State())
        var listened: Bool { state.withLock { $0.listened } }
        /// Whether it answered a check.
        var answered: Bool { state.withLock { $0.answered } }
        /// Why a check failed (it then closed the connection, so the notifications' own error
        /// is only "the client closed the connection").
        var failure: (any Error)? { state.withLock { $0.failure } }
        func noteListening() { state.withLock { $0.listened = true } }
        func noteAnswer() { state.withLock { $0.answered = true } }
        func note(_ failure: any Error) { state.withLock { $0.failure = failure } }
    }

    /// Sends `connection` a `SELECT 1` every `interval`, until cancelled; throws (and closes it,
    /// which fails whatever waits on it) when one is not answered within twice `interval`: one
    /// slow answer of a busy PostgreSQL is no reason to listen again, which makes every waiting
    /// node's config be read again.
    static func checkAnswers(
        _ connection: PostgresConnection, every interval: Duration, checks: ListenChecks, logger: Logger
    ) async throws {
        let deadline = interval * 2
        while true {
            try await Task.sleep(for: interval)
            enum Answer: Sendable { case answered, failed(any Error), late }
            let answer: Answer = await withTaskGroup(of: Answer.self) { group in
                group.addTask {
                    do {
                        for try await _ in try await connection.query("SELECT 1", logger: logger) {}
                        return .answered
                    } catch {
                        return .failed(error)
                    }
                }
                group.addTask {
                    do { try await Task.sleep(for: deadline) } catch { return .failed(error) }
                    return .late
                }
                let first = await group.next() ?? .late
                // A query waiting for an answer ignores cancellation: closing the connection
                // ends it (late, or this task cancelled while it waits). Without waiting for the
                // close: a TLS close would wait up to 5 s for the frozen or vanished peer's reply.
                if case .answered = first {} else { connection.close().whenComplete { _ in _ = connection } }
                group.cancelAll()
                await group.waitForAll()
                return first
            }
            // Recorded for the log (`listen` reads it once both its tasks have ended).
            switch answer {
            case .answered:
                checks.noteAnswer()
            case .failed(let error):
                if !(error is CancellationError) { checks.note(error) }
                throw error
            case .late:
                let failure = ListenCheckFailed(waited: deadline)
                checks.note(failure)
                throw failure
            }
        }
    }

    deinit { close() }

    /// Gives the background lock up (graceful shutdown: another replica takes over at once).
    /// Awaits the close without a thread of the engine: at shutdown every read thread may be
    /// held by work a database that stopped answering holds, until `abandonAll`.
    func releaseBackgroundLock() async {
        if let held = leader.withLock({ l -> PostgresConnection? in
            defer { l = nil }
            return l
        }) {
            try? await held.close().get()
        }
    }

    /// At shutdown, once the grace for work under way is over: closes the connection of every
    /// transaction still running (a database that stopped answering would otherwise hold the
    /// process until their deadlines: ten minutes for background work) and refuses new ones.
    /// Their transactions roll back in PostgreSQL; the callers get `PostgresError.abandoned`.
    /// Connections being opened are given up too (`connect`).
    func abandonWorkUnderWay() -> AbandonedWork {
        deadlines.abandonAll()
    }

    /// Whether `abandonWorkUnderWay` was called.
    var workAbandoned: Bool { deadlines.abandoned }

    func close() {
        reaper?.cancel()
        deadlineChecks?.cancel()
        readThreads.close()
        writeThread.close()
        backgroundThread.close()
        for c in readers.drain() + writer.drain() + background.drain() { try? c.close().wait() }
        if let held = leader.withLock({ l -> PostgresConnection? in
            defer { l = nil }
            return l
        }) {
            try? held.close().wait()
        }
    }
}

/// A bounded set of open connections: `acquire` takes an idle one, opens a new one below the
/// limit, or waits.
final class ConnectionSlots: @unchecked Sendable {
    /// Idle connections older than this are closed.
    static let idleSeconds = 15.0
    private let limit: Int
    private let condition = NSCondition()
    private var idle: [PostgresConnection] = []
    private var idleSince: [ObjectIdentifier: Date] = [:]
    private var open = 0

    init(limit: Int) { self.limit = limit }

    /// A connection of these slots: an idle one, a new one while under the limit, or the next
    /// one released. Past `due` (the caller's deadline) the wait for one released ends with
    /// `NoAnswer`: the writer's one connection is shared by the write thread and the sample
    /// group commit, and one of them can hold it for its whole limit on a silent database.
    func acquire(due: PostgresEngine.Due? = nil, connect: () throws -> PostgresConnection) throws -> PostgresConnection {
        condition.lock()
        while true {
            while let c = idle.popLast() {
                idleSince[ObjectIdentifier(c)] = nil
                if !c.isClosed {
                    condition.unlock()
                    return c
                }
                open -= 1
            }
            if open < limit {
                open += 1
                condition.unlock()
                do {
                    return try connect()
                } catch {
                    condition.lock()
                    open -= 1
                    condition.signal()
                    condition.unlock()
                    throw error
                }
            }
            guard let due else {
                condition.wait()
                continue
            }
            // Checked at every wake, and at least four times a second (as `Deadlines` checks).
            if ContinuousClock.now >= due.at {
                condition.unlock()
                throw PostgresError.noAnswer(within: due.limit, queued: true)
            }
            _ = condition.wait(until: Date(timeIntervalSinceNow: 0.25))
        }
    }

    func release(_ connection: PostgresConnection, broken: Bool = false) {
        condition.lock()
        if broken || connection.isClosed {
            open -= 1
            connection.close().whenComplete { _ in _ = connection }  // kept until closed (postgres-nio asserts it)
        } else {
            idle.append(connection)
            idleSince[ObjectIdentifier(connection)] = Date()
        }
        condition.signal()
        condition.unlock()
    }

    /// Closes the connections idle for longer than `seconds`.
    func closeIdle(olderThan seconds: Double) {
        condition.lock()
        let cutoff = Date(timeIntervalSinceNow: -seconds)
        var stale: [PostgresConnection] = []
        idle.removeAll { c in
            let old = (idleSince[ObjectIdentifier(c)] ?? .distantPast) < cutoff
            if old { stale.append(c) }
            return old
        }
        for c in stale { idleSince[ObjectIdentifier(c)] = nil }
        open -= stale.count
        condition.signal()
        condition.unlock()
        for c in stale { c.close().whenComplete { _ in _ = c } }
    }

    func drain() -> [PostgresConnection] {
        condition.lock()
        defer { condition.unlock() }
        let all = idle
        idle = []
        idleSince = [:]
        open -= all.count
        return all
    }
}

/// Starts a thread named `name`, as `top -H`, `perf` and gdb show it, running `body`. The thread
/// names itself: Foundation on Linux does not pass on a name given before `start()` (the thread
/// kept the name of the one that started it, Dispatch's "oot.default-qos"). Nor, every time,
/// one set through `Thread.current.name` as the thread starts, on a busy machine: the name
/// test failed in `make test` with three test processes on two cores, and in 107 of 300 runs
/// beside three busy loops (0 of 300 this way; Foundation seems to pass the name on only once
/// `start()` has recorded the new thread, which the thread can outrun). So the thread names
/// itself in `/proc/thread-self/comm` first. At most 15 bytes: Linux keeps no more (it refuses a
/// longer name).
func startNamedThread(_ name: String, _ body: @escaping @Sendable () -> Void) {
    precondition(name.utf8.count <= 15, "a thread name Linux keeps has at most 15 bytes: \(name)")
    let thread = Thread {
        // What pthread_setname_np does on Linux (Glibc's Swift module does not export it).
        try? name.write(toFile: "/proc/thread-self/comm", atomically: false, encoding: .utf8)
        Thread.current.name = name
        body()
    }
    thread.start()
}

/// Threads for blocking jobs: started as jobs come (up to `max`), ended after a while idle or
/// at `close()`.
final class WorkerThreads: @unchecked Sendable {
    private let name: String
    private let max: Int
    private let condition = NSCondition()
    private var jobs: [() -> Void] = []
    private var head = 0
    private var running = 0
    private var idle = 0
    private var closed = false
    static let idleSeconds = 10.0

    /// `name`: the threads' name (`startNamedThread`).
    init(name: String, max: Int) {
        self.name = name
        self.max = max
    }

    func submit(_ job: @escaping () -> Void) {
        condition.lock()
        jobs.append(job)
        // A thread more when the jobs waiting outnumber the idle threads: an idle thread not yet
        // woken for an earlier job of a burst is not free for this one.
        let spawn = jobs.count - head > idle && running < max
        if spawn { running += 1 }
        condition.signal()
        condition.unlock()
        if spawn { startNamedThread(name) { self.loop() } }
    }

    /// Threads started and not ended.
    var live: Int {
        condition.lock()
        defer { condition.unlock() }
        return running
    }

    func close() {
        condition.lock()
        closed = true
        condition.broadcast()
        condition.unlock()
    }

    private func loop() {
        condition.lock()
        while true {
            while head == jobs.count {
                if closed {
                    running -= 1
                    condition.unlock()
                    return
                }
                idle += 1
                let signalled = condition.wait(until: Date(timeIntervalSinceNow: Self.idleSeconds))
                idle -= 1
                if !signalled && head == jobs.count {
                    running -= 1
                    condition.unlock()
                    return
                }
            }
            let job = jobs[head]
            head += 1
            if head > 64 && head * 2 > jobs.count {
                jobs.removeFirst(head)
                head = 0
            }
            condition.unlock()
            job()
            condition.lock()
        }
    }
}

/// The answer an engine thread waits for on each connection, failed when the connection closes
/// first: a statement written to a closed channel is dropped without an answer (NIO removes its
/// handlers), so a thread that sent one after the close (PostgreSQL ending the connection, or a
/// deadline cutting it, between two statements of a transaction) would wait for good. One close
/// callback per connection (`watch`, at connect), not one per statement: a connection runs
/// millions.
enum PendingAnswers {
    private static let byConnection = Mutex<[ObjectIdentifier: @Sendable () -> Void]>([:])

    /// Fails the waiting answer, if any, when `connection` closes.
    static func watch(_ connection: PostgresConnection) {
        connection.closeFuture.whenComplete { _ in
            byConnection.withLock { $0.removeValue(forKey: ObjectIdentifier(connection)) }?()
        }
    }

    /// A thread is about to wait on `connection`; `fail` ends its wait if the connection closes
    /// (at once if it has closed already).
    static func waiting(on connection: PostgresConnection, fail: @escaping @Sendable () -> Void) {
        byConnection.withLock { $0[ObjectIdentifier(connection)] = fail }
        if connection.isClosed {
            byConnection.withLock { $0.removeValue(forKey: ObjectIdentifier(connection)) }?()
        }
    }

    static func answered(_ connection: PostgresConnection) {
        byConnection.withLock { _ = $0.removeValue(forKey: ObjectIdentifier(connection)) }
    }
}
