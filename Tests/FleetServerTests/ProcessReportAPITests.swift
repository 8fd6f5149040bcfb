import FleetAPI
import FleetClient
import FleetTestSupport
import Foundation
import KSMCore
import Testing

/// Who benefits and why nothing merges, through the API: a sample's process report reaches the
/// node's status with its findings, and the by-process report.
@Suite struct ProcessReportAPITests {
    static func report(mergeable: Int, groups: [ProcessGroupSavings]) -> ProcessReport {
        ProcessReport(
            perProcessStats: true, processesScanned: 250, mergeableProcesses: mergeable, mergingProcesses: groups.count,
            rmapItems: 600_000, mergingPages: groups.map(\.mergingPages).reduce(0, +), transparentHugePages: "madvise",
            scanMillis: 3.2, groups: groups)
    }

    @Test func theNodeShowsWhoBenefitsAndTheReportListsIt() async throws {
        let h = try await Harness.start()
        defer { Task { await h.finish() } }
        let (reg, node) = try await h.register()
        let id = reg.nodeId
        var first = Fixtures.sample(1)
        first.processes = Self.report(
            mergeable: 3,
            groups: [
                ProcessGroupSavings(
                    kind: .vm, name: "web-1", processes: 1, mergingPages: 200_000, zeroPages: 0, rmapItems: 262_144,
                    profitBytes: 800_000_000),
                ProcessGroupSavings(
                    kind: .container, name: "docker:feedfacecafe", processes: 2, mergingPages: 500, zeroPages: 0,
                    rmapItems: 2000, profitBytes: nil),
            ])
        _ = try await node.pushSamples(nodeId: id, SampleBatch(samples: [first, Fixtures.sample(2)]))
        let info = try await h.admin.node(id)
        #expect(info.processes?.groups.map(\.name) == ["web-1", "docker:feedfacecafe"])
        #expect(info.processesAt == first.takenAt)
        #expect(info.findings == [])

        let r = try await h.admin.processReport(
            since: first.takenAt.addingTimeInterval(-3600), until: first.takenAt.addingTimeInterval(3600), node: id)
        #expect(r.node == id)
        #expect(r.rows.map(\.name) == ["web-1", "docker:feedfacecafe"])
        #expect(r.rows.first?.peakMergedBytes == Int64(200_000 * 4096))
        #expect(r.rows.first?.nodeName == "node-a")
        // By name too, and a bad limit is the usual 422.
        let byName = try await h.admin.processReport(
            since: first.takenAt.addingTimeInterval(-3600), until: first.takenAt.addingTimeInterval(3600), node: "node-a")
        #expect(byName.rows.count == 2)
        let bad = await apiError {
            _ = try await h.admin.processReport(node: id, limit: 0)
        }
        #expect(bad?.0 == 422 && bad?.1.error.field == "limit")
    }

    @Test func aRunningNodeWithNothingMergeableSaysSo() async throws {
        let h = try await Harness.start()
        defer { Task { await h.finish() } }
        let (reg, node) = try await h.register()
        // KSM runs and tracks no page.
        var s = Fixtures.sample(1, pagesSharing: 0)
        s.status.pagesShared = 0
        s.processes = Self.report(mergeable: 0, groups: [])
        _ = try await node.pushSamples(nodeId: reg.nodeId, SampleBatch(samples: [s]))
        let info = try await h.admin.node(reg.nodeId)
        let f = try #require(info.findings?.first)
        #expect(f.code == "no_mergeable_memory")
        #expect(f.evidence.first?.contains("0 of 250 processes") == true)
        // A workload started since the scan: the counters show pages KSM tracks, the report
        // (taken with the earlier sample) is older than them, and the finding goes.
        _ = try await node.pushSamples(nodeId: reg.nodeId, SampleBatch(samples: [Fixtures.sample(2)]))
        let later = try await h.admin.node(reg.nodeId)
        #expect(later.findings?.contains { $0.code == "no_mergeable_memory" } == false, "\(later.findings ?? [])")
    }
}
