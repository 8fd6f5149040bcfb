import FleetAPI
import FleetClient
import FleetServer
import FleetStore
import FleetTestSupport
import Foundation
import KSMCore
import Testing
import TestSupport

/// A started in-process server with an admin client; stopped and removed by `finish()`.
struct Harness {
    let server: TestServer
    let admin: FleetClient

    static func start(
        dataDir: URL? = nil, adminToken: String? = nil, configure: (inout ServerConfig) -> Void = { _ in }
    ) async throws -> Harness {
        let server = try await TestServer.start(dataDir: dataDir, adminToken: adminToken, configure: configure)
        return Harness(server: server, admin: try Fixtures.client(server.baseURL, token: server.adminToken))
    }

    /// Registers a node; returns the reply and a client holding the node token.
    func register(machineId: String = "m-\(UUID().uuidString.prefix(8))", hostname: String = "node-a") async throws
        -> (RegisterResponse, FleetClient)
    {
        let enrollment = try await server.makeEnrollmentToken()
        let anon = try Fixtures.client(server.baseURL, token: nil)
        let reg = try await anon.register(
            Fixtures.registerRequest(machineId: machineId, hostname: hostname), enrollmentToken: enrollment)
        return (reg, try Fixtures.client(server.baseURL, token: reg.nodeToken))
    }

    /// A second connection to the server's database, to check what is stored.
    func database() throws -> FleetDatabase {
        try FleetDatabase.open(try TestStore.location(for: server.dataDir))
    }

    func finish() async {
        await server.stop()
        server.removeDataDir()
    }
}

/// JSON body of an encodable value.
func jsonBody(_ value: some Encodable) throws -> Data {
    try StrictJSON.encoder().encode(value)
}

/// The decoded error body of a reply, or nil.
func errorBody(_ response: HTTPResponse) -> APIErrorBody? {
    try? StrictJSON.decoder().decode(APIErrorBody.self, from: response.body)
}

/// Runs `body` and returns the `ClientError.api` it throws (or records an issue).
func apiError(_ body: () async throws -> Void, sourceLocation: SourceLocation = #_sourceLocation) async -> (Int, APIErrorBody)? {
    do {
        try await body()
        Issue.record("expected an API error", sourceLocation: sourceLocation)
    } catch let error as ClientError {
        if case .api(let status, let body, _) = error { return (status, body) }
        Issue.record("expected an API error, got \(error)", sourceLocation: sourceLocation)
    } catch {
        Issue.record("expected an API error, got \(error)", sourceLocation: sourceLocation)
    }
    return nil
}
