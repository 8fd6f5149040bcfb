import FleetAPI
import Foundation
import KSMCore
import TestSupport
import Testing

/// `nodes show` and `status` with who benefits and the findings, from a stub server.
@Suite("ksmfleet: who benefits and findings")
struct ProcessesCLITests {
    static func node() -> NodeInfo {
        let config = NodeConfig(generation: 3, config: KSMConfig.standardDefault.normalized())
        var status = KSMStatus(run: 1, pagesShared: 0, pagesSharing: 0)
        status.fullScans = 9
        let sample = StatusSample(
            seq: 1, takenAt: Date(timeIntervalSince1970: 1_790_000_000), status: status,
            memory: MemorySnapshot(memTotalKB: 16_000_000, memAvailableKB: 2_000_000), pageSize: 4096,
            phase: .running, phaseReason: "Running")
        let report = ProcessReport(
            perProcessStats: true, processesScanned: 180, mergeableProcesses: 2, mergingProcesses: 1,
            rmapItems: 262_144, mergingPages: 200_000, transparentHugePages: "madvise", scanMillis: 2.5,
            groups: [
                ProcessGroupSavings(
                    kind: .vm, name: "guest-db", processes: 1, mergingPages: 200_000, zeroPages: 0,
                    rmapItems: 262_144, profitBytes: 800_000_000)
            ])
        let finding = Finding(
            code: "mostly_volatile", severity: .warning, message: "Most pages KSM tracks change too fast to merge",
            evidence: ["pages_volatile 900 of 1000 tracked pages (90 %)"], advice: "Slow KSM down.")
        return NodeInfo(
            id: "n-1", name: "web-1", machineId: "m", labels: [:], kernel: "6.8", memTotalBytes: 1 << 34,
            numaNodes: 1, ksmFeatures: [], agentVersion: "t", registeredAt: Date(timeIntervalSince1970: 1_700_000_000),
            lastSeenAt: Date(), online: true, connection: .online, config: config, phase: .running,
            phaseReason: "Running", appliedGeneration: 3, applyError: nil, drift: false, driftReason: nil,
            lastSample: sample, processes: report, processesAt: Date(timeIntervalSince1970: 1_790_000_000),
            findings: [finding])
    }

    @Test func nodesShowListsTheGroupsAndTheFindingsAndStatusNamesTheNode() async throws {
        let node = String(decoding: try StrictJSON.encoder().encode(Self.node()), as: UTF8.self)
        let list = String(decoding: try StrictJSON.encoder().encode(NodeList(nodes: [Self.node()])), as: UTF8.self)
        let stub = try StubServer { method, path in
            switch (method, path) {
            case ("GET", "/api/v1/nodes/web-1"): return .init(status: 200, body: node)
            case ("GET", "/api/v1/nodes"): return .init(status: 200, body: list)
            default: return .init(status: 404, body: #"{"error":{"code":"not_found","message":"no route"}}"#)
            }
        }
        defer { stub.stop() }
        let show = try await CLI.run(["nodes", "show", "web-1", "--server", stub.baseURL, "--token", "t"])
        #expect(show.status == 0, "\(show)")
        #expect(show.stdout.contains("Who benefits"), "\(show.stdout)")
        #expect(show.stdout.contains("guest-db") && show.stdout.contains("vm"), "\(show.stdout)")
        #expect(show.stdout.contains("2 of 180 processes"), "\(show.stdout)")
        #expect(show.stdout.contains("[warning] Most pages KSM tracks change too fast to merge (mostly_volatile)"))
        #expect(show.stdout.contains("evidence: pages_volatile 900"))
        #expect(show.stdout.contains("advice: Slow KSM down."))
        let status = try await CLI.run(["status", "--server", stub.baseURL, "--token", "t"])
        #expect(status.status == 0, "\(status)")
        #expect(status.stdout.contains("Needs attention:"), "\(status.stdout)")
        #expect(status.stdout.contains("web-1 (n-1): Most pages KSM tracks change too fast to merge [mostly_volatile]"))
    }
}
