import Foundation
import GRDB
import Testing

@testable import FleetStore

/// `StoreRow`'s columns by position on SQLite: a value of the type's own kind is read without
/// GRDB's generic decoding (`StoreValue.sameKind`), any other kind through it. Either way the
/// value is the one GRDB's decoding gives (`fromDatabaseValue`), for every stored type and every
/// kind of value SQLite holds, NULL included.
@Suite("store rows' values by position")
struct StoreRowValueTests {
    /// One column of every kind, and values at the edges of each type.
    static let columns =
        "SELECT 7, -9223372036854775808, 1099511627776, 0, 2.0, 2.5, -0.0, 1e300, '12', 'x', '', NULL, x'6869', x''"

    /// Each column's value as `T` and as `T?` against GRDB's own conversion of the same value;
    /// columns GRDB does not convert to `T` (it would stop the process) are left out. The count
    /// of columns compared, and what differed.
    static func compare<T: StoreValue & Equatable>(_: T.Type, _ row: StoreRow) -> (Int, [String]) {
        guard case .sqlite(let grdb) = row.storage else { return (0, ["not a SQLite row"]) }
        var compared = 0
        var differences: [String] = []
        for i in 0..<grdb.count {
            let value = grdb[grdb.startIndex.advanced(by: i)].1
            let reference: T? = value.isNull ? nil : T.fromDatabaseValue(value)
            if !value.isNull && reference == nil { continue }
            let optional = row[i] as T?
            if optional != reference { differences.append("column \(i) (\(value)) as \(T.self)?: \(String(describing: optional))") }
            if let reference, row[i] as T != reference {
                differences.append("column \(i) (\(value)) as \(T.self): \(row[i] as T)")
            }
            compared += 1
        }
        return (compared, differences)
    }

    @Test("every type from every kind of column: the value GRDB decodes")
    func asGRDBDecodes() async throws {
        let (db, dir) = try makeSQLiteDatabase()
        defer {
            try? db.close()
            try? FileManager.default.removeItem(at: dir)
        }
        let results = try await db.read { sdb in
            guard let row = try StoreRow.fetchOne(sdb, sql: Self.columns) else { return [(0, ["no row"])] }
            return [
                Self.compare(Int64.self, row), Self.compare(Int.self, row), Self.compare(Double.self, row),
                Self.compare(String.self, row), Self.compare(Bool.self, row), Self.compare(Data.self, row),
            ]
        }
        #expect(results.flatMap(\.1) == [])
        let counts = results.map(\.0)
        // Int64 and Int: the four integers, the three reals that fit (2.5 as 2) and NULL; 1e300,
        // text and blobs do not convert. Double and Bool: every number and NULL. String: text and
        // the blobs (UTF-8). Data: blobs and text.
        #expect(counts == [8, 8, 9, 6, 9, 6])
    }
}
