import FleetAPI
import FleetStore
import Foundation
import KSMCore
import Testing

/// Process reports carried by samples: the node's newest one, and the per-day figures behind the
/// by-process report.
@Suite("Process savings store")
struct ProcessSavingsStoreTests {
    static func report(_ groups: [(ProcessGroupKind, String, Int64)]) -> ProcessReport {
        ProcessReport(
            perProcessStats: true, processesScanned: 100, mergeableProcesses: groups.count,
            mergingProcesses: groups.count, rmapItems: 1000, mergingPages: groups.map(\.2).reduce(0, +),
            groups: groups.map {
                ProcessGroupSavings(
                    kind: $0.0, name: $0.1, processes: 1, mergingPages: $0.2, zeroPages: 0, rmapItems: $0.2 * 2,
                    profitBytes: nil)
            })
    }

    static func withReport(_ seq: Int64, _ groups: [(ProcessGroupKind, String, Int64)]) -> StatusSample {
        var s = sample(seq)
        s.processes = report(groups)
        return s
    }

    @Test func theNewestReportIsKeptAndTheDaysAddUp() async throws {
        let (db, dir) = try makeDatabase()
        defer { try? FileManager.default.removeItem(at: dir) }
        let node = try await registerNode(db).node.id
        _ = try await db.insertSamples(
            nodeId: node,
            [
                Self.withReport(1, [(.vm, "web-1", 100), (.command, "java", 10)]),
                sample(2),
                Self.withReport(3, [(.vm, "web-1", 300)]),
            ])
        // A replay of a stored sample does not count twice.
        _ = try await db.insertSamples(nodeId: node, [Self.withReport(3, [(.vm, "web-1", 300)])])
        // An older report arriving late does not replace the newest.
        let stored = try #require(try await db.node(idOrName: node))
        #expect(stored.processes?.groups.map(\.name) == ["web-1"])
        #expect(stored.processesAt == sample(3).takenAt)

        let t0 = sample(1).takenAt
        let rows = try await db.processSavings(
            nodeId: node, since: t0.addingTimeInterval(-3600), until: t0.addingTimeInterval(3600))
        #expect(rows.map(\.name) == ["web-1", "java"])
        let web = try #require(rows.first)
        #expect(web.kind == .vm)
        #expect(web.reports == 2)
        #expect(web.peakMergedBytes == 300 * 4096)
        #expect(web.peakAt == sample(3).takenAt)
        #expect(web.lastMergedBytes == 300 * 4096)
        #expect(web.avgMergedBytes == 200 * 4096)
        #expect(rows[1].lastMergedBytes == 10 * 4096)
        // Another node's rows stay apart; a period without reports is empty.
        #expect(try await db.processSavings(nodeId: "n-other", since: t0, until: t0.addingTimeInterval(60)).isEmpty)
        #expect(
            try await db.processSavings(
                nodeId: node, since: t0.addingTimeInterval(10 * 86400), until: t0.addingTimeInterval(11 * 86400)
            ).isEmpty)
    }

    @Test func aLateOlderReportDoesNotReplaceTheNewest() async throws {
        let (db, dir) = try makeDatabase()
        defer { try? FileManager.default.removeItem(at: dir) }
        let node = try await registerNode(db).node.id
        _ = try await db.insertSamples(nodeId: node, [Self.withReport(5, [(.vm, "new", 1)])])
        _ = try await db.insertSamples(nodeId: node, [Self.withReport(4, [(.vm, "old", 1)])])
        let stored = try #require(try await db.node(idOrName: node))
        #expect(stored.processes?.groups.map(\.name) == ["new"])
    }

    @Test func retentionAndPurgeRemoveTheDays() async throws {
        let (db, dir) = try makeDatabase()
        defer { try? FileManager.default.removeItem(at: dir) }
        let node = try await registerNode(db).node.id
        _ = try await db.insertSamples(nodeId: node, [Self.withReport(1, [(.vm, "web-1", 100)])])
        let t0 = sample(1).takenAt
        let r = try await db.retentionPass(samplesBefore: t0, rollupsBefore: t0.addingTimeInterval(2 * 86400))
        #expect(r.processDays == 1)
        #expect(try await db.processSavings(nodeId: node, since: t0.addingTimeInterval(-86400), until: t0.addingTimeInterval(86400)).isEmpty)
    }
}
