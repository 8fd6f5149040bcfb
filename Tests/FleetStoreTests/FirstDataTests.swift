import Foundation
import KSMCore
import Testing

@testable import FleetStore

/// 2026-11-02T00:00:00Z.
private let t0: Double = 1_793_577_600

/// A report reads the first data of many nodes in one statement (`firstData(nodeIds:)`): it
/// gives what one node's queries give, for every kind of node.
@Suite struct FirstDataTests {
    @Test func manyNodesAtOnceGiveWhatOneNodeAtATimeGives() async throws {
        let f = try ReportFixture()
        let none = try await f.node("none", registeredAt: t0)
        let raw = try await f.node("raw", registeredAt: t0)
        try await f.push(raw, start: t0 + 7200 + 125, count: 5)
        // Rolled up, its first hour opening with a gap (the first sample 20 minutes in), then its
        // first hours' samples deleted by retention: the first data comes from the hour row.
        let retained = try await f.node("retained", registeredAt: t0)
        try await f.push(retained, start: t0 + 1200, step: 120, count: 120)
        let deleted = try await f.node("deleted", registeredAt: t0)
        try await f.push(deleted, start: t0 + 600, count: 30)
        let now = Date(timeIntervalSince1970: t0 + 6 * 3600)
        try await f.db.rollupCatchUp(now: now)
        try await f.push(raw, start: t0 + 3 * 3600, count: 2)
        _ = try await f.db.retentionPass(
            samplesBefore: Date(timeIntervalSince1970: t0 + 3 * 3600), rollupsBefore: Date(timeIntervalSince1970: 0))
        try await f.db.deleteNode(nodeId: deleted, purgeHistory: false, now: now)

        let ids = [none, raw, retained, deleted]
        let (one, many) = try await f.db.read { db in
            (try ids.map { try FleetDatabase.firstData(db, nodeId: $0) },
             try FleetDatabase.firstData(db, nodeIds: ids + ["n-unknown"]))
        }
        #expect(many.count == ids.count, "the unknown id is left out")
        for (id, expected) in zip(ids, one) {
            #expect(many[id] == .some(expected), "\(id)")
        }
        #expect(one[0] == nil)
        #expect(one[1] == t0 + 7200 + 125)
        let oldestKept = try await f.db.read { db in
            try Int64.fetchOne(db, sql: "SELECT MIN(taken_at) FROM samples WHERE node_id = ?", arguments: [retained])
        }
        #expect(oldestKept.map { Double($0) / 1000 } ?? 0 > t0 + 1200, "retention took the first samples")
        #expect(one[2] == t0 + 1200, "from the first hour's row, after its opening gap")
        #expect(one[3] == t0 + 600)
    }
}
