import GRDB
import PostgresNIO

/// A failure that says the database cannot serve requests now — it is down, restarting, out of
/// reach, refusing writes, out of connections or disk, locked by another process, or did not
/// finish in time — rather than that a request or the server is wrong. The server answers it
/// 503 with `summary` and `Retry-After` (agents spool their samples and retry), and logs it, with
/// `detail`, as one outage instead of a line per request.
public struct DatabaseUnavailable: Sendable, Equatable {
    /// What a client is told: the kind of failure, never the engine's own words, which can hold
    /// the database's address, user and names (the 503 reaches agents and, at `/readyz`,
    /// anyone).
    public let summary: String
    /// What the server's log says: the engine's words.
    public let detail: String
    /// The server itself gave the work up, shutting down (`FleetDatabase.abandonWorkUnderWay`):
    /// not the database's doing, so not an outage to log.
    public var atShutdown = false

    public init(summary: String, detail: String) {
        self.summary = summary
        self.detail = detail
    }

    /// Nil when `error` is not such a failure.
    public static func of(_ error: any Error) -> DatabaseUnavailable? {
        switch error {
        case let e as PostgresError:
            return e.unavailable
        case let e as PSQLError:
            return PostgresError(e, sql: nil).unavailable
        case let e as DatabaseError:
            return sqlite(e)
        default:
            return nil
        }
    }

    /// SQLite: locked past the busy timeout (another process holds the file: a backup, an
    /// operator's `sqlite3`, a long checkpoint), the disk full, an I/O error, the file or its
    /// directory made read-only or gone. Constraint and SQL errors are not outages.
    static func sqlite(_ e: DatabaseError) -> DatabaseUnavailable? {
        let what: String
        switch e.resultCode {
        case .SQLITE_BUSY, .SQLITE_LOCKED: what = "the database file stayed locked past the busy timeout"
        case .SQLITE_FULL: what = "the disk holding the database is full"
        case .SQLITE_IOERR: what = "an I/O error on the database file"
        case .SQLITE_READONLY: what = "the database file cannot be written"
        case .SQLITE_CANTOPEN: what = "the database file cannot be opened"
        default: return nil
        }
        let summary = "SQLite: \(what)"
        return DatabaseUnavailable(summary: summary, detail: summary + (e.message.map { " (\($0))" } ?? ""))
    }
}

/// What kind of work the calling task does with the database.
public enum DatabaseWork {
    /// True for work the server does on its own (rollups, retention, statistics): not held to
    /// the request deadline (`FleetDatabase.setRequestDeadline`); a pass over a large fleet may
    /// take longer than any request should.
    @TaskLocal public static var isBackground = false
    /// A shorter limit than the request deadline for this task's work (PostgreSQL), such as a
    /// scrape's, which must answer within Prometheus's timeout. Nil: the request deadline.
    @TaskLocal public static var deadline: Duration? = nil
}
