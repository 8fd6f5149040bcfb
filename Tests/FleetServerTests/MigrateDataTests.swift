import FleetAPI
import FleetClient
import FleetStore
import FleetTestSupport
import Foundation
import KSMCore
import TestSupport
import Testing

/// `ksmfleet-server migrate-data` as an operator runs it: the built binary copies a running
/// SQLite server's data into PostgreSQL, says what it copied, refuses to do it twice, and a
/// server started on the copy serves the same node. Needs the PostgreSQL of `make test`'s second
/// pass.
@Suite("ksmfleet-server migrate-data")
struct MigrateDataTests {
    struct Run {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// Runs the built ksmfleet-server with `arguments` to its end (KSMFLEET_DATABASE only as given).
    static func run(_ arguments: [String], in dir: URL, database: String? = nil) async throws -> Run {
        let binary = try #require(ServerProcess.binaryPath(), "swift build --build-tests first")
        return try await offPool {
            let id = UUID().uuidString.prefix(6)
            let out = dir.appending(path: "migrate-\(id).out")
            let err = dir.appending(path: "migrate-\(id).err")
            _ = FileManager.default.createFile(atPath: out.path, contents: nil)
            _ = FileManager.default.createFile(atPath: err.path, contents: nil)
            let p = Process()
            p.executableURL = URL(fileURLWithPath: binary)
            p.arguments = arguments
            var env = ProcessInfo.processInfo.environment
            env["KSMFLEET_DATABASE"] = database
            p.environment = env
            p.standardOutput = try FileHandle(forWritingTo: out)
            p.standardError = try FileHandle(forWritingTo: err)
            p.standardInput = FileHandle.nullDevice
            try p.run()
            p.waitUntilExit()
            return Run(
                status: p.terminationStatus, stdout: (try? String(contentsOf: out, encoding: .utf8)) ?? "",
                stderr: (try? String(contentsOf: err, encoding: .utf8)) ?? "")
        }
    }

    /// The rows count printed for `table` in the summary.
    static func printedRows(_ output: String, _ table: String) -> Int? {
        for line in output.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            if fields.count == 2, fields[0] == table { return Int(fields[1]) }
        }
        return nil
    }

