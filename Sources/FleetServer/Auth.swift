import FleetAPI
import Foundation
import Synchronization
import FleetStore
import Hummingbird

/// Who sent a request.
enum Principal: Sendable, Equatable {
    case admin
    case node(String)
}

/// Bearer-token checks. The admin token's hash is held in memory; node tokens are looked up by
/// hash (an indexed read) and remembered, so a busy agent costs no query per request. Every
/// registration (token rotation) and node deletion forgets them all. Secrets are never logged.
struct Auth: Sendable {
    let database: FleetDatabase
    let adminTokenHash: String
    private let known = NodeTokenCache()

    init(database: FleetDatabase, adminTokenHash: String) {
        self.database = database
        self.adminTokenHash = adminTokenHash
    }

    /// Forget every remembered node token (call after a registration or a deletion).
    func forgetNodeTokens() { known.clear() }

    /// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive, spaces
    /// and tabs around the token ignored), nil when there is none. Runs on every request, so
    /// it works on the header's bytes rather than through Foundation.
    static func bearer(_ request: Request) -> String? {
        guard let value = request.headers[.authorization] else { return nil }
        var bytes = Substring(value).utf8[...]
        let blank: (UInt8) -> Bool = { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }
        guard bytes.count > 7, let space = bytes.firstIndex(of: UInt8(ascii: " ")) else { return nil }
        let scheme = bytes[..<space]
        guard scheme.count == 6, zip(scheme, "bearer".utf8).allSatisfy({ $0 | 0x20 == $1 }) else { return nil }
        bytes = bytes[bytes.index(after: space)...]
        while let first = bytes.first, blank(first) { bytes = bytes.dropFirst() }
        while let last = bytes.last, blank(last) { bytes = bytes.dropLast() }
        return bytes.isEmpty ? nil : String(Substring(bytes))
    }

    /// Which credential a route takes, so that a refusal speaks of the credential that was tried.
    enum Expecting: Sendable {
        case admin, node, nodeOrAdmin
    }

    func principal(_ request: Request, expecting: Expecting = .nodeOrAdmin) async throws -> Principal {
        guard let token = Self.bearer(request) else {
            throw APIError.unauthorized("missing token: send 'Authorization: Bearer <token>'")
        }
        let hash = Secrets.hash(token)
        if Secrets.constantTimeEqual(hash, adminTokenHash) { return .admin }
        if let node = known.node(for: hash) { return .node(node) }
        let generation = known.generation
        if let node = try await database.nodeID(forTokenHash: hash) {
            known.remember(hash, node: node, ifStill: generation)
            return .node(node)
        }
        if try await database.isEnrollmentToken(hash: hash) {
            throw APIError.forbidden(
                "this is an enrollment token: it only registers nodes (POST /api/v1/register); "
                    + (expecting == .node ? "this route needs the node's own token" : "this route needs the admin token"))
        }
        switch expecting {
        case .admin:
            throw APIError.unauthorized(
                "wrong admin token: it is not this server's admin token (the server keeps it in "
                    + "<data-dir>/server/admin-token, or it was set with KSMFLEET_ADMIN_TOKEN)")
        case .node:
            throw APIError.unauthorized(
                "wrong node token (unknown, rotated by a re-registration, or its node was deleted)")
        case .nodeOrAdmin:
            throw APIError.unauthorized(
                "wrong token: neither this server's admin token nor a current node token (node tokens are "
                    + "rotated by a re-registration and end with their node)")
        }
    }

    @discardableResult
    func requireAdmin(_ request: Request) async throws -> Principal {
        let p = try await principal(request, expecting: .admin)
        guard p == .admin else { throw APIError.forbidden("this needs the admin token") }
        return p
    }

    /// The node `nodeId` itself (admins may not push samples for a node).
    func requireNode(_ request: Request, nodeId: String) async throws {
        let p = try await principal(request, expecting: .node)
        switch p {
        case .node(let id) where id == nodeId: return
        case .node(let id): throw APIError.forbidden("a node token may only touch its own node (\(id))")
        case .admin: throw APIError.forbidden("samples are pushed with the node's own token")
        }
    }
}

/// Node token hash → node id, with a generation so that a lookup racing a `clear()` does not
/// put back a token that was just rotated or deleted.
final class NodeTokenCache: Sendable {
    private struct State {
        var map: [String: String] = [:]
        var generation: UInt64 = 0
    }
    private let state = Mutex(State())

    var generation: UInt64 { state.withLock { $0.generation } }

    func node(for hash: String) -> String? { state.withLock { $0.map[hash] } }

    func remember(_ hash: String, node: String, ifStill generation: UInt64) {
        state.withLock { s in
            guard s.generation == generation else { return }
            if s.map.count > 200_000 { s.map.removeAll() }
            s.map[hash] = node
        }
    }

    func clear() {
        state.withLock { s in
            s.map.removeAll()
            s.generation &+= 1
        }
    }
}
