import Foundation
import GRDB
import Testing

@testable import FleetStore

/// Which failures mean the database cannot serve requests now (the server answers them 503
/// `database_unavailable`; DatabaseOutageTests in the server suite tries a real one).
@Suite("database unavailable: which failures")
struct DatabaseUnavailableTests {
    @Test(
        "which failures are an outage: connection failures and PostgreSQL's shutdown, connection and resource states, SQLite's lock, disk and file errors; not a statement's own error"
    )
    func whichFailuresAreAnOutage() {
        // PostgreSQL, by SQLSTATE (the server answered).
        for state in ["57P01", "57P02", "57P03", "53300", "53100", "08006", "08001"] {
            let e = PostgresError(sqlState: state, message: "m", sql: nil)
            #expect(DatabaseUnavailable.reason(e) == "PostgreSQL: m [SQLSTATE \(state)]", "\(state)")
        }
        for state in ["23505", "40001", "42P01", "22003", "55000"] {
            #expect(
                DatabaseUnavailable.reason(PostgresError(sqlState: state, message: "m", sql: nil)) == nil, "\(state)")
        }
        // SQLite, by result code.
        for code in [
            ResultCode.SQLITE_BUSY, .SQLITE_LOCKED, .SQLITE_FULL, .SQLITE_IOERR, .SQLITE_READONLY, .SQLITE_CANTOPEN,
        ] {
            let reason = DatabaseUnavailable.reason(DatabaseError(resultCode: code, message: "x"))
            #expect(reason?.hasPrefix("SQLite: ") == true && reason?.hasSuffix(" (x)") == true, "\(code)")
        }
        // Extended codes count by their primary one (a busy snapshot, a short read).
        #expect(DatabaseUnavailable.reason(DatabaseError(resultCode: .SQLITE_BUSY_SNAPSHOT)) != nil)
        #expect(DatabaseUnavailable.reason(DatabaseError(resultCode: .SQLITE_IOERR_SHORT_READ)) != nil)
        for code in [ResultCode.SQLITE_CONSTRAINT, .SQLITE_ERROR, .SQLITE_MISMATCH, .SQLITE_CONSTRAINT_UNIQUE] {
            #expect(DatabaseUnavailable.reason(DatabaseError(resultCode: code)) == nil, "\(code)")
        }
        #expect(DatabaseUnavailable.reason(CancellationError()) == nil)
    }

    @Test(
        "a PostgreSQL connection that could not be opened is an outage whatever the server said; one lost without an answer too"
    )
    func connectionFailures() {
        let refused = PostgresError(CancellationError(), sql: nil, connecting: true)
        #expect(DatabaseUnavailable.reason(refused) != nil)
        #expect(DatabaseUnavailable.reason(PostgresError(CancellationError(), sql: nil)) == nil)
    }
}
