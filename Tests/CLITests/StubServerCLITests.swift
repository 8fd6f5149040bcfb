import FleetAPI
import Foundation
import KSMCore
import TestSupport
import Testing

/// Replies a real server gives only in a race or a failure, from a stub on loopback.
@Suite("ksmfleet against a stub server")
struct StubServerCLITests {
    static func nodeJSON(generation: Int64) throws -> String {
        let config = NodeConfig(generation: generation, config: KSMConfig.standardDefault.normalized())
        let node = NodeInfo(
            id: "n-1", name: "web-1", machineId: "m", labels: [:], kernel: "6.8", memTotalBytes: 1 << 34, numaNodes: 1,
            ksmFeatures: [], agentVersion: "t", registeredAt: Date(timeIntervalSince1970: 1_700_000_000),
            lastSeenAt: nil,
            online: true, connection: .online, config: config, phase: nil, phaseReason: nil,
            appliedGeneration: generation, applyError: nil,
            drift: false, driftReason: nil, lastSample: nil)
        return String(decoding: try StrictJSON.encoder().encode(node), as: UTF8.self)
    }

    @Test("config set sends If-Match on the generation it read, and a 409 says the config changed meanwhile")
    func conflict() async throws {
        let node = try Self.nodeJSON(generation: 7)
        let config = String(
            decoding: try StrictJSON.encoder().encode(
                NodeConfig(generation: 7, config: KSMConfig.standardDefault.normalized())),
            as: UTF8.self)
        let conflict = String(
            decoding: try JSONEncoder().encode(
                APIErrorBody(
                    code: "generation_conflict", message: "the config is at generation 8, not 7", field: "If-Match")),
            as: UTF8.self)
        let stub = try StubServer { method, path in
            switch (method, path) {
            case ("GET", "/api/v1/nodes/web-1"): return .init(status: 200, body: node)
            case ("GET", "/api/v1/nodes/n-1/config"): return .init(status: 200, body: config)
            case ("PATCH", "/api/v1/nodes/n-1/config"): return .init(status: 409, body: conflict)
            default: return .init(status: 404, body: #"{"error":{"code":"not_found","message":"no route"}}"#)
            }
        }
        defer { stub.stop() }
        let r = try await CLI.run([
            "config", "set", "web-1", "--thres-coef", "30", "--server", stub.baseURL, "--token", "t",
        ])
        #expect(r.status == Exit.refused, "\(r)")
        #expect(r.stderr.contains("changed on the server") && r.stderr.contains("run the command again"), "\(r)")
        #expect(stub.requestLines.last == "PATCH /api/v1/nodes/n-1/config", "\(stub.requestLines)")
    }

    @Test("a 5xx gives exit 70; a reply that is not JSON gives 70 too; a 403 gives the auth code")
    func serverErrors() async throws {
        let stub = try StubServer { _, path in
            switch path {
            case "/api/v1/nodes":
                return .init(status: 500, body: #"{"error":{"code":"internal_error","message":"disk full"}}"#)
            case "/api/v1/enrollment-tokens":
                return .init(status: 200, body: "<html>proxy login</html>", contentType: "text/html")
            default:
                return .init(
                    status: 403, body: #"{"error":{"code":"forbidden","message":"node tokens cannot do this"}}"#)
            }
        }
        defer { stub.stop() }
        let failed = try await CLI.run(["nodes", "list", "--server", stub.baseURL, "--token", "t"])
        #expect(failed.status == Exit.serverError, "\(failed)")
        #expect(failed.stderr.contains("disk full"), "\(failed)")
        let garbled = try await CLI.run(["tokens", "list", "--server", stub.baseURL, "--token", "t"])
        #expect(garbled.status == Exit.serverError, "\(garbled)")
        let forbidden = try await CLI.run(["nodes", "show", "x", "--server", stub.baseURL, "--token", "t"])
        #expect(forbidden.status == Exit.auth, "\(forbidden)")
        #expect(forbidden.stderr.contains("a credential whose role allows this"), "\(forbidden)")
    }

    @Test("the server's database unavailable (503 database_unavailable) gives exit 69 and its reason; another 503 gives 70")
    func databaseUnavailable() async throws {
        let stub = try StubServer { _, path in
            switch path {
            case "/api/v1/nodes":
                return .init(
                    status: 503,
                    body: #"{"error":{"code":"database_unavailable","message":"the database is unavailable (PostgreSQL refuses this server's connections or cannot be reached); try again in a few seconds"}}"#)
            default:
                return .init(status: 503, body: #"{"error":{"code":"http_503","message":"overloaded"}}"#)
            }
        }
        defer { stub.stop() }
        let r = try await CLI.run(["nodes", "list", "--server", stub.baseURL, "--token", "t"])
        #expect(r.status == Exit.unreachable, "\(r)")
        #expect(r.stderr.contains("the server's database is unavailable") && r.stderr.contains("PostgreSQL refuses this server's connections"), "\(r)")
        #expect(r.stderr.contains("try again in a few seconds"), "\(r)")
        #expect(r.stderr.contains("may or may not have been made: check it (ksmfleet audit"), "\(r)")
        let other = try await CLI.run(["tokens", "list", "--server", stub.baseURL, "--token", "t"])
        #expect(other.status == Exit.serverError, "\(other)")
    }

    @Test("a 429 says to slow down and when to try again (its Retry-After)")
    func rateLimited() async throws {
        let stub = try StubServer { _, _ in
            .init(
                status: 429, body: #"{"error":{"code":"rate_limited","message":"too many requests from 127.0.0.1"}}"#,
                headers: ["Retry-After": "17"])
        }
        defer { stub.stop() }
        let r = try await CLI.run(["nodes", "list", "--server", stub.baseURL, "--token", "t"])
        #expect(r.status == Exit.refused, "\(r)")
        #expect(r.stderr.contains("asks to slow down (429 rate_limited: too many requests from 127.0.0.1); try again in 17 s"), "\(r)")
    }

    @Test("refused values send no request at all")
    func noRequestForBadValues() async throws {
        let stub = try StubServer { _, _ in .init(status: 500, body: "{}") }
        defer { stub.stop() }
        let r = try await CLI.run([
            "config", "apply", "--all", "--thres-coef", "101", "--server", stub.baseURL, "--token", "t",
        ])
        #expect(r.status == Exit.usage, "\(r)")
        #expect(stub.requestLines.isEmpty, "\(stub.requestLines)")
    }
}
