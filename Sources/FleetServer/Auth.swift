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

/// A node's token check: which node, and whether its agent should replace the token now.
struct NodeAuth: Sendable, Equatable {
    var nodeId: String
    var rotationDue: Bool
}

/// Bearer-token checks. The admin token's hash is held in memory; node tokens are looked up by
/// hash (an indexed read) and remembered, so a busy agent costs no query per request. Every
/// registration (token rotation) and node deletion forgets them all. Secrets are never logged.
struct Auth: Sendable {
    let database: FleetDatabase
    let adminTokenHash: String
    /// Scheduled node token rotation (nil: only on an admin's request).
    let rotationSeconds: Double?
    private let known = NodeTokenCache()

    init(database: FleetDatabase, adminTokenHash: String, rotationSeconds: Double? = nil) {
        self.database = database
        self.adminTokenHash = adminTokenHash
        self.rotationSeconds = rotationSeconds
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
        try await check(request, expecting: expecting).principal
    }

    /// The token's principal and, for a node, whether its token is due for rotation.
    func check(_ request: Request, expecting: Expecting = .nodeOrAdmin) async throws -> (
        principal: Principal, rotationDue: Bool
    ) {
        guard let token = Self.bearer(request) else {
            throw APIError.unauthorized("missing token: send 'Authorization: Bearer <token>'")
        }
        let hash = Secrets.hash(token)
        if Secrets.constantTimeEqual(hash, adminTokenHash) { return (.admin, false) }
        let now = Date()
        if let cached = known.node(for: hash) {
            return (.node(cached.node), cached.dueAt.map { $0 <= now } ?? false)
        }
        let generation = known.generation
        if let credential = try await database.nodeCredential(forTokenHash: hash, now: now) {
            if credential.previousAwaitsConfirmation {
                // The agent uses its new token: the previous one ends after a short grace.
                try await database.confirmNewToken(nodeId: credential.nodeId, now: now)
            }
            if !credential.isPrevious {
                known.remember(hash, node: credential.nodeId, dueAt: dueAt(credential), ifStill: generation)
            }
            return (.node(credential.nodeId), credential.rotationDue(everySeconds: rotationSeconds, now: now))
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
                "wrong node token (unknown, replaced by a rotation or an accepted registration, or its node was deleted)")
        case .nodeOrAdmin:
            throw APIError.unauthorized(
                "wrong token: neither this server's admin token nor a current node token (node tokens are "
                    + "replaced by rotations and end with their node)")
        }
    }

    /// When a credential's token falls due for rotation (nil: never, on this schedule).
    private func dueAt(_ c: NodeCredential) -> Date? {
        if let requested = c.rotateRequestedAt { return requested }
        guard let rotationSeconds, let issued = c.issuedAt else { return nil }
        return issued.addingTimeInterval(rotationSeconds)
    }

    @discardableResult
    func requireAdmin(_ request: Request) async throws -> Principal {
        let p = try await principal(request, expecting: .admin)
        guard p == .admin else { throw APIError.forbidden("this needs the admin token") }
        return p
    }

    /// The node `nodeId` itself (admins may not push samples for a node); whether its token is
    /// due for rotation.
    @discardableResult
    func requireNode(_ request: Request, nodeId: String) async throws -> NodeAuth {
        let (p, due) = try await check(request, expecting: .node)
        switch p {
        case .node(let id) where id == nodeId: return NodeAuth(nodeId: id, rotationDue: due)
        case .node(let id): throw APIError.forbidden("a node token may only touch its own node (\(id))")
        case .admin: throw APIError.forbidden("samples are pushed with the node's own token")
        }
    }
}

/// Node token hash → node id, with a generation so that a lookup racing a `clear()` does not
/// put back a token that was just rotated or deleted.
final class NodeTokenCache: Sendable {
    struct Entry: Sendable {
        var node: String
        /// When the token falls due for rotation.
        var dueAt: Date?
    }
    private struct State {
        var map: [String: Entry] = [:]
        var generation: UInt64 = 0
    }
    private let state = Mutex(State())

    var generation: UInt64 { state.withLock { $0.generation } }

    func node(for hash: String) -> Entry? { state.withLock { $0.map[hash] } }

    func remember(_ hash: String, node: String, dueAt: Date? = nil, ifStill generation: UInt64) {
        state.withLock { s in
            guard s.generation == generation else { return }
            if s.map.count > 200_000 { s.map.removeAll() }
            s.map[hash] = Entry(node: node, dueAt: dueAt)
        }
    }

    func clear() {
        state.withLock { s in
            s.map.removeAll()
            s.generation &+= 1
        }
    }
}
