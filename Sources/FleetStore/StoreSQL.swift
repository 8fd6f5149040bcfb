import Foundation
import GRDB
import GRDBSQLite

// The store's SQL layer: one store logic (every file of FleetStore) over two engines. A method
// writes its SQL once, with `?` placeholders, and runs it through `StoreDB`: on SQLite through
// GRDB's connection, on PostgreSQL through postgres-nio (`PostgresEngine`, placeholders become
// `$1…`). The few statements the engines spell differently ask `db.engine`; the schema is one
// migration series per engine (`migrations/`, `migrations/postgres/`).
//
// The types mirror the part of GRDB the store used before (`Row.fetchOne(db, sql:arguments:)`,
// `row["column"]`, `Int64.fetchOne`, cursors), so the store's code reads as before.

/// Which database engine a store runs on.
public enum StoreEngine: String, Sendable {
    case sqlite, postgres
}

/// One SQL value, engine-neutral.
public enum SQLValue: Sendable, Equatable {
    case null
    case int(Int64)
    case double(Double)
    case text(String)
    case blob([UInt8])

    /// The case, as a number (a prepared statement's argument types, `PreparedStatements.Key`).
    var typeCode: UInt8 {
        switch self {
        case .null: 0
        case .int: 1
        case .double: 2
        case .text: 3
        case .blob: 4
        }
    }

    /// A value read by GRDB.
    init(_ value: DatabaseValue) {
        switch value.storage {
        case .null: self = .null
        case .int64(let v): self = .int(v)
        case .double(let v): self = .double(v)
        case .string(let v): self = .text(v)
        case .blob(let v): self = .blob([UInt8](v))
        }
    }

    var databaseValue: DatabaseValue {
        switch self {
        case .null: return .null
        case .int(let v): return v.databaseValue
        case .double(let v): return v.databaseValue
        case .text(let v): return v.databaseValue
        case .blob(let v): return Data(v).databaseValue
        }
    }
}

/// A Swift value that can be bound to a statement.
public protocol StoreBindable {
    var sqlValue: SQLValue { get }
}

extension Int: StoreBindable { public var sqlValue: SQLValue { .int(Int64(self)) } }
extension Int64: StoreBindable { public var sqlValue: SQLValue { .int(self) } }
extension Int32: StoreBindable { public var sqlValue: SQLValue { .int(Int64(self)) } }
extension Double: StoreBindable { public var sqlValue: SQLValue { .double(self) } }
extension String: StoreBindable { public var sqlValue: SQLValue { .text(self) } }
/// Booleans are stored as 0/1 integers on both engines.
extension Bool: StoreBindable { public var sqlValue: SQLValue { .int(self ? 1 : 0) } }
extension Data: StoreBindable { public var sqlValue: SQLValue { .blob([UInt8](self)) } }
extension Optional: StoreBindable where Wrapped: StoreBindable {
    public var sqlValue: SQLValue { self?.sqlValue ?? .null }
}

/// A statement's arguments, in placeholder order.
public struct StoreArguments: ExpressibleByArrayLiteral, Sendable {
    var values: [SQLValue]

    public init(arrayLiteral elements: (any StoreBindable)?...) {
        values = elements.map { $0?.sqlValue ?? .null }
    }
    public init(_ elements: [(any StoreBindable)?]) {
        values = elements.map { $0?.sqlValue ?? .null }
    }
    /// Values as they are (copying rows generically).
    init(values: [SQLValue]) { self.values = values }
    public static func += (lhs: inout StoreArguments, rhs: StoreArguments) {
        lhs.values += rhs.values
    }
    var grdb: StatementArguments { StatementArguments(values.map(\.databaseValue)) }
}

