import FleetClient
import FleetTestSupport
import Foundation
import TestSupport
import Testing

/// A replica on PostgreSQL whose password lives in a password file (`passfile`): the database
/// password rotated, the replica's new connections are refused until the file has the new one
/// and SIGHUP has the server read it, without a restart; a file refused at a SIGHUP keeps the
/// one read before.
@Suite struct DatabaseFilesReloadTests {
    @Test func sighupRereadsThePasswordFile() async throws {
        guard let serverURL = TestStore.postgresURL else {
            try Test.cancel("needs PostgreSQL: runs on the PostgreSQL pass of make test (KSMFLEET_TEST_POSTGRES)")
        }
        let c = try #require(URLComponents(string: serverURL))
        let name = "ksmfleet_test_reload_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(12).lowercased()
        // ksmfleet_password logs in with its password only (scripts/postgres-test-server.sh).
        try TestStore.psql(
            serverURL,
            """
            DO $$BEGIN CREATE ROLE ksmfleet_password LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END$$;
            ALTER ROLE ksmfleet_password PASSWORD 'first-password';
            """)
        try TestStore.psql(serverURL, "CREATE DATABASE \(name) OWNER ksmfleet_password")
        defer { _ = try? TestStore.psql(serverURL, "DROP DATABASE IF EXISTS \(name) WITH (FORCE)") }

        let dir = makeTemporaryDirectory(prefix: "ksmfleet-passfile-reload")
        defer { try? FileManager.default.removeItem(at: dir) }
        let pass = dir.appending(path: "pgpass")
        func writePassword(_ password: String) throws {
            try Data("*:*:*:ksmfleet_password:\(password)\n".utf8).write(to: pass)
            try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: pass.path)
        }
        try writePassword("first-password")
        let url = "postgres://ksmfleet_password@\(try #require(c.host)):\(c.port ?? 5432)/\(name)?sslmode=disable&passfile=\(pass.path)"
        // The URL the server is started with (TestStore.location reads it from the data directory).
        try Data(url.utf8).write(to: dir.appending(path: "test-database-url"))
        let server = try await ServerProcess.start(dataDir: dir)
        do {
            try #require(
                await waitUntil(timeout: .seconds(10)) { server.output().contains("database connection files: SIGHUP re-reads them") },
                "\(server.output())")
            let admin = try FleetClient(ClientOptions(serverURL: server.baseURL, token: server.adminToken, connectTimeout: 5))
            func status() async throws -> Int { try await admin.send(method: "GET", path: "/api/v1/nodes").status }
            #expect(try await status() == 200)

            // The password rotated and the replica's connections closed: new ones are refused.
            try TestStore.psql(serverURL, "ALTER ROLE ksmfleet_password PASSWORD 'second-password'")
            let cut = "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = :'db'"
            try TestStore.psql(serverURL, cut, variables: ["db": name])
            #expect(await waitUntil(timeout: .seconds(10)) { (try? await status()) == 503 }, "new connections with the old password")

            // The new password in the file, then SIGHUP: served again, no restart.
            try writePassword("second-password")
            server.send(signal: SIGHUP)
            try #require(
                await waitUntil(timeout: .seconds(10)) { server.output().contains("database connection files re-read") },
                "\(server.output())")
            #expect(await waitUntil(timeout: .seconds(15)) { (try? await status()) == 200 }, "\(server.output())")
            // The config notifications' LISTEN, cut with the rest, listens again with the new
            // password (it retries every 10 s at most).
            let listening = "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = :'db' AND application_name = 'ksmfleet-listen'"
            #expect(
                await waitUntil(timeout: .seconds(25)) {
                    (try? TestStore.psql(serverURL, listening, variables: ["db": name]))?.trimmingCharacters(in: .whitespacesAndNewlines) == "1"
                }, "\(server.output())")
            #expect(!server.output().contains("second-password") && !server.output().contains("first-password"))

            // A file others may read is refused at the next SIGHUP; the password read before stays.
            try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: pass.path)
            server.send(signal: SIGHUP)
            try #require(
                await waitUntil(timeout: .seconds(10)) { server.output().contains("database connection files refused") },
                "\(server.output())")
            try TestStore.psql(serverURL, cut, variables: ["db": name])
            #expect(await waitUntil(timeout: .seconds(15)) { (try? await status()) == 200 }, "\(server.output())")
            #expect(server.isRunning)
        } catch {
            await server.stop()
            throw error
        }
        await server.stop()
    }
}