    @Test func copiesARunningServerAndAServerStartsOnTheCopy() async throws {
        guard let postgres = TestStore.postgresURL else {
            try Test.cancel("runs on the PostgreSQL pass of make test (KSMFLEET_TEST_POSTGRES)")
        }
        let dir = makeTemporaryDirectory(prefix: "migrate-data")
        defer { try? FileManager.default.removeItem(at: dir) }
        let sqlite = dir.appending(path: "ksmfleet.sqlite").path
        let adminToken = "ka_migrate_data_test"

        // A server on SQLite (even on the PostgreSQL pass: the last --database wins), with a node.
        let old = try await ServerProcess.start(
            dataDir: dir, adminToken: adminToken, extraArguments: ["--database", "sqlite:" + sqlite])
        let admin = try Fixtures.client(old.baseURL, token: adminToken)
        let enrollment = try await admin.createEnrollmentToken(CreateEnrollmentTokenRequest(description: "migrate"))
        let reg = try await Fixtures.client(old.baseURL, token: nil).register(
            Fixtures.registerRequest(hostname: "mover"), enrollmentToken: try #require(enrollment.token))
        _ = try await admin.patchConfig(reg.nodeId, ConfigPatch(run: .run, mode: .high))
        try await admin.setLabels(reg.nodeId, ["zone": "b"])
        let node = try Fixtures.client(old.baseURL, token: reg.nodeToken)
        #expect(try await node.pushSamples(nodeId: reg.nodeId, Fixtures.batch(1...30)).highestSeq == 30)

        // Copied while it runs. The URL carries a password (the test server trusts loopback and
        // ignores it): it must not be printed.
        let target = try TestStore.createDatabase(on: postgres)
        var withPassword = try #require(URLComponents(string: target))
        withPassword.password = "s3cret-pw"
        let targetURL = try #require(withPassword.string)
        let first = try await Self.run(["migrate-data", "--from", "sqlite:" + sqlite, "--to", targetURL], in: dir)
        #expect(first.status == 0, "\(first)")
        #expect(Self.printedRows(first.stdout, "nodes") == 1, "\(first.stdout)")
        #expect(Self.printedRows(first.stdout, "samples") == 30, "\(first.stdout)")
        #expect(Self.printedRows(first.stdout, "node_configs") == 1, "\(first.stdout)")
        #expect((Self.printedRows(first.stdout, "audit_log") ?? 0) >= 3, "\(first.stdout)")
        #expect(first.stdout.contains("total ("), "\(first.stdout)")
        #expect(first.stdout.contains(" s\n"), "the time taken: \(first.stdout)")
        // Quoted: the URL's parameters are joined by '&', which a shell would take as "run in the background".
        #expect(first.stdout.contains("--database 'postgres://postgres@"), "\(first.stdout)")
        #expect(first.stdout.contains("A password in the URL is not printed"), "\(first.stdout)")
        #expect(!first.stdout.contains("s3cret-pw") && !first.stderr.contains("s3cret-pw"))
        #expect(first.stderr.contains("samples: 30 rows"), "progress: \(first.stderr)")
        // The planner's statistics are gathered (pg_class.reltuples is -1 for a table never analyzed).
        #expect(first.stderr.contains("(ANALYZE)"), "progress: \(first.stderr)")
        #expect(try TestStore.psql(target, "SELECT reltuples::bigint FROM pg_class WHERE relname = 'samples'") == "30")

        // Again into the same database (named by KSMFLEET_DATABASE this time): refused, nothing written.
        let second = try await Self.run(["migrate-data", "--from", "sqlite:" + sqlite], in: dir, database: targetURL)
        #expect(second.status != 0)
        #expect(second.stderr.contains("not empty") && second.stderr.contains("nodes"), "\(second)")
        #expect(!second.stderr.contains("s3cret-pw"))
        #expect(try TestStore.psql(target, "SELECT COUNT(*) FROM samples") == "30")
        #expect(try TestStore.psql(target, "SELECT COUNT(*) FROM nodes") == "1")

        // A missing source is not created and copied as empty.
        let missing = try await Self.run(
            ["migrate-data", "--from", "sqlite:" + dir.appending(path: "nope.sqlite").path, "--to", target], in: dir)
        #expect(missing.status != 0 && missing.stderr.contains("no SQLite database"), "\(missing)")
        #expect(!FileManager.default.fileExists(atPath: dir.appending(path: "nope.sqlite").path))

        // The server on the copy: same node, config, labels, samples; the node's token works.
        await old.stop()
        try Data(target.utf8).write(to: dir.appending(path: "test-database-url"))
        let new = try await ServerProcess.start(
            dataDir: dir, adminToken: adminToken, extraArguments: ["--database", target])
        defer { Task { await new.stop() } }
        #expect(new.output().contains("engine=postgres"), "\(new.output())")
        let info = try await Fixtures.client(new.baseURL, token: adminToken).node(reg.nodeId)
        #expect(info.name == "mover" && info.labels == ["zone": "b"])
        #expect(info.config.generation == 2 && info.config.config.mode == .high)
        #expect(info.lastSample?.seq == 30)
        let again = try Fixtures.client(new.baseURL, token: reg.nodeToken)
        #expect(try await again.pushSamples(nodeId: reg.nodeId, Fixtures.batch(31...32)).highestSeq == 32)
        #expect(try TestStore.psql(target, "SELECT COUNT(*) FROM samples") == "32")
    }

    /// Every invocation of before the subcommands still means the server; `--help` still shows
    /// its options; `serve` names it explicitly.
    @Test func theServerIsStillTheDefault() async throws {
        let dir = makeTemporaryDirectory(prefix: "migrate-help")
        defer { try? FileManager.default.removeItem(at: dir) }
        let help = try await Self.run(["--help"], in: dir)
        #expect(help.status == 0)
        #expect(help.stdout.contains("--data-dir") && help.stdout.contains("--tls-cert"), "\(help.stdout)")
        #expect(help.stdout.contains("migrate-data"), "\(help.stdout)")
        let serveHelp = try await Self.run(["serve", "--help"], in: dir)
        #expect(serveHelp.status == 0 && serveHelp.stdout.contains("--data-dir"), "\(serveHelp)")
        let migrateHelp = try await Self.run(["migrate-data", "--help"], in: dir)
        #expect(migrateHelp.status == 0 && migrateHelp.stdout.contains("--from") && migrateHelp.stdout.contains("--to"))
        let noTarget = try await Self.run(["migrate-data", "--from", "x"], in: dir)
        #expect(noTarget.status != 0 && noTarget.stderr.contains("KSMFLEET_DATABASE"), "\(noTarget)")
        let badURL = try await Self.run(["migrate-data", "--from", "x", "--to", "mysql://u:secret@h/db"], in: dir)
        #expect(badURL.status != 0 && badURL.stderr.contains("postgres://"), "\(badURL)")
        #expect(!badURL.stderr.contains("secret"))
        let invalid = try await Self.run(["--data-dir", dir.path, "--port", "70000"], in: dir)
        #expect(invalid.status != 0 && invalid.stderr.contains("--port must be 0–65535"), "\(invalid)")
        let serve = try await ServerProcess.start(
            dataDir: dir, extraArguments: ["--database", "sqlite:" + dir.appending(path: "ksmfleet.sqlite").path])
        #expect(try await Fixtures.client(serve.baseURL, token: serve.adminToken).listNodes().nodes.isEmpty)
        await serve.stop()
        #expect(serve.terminationStatus == 0)
    }
}
