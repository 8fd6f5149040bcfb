import FleetAPI
import FleetClient
import FleetStore
import FleetTestSupport
import Foundation
import KSMCore
import Testing

@testable import FleetServer

/// Who may do what (issue 14): every route of the route table, called by every kind of caller.
/// The routes come from `RouteTable.routes`, the table the server registers its routes through,
/// so a new route is walked here as soon as it exists; the expectation is written out below on
/// its own (role rank), not asked of `Auth`.
@Suite(.serialized) struct RouteRoleTests {
    enum Who: String, CaseIterable {
        case none, viewer, `operator`, admin, node, enrollment

        var role: Role? {
            switch self {
            case .viewer: .viewer
            case .operator: .operator
            case .admin: .admin
            default: nil
            }
        }
    }

    /// Whether `who` may call a route with `access` (the node token is the node's own).
    static func expectedAllowed(_ access: Access, _ who: Who, metricsPublic: Bool = false) -> Bool {
        switch access {
        case .anyone: return true
        case .enrollment: return who == .enrollment
        case .metrics: return metricsPublic || (who.role.map { $0 >= .viewer } ?? false)
        case .role(let r): return who.role.map { $0 >= r } ?? false
        case .node: return who == .node
        case .nodeOrRole(let r): return who == .node || (who.role.map { $0 >= r } ?? false)
        }
    }

    struct Tokens {
        var viewer: String
        var `operator`: String
        var admin: String
        var enrollment: String
    }

    static func token(_ who: Who, _ tokens: Tokens, nodeToken: String) -> String? {
        switch who {
        case .none: nil
        case .viewer: tokens.viewer
        case .operator: tokens.operator
        case .admin: tokens.admin
        case .node: nodeToken
        case .enrollment: tokens.enrollment
        }
    }

    /// A fresh pending registration (a second host claiming a known machine id without proof),
    /// for the accept/reject routes; returns its id.
    static func pendingRegistration(_ h: Harness, _ n: Int) async throws -> String {
        let (reg, _) = try await h.register(machineId: "walk-clone-\(n)", hostname: "walk-holder-\(n)")
        _ = reg
        let anon = try Fixtures.client(h.server.baseURL, token: nil)
        let enrollment = try await h.server.makeEnrollmentToken()
        do {
            _ = try await anon.register(
                Fixtures.registerRequest(machineId: "walk-clone-\(n)", hostname: "walk-claimer-\(n)"),
                enrollmentToken: enrollment)
        } catch {}  // 409 registration_pending, as intended
        for p in try await h.admin.pendingRegistrations().registrations
        where p.newcomer.hostname == "walk-claimer-\(n)" {
            return p.id
        }
        throw CancellationError()  // no pending registration was made: the route walk fails on it
    }

