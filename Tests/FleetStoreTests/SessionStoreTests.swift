import FleetStore
import Foundation
import Testing

/// Dashboard sessions in the database: expiry, sliding expiry, the bound on their number.
@Suite struct SessionStoreTests {
    let t0 = Date(timeIntervalSince1970: 1_800_000_000)

    @Test func aSessionExpiresAndIsThenRemoved() async throws {
        let (db, dir) = try makeDatabase()
        defer { try? FileManager.default.removeItem(at: dir) }
        try await db.createDashboardSession(
            idHash: "h1", expiresAt: t0.addingTimeInterval(1000), address: "127.0.0.1", maxSessions: 10, now: t0)
        #expect(try await db.touchDashboardSession(idHash: "h1", lifetime: 1000, now: t0.addingTimeInterval(500)) != nil)
        #expect(try await db.touchDashboardSession(idHash: "nope", lifetime: 1000, now: t0) == nil)
        // Used at +500 with a 1000 s lifetime: now good until +1500 (a slide of less than a
        // minute is not written).
        #expect(try await db.touchDashboardSession(idHash: "h1", lifetime: 1000, now: t0.addingTimeInterval(1400)) != nil)
        #expect(
            try await db.touchDashboardSession(idHash: "h1", lifetime: 1000, now: t0.addingTimeInterval(9000)) == nil)
        #expect(try await db.dashboardSessionCount() == 0)
    }

    @Test func atMostMaxSessionsAreKeptTheNearestExpiryGoesFirst() async throws {
        let (db, dir) = try makeDatabase()
        defer { try? FileManager.default.removeItem(at: dir) }
        for i in 0..<3 {
            try await db.createDashboardSession(
                idHash: "h\(i)", expiresAt: t0.addingTimeInterval(Double(1000 + i)), address: nil, maxSessions: 2,
                now: t0)
        }
        #expect(try await db.dashboardSessionCount() == 2)
        #expect(try await db.touchDashboardSession(idHash: "h0", lifetime: 1000, now: t0) == nil)
        #expect(try await db.touchDashboardSession(idHash: "h2", lifetime: 1000, now: t0) != nil)
        try await db.deleteDashboardSession(idHash: "h2")
        #expect(try await db.dashboardSessionCount() == 1)
    }

    @Test func aNewAdminTokenEndsTheSessionsSignedInWithTheOldOne() async throws {
        let (db, dir) = try makeDatabase()
        defer { try? FileManager.default.removeItem(at: dir) }
        try await db.setAdminTokenHash("old")
        try await db.createDashboardSession(
            idHash: "boot", expiresAt: t0.addingTimeInterval(1000), address: nil, maxSessions: 10, now: t0)
        try await db.createDashboardSession(
            idHash: "named", expiresAt: t0.addingTimeInterval(1000), address: nil, credentialId: "c-1", maxSessions: 10,
            now: t0)
        try await db.setAdminTokenHash("old")  // unchanged: nobody is signed out
        #expect(try await db.dashboardSessionCount() == 2)
        try await db.setAdminTokenHash("new")
        #expect(try await db.touchDashboardSession(idHash: "boot", lifetime: 1000, now: t0) == nil)
        #expect(try await db.touchDashboardSession(idHash: "named", lifetime: 1000, now: t0) != nil)
    }
}