/// A Swift type a column can be read as.
///
/// On SQLite the values are read with GRDB's `StatementColumnConvertible` decoding (straight
/// from the statement's column, `sqlite3_column_int64` and the like); through the
/// `DatabaseValueConvertible` path alone, each value read from a row went through GRDB's
/// unspecialised generic code, whose metadata look-ups were a fifth of a report's CPU.
public protocol StoreValue: DatabaseValueConvertible, StatementColumnConvertible {
    /// The value from an engine-neutral one; nil when it does not convert (NULL included).
    static func from(_ value: SQLValue) -> Self?
    /// The value of a SQLite column stored as this type's own kind (an integer for the integers
    /// and Bool, text for String, a real for Double, a blob for Data), as GRDB decodes it; nil for
    /// any other kind, which GRDB's decoding then converts (or refuses) as before.
    static func sameKind(_ value: DatabaseValue) -> Self?
}

extension Int64: StoreValue {
    public static func sameKind(_ value: DatabaseValue) -> Int64? {
        if case .int64(let v) = value.storage { return v }
        return nil
    }
    public static func from(_ value: SQLValue) -> Int64? {
        switch value {
        case .int(let v): return v
        case .double(let v): return v.isFinite && v >= -9.2e18 && v <= 9.2e18 ? Int64(v) : nil
        case .text(let s): return Int64(s)
        default: return nil
        }
    }
}
extension Int: StoreValue {
    public static func sameKind(_ value: DatabaseValue) -> Int? {
        if case .int64(let v) = value.storage { return Int(exactly: v) }
        return nil
    }
    public static func from(_ value: SQLValue) -> Int? { Int64.from(value).flatMap { Int(exactly: $0) } }
}
extension Double: StoreValue {
    public static func sameKind(_ value: DatabaseValue) -> Double? {
        if case .double(let v) = value.storage { return v }
        return nil
    }
    public static func from(_ value: SQLValue) -> Double? {
        switch value {
        case .int(let v): return Double(v)
        case .double(let v): return v
        case .text(let s): return Double(s)
        default: return nil
        }
    }
}
extension String: StoreValue {
    public static func sameKind(_ value: DatabaseValue) -> String? {
        if case .string(let v) = value.storage { return v }
        return nil
    }
    public static func from(_ value: SQLValue) -> String? {
        switch value {
        case .text(let s): return s
        case .int(let v): return String(v)
        case .double(let v): return String(v)
        case .blob(let b): return String(decoding: b, as: UTF8.self)
        case .null: return nil
        }
    }
}
extension Bool: StoreValue {
    public static func sameKind(_ value: DatabaseValue) -> Bool? {
        if case .int64(let v) = value.storage { return v != 0 }
        return nil
    }
    public static func from(_ value: SQLValue) -> Bool? {
        switch value {
        case .int(let v): return v != 0
        case .double(let v): return v != 0
        default: return nil
        }
    }
}
extension Data: StoreValue {
    public static func sameKind(_ value: DatabaseValue) -> Data? {
        if case .blob(let v) = value.storage { return v }
        return nil
    }
    public static func from(_ value: SQLValue) -> Data? {
        switch value {
        case .blob(let b): return Data(b)
        case .text(let s): return Data(s.utf8)
        default: return nil
        }
    }
}

extension StoreValue {
    /// The first column of the first row; nil without a row or for NULL.
    public static func fetchOne(_ db: StoreDB, sql: String, arguments: StoreArguments = []) throws -> Self? {
        switch db.kind {
        case .sqlite(let grdb): return try Self.fetchOne(db.reusableStatement(grdb, sql: sql), arguments: arguments.grdb)
        case .postgres(let session): return try session.rows(sql, arguments).first.flatMap { Self.from($0.value(at: 0)) }
        }
    }
    /// The first column of every row (NULLs left out).
    public static func fetchAll(_ db: StoreDB, sql: String, arguments: StoreArguments = []) throws -> [Self] {
        switch db.kind {
        case .sqlite(let grdb):
            return try Row.fetchAll(db.reusableStatement(grdb, sql: sql), arguments: arguments.grdb).compactMap { $0[0] as Self? }
        case .postgres(let session): return try session.rows(sql, arguments).compactMap { Self.from($0.value(at: 0)) }
        }
    }
    /// The first column of a prepared statement's first row.
    public static func fetchOne(_ statement: StoreStatement, arguments: StoreArguments = []) throws -> Self? {
        switch statement.kind {
        case .sqlite(let s): return try Self.fetchOne(s, arguments: arguments.grdb)
        case .postgres(let session, let sql):
            return try session.rows(sql, arguments).first.flatMap { Self.from($0.value(at: 0)) }
        }
    }
}

