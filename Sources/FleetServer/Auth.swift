import FleetAPI
import Foundation
import Synchronization
import FleetStore
import HTTPTypes
import Hummingbird
import NIOCore

/// A node's token check: which node, and whether its agent should replace the token now.
struct NodeAuth: Sendable, Equatable {
    var nodeId: String
    var rotationDue: Bool
}

/// Who sent a request.
enum Principal: Sendable, Equatable {
    /// The bootstrap admin token or a named credential, with its role. `remembered`: a scrape's
    /// named credential taken from memory because the database could not be asked
    /// (`Auth.namedCredential`); `/metrics` then shows no fleet data.
    case credential(Credential, remembered: Bool = false)
    /// A node's own token, and whether its agent should replace that token now (rotation on a
    /// schedule or on an admin's request; the sample reply says so). Worked out once, in the
    /// token check, so the push does not hash the bearer token a second time.
    case node(String, rotationDue: Bool = false)

    var role: Role? {
        if case .credential(let c, _) = self { return c.role }
        return nil
    }

    /// The name the audit trail records.
    var name: String {
        switch self {
        case .credential(let c, _): c.name
        case .node(let id, _): "node:\(id)"
        }
    }

    var credentialId: String? {
        if case .credential(let c, _) = self { return c.id }
        return nil
    }
}

/// The principal of the request being handled (set by `CheckedRouter` around the handler).
enum Caller {
    @TaskLocal static var current: Principal?
}

/// Bearer-token checks. The bootstrap admin token's hash is held in memory; node tokens are
/// looked up by hash (an indexed read) and remembered, so a busy agent costs no query per
/// request. A rotation, a re-registration, an admin's rotation request or the node's deletion
/// forgets the node's entries, on every replica of a shared store (PostgreSQL migration 0019's
/// notices; until they are heard, nothing is remembered: `NodeTokenCache`). Named
/// credentials are looked up on every request (so a revocation or expiry takes effect at once).
/// Secrets are never logged.
struct Auth: Sendable {
    let database: FleetDatabase
    let adminTokenHash: String
    /// `--metrics-public`: `/metrics` needs no credential.
    let metricsPublic: Bool
    /// Scheduled node token rotation (nil: only on an admin's request).
    let rotationSeconds: Double?
    private let known: NodeTokenCache
    private let scrapers = Scrapers()

    init(database: FleetDatabase, adminTokenHash: String, metricsPublic: Bool = false, rotationSeconds: Double? = nil) {
        self.database = database
        // Replicas on one store: another replica's rotation must reach this one's memory.
        self.known = NodeTokenCache(othersHeard: !database.isShared)
        self.adminTokenHash = adminTokenHash
        self.metricsPublic = metricsPublic
        self.rotationSeconds = rotationSeconds
    }

    /// Forget the remembered tokens of one node (call after its token changed, it was deleted or
    /// a rotation was requested). Other nodes' entries stay: a fleet enrolling thousands of nodes
    /// must not send every push of the others back to the database.
    func forgetNodeTokens(of nodeId: String) { known.forget(node: nodeId) }

    /// The other replicas' changes are heard from now on (config notifications listened to,
    /// `ConfigNotificationService`): their token changes forget this replica's entries.
    func nodeTokenChangesHeard() { known.changesHeard() }

    /// The other replicas' changes are no longer heard (the listening connection was lost): no
    /// node token is taken from memory until they are again.
    func nodeTokenChangesUnheard() { known.changesUnheard() }

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

    /// The credential a token is (bootstrap admin or a live named credential), or nil.
    func credential(token: String) async throws -> Credential? {
        let hash = Secrets.hash(token)
        if Secrets.constantTimeEqual(hash, adminTokenHash) { return .bootstrap }
        return try await database.credential(forTokenHash: hash)
    }

    /// Whether a credential id (from a dashboard session) is still valid, with its current role.
    func credential(id: String) async throws -> Credential? {
        if id == Credential.bootstrap.id { return .bootstrap }
        return try await database.credential(id: id)
    }

