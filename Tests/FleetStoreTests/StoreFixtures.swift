import FleetAPI
@testable import FleetStore
import Foundation
import KSMCore
import TestSupport

/// A fresh SQLite file in its own temp directory, whatever the run's engine (tests of what only
/// SQLite has: its file, WAL, temp triggers).
func makeSQLiteDatabase() throws -> (FleetDatabase, URL) {
    let dir = FileManager.default.temporaryDirectory.appending(path: "fleetstore-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return (try FleetDatabase(path: dir.appending(path: "ksmfleet.sqlite").path), dir)
}

/// A fresh store in its own temp directory: a SQLite file, or on the PostgreSQL pass
/// (`TestStore`) a database of its own.
func makeDatabase() throws -> (FleetDatabase, URL) {
    let dir = FileManager.default.temporaryDirectory.appending(path: "fleetstore-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return (try FleetDatabase.open(try TestStore.location(for: dir)), dir)
}

func registerRequest(_ machine: String = "m-1", host: String = "host-1") -> RegisterRequest {
    RegisterRequest(
        hostname: host, machineId: machine, kernel: "6.8.0", memTotalBytes: 16 << 30, numaNodes: 1,
        ksmFeatures: ["run", "pages_to_scan"], agentVersion: "test", pageSize: 4096)
}

func sample(_ seq: Int64, sharing: Int64 = 10, phase: KSMPhase = .running, applied: Int64? = 1) -> StatusSample {
    StatusSample(
        seq: seq, takenAt: Date(timeIntervalSince1970: 1_700_000_000 + Double(seq) * 20),
        status: KSMStatus(run: 1, pagesShared: 2, pagesSharing: sharing),
        memory: MemorySnapshot(memTotalKB: 16_000_000, memAvailableKB: 8_000_000), pageSize: 4096,
        ksmdCPUPercent: 1.5, ksmdCPUSeconds: Double(seq), phase: phase, phaseReason: "sample \(seq)",
        appliedGeneration: applied)
}

/// Registers a node with a fresh enrollment token; returns its id.
func registerNode(
    _ db: FleetDatabase, machine: String = "m-1", nodeToken: String = "kn_test", proof: String? = nil,
    key: String? = nil, now: Date = Date()
) async throws -> Registration {
    let enrollment = try await db.createEnrollmentToken(description: nil, expiresAt: nil)
    var request = registerRequest(machine)
    request.nodeToken = proof
    request.registrationKey = key
    return try await db.register(
        request, enrollmentTokenHash: Secrets.hash(enrollment.token ?? ""),
        nodeTokenHash: Secrets.hash(nodeToken), now: now)
}

/// Node rows with only what reports read, for tests that write rollup or process rows straight
/// into the tables (a report reads the rows of the nodes it knows).
func insertBareNodes(_ db: StoreDB, _ ids: [String], name: (String) -> String = { $0 }) throws {
    for id in ids {
        try db.execute(
            sql: """
                INSERT INTO nodes (id, name, machine_id, kernel, mem_total_bytes, numa_nodes, agent_version, registered_at)
                VALUES (?, ?, ?, '6.8.0', 17179869184, 1, 'test', 0)
                """, arguments: [id, name(id), "m-\(id)"])
    }
}

/// Many bare nodes in one statement (`executeValues`), named by their ids, machine `m-<id>`.
func insertManyBareNodes(_ db: StoreDB, _ ids: [String]) throws {
    try db.executeValues(
        """
        INSERT INTO nodes (id, name, machine_id, kernel, mem_total_bytes, numa_nodes, agent_version, registered_at)
        """, ids.map { [$0, $0, "m-\($0)", "6.8.0", Int64(17_179_869_184), Int64(1), "test", Int64(0)] })
}

/// A count shared across threads (a store's thread and the test's task).
final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var n = 0
    func next() -> Int { lock.withLock { n += 1; return n } }
    var value: Int { lock.withLock { n } }
}