/// The values of one PostgreSQL result row, with the column names shared by the whole result.
struct ValueRow: Sendable {
    let columns: ColumnIndex
    let values: [SQLValue]
    func value(at index: Int) -> SQLValue { index < values.count ? values[index] : .null }
    func value(named name: String) -> SQLValue {
        guard let i = columns.index[name] else { preconditionFailure("no column \(name) in the result") }
        return values[i]
    }
}

/// Column name → position, built once per result.
final class ColumnIndex: Sendable {
    let index: [String: Int]
    init(_ names: [String]) {
        var index: [String: Int] = [:]
        // The first of two equal names wins, as in SQLite.
        for (i, n) in names.enumerated() where index[n] == nil { index[n] = i }
        self.index = index
    }
}

/// One result row.
public struct StoreRow {
    enum Storage {
        case sqlite(Row)
        case values(ValueRow)
    }
    let storage: Storage

    public subscript<T: StoreValue>(_ column: String) -> T {
        switch storage {
        case .sqlite(let row): return row[column]
        case .values(let row):
            guard let v = T.from(row.value(named: column)) else {
                preconditionFailure("column \(column) is NULL or not a \(T.self)")
            }
            return v
        }
    }
    public subscript<T: StoreValue>(_ column: String) -> T? {
        switch storage {
        case .sqlite(let row): return row[column]
        case .values(let row): return T.from(row.value(named: column))
        }
    }
    public subscript<T: StoreValue>(_ index: Int) -> T {
        switch storage {
        case .sqlite(let row):
            // The column's value read without GRDB's generic decoding when it is of the type's own
            // kind: GRDB's decoding of a copied row looked up `Optional<T>`'s metadata for every
            // value, about a fifth of reading the fleet's nodes (docs/benchmarks.md).
            return T.sameKind(Self.databaseValue(row, index)) ?? row[index]
        case .values(let row):
            guard let v = T.from(row.value(at: index)) else {
                preconditionFailure("column \(index) is NULL or not a \(T.self)")
            }
            return v
        }
    }
    public subscript<T: StoreValue>(_ index: Int) -> T? {
        switch storage {
        case .sqlite(let row):
            let value = Self.databaseValue(row, index)
            if value.isNull { return nil }
            return T.sameKind(value) ?? row[index]
        case .values(let row): return T.from(row.value(at: index))
        }
    }

    /// A SQLite row's value at `index`, as GRDB holds it (`Row`'s (name, value) pairs: no
    /// decoding).
    private static func databaseValue(_ row: Row, _ index: Int) -> DatabaseValue {
        row[row.startIndex.advanced(by: index)].1
    }

    /// Every column's value, in the order of the query's columns (copying rows generically).
    var values: [SQLValue] {
        switch storage {
        case .sqlite(let row): return row.databaseValues.map(SQLValue.init)
        case .values(let row): return row.values
        }
    }