    /// Who a bearer token is; throws 401 for an unknown token and 403 for an enrollment token.
    /// `access` only shapes the refusal's message.
    func principal(_ request: Request, for access: Access) async throws -> Principal {
        guard let token = Self.bearer(request) else {
            throw APIError.unauthorized("missing token: send 'Authorization: Bearer <token>'")
        }
        let hash = Secrets.hash(token)
        if Secrets.constantTimeEqual(hash, adminTokenHash) { return .credential(.bootstrap) }
        // Every token the server makes names its kind in a prefix (Secrets.Kind): one lookup, in
        // the one place that kind lives, and none at all for a token of no known kind.
        if token.hasPrefix(Secrets.Kind.node.rawValue) {
            if let node = try await nodeToken(hash) { return .node(node.nodeId, rotationDue: node.rotationDue) }
        } else if token.hasPrefix(Secrets.Kind.credential.rawValue) {
            if let (c, remembered) = try await namedCredential(hash, for: access) {
                return .credential(c, remembered: remembered)
            }
        } else if token.hasPrefix(Secrets.Kind.enrollment.rawValue), try await database.isEnrollmentToken(hash: hash) {
            throw APIError.forbidden(
                "this is an enrollment token: it only registers nodes (POST /api/v1/register); "
                    + (access == .node ? "this route needs the node's own token" : "this route needs \(Self.needs(access))"))
        }
        switch access {
        case .node:
            throw APIError.unauthorized(
                "wrong node token (unknown, replaced by a rotation or an accepted registration, or its node was deleted)")
        case .nodeOrRole:
            throw APIError.unauthorized(
                "wrong token: neither a credential of this server (admin token or named credential) nor a current "
                    + "node token (node tokens are replaced by rotations and end with their node)")
        default:
            throw APIError.unauthorized(
                "wrong token: it is neither this server's admin token (kept in <data-dir>/admin-token, or set "
                    + "with KSMFLEET_ADMIN_TOKEN) nor a live named credential (revoked or expired ones stop working)")
        }
    }

    /// A named credential by its token's hash, and whether it was taken from memory. A scrape's
    /// credential is remembered: while the database cannot be asked (within
    /// `Scrapers.lookupDeadline`, so that the scrape still answers within Prometheus's timeout),
    /// a scrape with a credential seen valid in the last `Scrapers.trust` (and not expired since,
    /// nor revoked on this replica) still gets `/metrics`, with `ksmfleet_database_up 0` and no
    /// fleet series, instead of a 503 that Prometheus can only count as the target down. Nothing
    /// else is served on a remembered credential.
    private func namedCredential(_ hash: String, for access: Access) async throws -> (Credential, remembered: Bool)? {
        guard access == .metrics else { return try await database.credential(forTokenHash: hash).map { ($0, false) } }
        let generation = scrapers.generation
        do {
            let credential = try await DatabaseWork.$deadline.withValue(Scrapers.lookupDeadline) {
                try await database.credential(forTokenHash: hash)
            }
            scrapers.saw(hash, credential, ifStill: generation)
            return credential.map { ($0, false) }
        } catch where DatabaseUnavailable.of(error) != nil {
            guard let remembered = scrapers.recent(hash) else { throw error }
            return (remembered, true)
        }
    }

    /// Revokes a named credential, and forgets it as a scrape's (`namedCredential`).
    func revokeCredential(id: String) async throws -> CredentialInfo {
        scrapers.forget(credentialId: id)
        defer { scrapers.forget(credentialId: id) }
        return try await database.revokeCredential(id: id)
    }

    /// A node token: its node and whether its agent should replace it now (rotation on a
    /// schedule or on an admin's request). nil when the hash is no node's token. The previous
    /// token of a rotation works during its grace period; the first use of the new one starts
    /// the previous one's short end.
    func nodeToken(_ hash: String) async throws -> NodeAuth? {
        let now = Date()
        if let cached = known.node(for: hash) {
            return NodeAuth(nodeId: cached.node, rotationDue: cached.dueAt.map { $0 <= now } ?? false)
        }
        let generation = known.generation
        guard let credential = try await database.nodeCredential(forTokenHash: hash, now: now) else { return nil }
        if credential.previousAwaitsConfirmation {
            // The agent uses its new token: the previous one ends after a short grace.
            try await database.confirmNewToken(nodeId: credential.nodeId, now: now)
        }
        if !credential.isPrevious {
            known.remember(hash, node: credential.nodeId, dueAt: dueAt(credential), ifStill: generation)
        }
        return NodeAuth(
            nodeId: credential.nodeId, rotationDue: credential.rotationDue(everySeconds: rotationSeconds, now: now))
    }

    /// When a credential's token falls due for rotation (nil: never, on this schedule).
    private func dueAt(_ c: NodeCredential) -> Date? {
        if let requested = c.rotateRequestedAt { return requested }
        guard let rotationSeconds, let issued = c.issuedAt else { return nil }
        return issued.addingTimeInterval(rotationSeconds)
    }

    static func needs(_ access: Access) -> String {
        switch access {
        case .role(let r): "a credential with the \(r.rawValue) role or above"
        case .nodeOrRole(let r): "the node's own token, or a credential with the \(r.rawValue) role or above"
        case .metrics: "a credential with the viewer role or above"
        case .node: "the node's own token"
        case .anyone, .enrollment: "no credential"
        }
    }

