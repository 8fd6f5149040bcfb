import FleetAPI
import Foundation
import GRDB
import KSMCore
import Synchronization
import TestSupport
import Testing

@testable import FleetStore

/// 2026-11-02T00:00:00Z.
private let t0: Double = 1_793_577_600
private let gib: Int64 = 1_073_741_824

/// A SQLite store filled through the store's API, copied into a fresh PostgreSQL database
/// (`FleetDatabase.copyData`, behind `ksmfleet-server migrate-data`): every table arrives whole
/// and the store reads the same on both. Needs the PostgreSQL of `make test`'s second pass.
@Suite("Data copy from SQLite to PostgreSQL")
struct DataCopyTests {
    static func postgresServer() throws -> String {
        guard let url = TestStore.postgresURL else {
            try Test.cancel("runs on the PostgreSQL pass of make test (KSMFLEET_TEST_POSTGRES)")
        }
        return url
    }

    /// A new database; `asOwner`: owned by a new role that is not a superuser, connecting as it
    /// (triggers and foreign keys then stay on during the copy).
    static func targetURL(on server: String, asOwner: Bool) throws -> String {
        let url = try TestStore.createDatabase(on: server)
        guard asOwner, var c = URLComponents(string: url) else { return url }
        let role = "ksmfleet_owner_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(12).lowercased()
        try TestStore.psql(server, "CREATE ROLE \(role) LOGIN")
        try TestStore.psql(server, "ALTER DATABASE \(c.path.dropFirst()) OWNER TO \(role)")
        try TestStore.psql(url, "ALTER SCHEMA public OWNER TO \(role)")
        c.user = role
        return try #require(c.string)
    }

    static func status(_ seq: Int64, at: Double, saved: Int64 = gib, processes: ProcessReport? = nil) -> StatusSample {
        var s = StatusSample(
            seq: seq, takenAt: Date(timeIntervalSince1970: at),
            status: KSMStatus(run: 1, pagesSharing: saved / 4096, fullScans: seq),
            memory: MemorySnapshot(memTotalKB: 64 * 1024 * 1024, memAvailableKB: 8 * 1024 * 1024), pageSize: 4096,
            ksmdCPUPercent: 10, ksmdCPUSeconds: 100 + Double(seq) * 6, phase: .running, phaseReason: "test \(seq)")
        s.processes = processes
        return s
    }

    static func report(_ name: String, pages: Int64) -> ProcessReport {
        ProcessReport(
            perProcessStats: true, processesScanned: 50, mergeableProcesses: 1, mergingProcesses: 1, rmapItems: 10,
            mergingPages: pages,
            groups: [
                ProcessGroupSavings(
                    kind: .vm, name: name, processes: 1, mergingPages: pages, zeroPages: 0, rmapItems: pages * 2,
                    profitBytes: nil)
            ])
    }

    /// Pushes `count` samples a minute apart from `start`, every 10th with a process report.
    static func push(_ db: FleetDatabase, _ id: String, seq: inout Int64, start: Double, count: Int) async throws {
        var batch: [StatusSample] = []
        for i in 0..<count {
            seq += 1
            batch.append(
                status(
                    seq, at: start + Double(i) * 60, saved: gib + Int64(i % 7) * 4096,
                    processes: i % 10 == 0 ? report("vm-\(id.suffix(4))", pages: 100 + Int64(i)) : nil))
        }
        _ = try await db.insertSamples(nodeId: id, batch)
    }

    struct Filled {
        var nodes: [String]
        var deleted: String
        var seqA: Int64
    }

