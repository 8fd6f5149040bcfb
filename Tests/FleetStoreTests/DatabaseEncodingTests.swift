import Foundation
import TestSupport
import Testing

@testable import FleetStore

/// A PostgreSQL database that does not store text as UTF8 is refused when the store opens it,
/// before any migration: in LATIN1 a label or a description with a character LATIN1 lacks would
/// fail its request; in SQL_ASCII any bytes are stored unchecked.
@Suite struct DatabaseEncodingTests {
    /// A new database in `encoding` on the test server, locale C: its URL, and its drop.
    static func database(encoding: String) throws -> (location: String, drop: () -> Void) {
        guard let server = TestStore.postgresURL else {
            try Test.cancel("PostgreSQL only: runs on the PostgreSQL pass of make test (KSMFLEET_TEST_POSTGRES)")
        }
        let name = "ksmfleet_test_enc_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(12).lowercased()
        _ = try TestStore.psql(server, "CREATE DATABASE \(name) TEMPLATE template0 ENCODING '\(encoding)' LOCALE 'C'")
        var url = try #require(URLComponents(string: server))
        url.path = "/" + name
        return (try #require(url.string), { _ = try? TestStore.psql(server, "DROP DATABASE \(name) WITH (FORCE)") })
    }

    @Test(arguments: ["LATIN1", "SQL_ASCII"])
    func aDatabaseNotInUTF8IsRefusedBeforeAnyMigration(encoding: String) throws {
        let (location, drop) = try Self.database(encoding: encoding)
        defer { drop() }
        do {
            let db = try FleetDatabase.open(location)
            try? db.close()
            Issue.record("a database in \(encoding) was opened")
        } catch let error as StoreError {
            #expect(error == .databaseNotUTF8(path: try #require(try PostgresLocation(url: location)).description, encoding: encoding))
            #expect(error.description.contains("as \(encoding), not UTF8") && error.description.contains("--encoding UTF8"))
        }
        let tables = try TestStore.psql(location, "SELECT COUNT(*) FROM pg_tables WHERE schemaname = 'public'")
        #expect(tables.trimmingCharacters(in: .whitespacesAndNewlines) == "0", "the refused database was written to")
    }

    /// The same database made in UTF8 opens and is migrated (the test server's own databases
    /// are UTF8 and every other suite opens them; this one has the same locale as the refused).
    @Test func aDatabaseInUTF8Opens() throws {
        let (location, drop) = try Self.database(encoding: "UTF8")
        defer { drop() }
        let db = try FleetDatabase.open(location)
        try db.close()
        let version = try TestStore.psql(location, "SELECT MAX(version) FROM schema_migrations")
        #expect(Int(version.trimmingCharacters(in: .whitespacesAndNewlines)) == allPostgresMigrations.map(\.number).max())
    }
}
