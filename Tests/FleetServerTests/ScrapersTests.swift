import FleetStore
import Foundation
import Testing

@testable import FleetServer

/// The credentials `/metrics` may be served on from memory while the database cannot confirm
/// them (`Scrapers`): only ones seen valid within the trust window, not expired since, not
/// revoked on this replica, and never put back by a lookup that raced a revocation.
@Suite struct ScrapersTests {
    let now = Date(timeIntervalSince1970: 1_790_000_000)
    let viewer = Credential(id: "c1", name: "prometheus", role: .viewer)

    @Test func rememberedWithinTheTrustWindowOnly() {
        let s = Scrapers()
        s.saw("h1", viewer, ifStill: s.generation, now: now)
        #expect(s.recent("h1", now: now.addingTimeInterval(Scrapers.trust - 1)) == viewer)
        #expect(s.recent("h1", now: now.addingTimeInterval(Scrapers.trust + 1)) == nil)
        #expect(s.recent("other", now: now) == nil)
    }

    @Test func aLookupThatFindsNoCredentialForgetsIt() {
        let s = Scrapers()
        s.saw("h1", viewer, ifStill: s.generation, now: now)
        s.saw("h1", nil, ifStill: s.generation, now: now)
        #expect(s.recent("h1", now: now) == nil)
    }

    @Test func anExpiredCredentialIsNotTakenFromMemory() {
        let s = Scrapers()
        var expiring = viewer
        expiring.expiresAt = now.addingTimeInterval(60)
        s.saw("h1", expiring, ifStill: s.generation, now: now)
        #expect(s.recent("h1", now: now.addingTimeInterval(59)) == expiring)
        #expect(s.recent("h1", now: now.addingTimeInterval(61)) == nil)
    }

    @Test func aRevocationHereForgetsItAndALookupRacingItDoesNotPutItBack() {
        let s = Scrapers()
        s.saw("h1", viewer, ifStill: s.generation, now: now)
        let before = s.generation  // a lookup starts
        s.forget(credentialId: "c1")  // the credential is revoked meanwhile
        #expect(s.recent("h1", now: now) == nil)
        s.saw("h1", viewer, ifStill: before, now: now)  // the lookup read it before the revocation
        #expect(s.recent("h1", now: now) == nil)
        s.saw("h1", viewer, ifStill: s.generation, now: now)
        #expect(s.recent("h1", now: now) == viewer)
    }
}
