import Crypto
import Foundation

/// Tokens and their hashes. Tokens are 32 random bytes from the system generator (getrandom on
/// Linux), hex encoded, with a short prefix naming their kind so a leaked token is recognisable
/// (`ka_` bootstrap admin, `kc_` named credential, `kn_` node, `ke_` enrollment). Only SHA-256
/// hashes are ever stored: lowercase hex of the digest of the token's UTF-8 bytes, the same
/// format the earlier hand-written SHA-256 produced, so existing databases keep working.
///
/// SHA-256 comes from swift-crypto (a maintained implementation; on Linux it builds BoringSSL,
/// which only the server pays for: the agent and the CLI do not link FleetStore).
public enum Secrets {
    public enum Kind: String, Sendable {
        case admin = "ka_"
        case credential = "kc_"
        case node = "kn_"
        case enrollment = "ke_"
    }

    /// A fresh token of the given kind: prefix + 64 hex chars.
    public static func newToken(_ kind: Kind) -> String {
        kind.rawValue + randomHex(bytes: 32)
    }

    /// An identifier such as `n-1a2b3c4d5e6f` (prefix + 12 hex chars).
    public static func newID(prefix: String) -> String {
        prefix + randomHex(bytes: 6)
    }

    public static func randomHex(bytes: Int) -> String {
        var rng = SystemRandomNumberGenerator()
        var out: [UInt8] = []
        out.reserveCapacity(bytes)
        for _ in 0..<bytes { out.append(UInt8.random(in: 0...255, using: &rng)) }
        return hex(out)
    }

    /// The stored form of a token: lowercase hex SHA-256 of its UTF-8 bytes. Runs on every
    /// authenticated request, so it hashes the string's own bytes and writes the hex straight
    /// into the result (no intermediate arrays).
    public static func hash(_ token: String) -> String {
        var token = token
        let digest = token.withUTF8 { SHA256.hash(data: UnsafeRawBufferPointer($0)) }
        return digest.withUnsafeBytes { bytes in
            String(unsafeUninitializedCapacity: bytes.count * 2) { out in
                for (i, b) in bytes.enumerated() {
                    out[2 * i] = hexDigits[Int(b >> 4)]
                    out[2 * i + 1] = hexDigits[Int(b & 0x0f)]
                }
                return bytes.count * 2
            }
        }
    }

    private static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

    /// The SHA-256 digest of `bytes` (swift-crypto).
    public static func sha256(_ bytes: [UInt8]) -> [UInt8] {
        Array(SHA256.hash(data: bytes))
    }

    /// Whether `token` hashes to `storedHash`, compared in constant time.
    public static func verify(_ token: String, storedHash: String) -> Bool {
        constantTimeEqual(hash(token), storedHash)
    }

    public static func hex(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 2)
        for b in bytes {
            out.append(hexDigits[Int(b >> 4)])
            out.append(hexDigits[Int(b & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Compares two strings in time independent of where they differ (for strings of the same
    /// length; the length itself, a hash's, is no secret).
    public static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        guard a.utf8.count == b.utf8.count else { return false }
        var diff: UInt8 = 0
        for (x, y) in zip(a.utf8, b.utf8) { diff |= x ^ y }
        return diff == 0
    }
}
