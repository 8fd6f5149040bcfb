import GRDB
import PostgresNIO

/// Failures that say the database cannot serve requests now — it is down, restarting, out of
/// reach, out of connections or disk, or locked by another process — rather than that a request
/// or the server is wrong. The server answers them 503 with the reason and `Retry-After` (agents
/// spool their samples and retry), and logs them as one outage instead of a line per request.
public enum DatabaseUnavailable {
    /// The reason, in the engine's words, or nil when `error` is not such a failure.
    public static func reason(_ error: any Error) -> String? {
        switch error {
        case let e as PostgresError:
            return e.unavailableReason
        case let e as PSQLError:
            return PostgresError(e, sql: nil).unavailableReason
        case let e as DatabaseError:
            return sqliteReason(e)
        default:
            return nil
        }
    }

    /// SQLite: locked longer than the busy timeout (another process holds the file: a backup,
    /// an operator's `sqlite3`), the disk full, an I/O error, the file or its directory made
    /// read-only or gone. Constraint and SQL errors are not outages.
    static func sqliteReason(_ e: DatabaseError) -> String? {
        let what: String
        switch e.resultCode {
        case .SQLITE_BUSY, .SQLITE_LOCKED: what = "the database file is locked by another process"
        case .SQLITE_FULL: what = "the disk holding the database is full"
        case .SQLITE_IOERR: what = "an I/O error on the database file"
        case .SQLITE_READONLY: what = "the database file cannot be written"
        case .SQLITE_CANTOPEN: what = "the database file cannot be opened"
        default: return nil
        }
        return "SQLite: \(what)" + (e.message.map { " (\($0))" } ?? "")
    }
}
