import Foundation
import GRDB
import TestSupport
import Testing

@testable import FleetStore

/// `ksm_sum` (`LeftToRightSum`) adds its rows' doubles left to right in the order the query hands
/// them over, whatever the SQLite version's own `SUM` does (3.43 and later compensate).
@Suite struct LeftToRightSumTests {
    @Test func itAddsLeftToRightSkipsNullsAndIsNullWithoutValues() async throws {
        let (db, dir) = try makeSQLiteDatabase()
        defer { try? FileManager.default.removeItem(at: dir) }
        var r = SeededRandom(seed: 7)
        // Magnitudes from 1 to 2^60, some negative, some NULL: the order decides the last bits.
        let values: [Double?] = (0..<500).map { _ in
            r.next() % 9 == 0
                ? nil : Double(r.next() % 1_000_000) * pow(2, Double(r.next() % 40)) / Double(1 + r.next() % 7)
                    * (r.next() % 5 == 0 ? -1 : 1)
        }
        let present = values.compactMap { $0 }
        let leftToRight = present.dropFirst().reduce(present[0], +)
        let rightToLeft = present.reversed().dropFirst().reduce(present.last!, +)
        #expect(leftToRight != rightToLeft, "the values must make the order matter")
        var compensated = (sum: 0.0, c: 0.0)  // Kahan–Babuska–Neumaier, as SQLite 3.43's SUM
        for v in present {
            let t = compensated.sum + v
            compensated.c += abs(compensated.sum) >= abs(v) ? (compensated.sum - t) + v : (v - t) + compensated.sum
            compensated.sum = t
        }
        #expect(compensated.sum + compensated.c != leftToRight, "the values must tell a compensated sum apart")
        let (up, down, none, one) = try await db.write { db in
            try db.execute(sql: "CREATE TABLE v (i INTEGER PRIMARY KEY, x REAL)")
            for (i, v) in values.enumerated() {
                try db.execute(sql: "INSERT INTO v (i, x) VALUES (?, ?)", arguments: [i, v])
            }
            func sum(_ sql: String) throws -> Double? { try Double.fetchOne(db, sql: sql) }
            return (
                try sum("SELECT ksm_sum(x) FROM (SELECT x FROM v ORDER BY i)"),
                try sum("SELECT ksm_sum(x) FROM (SELECT x FROM v ORDER BY i DESC)"),
                try sum("SELECT ksm_sum(x) FROM v WHERE x IS NULL"),
                try sum("SELECT ksm_sum(x) FROM v WHERE i = (SELECT MIN(i) FROM v WHERE x IS NOT NULL)")
            )
        }
        #expect(up == leftToRight)
        #expect(down == rightToLeft)
        #expect(none == nil)
        #expect(one == present[0])
    }
}
