import FleetAPI
@testable import FleetStore
import Foundation
import Testing
import TestSupport

/// `nodes(after:limit:)`, the listing's pages: live nodes by name in byte order on both engines.
/// On PostgreSQL the database is made with a collation that looks past punctuation (ICU's
/// English with punctuation shifted, as glibc's en_US does), the order a production database
/// may have by default and the test server's "C" hides.
@Suite struct NodePagesStoreTests {
    static let names = ["web1", "web-2", "web-10", "web.3", "a", "b-b", "db-1", "db1", "z9", "m"]

    static func byteOrdered(_ names: [String]) -> [String] {
        names.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
    }

    /// A new store whose database orders text as English does.
    static func store() throws -> FleetDatabase {
        guard let server = TestStore.postgresURL else { return try makeDatabase().0 }
        let name = "ksmfleet_test_en_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(12).lowercased()
        try TestStore.psql(
            server, "CREATE DATABASE \(name) TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-u-ka-shifted' LOCALE 'C'")
        var url = try #require(URLComponents(string: server))
        url.path = "/" + name
        return try FleetDatabase.open(try #require(url.string))
    }

    @Test func pagesAreLiveNodesInByteOrder() async throws {
        let db = try Self.store()
        let ids = Self.names.indices.map { "n\($0)" }
        try await db.write { db in
            // Deleted: one of a name no live node has, one namesake of a live node.
            try insertBareNodes(db, ["d1", "d2"], name: { $0 == "d1" ? "c" : "web1" })
            try db.execute(sql: "UPDATE nodes SET deleted_at = 1 WHERE id IN ('d1', 'd2')")
            try insertBareNodes(db, ids, name: { Self.names[Int($0.dropFirst())!] })
        }
        let live = Self.byteOrdered(Self.names)
        if TestStore.isPostgres {
            // The premise: this database's own order is not the bytes'.
            let own = try await db.read { db in
                try String.fetchAll(db, sql: "SELECT name FROM nodes WHERE deleted_at IS NULL ORDER BY name")
            }
            #expect(own != live, "the database's collation orders these names as bytes do: \(own)")
            // A page is a range of the index in bytes (migration 0021), not a sort of every live
            // node: the plan can take it (a table this small is read whole when it may be).
            for after in [false, true] {
                let plan = try await db.read { db in
                    try db.execute(sql: "SET LOCAL enable_seqscan = off")
                    return try String.fetchAll(
                        db, sql: "EXPLAIN " + FleetDatabase.nodesPageSQL(db, after: after),
                        arguments: after ? ["m", 3] : [3])
                }.joined(separator: "\n")
                #expect(plan.contains("nodes_live_name_bytes") && !plan.contains("Sort"), "\(plan)")
            }
        }
        #expect(try await db.nodes().map(\.name) == live)
        // The nodes a fleet-wide apply goes through (and answers in), in the same order.
        #expect(try await db.liveNodeKeys().map(\.name) == live)
        for limit in 1...(live.count + 1) {
            var read: [String] = []
            var after: String?
            var pages = 0
            repeat {
                let page = try await db.nodes(after: after, limit: limit)
                #expect(page.count <= limit)
                read += page.map(\.name)
                after = page.count == limit ? page.last?.name : nil
                pages += 1
            } while after != nil && pages <= live.count + 1
            #expect(read == live, "limit \(limit)")
        }
        // A cursor that is no node's name, or the name of a deleted node.
        #expect(try await db.nodes(after: "c", limit: 100).map(\.name) == live.filter { $0 > "c" })
        #expect(try await db.nodes(after: "", limit: 2).map(\.name) == Array(live.prefix(2)))
        #expect(try await db.nodes(after: "zz", limit: 2).isEmpty)
    }
}