    public static func fetchOne(_ db: StoreDB, sql: String, arguments: StoreArguments = []) throws -> StoreRow? {
        switch db.kind {
        case .sqlite(let grdb):
            return try Row.fetchOne(db.reusableStatement(grdb, sql: sql), arguments: arguments.grdb).map { StoreRow(storage: .sqlite($0)) }
        case .postgres(let session): return try session.rows(sql, arguments).first.map { StoreRow(storage: .values($0)) }
        }
    }
    public static func fetchAll(_ db: StoreDB, sql: String, arguments: StoreArguments = []) throws -> [StoreRow] {
        switch db.kind {
        case .sqlite(let grdb):
            return try Row.fetchAll(db.reusableStatement(grdb, sql: sql), arguments: arguments.grdb).map { StoreRow(storage: .sqlite($0)) }
        case .postgres(let session): return try session.rows(sql, arguments).map { StoreRow(storage: .values($0)) }
        }
    }
    /// Rows one at a time. On SQLite a row is valid only until the next `next()` (GRDB reuses
    /// it); on PostgreSQL the result is read whole first.
    public static func fetchCursor(_ db: StoreDB, sql: String, arguments: StoreArguments = []) throws -> StoreCursor {
        switch db.kind {
        case .sqlite(let grdb):
            let statement = try db.reusableStatement(grdb, sql: sql)
            let cursor = StoreCursor(kind: .sqlite(try Row.fetchCursor(statement, arguments: arguments.grdb)))
            db.cursorStatements.insert(ObjectIdentifier(statement))
            cursor.onClose = { [weak db] in _ = db?.cursorStatements.remove(ObjectIdentifier(statement)) }
            return cursor
        case .postgres(let session): return StoreCursor(kind: .values(try session.rows(sql, arguments)[...]))
        }
    }
}

/// Rows of a query, one at a time (`while let row = try cursor.next()`).
public final class StoreCursor {
    enum Kind {
        case sqlite(RowCursor)
        case values(ArraySlice<ValueRow>)
    }
    private var kind: Kind
    /// Called when the cursor goes away (SQLite: its statement is free for others again).
    var onClose: (() -> Void)?
    init(kind: Kind) { self.kind = kind }
    deinit { onClose?() }

    public func next() throws -> StoreRow? {
        switch kind {
        case .sqlite(let cursor): return try cursor.next().map { StoreRow(storage: .sqlite($0)) }
        case .values(var rows):
            guard let first = rows.popFirst() else { return nil }
            kind = .values(rows)
            return StoreRow(storage: .values(first))
        }
    }
    public func forEach(_ body: (StoreRow) throws -> Void) throws {
        while let row = try next() { try body(row) }
    }
}

/// A statement run many times in one transaction (prepared once on SQLite).
public struct StoreStatement {
    enum Kind {
        case sqlite(Statement)
        case postgres(PostgresSession, String)
    }
    let kind: Kind

    public func execute(arguments: StoreArguments = []) throws {
        switch kind {
        case .sqlite(let s): try s.execute(arguments: arguments.grdb)
        case .postgres(let session, let sql): _ = try session.run(sql, arguments)
        }
    }
}

/// A connection inside a transaction: what a store method's closure gets.
public final class StoreDB {
    enum Kind {
        case sqlite(Database)
        case postgres(PostgresSession)
    }
    let kind: Kind
    init(_ kind: Kind) { self.kind = kind }

    /// SQLite: the statements that open `StoreCursor`s of this transaction step.
    var cursorStatements: Set<ObjectIdentifier> = []

    /// SQLite: this connection's prepared statement for `sql`, compiled once and kept (GRDB's
    /// statement cache) instead of compiled on every call. Compiling, with GRDB's authorizer
    /// that runs while SQLite compiles, was 11 % of the server's CPU in a steady 5,000-node
    /// fleet (docs/benchmarks.md): every long-poll's config read compiled its query anew. The
    /// texts are the store's own, a bounded set: values are always bound, never spliced in.
    /// A statement that an open cursor owns (made, stepping, or done but not yet released:
    /// GRDB's cursor resets its statement when it goes) is never handed out again: the caller
    /// gets a fresh one, so a query asked inside its own loop cannot reset or rebind it.
    func reusableStatement(_ grdb: Database, sql: String) throws -> Statement {
        let statement = try grdb.cachedStatement(sql: sql)
        if cursorStatements.contains(ObjectIdentifier(statement)) || sqlite3_stmt_busy(statement.sqliteStatement) != 0 {
            return try grdb.makeStatement(sql: sql)
        }
        return statement
    }