    @Test func everyAPIRouteWithEveryKindOfCaller() async throws {
        let h = try await Harness.start()
        defer { Task { await h.finish() } }
        func make(_ name: String, _ role: Role) async throws -> String {
            try #require(try await h.admin.createCredential(CreateCredentialRequest(name: name, role: role)).token)
        }
        let tokens = Tokens(
            viewer: try await make("walk-viewer", .viewer), operator: try await make("walk-operator", .operator),
            admin: try await make("walk-admin", .admin), enrollment: try await h.server.makeEnrollmentToken())
        let json = { (value: any Encodable) throws -> Data in try StrictJSON.encoder().encode(value) }
        var walked = 0
        for spec in RouteTable.routes where !spec.dashboard {
            for who in Who.allCases {
                // A fresh node (and fresh ids) per call: deletes and revocations do not disturb the next.
                let (reg, _) = try await h.register(hostname: "walk-\(walked)")
                var path = spec.path
                if path.hasPrefix("/api/v1/enrollment-tokens/") {
                    let id = try await h.admin.createEnrollmentToken(CreateEnrollmentTokenRequest()).id
                    path = path.replacingOccurrences(of: ":id", with: id)
                } else if path.hasPrefix("/api/v1/registrations/") {
                    path = path.replacingOccurrences(of: ":id", with: try await Self.pendingRegistration(h, walked))
                } else if path.hasPrefix("/api/v1/credentials/") {
                    let id = try await h.admin.createCredential(
                        CreateCredentialRequest(name: "walk-c-\(walked)", role: .viewer)
                    ).id
                    path = path.replacingOccurrences(of: ":id", with: id)
                } else {
                    path = path.replacingOccurrences(of: ":id", with: reg.nodeId)
                }
                var body: Data?
                switch spec.key {
                case "POST /api/v1/register":
                    body = try json(Fixtures.registerRequest(machineId: "walk-m-\(walked)", hostname: "walk-r-\(walked)"))
                case "POST /api/v1/nodes/:id/samples": body = try json(Fixtures.batch([1]))
                case "PUT /api/v1/nodes/:id/facts": body = try json(NodeFactsRequest(Fixtures.registerRequest()))
                case "PUT /api/v1/nodes/:id/labels": body = try json(LabelsRequest(labels: ["rack": "r1"]))
                case "PUT /api/v1/nodes/:id/config": body = try json(KSMConfig.standardDefault)
                case "PATCH /api/v1/nodes/:id/config": body = try json(ConfigPatch(thresCoef: 25))
                case "POST /api/v1/config/apply":
                    body = try json(ApplyRequest(nodes: [reg.nodeId], change: ConfigPatch(thresCoef: 30)))
                case "POST /api/v1/enrollment-tokens": body = Data("{}".utf8)
                case "POST /api/v1/credentials":
                    body = try json(CreateCredentialRequest(name: "walk-new-\(walked)", role: .viewer))
                default: body = nil
                }
                let client = try Fixtures.client(
                    h.server.baseURL, token: Self.token(who, tokens, nodeToken: reg.nodeToken))
                let reply = try await client.send(
                    method: spec.method.rawValue, path: path,
                    headers: body == nil ? [:] : ["Content-Type": "application/json"], body: body)
                let allowed = Self.expectedAllowed(spec.access, who)
                // Whatever the table says: a viewer never changes anything.
                if who == .viewer && spec.method != .get {
                    #expect(!(200..<300).contains(reply.status), "\(spec.key): a viewer got \(reply.status)")
                }
                if allowed {
                    #expect(
                        (200..<300).contains(reply.status),
                        "\(spec.key) as \(who.rawValue): expected 2xx, got \(reply.status) \(reply.text.prefix(200))")
                } else {
                    #expect(
                        reply.status == 401 || reply.status == 403,
                        "\(spec.key) as \(who.rawValue): expected 401/403, got \(reply.status) \(reply.text.prefix(200))")
                    #expect(errorBody(reply)?.error.code != nil, "\(spec.key) as \(who.rawValue): JSON error body")
                    if who == .none { #expect(reply.status == 401, "\(spec.key) without a credential: 401") }
                    // A route an agent calls says so to a credential or enrollment token it refuses.
                    switch spec.access {
                    case .node, .nodeOrRole:
                        if reply.status == 403, who != .node {
                            #expect(
                                errorBody(reply)?.error.message.contains("the node's own token") == true,
                                "\(spec.key) as \(who.rawValue): \(reply.text.prefix(200))")
                        }
                    default: break
                    }
                }
                walked += 1
            }
        }
        #expect(walked == RouteTable.routes.filter { !$0.dashboard }.count * Who.allCases.count)
    }

    @Test func everyDashboardRouteWithEveryKindOfCaller() async throws {
        let h = try await Harness.start()
        defer { Task { await h.finish() } }
        func make(_ name: String, _ role: Role) async throws -> String {
            try #require(try await h.admin.createCredential(CreateCredentialRequest(name: name, role: role)).token)
        }
        let tokens = Tokens(
            viewer: try await make("dash-viewer", .viewer), operator: try await make("dash-operator", .operator),
            admin: try await make("dash-admin", .admin), enrollment: try await h.server.makeEnrollmentToken())
        let (reg, _) = try await h.register(hostname: "dash-node")
        var walked = 0
        for spec in RouteTable.routes where spec.dashboard {
            for who in Who.allCases {
                var browser = try DashboardBrowser(h.server)
                // Only credentials sign in; a node or enrollment token is refused at the login form.
                if let token = Self.token(who, tokens, nodeToken: reg.nodeToken), who.role != nil {
                    try await browser.signIn(adminToken: token)
                } else if let token = Self.token(who, tokens, nodeToken: reg.nodeToken) {
                    let server = h.server
                    await #expect(throws: (any Error).self, "\(who.rawValue) token signs in to the dashboard") {
                        var other = try DashboardBrowser(server)
                        try await other.signIn(adminToken: token)
                    }
                }
                var path = spec.path.replacingOccurrences(of: ":id", with: reg.nodeId)
                if spec.path.hasPrefix("/registrations/") {
                    path = spec.path.replacingOccurrences(
                        of: ":id", with: try await Self.pendingRegistration(h, 10_000 + walked))
                }
                if spec.path == "/credentials/:id/revoke" {
                    let id = try await h.admin.createCredential(
                        CreateCredentialRequest(name: "dash-c-\(walked)", role: .viewer)
                    ).id
                    path = "/credentials/\(id)/revoke"
                }
                let fields: [(String, String)]
                switch spec.key {
                case "POST /nodes/:id/config":
                    fields = [
                        ("generation", ""), ("run", "stop"), ("mode", "standard"), ("thresCoef", "20"),
                        ("mergeAcrossNodes", "1"),
                    ]
                case "POST /credentials": fields = [("name", "dash-new-\(walked)"), ("role", "viewer"), ("expires", "")]
                default: fields = []
                }
                let reply = spec.method == .get ? try await browser.get(path) : try await browser.post(path, fields)
                let location = reply.headers["location"] ?? ""
                let label = "\(spec.key) as \(who.rawValue): \(reply.status) \(location)"
                walked += 1
                if spec.access == .anyone {
                    #expect(reply.status != 403 && reply.status < 500, "\(label)")
                    continue
                }
                if spec.key == "POST /logout" {
                    #expect(reply.status == 303 && location.hasPrefix("/login"), "\(label)")
                    continue
                }
                if Self.expectedAllowed(spec.access, who) {
                    #expect(
                        [200, 201, 303, 422].contains(reply.status) && !location.hasPrefix("/login"), "\(label)")
                } else if who.role == nil {
                    #expect(reply.status == 303 && location.hasPrefix("/login"), "\(label): to the login page")
                } else {
                    #expect(reply.status == 403, "\(label): a role too low is refused")
                }
            }
        }
        #expect(walked == RouteTable.routes.filter(\.dashboard).count * Who.allCases.count)
    }

    /// docs/security.md carries the route table as the server has it.
    @Test func theDocsListEveryRouteWithItsRole() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let doc = try String(contentsOf: root.appending(path: "docs/security.md"), encoding: .utf8)
        #expect(doc.contains(RouteTable.markdown), "docs/security.md's table differs; it should read:\n\(RouteTable.markdown)")
    }

    /// openapi.yaml's lines.
    static func specLines() throws -> [String] {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        return try String(contentsOf: root.appending(path: "openapi.yaml"), encoding: .utf8)
            .split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    }

    /// Each line of the spec's `paths` inside an operation, with its "METHOD /path/{id}" (two-space
    /// path keys, four-space methods, deeper operation fields); `line` nil when the operation starts.
    static func walkOperations(_ lines: [String], _ visit: (_ operation: String, _ line: String?) -> Void) {
        var path = "", method = ""
        for line in lines {
            if line.hasPrefix("components:") { break }
            if line.hasPrefix("  /"), line.hasSuffix(":") {
                path = String(line.dropFirst(2).dropLast())
                method = ""
            } else if line.hasPrefix("    "), !line.hasPrefix("     "), line.hasSuffix(":") {
                method = line.trimmingCharacters(in: .whitespaces).dropLast().uppercased()
                visit("\(method) \(path)", nil)
            } else if !method.isEmpty {
                visit("\(method) \(path)", line)
            }
        }
    }

    /// A route's operation as the spec names it ("GET /api/v1/nodes/{id}").
    static func operation(_ r: RouteSpec) -> String {
        "\(r.method.rawValue) " + r.path.replacing(/:(\w+)/) { "{\($0.output.1)}" }
    }

    /// openapi.yaml states every API route's role (`x-role`) as the route table has it, so a client
    /// written from the spec knows which credential an operation needs.
    @Test func theSpecStatesEveryRouteWithItsRole() throws {
        var roles: [String: String] = [:]
        Self.walkOperations(try Self.specLines()) { operation, line in
            if let line, line.hasPrefix("      x-role: ") { roles[operation] = String(line.dropFirst("      x-role: ".count)) }
        }
        for r in RouteTable.routes where !r.dashboard && r.path != "/openapi.yaml" {
            let key = Self.operation(r)
            #expect(roles[key] == r.access.description, "\(key): x-role \(roles[key] ?? "missing"), the server says \(r.access)")
        }
    }

    /// openapi.yaml lists each API operation's query parameters as the route table has them (the
    /// server refuses any other), read off the spec's `parameters` (`- name:` then `in: query`,
    /// or a `$ref` to `components.parameters`).
    @Test func theSpecListsEveryRoutesQueryParameters() throws {
        let lines = try Self.specLines()
        // components.parameters: Name -> (name, in)
        var shared: [String: (name: String, place: String)] = [:]
        if let start = lines.firstIndex(of: "  parameters:") {
            var current = ""
            for line in lines[(start + 1)...] {
                if !line.hasPrefix("    ") && !line.isEmpty { break }
                if line.hasPrefix("    "), !line.hasPrefix("     "), line.hasSuffix(":") {
                    current = String(line.dropFirst(4).dropLast())
                } else if line.hasPrefix("      name: ") {
                    shared[current, default: ("", "")].name = String(line.dropFirst("      name: ".count))
                } else if line.hasPrefix("      in: ") {
                    shared[current, default: ("", "")].place = String(line.dropFirst("      in: ".count))
                }
            }
        }
        var query: [String: Set<String>] = [:]
        var pending: String?
        Self.walkOperations(lines) { operation, line in
            guard let line else {
                query[operation] = query[operation] ?? []
                return
            }
            if line.hasPrefix("        - name: ") {
                pending = String(line.dropFirst("        - name: ".count))
            } else if line == "          in: query", let name = pending {
                query[operation, default: []].insert(name)
                pending = nil
            } else if line.hasPrefix("        - $ref: \"#/components/parameters/") {
                let ref = String(line.dropFirst("        - $ref: \"#/components/parameters/".count).dropLast())
                if let p = shared[ref], p.place == "query" { query[operation, default: []].insert(p.name) }
            }
        }
        #expect(query["GET /api/v1/audit"]?.contains("since") == true, "the scanner reads the shared parameters")
        for r in RouteTable.routes where r.path.hasPrefix(APIPaths.prefix + "/") {
            let key = Self.operation(r)
            #expect(query[key] == r.query, "\(key): the spec lists \(query[key]?.sorted() ?? []), the server reads \(r.query.sorted())")
        }
    }

    /// The table has no duplicates, and its roles keep the issue's rules: a viewer changes
    /// nothing, credentials, enrollment tokens and deletes are the admin's.
    @Test func theRouteTableKeepsTheRoleRules() {
        let keys = RouteTable.routes.map(\.key)
        #expect(Set(keys).count == keys.count)
        #expect(RouteTable.routes.allSatisfy { $0.path.hasPrefix("/") })
        for r in RouteTable.routes where r.method != .get {
            switch r.access {
            case .role(let role):
                // Signing out changes only the caller's own session.
                #expect(role >= .operator || r.path == "/logout", "\(r.key) is a change: operator at least")
            case .node, .enrollment: break
            case .anyone: #expect(["/login", "/logout"].contains(r.path), "\(r.key) open to anyone")
            default: Issue.record("\(r.key): unexpected access \(r.access) for a change")
            }
        }
        for r in RouteTable.routes
        where r.path.hasPrefix("/api/v1/credentials") || r.path.hasPrefix("/api/v1/enrollment-tokens")
            || r.path.hasPrefix("/credentials") || r.method == .delete
        {
            #expect(r.access == .role(.admin), "\(r.key) is the admin's")
        }
    }
}

/// The dashboard shows a form only to a role the route behind it allows.
@Suite struct DashboardFormsFollowRolesTests {
    @Test func pendingRegistrationButtonsAreForAdminsOnly() async throws {
        let h = try await Harness.start()
        defer { Task { await h.finish() } }
        _ = try await RouteRoleTests.pendingRegistration(h, 1)
        for (role, sees) in [(Role.viewer, false), (.operator, false), (.admin, true)] {
            let token = try #require(
                try await h.admin.createCredential(CreateCredentialRequest(name: "forms-\(role.rawValue)", role: role))
                    .token)
            var browser = try DashboardBrowser(h.server)
            try await browser.signIn(adminToken: token)
            let page = try await browser.get("/nodes").text
            #expect(page.contains("pending-registrations"), "\(role): the panel is shown")
            #expect(page.contains("/accept\"") == sees, "\(role): accept form shown = \(sees)")
        }
    }
}
