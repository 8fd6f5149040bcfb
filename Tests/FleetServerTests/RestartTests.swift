import FleetAPI
import FleetClient
import FleetStore
import FleetTestSupport
import TestSupport
import Foundation
import GRDB
import KSMCore
import Testing

@Suite struct RestartTests {
    @Test func aRestartKeepsEverything() async throws {
        let first = try await Harness.start()
        let (reg, _) = try await first.register(hostname: "keeper")
        _ = try await first.admin.patchConfig(reg.nodeId, ConfigPatch(run: .run, mode: .high))
        try await first.admin.setLabels(reg.nodeId, ["zone": "b"])
        let node = try Fixtures.client(first.server.baseURL, token: reg.nodeToken)
        _ = try await node.pushSamples(nodeId: reg.nodeId, Fixtures.batch(1...5))
        let enrollment = try await first.admin.createEnrollmentToken(CreateEnrollmentTokenRequest(description: "kept"))
        await first.server.stop()

        let second = try await Harness.start(dataDir: first.server.dataDir, adminToken: first.server.adminToken)
        defer { Task { await second.finish() } }
        let info = try await second.admin.node(reg.nodeId)
        #expect(info.name == "keeper" && info.labels == ["zone": "b"])
        #expect(info.config.generation == 2 && info.config.config.mode == .high && info.config.config.run == .run)
        #expect(info.lastSample?.seq == 5)
        let again = try Fixtures.client(second.server.baseURL, token: reg.nodeToken)
        #expect(try await again.config(nodeId: reg.nodeId, ifNoneMatch: nil, waitSeconds: nil)?.generation == 2)
        #expect(try await again.pushSamples(nodeId: reg.nodeId, Fixtures.batch([5, 6])).highestSeq == 6)
        #expect(try await second.admin.enrollmentTokens().tokens.contains { $0.id == enrollment.id })
        let audit = try await second.database().auditLog(nodeId: reg.nodeId)
        #expect(audit.contains { $0.action == "patch" && $0.after?.contains("\"high\"") == true })
    }

    /// The built binary is killed with SIGKILL right after its acknowledgement: every acknowledged
    /// sample is still there when it starts again. (A commit is in the WAL file, written with
    /// write(2), before the acknowledgement; the kernel keeps it across the process's death.)
    @Test func killMinus9RightAfterAnAcknowledgedBatchLosesNothing() async throws {
        let first = try await ServerProcess.start()
        let dir = first.dataDir
        defer { try? FileManager.default.removeItem(at: dir) }
        let anon = try Fixtures.client(first.baseURL, token: nil)
        let reg = try await anon.register(Fixtures.registerRequest(), enrollmentToken: try await first.makeEnrollmentToken())
        let node = try Fixtures.client(first.baseURL, token: reg.nodeToken)
        var acknowledged: Int64 = 0
        for start in stride(from: Int64(1), through: 451, by: 50) {
            let ack = try await node.pushSamples(nodeId: reg.nodeId, Fixtures.batch(start...(start + 49)))
            acknowledged = ack.highestSeq
        }
        await first.kill9()
        #expect(!first.isRunning)
        #expect(acknowledged == 500)

        let second = try await ServerProcess.start(dataDir: dir, adminToken: first.adminToken)
        let admin = try Fixtures.client(second.baseURL, token: second.adminToken)
        let info = try await admin.node(reg.nodeId)
        #expect(info.lastSample?.seq == 500)
        let db = try FleetDatabase.open(try TestStore.location(for: dir))
        #expect(try await db.sampleSeqs(nodeId: reg.nodeId) == Array(1...500))
        try db.close()
        await second.stop()
        #expect(second.terminationStatus == 0, "SIGTERM is a graceful shutdown: \(second.output())")
        // The log says so (it said nothing before).
        #expect(second.output().contains("shutting down"), "\(second.output())")
        #expect(second.output().contains("ksmfleet-server stopped"), "\(second.output())")
    }

    @Test func theAdminTokenIsGeneratedOnceWrittenWithMode0600AndKept() async throws {
        let first = try await ServerProcess.start()
        let dir = first.dataDir
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appending(path: "admin-token")
        let attributes = try FileManager.default.attributesOfItem(atPath: file.path)
        #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)
        #expect(first.adminToken.hasPrefix("ka_"))
        #expect(first.output().contains(first.adminToken), "printed once on stdout")
        let admin = try Fixtures.client(first.baseURL, token: first.adminToken)
        #expect(try await admin.listNodes().nodes.isEmpty)
        await first.stop()

        let second = try await ServerProcess.start(dataDir: dir)
        #expect(!second.output().contains(first.adminToken), "not printed again")
        let again = try Fixtures.client(second.baseURL, token: first.adminToken)
        #expect(try await again.listNodes().nodes.isEmpty)
        await second.stop()

        // The environment overrides it.
        let third = try await ServerProcess.start(dataDir: dir, adminToken: "ka_from_env")
        let old = await apiError { _ = try await Fixtures.client(third.baseURL, token: first.adminToken).listNodes() }
        #expect(old?.0 == 401)
        #expect(try await Fixtures.client(third.baseURL, token: "ka_from_env").listNodes().nodes.isEmpty)
        await third.stop()
    }

    /// The binary refuses a database written by a newer server, saying so, and leaves it alone.
    @Test func theBinaryRefusesANewerDatabase() async throws {
        let first = try await ServerProcess.start()
        let dir = first.dataDir
        defer { try? FileManager.default.removeItem(at: dir) }
        await first.stop()
        // What a newer server leaves behind: one more applied migration, written with plain SQL.
        let newer = TestStore.isPostgres ? (allPostgresMigrations.map(\.number).max() ?? 0) + 1 : latestSchemaVersion + 1
        if TestStore.isPostgres {
            try TestStore.psql(
                try TestStore.location(for: dir),
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (\(newer), 'from_a_newer_server', 0)")
        } else {
            let file = try DatabaseQueue(path: dir.appending(path: "ksmfleet.sqlite").path)
            try await file.write { db in
                try db.execute(
                    sql: "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, 'from_a_newer_server', 0)",
                    arguments: [newer])
            }
            try file.close()
        }
        do {
            let second = try await ServerProcess.start(dataDir: dir, adminToken: first.adminToken, timeout: .seconds(20))
            await second.stop()
            Issue.record("the server started on a newer database")
        } catch let error as ServerProcess.StartError {
            #expect(error.description.contains("schema version \(newer)"))
            #expect(error.description.contains("newer"))
        }
    }

    /// A dashboard session is stored in the database: the built server restarted (SIGTERM, new
    /// process) still knows the browser, which stays signed in.
    @Test func aDashboardSessionSurvivesARestart() async throws {
        let first = try await ServerProcess.start()
        let dir = first.dataDir
        defer { try? FileManager.default.removeItem(at: dir) }
        var browser = DashboardBrowser(client: try Fixtures.client(first.baseURL, token: nil))
        try await browser.signIn(adminToken: first.adminToken)
        #expect(try await browser.get("/nodes").status == 200)

        let second = try await first.restart()
        defer { Task { await second.stop() } }
        var again = DashboardBrowser(client: try Fixtures.client(second.baseURL, token: nil))
        again.session = browser.session
        again.csrf = browser.csrf
        let page = try await again.get("/nodes")
        #expect(page.status == 200, "signed out by the restart (status \(page.status))")
        // Its CSRF token still holds: a form posted after the restart is accepted.
        let out = try await again.post("/logout", [])
        #expect(out.status == 303 && out.headers["location"] == "/login")
        #expect(try await again.get("/nodes").status == 303)
    }
}