    public var engine: StoreEngine {
        if case .sqlite = kind { return .sqlite }
        return .postgres
    }
    /// The GRDB connection (SQLite only; its fast paths).
    var sqlite: Database? {
        if case .sqlite(let db) = kind { return db }
        return nil
    }
    /// The PostgreSQL session (its fast paths).
    var postgres: PostgresSession? {
        if case .postgres(let session) = kind { return session }
        return nil
    }

    /// PostgreSQL: gives the sorts and hashes of the rest of this transaction a `work_mem` of
    /// 64 MB (`SET LOCAL`). At the default 4 MB a report's grouping spilled to disk: 30 days of
    /// 1,000 nodes' day rows by node (112 ms against 66 ms in EXPLAIN ANALYZE), an hour of their
    /// raw samples (143 against 96 ms). Nothing on SQLite.
    func reportWorkMemory() throws {
        if engine == .postgres { try execute(sql: "SET LOCAL work_mem = '64MB'") }
    }

    /// Runs one statement (on SQLite also several, separated by `;`, without arguments).
    public func execute(sql: String, arguments: StoreArguments = []) throws {
        switch kind {
        case .sqlite(let db):
            if sql.utf8.contains(UInt8(ascii: ";")) {
                try db.execute(sql: sql, arguments: arguments.grdb)
            } else {
                try reusableStatement(db, sql: sql).execute(arguments: arguments.grdb)
            }
        case .postgres(let session): _ = try session.run(sql, arguments)
        }
    }

    /// Runs `head VALUES (?, …), (?, …), … tail` for `rows`, at most `chunk` rows a statement
    /// (`leading` bound before each statement's rows, for placeholders in `head`): many rows
    /// written in a few statements, where row by row costs a statement each (on PostgreSQL a
    /// round trip each). Every row has the same number of values. The statements come in the
    /// few sizes of `statementSizes`, so the statement caches keep a few texts, not one per count.
    /// `each` gets the rows the statements return (a `RETURNING` in `tail`).
    public func executeValues(
        _ head: String, _ rows: [StoreArguments], leading: StoreArguments = [], tail: String = "", chunk: Int = 512,
        each: ((StoreRow) throws -> Void)? = nil
    ) throws {
        guard let width = rows.first?.values.count, width > 0 else { return }
        let tuple = "(" + repeatElement("?", count: width).joined(separator: ", ") + ")"
        var i = 0
        for size in Self.statementSizes(rows.count, chunk: chunk) {
            var arguments = leading
            arguments.values.reserveCapacity(leading.values.count + width * size)
            for r in rows[i..<i + size] {
                precondition(r.values.count == width, "executeValues: rows of different widths")
                arguments += r
            }
            let sql = "\(head) VALUES \(repeatElement(tuple, count: size).joined(separator: ", ")) \(tail)"
            if let each {
                for row in try StoreRow.fetchAll(self, sql: sql, arguments: arguments) { try each(row) }
            } else {
                try cachedStatement(sql: sql).execute(arguments: arguments)
            }
            i += size
        }
    }

    /// How many rows each statement of `count` rows takes: full chunks of `chunk`, then the rest
    /// in powers of two, largest first. So a statement has one of a few sizes (as many as the
    /// powers of two below `chunk`, plus one), whatever the count: each size is a text of its
    /// own that GRDB's statement cache and the PostgreSQL placeholder cache keep.
    static func statementSizes(_ count: Int, chunk: Int) -> [Int] {
        precondition(chunk > 0)
        var sizes = Array(repeating: chunk, count: count / chunk)
        var rest = count % chunk
        var power = 1
        while power * 2 <= rest { power *= 2 }
        while rest > 0 {
            if power <= rest {
                sizes.append(power)
                rest -= power
            }
            power /= 2
        }
        return sizes
    }

