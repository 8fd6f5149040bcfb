import FleetAPI
import FleetClient
import FleetTestSupport
import Foundation
import KSMCore
import Testing

/// A real in-process server with three registered fake nodes that pushed samples:
///
/// | name  | labels               | phase   | saved    | ksmd CPU |
/// |-------|----------------------|---------|----------|----------|
/// | web-1 | env=prod, role=web   | Running | 100 MiB  | 2 %      |
/// | web-2 | env=prod, role=web   | Running | 200 MiB  | 3 %      |
/// | db-1  | env=staging, role=db | Stopped | 0        | -        |
struct Fleet: Sendable {
    let server: TestServer
    let admin: FleetClient
    /// name → node id
    let ids: [String: String]
    /// name → the node's own token (not an admin token)
    let nodeTokens: [String: String]

    static let pageSize = 4096
    static let sharing: [String: Int64] = ["web-1": 25_600, "web-2": 51_200, "db-1": 0]
    static let cpu: [String: Double] = ["web-1": 2, "web-2": 3]
    static let labels: [String: [String: String]] = [
        "web-1": ["env": "prod", "role": "web"], "web-2": ["env": "prod", "role": "web"],
        "db-1": ["env": "staging", "role": "db"],
    ]
    static let applyError = "merge_across_nodes: EBUSY, pages are still shared"
    static let stoppedReason = "Stopped: MemAvailable 81 % is above the 20 % threshold"

    /// Runs the CLI against this server with the admin token. The request timeout is generous:
    /// the in-process server shares the test process's two cooperative threads with every other
    /// suite, and the machine is loaded.
    func cli(_ args: [String], token: String? = nil) async throws -> CLIResult {
        try await CLI.run(
            args + ["--server", server.baseURL, "--token", token ?? server.adminToken, "--timeout", "180"])
    }

    func id(_ name: String) throws -> String {
        try #require(ids[name], "no fake node \(name)")
    }

    func config(_ name: String) async throws -> NodeConfig {
        try await admin.nodeConfig(try id(name))
    }

    static func with(offlineAfterSeconds: Double = 60, _ body: (Fleet) async throws -> Void) async throws {
        try await TestServer.with(offlineAfterSeconds: offlineAfterSeconds) { server in try await body(try await make(server)) }
    }

    static func make(_ server: TestServer) async throws -> Fleet {
        let admin = try FleetClient(ClientOptions(serverURL: server.baseURL, token: server.adminToken))
        let anonymous = try FleetClient(ClientOptions(serverURL: server.baseURL))
        let enroll = try await server.makeEnrollmentToken()
        var ids: [String: String] = [:]
        var nodeTokens: [String: String] = [:]
        let now = Date()
        for name in ["web-1", "web-2", "db-1"] {
            let reg = try await anonymous.register(
                RegisterRequest(
                    hostname: name, machineId: "machine-\(name)-\(UUID().uuidString)", kernel: "6.8.0-test",
                    memTotalBytes: 16 << 30, numaNodes: 1, ksmFeatures: ["run", "pages_to_scan", "sleep_millisecs"],
                    agentVersion: "0.1.0-test", pageSize: pageSize),
                enrollmentToken: enroll)
            ids[name] = reg.nodeId
            nodeTokens[name] = reg.nodeToken
            try await admin.setLabels(reg.nodeId, labels[name] ?? [:])
            let node = try FleetClient(ClientOptions(serverURL: server.baseURL, token: reg.nodeToken))
            let running = (sharing[name] ?? 0) > 0
            var samples: [StatusSample] = []
            for i in 0..<3 {
                let shared = (sharing[name] ?? 0) / 4
                samples.append(
                    StatusSample(
                        seq: Int64(i + 1), takenAt: now.addingTimeInterval(Double(i - 2) * 30),
                        status: KSMStatus(
                            run: running ? 1 : 0, pagesToScan: 100, sleepMillisecs: 20, pagesShared: shared,
                            pagesSharing: sharing[name] ?? 0, pagesUnshared: 1000, pagesVolatile: 10,
                            fullScans: Int64(i)),
                        memory: MemorySnapshot(
                            memTotalKB: 16 << 20, memAvailableKB: running ? 2 << 20 : 13 << 20),
                        pageSize: pageSize, ksmdCPUPercent: i == 0 ? nil : cpu[name], ksmdCPUSeconds: Double(i) * 0.5,
                        phase: running ? .running : .stopped,
                        phaseReason: running ? "Running: MemAvailable 12 % is below the 20 % threshold" : stoppedReason,
                        appliedGeneration: reg.config.generation,
                        applyError: name == "db-1" && i == 2 ? applyError : nil))
            }
            let ack = try await node.pushSamples(nodeId: reg.nodeId, SampleBatch(samples: samples))
            #expect(ack.highestSeq == 3)
        }
        return Fleet(server: server, admin: admin, ids: ids, nodeTokens: nodeTokens)
    }
}