    /// Nodes (one deleted, one pending re-registration), configs changed, labels, samples with
    /// gaps and process reports, rollups partly run and old samples retired, enrollment tokens,
    /// credentials, a session, audit entries, the admin token.
    static func fill(_ db: FleetDatabase) async throws -> Filled {
        try await db.setAdminTokenHash(Secrets.hash("ka_copy"))
        let a = try await registerNode(db, machine: "m-a", nodeToken: "kn_a").node.id
        let b = try await registerNode(db, machine: "m-b", nodeToken: "kn_b").node.id
        let c = try await registerNode(db, machine: "m-c", nodeToken: "kn_c").node.id
        _ = try await db.setLabels(nodeId: a, ["rack": "r1", "zone": "b"])
        _ = try await db.updateConfig(nodeId: a, action: "patch") { base throws(ConfigValidationError) in
            try ConfigPatch(run: .run, mode: .high).applied(to: base)
        }
        _ = try await db.kick(nodeId: b)
        // A change shared by b and c: one audit row and its nodes (`audit_nodes`).
        let shared = try await db.apply(ConfigPatch(thresCoef: 25), to: [b, c], dryRun: false, target: "all")
        #expect(shared.map(\.status) == [.changed, .changed])
        await #expect(throws: StoreError.self) { _ = try await registerNode(db, machine: "m-b", nodeToken: "kn_thief") }
        let revoked = try await db.createEnrollmentToken(description: "revoked", expiresAt: nil)
        _ = try await db.revokeEnrollmentToken(id: revoked.id)

        var seqA: Int64 = 0
        var seqB: Int64 = 0
        var seqC: Int64 = 0
        try await push(db, a, seq: &seqA, start: t0, count: 150)
        try await push(db, b, seq: &seqB, start: t0 + 600, count: 90)
        try await push(db, c, seq: &seqC, start: t0, count: 40)
        _ = try await db.rollupCatchUp(now: Date(timeIntervalSince1970: t0 + 4 * 3600))
        // Label groups' hourly sums stored (added in SQLite's order).
        _ = try await db.setLabels(nodeId: a, ["rack": "r1"])
        #expect(try await db.flushLabelSums() > 0)
        // Hour peaks and packs of raw samples (`raw_hour_pack`) stored.
        #expect(try await db.fleetPeakPass(now: Date(timeIntervalSince1970: t0 + 4 * 3600)) > 0)
        // Retired raw samples leave gaps in the rowids; then a gap in time, and samples no rollup
        // pass has seen yet (the watermark is below the newest rowid).
        _ = try await db.retentionPass(
            samplesBefore: Date(timeIntervalSince1970: t0 + 1200), rollupsBefore: Date(timeIntervalSince1970: 0))
        try await push(db, a, seq: &seqA, start: t0 + 150 * 60 + 1800, count: 45)
        // One pass over part of them, without the fleet series' flush: hours left marked dirty.
        let pass = try await db.rollupPass(batch: 20, now: Date(timeIntervalSince1970: t0 + 5 * 3600))
        #expect(pass.samples == 20 && pass.more)
        // Deleted after its data (a deletion makes the fleet hours from then on dirty).
        try await db.deleteNode(nodeId: c, purgeHistory: false, now: Date(timeIntervalSince1970: t0 + 5 * 3600))

        let ops = try await db.createCredential(name: "ops", role: .operator, expiresAt: nil)
        let old = try await db.createCredential(name: "old", role: .viewer, expiresAt: Date(timeIntervalSince1970: t0))
        _ = try await db.revokeCredential(id: old.id)
        try await db.createDashboardSession(
            idHash: "session-1", expiresAt: Date().addingTimeInterval(3600), address: "127.0.0.1",
            credentialId: ops.id, maxSessions: 10)
        try await db.recordAudit(
            action: "login", target: "dashboard", who: AuditWho(name: "ops", credentialId: ops.id, source: "10.0.0.1"))
        return Filled(nodes: [a, b, c], deleted: c, seqA: seqA)
    }

