import FleetAPI
import FleetClient
import Foundation
import KSMCore

/// Small builders shared by the HTTP, agent and CLI suites.
public enum Fixtures {
    public static func registerRequest(machineId: String = "machine-\(UUID().uuidString.prefix(8))", hostname: String = "node-a")
        -> RegisterRequest
    {
        RegisterRequest(
            hostname: hostname, machineId: machineId, kernel: "6.8.0-test", memTotalBytes: 16 << 30, numaNodes: 1,
            ksmFeatures: ["run", "pages_to_scan", "sleep_millisecs", "merge_across_nodes"], agentVersion: "test",
            pageSize: 4096)
    }

    public static func sample(
        _ seq: Int64, pagesSharing: Int64 = 1000, phase: KSMPhase = .running, appliedGeneration: Int64? = 1,
        takenAt: Date? = nil
    ) -> StatusSample {
        StatusSample(
            seq: seq, takenAt: takenAt ?? Date(timeIntervalSince1970: 1_790_000_000 + Double(seq) * 20),
            status: KSMStatus(run: 1, pagesToScan: 100, sleepMillisecs: 20, pagesShared: 100, pagesSharing: pagesSharing),
            memory: MemorySnapshot(memTotalKB: 16_000_000, memAvailableKB: 2_000_000, anonPagesKB: 4_000_000),
            pageSize: 4096, ksmdCPUPercent: 2.5, ksmdCPUSeconds: Double(seq) * 0.5, phase: phase,
            phaseReason: "Running: MemAvailable 12 % is below the 20 % threshold", appliedGeneration: appliedGeneration)
    }

    public static func batch(_ seqs: some Sequence<Int64>) -> SampleBatch {
        SampleBatch(samples: seqs.map { sample($0) })
    }

    /// A client with the given token (admin or node) for `baseURL`.
    public static func client(_ baseURL: String, token: String?) throws -> FleetClient {
        try FleetClient(ClientOptions(serverURL: baseURL, token: token, connectTimeout: 5, requestTimeout: 30))
    }
}
