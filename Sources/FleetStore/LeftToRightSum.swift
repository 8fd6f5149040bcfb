import GRDB
import GRDBSQLite

/// `ksm_sum(x)` on SQLite: the doubles of its rows added left to right, in the order the query
/// hands them over, as SQLite's `SUM` did up to 3.42 and PostgreSQL's does. SQLite 3.43 and later
/// compensate their `SUM`s (Kahan–Babuska–Neumaier), so a server built against a newer SQLite
/// (Debian 13, Ubuntu 24.04) gave the fleet's bucket sums other last bits than PostgreSQL's, and
/// than the sums `migrate-data` copies. NULLs are skipped; no value at all gives NULL; the first
/// value is the sum's start (PostgreSQL's `SUM` too). Written against SQLite's C interface: a
/// GRDB aggregate boxes every argument (`LeftToRightSumTests`).
enum LeftToRightSum {
    static let name = "ksm_sum"

    /// Registers `ksm_sum` on a connection (`FleetDatabase`'s `prepareDatabase`).
    static func register(_ db: Database) throws {
        let rc = sqlite3_create_function_v2(
            db.sqliteConnection, name, 1, SQLITE_UTF8 | SQLITE_DETERMINISTIC, nil, nil, step, final, nil)
        guard rc == SQLITE_OK else {
            throw DatabaseError(resultCode: ResultCode(rawValue: rc), message: "could not register \(name)")
        }
    }

    /// The aggregate's state, zeroed by SQLite when first asked for.
    private struct State {
        var values: Int64
        var sum: Double
    }

    private static let step: @convention(c) (OpaquePointer?, Int32, UnsafeMutablePointer<OpaquePointer?>?) -> Void = {
        context, _, arguments in
        guard let value = arguments?[0], sqlite3_value_type(value) != SQLITE_NULL else { return }
        guard let p = sqlite3_aggregate_context(context, Int32(MemoryLayout<State>.size)) else {
            sqlite3_result_error_nomem(context)
            return
        }
        let state = p.assumingMemoryBound(to: State.self)
        let v = sqlite3_value_double(value)
        state.pointee.sum = state.pointee.values == 0 ? v : state.pointee.sum + v
        state.pointee.values += 1
    }

    private static let final: @convention(c) (OpaquePointer?) -> Void = { context in
        // Size 0: no allocation when no row reached `step`.
        guard let p = sqlite3_aggregate_context(context, 0) else {
            sqlite3_result_null(context)
            return
        }
        let state = p.assumingMemoryBound(to: State.self)
        if state.pointee.values == 0 { sqlite3_result_null(context) } else { sqlite3_result_double(context, state.pointee.sum) }
    }
}