    /// Runs a script of several statements without arguments (a migration).
    func executeScript(_ sql: String) throws {
        switch kind {
        case .sqlite(let db): try db.execute(sql: sql)
        case .postgres(let session): try session.script(sql)
        }
    }

    /// A statement to run many times (SQLite: the connection's cached one, `reusableStatement`).
    public func cachedStatement(sql: String) throws -> StoreStatement {
        switch kind {
        case .sqlite(let db): return StoreStatement(kind: .sqlite(try reusableStatement(db, sql: sql)))
        case .postgres(let session): return StoreStatement(kind: .postgres(session, sql))
        }
    }

    /// Rows changed by the latest INSERT, UPDATE or DELETE.
    public var changesCount: Int {
        switch kind {
        case .sqlite(let db): return db.changesCount
        case .postgres(let session): return session.lastChanges
        }
    }

    /// False once a failure ended the whole transaction (SQLite's disk full; on PostgreSQL a
    /// serialization failure, which the engine retries as a whole).
    public var isInsideTransaction: Bool {
        switch kind {
        case .sqlite(let db): return db.isInsideTransaction
        case .postgres(let session): return !session.transactionDoomed
        }
    }

    /// `INDEXED BY name` on SQLite (its planner needs the hint there), nothing on PostgreSQL.
    func indexedBy(_ index: String) -> String {
        engine == .sqlite ? "INDEXED BY \(index)" : ""
    }
    /// `(SELECT value …)`: the strings of a JSON array bound to the next placeholder.
    func jsonArrayValues() -> String {
        engine == .sqlite
            ? "(SELECT value FROM json_each(?))" : "(SELECT value FROM json_array_elements_text(CAST(? AS json)))"
    }
    /// `column` is one of the strings of a JSON array bound to the next placeholder (a `WHERE`
    /// term). On PostgreSQL `= ANY(ARRAY(…))` rather than `IN (SELECT …)`: the planner takes the
    /// set-returning function for 100 rows, and for an `IN` it then hashes a scan of the whole
    /// table (the group commit's node check read all 10,000 nodes for three ids, 1.4 ms a call);
    /// the array goes to the column's index (0.01 ms).
    func inJSONArray(_ column: String) -> String {
        engine == .sqlite
            ? "\(column) IN \(jsonArrayValues())"
            : "\(column) = ANY(ARRAY(SELECT json_array_elements_text(CAST(? AS json))))"
    }
    /// A table of `key`, `value` (text): the entries of a JSON object of strings bound to the
    /// next placeholder.
    func jsonObjectEntries() -> String {
        engine == .sqlite ? "json_each(?)" : "json_each_text(CAST(? AS json))"
    }
    /// A text column ordered by its bytes on both engines (an `ORDER BY` term): SQLite's own
    /// order; PostgreSQL's follows the column's collation (the database's by default, which may
    /// look past punctuation: `web1` before `web-2`) unless told "C".
    func byteOrder(_ column: String) -> String {
        engine == .postgres ? "\(column) COLLATE \"C\"" : column
    }
    /// The tables that have a column of this name.
    func tablesWithColumn(_ column: String) throws -> [String] {
        switch engine {
        case .sqlite:
            return try String.fetchAll(
                self,
                sql: """
                    SELECT m.name FROM sqlite_master m WHERE m.type = 'table'
                      AND EXISTS (SELECT 1 FROM pragma_table_info(m.name) p WHERE p.name = ?)
                    """, arguments: [column])
        case .postgres:
            return try String.fetchAll(
                self,
                sql: """
                    SELECT c.table_name FROM information_schema.columns c
                    JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
                    WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE' AND c.column_name = ?
                    """, arguments: [column])
        }
    }
    /// A name quoted as an SQL identifier (the same on both engines).
    static func quoted(_ name: String) -> String {
        "\"" + name.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
    /// The order the nodes' rows of one bucket are added in for the fleet's and the label
    /// groups' sums, on both engines: the order of the covering index `rollup_<level>_start`
    /// (`bucket_start, saved_avg, cpu_pct_avg, saved_byte_seconds`, then the key's `node_id` in
    /// bytes), which SQLite reads the rows in (`INDEXED BY`) and PostgreSQL is told. Rows tied on
    /// the index's columns have the same `saved_byte_seconds`, so the order among them does not
    /// change a sum of it; `node_id` only makes the order total. Both engines thus give the same
    /// doubles, and sums copied by `migrate-data` are the ones PostgreSQL computes.
    var bucketRowOrder: String { "saved_avg, cpu_pct_avg, saved_byte_seconds, \(byteOrder("node_id"))" }
    /// The rows of rollup table `table` with `bucket_start` in [?, ?) (two placeholders), as the
    /// FROM item of a query whose `orderedSum`s per `bucket_start` add each bucket's rows in
    /// `bucketRowOrder`, so that the fleet rollup and a sum over rollup_hour are the same double
    /// (0040) on either engine: SQLite reads them through the `rollup_<level>_start` index, in its
    /// order; PostgreSQL sorts them in a subquery (`columns`: what the query reads), whose order
    /// its aggregate keeps (such a subquery is not merged into the query, and an aggregate adds
    /// the rows in the order they come). The subquery's order leaves `node_id` out: rows
    /// tied on the index's columns have the same `saved_byte_seconds`, `saved_avg` and
    /// `cpu_pct_avg`, so a sum of any of them is the same whatever their order, and the index
    /// gives the rest of the order without a sort (a month's fleet day series: 38 against 4 ms in
    /// `EXPLAIN ANALYZE`). `SUM(x ORDER BY …)` sorted each bucket's rows again for each sum.
    func bucketRows(_ table: String, columns: String) -> String {
        engine == .sqlite
            ? "\(table) INDEXED BY \(table)_start WHERE bucket_start >= ? AND bucket_start < ?"
            : """
            (SELECT bucket_start, \(columns) FROM \(table) WHERE bucket_start >= ? AND bucket_start < ?
              ORDER BY bucket_start, saved_avg, cpu_pct_avg, saved_byte_seconds) AS r
            """
    }
    /// A sum of doubles added left to right in the order the query hands its rows over (a
    /// `bucketRows` FROM item): SQLite's `ksm_sum` (`LeftToRightSum`: its own `SUM` compensates
    /// from 3.43 on), PostgreSQL's `SUM`.
    func orderedSum(_ column: String) -> String {
        engine == .sqlite ? "\(LeftToRightSum.name)(\(column))" : "SUM(\(column))"
    }
    /// Raw samples in time order, ties (samples of one second) in the order they were sent:
    /// SQLite's taken_at indexes keep ties in rowid order (as stored) without a sort; PostgreSQL
    /// has no such order, so ties go by sequence number.
    var sampleOrder: String { engine == .sqlite ? "taken_at" : "taken_at, seq" }
    /// No row limit before an OFFSET: SQLite's `LIMIT -1`, PostgreSQL's `LIMIT ALL`.
    var noLimit: String { engine == .sqlite ? "LIMIT -1" : "LIMIT ALL" }
    /// The larger of two values: SQLite's scalar `MAX(a, b)`, PostgreSQL's `GREATEST(a, b)`.
    func greatest(_ a: String, _ b: String) -> String {
        engine == .sqlite ? "MAX(\(a), \(b))" : "GREATEST(\(a), \(b))"
    }
    /// The smaller of two values: SQLite's scalar `MIN(a, b)`, PostgreSQL's `LEAST(a, b)`.
    func least(_ a: String, _ b: String) -> String {
        engine == .sqlite ? "MIN(\(a), \(b))" : "LEAST(\(a), \(b))"
    }
}
