import FleetStore
import Foundation
import Testing

@Suite struct TokenTests {
    /// FIPS 180-2 test vectors.
    @Test(arguments: [
        ("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        ("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        (
            "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        ),
        (
            "The quick brown fox jumps over the lazy dog",
            "d7a8fbb307d7809469ca9abcb0082e4f8d5651e46d3cdb762d02d0bf37c9e592"
        ),
    ])
    func sha256MatchesTheStandardVectors(input: String, expected: String) {
        #expect(Secrets.hash(input) == expected)
    }

    /// `hash` works on the string's own bytes: a bridged or sliced string (not native UTF-8
    /// storage) and non-ASCII text hash the same as their UTF-8 bytes do.
    @Test func hashOfAnyStringIsTheHashOfItsUTF8Bytes() {
        for token in ["kn_" + String(repeating: "ab", count: 32), "nœud-€-𝄞", String(Substring("xx-abc-yy").dropFirst(3).dropLast(3))] {
            #expect(Secrets.hash(token) == Secrets.hex(Secrets.sha256(Array(token.utf8))))
        }
        #expect(Secrets.hash("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    @Test func constantTimeEqualComparesWholeStrings() {
        let h = Secrets.hash("abc")
        #expect(Secrets.constantTimeEqual(h, String(h)))
        #expect(!Secrets.constantTimeEqual(h, String(h.dropLast()) + "0"))
        #expect(!Secrets.constantTimeEqual(h, "0" + String(h.dropFirst())))
        #expect(!Secrets.constantTimeEqual(h, String(h.dropLast())))
        #expect(!Secrets.constantTimeEqual(h, h + "0"))
        #expect(Secrets.constantTimeEqual("", ""))
        #expect(!Secrets.constantTimeEqual("é", "e\u{301}"), "compared as UTF-8 bytes, not as Characters")
    }

    @Test func sha256OfAMillionAs() {
        #expect(
            Secrets.hex(Secrets.sha256([UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000)))
                == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    /// Hashes stored by the hand-written SHA-256 (before swift-crypto) still verify: this pair was
    /// computed by that implementation (kept in git history, commit 3704dc5).
    @Test func aHashStoredBeforeSwiftCryptoStillVerifies() {
        let token = "ka_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
        let stored = "877071f650b3a2ea60dfc6a721e9cd7003f211ecac0b5667cc1b061167f6866f"
        #expect(Secrets.hash(token) == stored)
        #expect(Secrets.verify(token, storedHash: stored))
        #expect(!Secrets.verify(token + "0", storedHash: stored))
        #expect(!Secrets.verify(token, storedHash: String(stored.dropLast()) + "0"))
    }

    @Test func tokensAreRandomPrefixedAndOnlyTheirHashIsStored() async throws {
        let a = Secrets.newToken(.node), b = Secrets.newToken(.node)
        #expect(a != b)
        #expect(a.hasPrefix("kn_") && a.count == 3 + 64)
        #expect(Secrets.newToken(.admin).hasPrefix("ka_"))
        #expect(Secrets.newID(prefix: "n-").count == 2 + 12)

        let (db, dir) = try makeSQLiteDatabase()
        defer { try? FileManager.default.removeItem(at: dir) }
        let info = try await db.createEnrollmentToken(description: "rack 4", expiresAt: nil)
        let token = try #require(info.token)
        #expect(token.hasPrefix("ke_"))
        let listed = try await db.enrollmentTokens()
        #expect(listed.count == 1 && listed[0].token == nil && listed[0].description == "rack 4")
        // The secret itself is nowhere in the database file.
        try db.close()
        for suffix in ["", "-wal"] {
            let bytes = (try? Data(contentsOf: dir.appending(path: "ksmfleet.sqlite\(suffix)"))) ?? Data()
            #expect(bytes.range(of: Data(token.utf8)) == nil, "the raw enrollment token is stored in ksmfleet.sqlite\(suffix)")
            #expect(bytes.range(of: Data(Secrets.hash(token).utf8)) != nil || suffix == "")
        }
    }

    @Test func enrollmentIsRefusedForRevokedExpiredAndUnknownTokens() async throws {
        let (db, dir) = try makeDatabase()
        defer { try? FileManager.default.removeItem(at: dir) }
        let revoked = try await db.createEnrollmentToken(description: nil, expiresAt: nil)
        _ = try await db.revokeEnrollmentToken(id: revoked.id)
        let expired = try await db.createEnrollmentToken(description: nil, expiresAt: Date(timeIntervalSinceNow: 1))
        for (token, now, why) in [
            (revoked.token ?? "", Date(), "revoked"), (expired.token ?? "", Date(timeIntervalSinceNow: 5), "expired"),
            ("ke_unknown", Date(), "unknown"),
        ] {
            await #expect(throws: StoreError.self) {
                _ = try await db.register(
                    registerRequest(), enrollmentTokenHash: Secrets.hash(token), nodeTokenHash: "h-\(why)", now: now)
            }
        }
        #expect(try await db.nodes().isEmpty)
    }
}