    /// THE role check: whether `principal` (nil: no credential) may call a route with `access`
    /// on node `nodeId` (the path's `:id`, when it has one). The API and the dashboard both ask
    /// this; nothing else decides.
    func allows(_ access: Access, _ principal: Principal?, nodeId: String?) -> Bool {
        switch access {
        case .anyone, .enrollment: return true
        case .metrics: return metricsPublic || (principal?.role ?? nil).map { $0 >= .viewer } == true
        case .role(let needed): return (principal?.role).map { $0 >= needed } == true
        case .node:
            if case .node(let id, _) = principal { return nodeId == nil || id == nodeId }
            return false
        case .nodeOrRole(let needed):
            if case .node(let id, _) = principal { return nodeId == nil || id == nodeId }
            return (principal?.role).map { $0 >= needed } == true
        }
    }

    /// Checks a request against its route's access: returns who it is (nil for routes anyone may
    /// call without sending a credential), or throws 401/403 as JSON.
    func check(_ spec: RouteSpec, _ request: Request, nodeId: String?) async throws -> Principal? {
        switch spec.access {
        case .anyone, .enrollment: return nil
        case .metrics where metricsPublic: return nil
        default: break
        }
        let principal = try await principal(request, for: spec.access)
        guard allows(spec.access, principal, nodeId: nodeId) else {
            switch (principal, spec.access) {
            case (.node(let id, _), .node), (.node(let id, _), .nodeOrRole):
                throw APIError.forbidden("a node token may only touch its own node (\(id))")
            case (.credential, .node):
                // Samples, facts and the node's own token rotation: the agent's calls (an admin asks
                // for a rotation with POST /nodes/{id}/rotate-token).
                throw APIError.forbidden("this route takes the node's own token (its agent's), not a credential")
            case (.node, _):
                throw APIError.forbidden("a node token only serves its agent; this route needs \(Self.needs(spec.access))")
            case (.credential(let c, _), _):
                throw APIError.forbidden(
                    "the credential '\(c.name)' has the \(c.role.rawValue) role; this route needs \(Self.needs(spec.access))")
            }
        }
        return principal
    }
}

/// Registers routes only through the route table: each handler runs after `Auth.check` with the
/// caller set for the audit trail (`AuditContext`). `verify()` (at startup) fails when a
/// registered route has no table entry or a table entry was never registered.
final class CheckedRouter<Context: RequestContext> {
    let router: Router<Context>
    let state: ServerState
    private var registered: [String] = []
    private var missing: [String] = []

    init(router: Router<Context>, state: ServerState) {
        self.router = router
        self.state = state
    }

    struct TableError: Error, CustomStringConvertible {
        var description: String
    }

    /// The table entry for a route, recorded as registered (nil when there is none).
    func spec(_ method: HTTPRequest.Method, _ path: String) -> RouteSpec? {
        guard let spec = RouteTable.spec(method, path) else {
            missing.append("\(method.rawValue) \(path)")
            return nil
        }
        registered.append(spec.key)
        return spec
    }

    /// An API route: JSON 401/403 before the handler runs.
    func on(
        _ method: HTTPRequest.Method, _ path: String,
        use handler: @escaping @Sendable (Request, Context) async throws -> Response
    ) {
        guard let spec = spec(method, path) else { return }
        let state = self.state
        let checksQuery = spec.path.hasPrefix(APIPaths.prefix + "/")
        router.on(RouterPath(path), method: method) { request, context in
            let principal = try await state.auth.check(spec, request, nodeId: context.parameters.get("id"))
            if checksQuery { try HTTP.checkQuery(request, reads: spec.query) }
            let who = AuditWho(
                name: principal?.name ?? "anonymous", credentialId: principal?.credentialId,
                source: state.clientAddress(request, context: context))
            return try await Caller.$current.withValue(principal) {
                try await AuditContext.$current.withValue(who) { try await handler(request, context) }
            }
        }
    }

    /// Throws unless every registration had a table entry and every entry was registered once.
    func verify() throws {
        if !missing.isEmpty {
            throw TableError(description: "routes without an entry in RouteTable: \(missing.joined(separator: ", "))")
        }
        let expected = RouteTable.routes.map(\.key)
        let unregistered = expected.filter { !registered.contains($0) }
        let twice = Dictionary(grouping: registered, by: { $0 }).filter { $0.value.count > 1 }.keys
        if !unregistered.isEmpty || !twice.isEmpty || Set(expected).count != expected.count {
            throw TableError(
                description: "RouteTable and the registered routes differ: never registered \(unregistered), "
                    + "registered twice \(Array(twice))")
        }
    }
}