    /// Rows per table of the SQLite file (without the migrations' own table).
    static func sqliteCounts(_ db: FleetDatabase) async throws -> [String: Int] {
        try await db.pool.read { db in
            var counts: [String: Int] = [:]
            let tables = try String.fetchAll(
                db,
                sql:
                    "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite%' AND name <> 'schema_migrations'"
            )
            for t in tables { counts[t] = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM \"\(t)\"") ?? -1 }
            return counts
        }
    }

    static func postgresCount(_ url: String, _ table: String) throws -> Int {
        Int(try TestStore.psql(url, "SELECT COUNT(*) FROM \"\(table)\"")) ?? -1
    }

    @Test(arguments: [false, true])
    func everyTableArrivesAndTheStoreReadsTheSame(asOwner: Bool) async throws {
        let server = try Self.postgresServer()
        let (sqlite, dir) = try makeSQLiteDatabase()
        defer { try? FileManager.default.removeItem(at: dir) }
        let filled = try await Self.fill(sqlite)
        let url = try Self.targetURL(on: server, asOwner: asOwner)
        let pg = try FleetDatabase.open(url)
        defer { try? pg.close() }

        // Small batches and frequent progress: the partial last batch and the reports are used.
        final class Reported: Sendable { let rows = Mutex<[String: [Int]]>([:]) }
        let reported = Reported()
        let copies = try await FleetDatabase.copyData(from: sqlite, to: pg, batchRows: 7, progressEvery: 50) {
            table, rows in reported.rows.withLock { $0[table, default: []].append(rows) }
        }

        // Every table, every row.
        let counts = try await Self.sqliteCounts(sqlite)
        #expect(Set(copies.map(\.table)) == Set(counts.keys).subtracting(FleetDatabase.tablesRemadeAfterCopy))
        #expect(copies.last?.table == "rollup_fleet_dirty", "filled by triggers: copied last")
        for c in copies {
            #expect(c.rows == counts[c.table], "\(c.table)")
            #expect(try Self.postgresCount(url, c.table) == c.rows, "\(c.table)")
        }
        for table in [
            "nodes", "node_configs", "samples", "rollup_hour", "rollup_day", "rollup_state", "audit_log", "audit_nodes",
            "enrollment_tokens", "credentials", "dashboard_sessions", "pending_registrations", "process_savings_day", "process_savings_month",
            "settings", "rollup_label_sum",
        ] {
            #expect((counts[table] ?? 0) > 0, "\(table) holds rows to copy")
        }
        let samples = try #require(counts["samples"])
        let progress = reported.rows.withLock { $0 }
        // Every 50 rows (in steps of 7, the batch) and at the end.
        let steps = try #require(progress["samples"])
        #expect(steps.last == samples && steps == steps.sorted() && steps.count >= samples / 50)
        #expect(progress["settings"] == [counts["settings"]!])

        // The same rowids (the rollup watermark counts them) and the same dirty hours.
        let sqliteRowids = try await sqlite.pool.read { db in
            try Int64.fetchAll(db, sql: "SELECT rowid FROM samples ORDER BY rowid")
        }
        let pgRowids = try TestStore.psql(url, "SELECT rowid FROM samples ORDER BY rowid").split(separator: "\n").map {
            Int64($0)!
        }
        #expect(pgRowids == sqliteRowids)
        #expect(sqliteRowids.first! > 1, "retention retired the first rows")
        let sqliteDirty = try await sqlite.pool.read { db in
            try Int64.fetchAll(db, sql: "SELECT bucket_start FROM rollup_fleet_dirty ORDER BY 1")
        }
        let pgDirty = try TestStore.psql(url, "SELECT bucket_start FROM rollup_fleet_dirty ORDER BY 1")
            .split(separator: "\n").map { Int64($0)! }
        #expect(pgDirty == sqliteDirty)
        #expect(!sqliteDirty.isEmpty && sqliteDirty.count < (counts["rollup_fleet_hour"] ?? 0))
        // The label groups' sums stay known: both engines add them in one order (`bucketRowOrder`).
        let knownSums = "SELECT COUNT(*) FROM rollup_fleet_hour WHERE label_sums_known = 1"
        let sqliteKnown = try await sqlite.pool.read { db in try Int.fetchOne(db, sql: knownSums) ?? 0 }
        #expect(sqliteKnown > 0)
        #expect(try TestStore.psql(url, knownSums) == "\(sqliteKnown)")
        // The packs of raw samples are not copied (SQLite's order of samples at one instant, and
        // their size): the rollup service makes them again.
        #expect((counts["raw_hour_pack"] ?? 0) > 0)
        #expect(try Self.postgresCount(url, "raw_hour_pack") == 0)

        // The store reads the same on both.
        #expect(try await pg.nodes(includeDeleted: true) == (try await sqlite.nodes(includeDeleted: true)))
        #expect(try await pg.nodes().count == 2)
        for id in filled.nodes {
            #expect(try await pg.config(nodeId: id) == (try await sqlite.config(nodeId: id)))
        }
        #expect(try await pg.auditLog(limit: 10_000) == (try await sqlite.auditLog(limit: 10_000)))
        for id in filled.nodes {
            let records = try await pg.auditLog(nodeId: id)
            #expect(records == (try await sqlite.auditLog(nodeId: id)))
            if id != filled.nodes[0] { #expect(records.contains { $0.nodeCount == 2 }, "the shared change, by node") }
        }
        #expect(try await pg.credentials() == (try await sqlite.credentials()))
        #expect(try await pg.enrollmentTokens() == (try await sqlite.enrollmentTokens()))
        #expect(try await pg.pendingRegistrations() == (try await sqlite.pendingRegistrations()))
        #expect(try await pg.pendingRegistrations().count == 1)
        #expect(try await pg.adminTokenHash() == Secrets.hash("ka_copy"))
        #expect(try await pg.dashboardSessionCount() == 1)
        #expect(try await pg.touchDashboardSession(idHash: "session-1", lifetime: 3600) != nil)
        #expect(try await pg.nodeID(forTokenHash: Secrets.hash("kn_a")) == filled.nodes[0])
        #expect(try await pg.rollupWatermark() == (try await sqlite.rollupWatermark()))
        #expect(try await pg.rollupWatermark() < sqliteRowids.last!, "samples left for the next rollup pass")
        let since = Date(timeIntervalSince1970: t0 - 3600)
        let until = Date(timeIntervalSince1970: t0 + 6 * 3600)
        let now = Date(timeIntervalSince1970: t0 + 7 * 3600)
        #expect(
            try await pg.processSavings(nodeId: nil, since: since, until: until)
                == (try await sqlite.processSavings(nodeId: nil, since: since, until: until)))
        for resolution in [HistoryResolution.raw, .hour] {
            let onPG = try await pg.history(
                nodeId: filled.nodes[0], since: since, until: until, resolution: resolution, now: now)
            let onSQLite = try await sqlite.history(
                nodeId: filled.nodes[0], since: since, until: until, resolution: resolution, now: now)
            #expect(onPG == onSQLite, "\(resolution)")
            #expect(onPG != nil)
        }
        for grouping in [ReportGrouping.node, .day] {
            let onPG = try await pg.savingsReport(since: since, until: until, by: grouping, label: nil, now: now)
            let onSQLite = try await sqlite.savingsReport(
                since: since, until: until, by: grouping, label: nil, now: now)
            #expect(onPG == onSQLite, "\(grouping)")
            #expect(onPG.rows.count >= 2)
        }
        let byRackOnPG = try await pg.savingsReport(since: since, until: until, by: .label, label: "rack", now: now)
        let byRackOnSQLite = try await sqlite.savingsReport(
            since: since, until: until, by: .label, label: "rack", now: now)
        #expect(byRackOnPG == byRackOnSQLite)
        #expect(byRackOnPG.rows.count >= 2)

        // New rows on PostgreSQL get numbers past the copied ones, and rollups go on from there.
        let watermark = try await pg.rollupWatermark()
        _ = try await pg.insertSamples(
            nodeId: filled.nodes[0], [Self.status(filled.seqA + 1, at: t0 + 5 * 3600)])
        let newRowid = Int64(try TestStore.psql(url, "SELECT MAX(rowid) FROM samples"))!
        #expect(newRowid == sqliteRowids.last! + 1)
        let pass = try await pg.rollupPass(now: now)
        #expect(pass.samples >= 1)
        #expect(try await pg.rollupWatermark() == newRowid && newRowid > watermark)
        let lastAudit = try #require(try await pg.auditLog(limit: 1).first)
        try await pg.recordAudit(action: "after-copy")
        #expect(try await pg.auditLog(limit: 1).first?.id == lastAudit.id + 1)

        // A second copy into the same (now not empty) database is refused and writes nothing.
        let before = try Self.postgresCount(url, "samples")
        await #expect {
            _ = try await FleetDatabase.copyData(from: sqlite, to: pg)
        } throws: { e in
            guard case .targetNotEmpty(let tables) = e as? DataCopyError else { return false }
            return tables["nodes"] != nil && tables["samples"] != nil
                && "\(e)".contains("not empty") && "\(e)".contains("nothing was written")
        }
        #expect(try Self.postgresCount(url, "samples") == before)
    }

    @Test func onlyFromSQLiteToPostgreSQL() async throws {
        let server = try Self.postgresServer()
        let (sqlite, dir) = try makeSQLiteDatabase()
        defer { try? FileManager.default.removeItem(at: dir) }
        let pg = try FleetDatabase.open(try TestStore.createDatabase(on: server))
        defer { try? pg.close() }
        await #expect(throws: DataCopyError.unsupportedEngines(source: .postgres, target: .sqlite)) {
            _ = try await FleetDatabase.copyData(from: pg, to: sqlite)
        }
        await #expect(throws: DataCopyError.unsupportedEngines(source: .sqlite, target: .sqlite)) {
            _ = try await FleetDatabase.copyData(from: sqlite, to: sqlite)
        }
    }

    /// An empty store copies as empty tables, and the target's sequences still start at 1.
    @Test func anEmptyStoreCopiesAsEmptyTables() async throws {
        let server = try Self.postgresServer()
        let (sqlite, dir) = try makeSQLiteDatabase()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = try TestStore.createDatabase(on: server)
        let pg = try FleetDatabase.open(url)
        defer { try? pg.close() }
        let copies = try await FleetDatabase.copyData(from: sqlite, to: pg)
        #expect(!copies.isEmpty && copies.allSatisfy { $0.rows == 0 })
        try await pg.recordAudit(action: "first")
        #expect(try await pg.auditLog(limit: 1).first?.id == 1)
    }
}
