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

    /// One credential signing in again and again (a viewer, say) keeps at most its own cap of
    /// sessions, its oldest going first: it no longer pushes everyone else's out, the admins'.
    @Test func oneCredentialCannotPushTheOthersOut() async throws {
        let (db, dir) = try makeDatabase()
        defer { try? FileManager.default.removeItem(at: dir) }
        try await db.createDashboardSession(
            idHash: "admin", expiresAt: t0.addingTimeInterval(1000), address: nil, maxSessions: 25, now: t0)
        for i in 0..<30 {
            try await db.createDashboardSession(
                idHash: "v\(i)", expiresAt: t0.addingTimeInterval(Double(2000 + i)), address: nil, credentialId: "c-viewer",
                maxSessions: 25, maxPerCredential: 20, now: t0)
        }
        #expect(try await db.touchDashboardSession(idHash: "admin", lifetime: 1000, now: t0) != nil)
        #expect(try await db.dashboardSessionCount() == 21)
        #expect(try await db.touchDashboardSession(idHash: "v9", lifetime: 1000, now: t0) == nil)
        #expect(try await db.touchDashboardSession(idHash: "v10", lifetime: 1000, now: t0) != nil)
        // The bootstrap admin token's sessions (no credential id) have a cap of their own too.
        for i in 0..<3 {
            try await db.createDashboardSession(
                idHash: "b\(i)", expiresAt: t0.addingTimeInterval(Double(3000 + i)), address: nil, maxSessions: 25,
                maxPerCredential: 2, now: t0)
        }
        #expect(try await db.touchDashboardSession(idHash: "b0", lifetime: 1000, now: t0) == nil)
        #expect(try await db.touchDashboardSession(idHash: "b2", lifetime: 1000, now: t0) != nil)
        #expect(try await db.touchDashboardSession(idHash: "v29", lifetime: 1000, now: t0) != nil)
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