/// The named credentials `/metrics` was scraped with lately (`Auth.namedCredential`): a few
/// Prometheus servers, not a cache of every credential. A generation, as in `NodeTokenCache`:
/// a lookup that read the database before a revocation on this replica never puts the
/// credential back.
final class Scrapers: Sendable {
    /// How long a credential seen valid is trusted for a scrape while the database cannot say.
    static let trust: TimeInterval = 15 * 60
    /// How long a scrape's credential lookup may take before the credential is taken from
    /// memory: with the nodes' read (`OpsController.metricsReadDeadline`) within Prometheus's
    /// default scrape timeout of 10 s.
    static let lookupDeadline = Duration.seconds(2)
    private struct State {
        var seen: [String: (credential: Credential, at: Date)] = [:]
        var generation: UInt64 = 0
    }
    private let state = Mutex(State())

    var generation: UInt64 { state.withLock { $0.generation } }

    /// The lookup's answer for `hash`: remembered when it is a credential, forgotten when it is
    /// none (revoked, expired, unknown); nothing is remembered if a revocation came meanwhile.
    func saw(_ hash: String, _ credential: Credential?, ifStill generation: UInt64, now: Date = Date()) {
        state.withLock { s in
            guard let credential else {
                s.seen.removeValue(forKey: hash)
                return
            }
            guard s.generation == generation else { return }
            if s.seen.count >= 64, s.seen[hash] == nil { s.seen.removeAll() }
            s.seen[hash] = (credential, now)
        }
    }

    /// The credential `hash` was when last seen, if that was within `trust` and it has not
    /// expired since.
    func recent(_ hash: String, now: Date = Date()) -> Credential? {
        state.withLock { s in
            guard let entry = s.seen[hash], now.timeIntervalSince(entry.at) <= Self.trust,
                entry.credential.expiresAt.map({ $0 > now }) ?? true
            else { return nil }
            return entry.credential
        }
    }

    /// Forgets a credential (revoked here), and any lookup of it under way.
    func forget(credentialId: String) {
        state.withLock { s in
            s.seen = s.seen.filter { $0.value.credential.id != credentialId }
            s.generation &+= 1
        }
    }
}

/// Node token hash → node id, with a generation so that a lookup racing a `forget` does not
/// put back a token that was just rotated or deleted. Entries are found by hash and forgotten by
/// node, each in constant time: every replica forgets a node's entries at every rotation in the
/// fleet (`ConfigNotificationService`), thousands of them when a schedule brings a fleet's
/// tokens due together.
///
/// On a store several replicas share, an entry stays true only while the other replicas'
/// changes are heard (their notices forget it): nothing is remembered until they are
/// (`changesHeard`), and everything is forgotten when they no longer are (`changesUnheard`).
final class NodeTokenCache: Sendable {
    struct Entry: Sendable {
        var node: String
        /// When the token falls due for rotation.
        var dueAt: Date?
    }
    private struct State {
        var map: [String: Entry] = [:]
        /// The hashes remembered for each node (one, or two across a rotation).
        var byNode: [String: [String]] = [:]
        var generation: UInt64 = 0
        var heard: Bool

        mutating func forgetAll(heard: Bool) {
            map.removeAll()
            byNode.removeAll()
            generation &+= 1
            self.heard = heard
        }
    }
    static let capacity = 200_000
    private let state: Mutex<State>

    /// `othersHeard`: false on a store shared with other replicas until their changes are heard.
    init(othersHeard: Bool = true) {
        state = Mutex(State(heard: othersHeard))
    }

    var generation: UInt64 { state.withLock { $0.generation } }

    var count: Int { state.withLock { $0.map.count } }

    func node(for hash: String) -> Entry? { state.withLock { $0.map[hash] } }

    func remember(_ hash: String, node: String, dueAt: Date? = nil, ifStill generation: UInt64) {
        state.withLock { s in
            guard s.heard, s.generation == generation else { return }
            if s.map.count >= Self.capacity { s.forgetAll(heard: true) }
            if let old = s.map.updateValue(Entry(node: node, dueAt: dueAt), forKey: hash) {
                if old.node == node { return }
                s.byNode[old.node]?.removeAll { $0 == hash }
            }
            s.byNode[node, default: []].append(hash)
        }
    }

    /// Drops the node's entries. The generation moves on too, so a lookup that read the database
    /// before this never stores what it read (it may be the token just replaced).
    func forget(node: String) {
        state.withLock { s in
            for hash in s.byNode.removeValue(forKey: node) ?? [] { s.map.removeValue(forKey: hash) }
            s.generation &+= 1
        }
    }

    /// The other replicas' changes are heard from now on: what was remembered before may have
    /// been changed meanwhile unheard, and is forgotten.
    func changesHeard() { state.withLock { $0.forgetAll(heard: true) } }

    /// The other replicas' changes are no longer heard: everything is forgotten, and nothing is
    /// remembered until `changesHeard` (every request looks its token up).
    func changesUnheard() { state.withLock { $0.forgetAll(heard: false) } }
}
