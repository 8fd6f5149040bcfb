import FleetTestSupport
import Foundation
import Testing

/// A request the HTTP parser refuses while a route reads its body is the client's error: 400
/// with the API's JSON error, not a 500 logged as the server's.
@Suite struct MalformedHTTPTests {
    @Test func aChunkSizeThatIsNotHexIsABadRequest() async throws {
        let h = try await Harness.start()
        defer { Task { await h.finish() } }
        let (reg, _) = try await h.register()
        let connection = try ConnectionLimitTests.RawConnection(port: h.server.port)
        let reply = connection.exchange(
            "PUT /api/v1/nodes/\(reg.nodeId)/labels HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                + "Authorization: Bearer \(h.server.adminToken)\r\nContent-Type: application/json\r\n"
                + "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\nabc\r\n0\r\n\r\n")
        #expect(reply.hasPrefix("HTTP/1.1 400"), "\(reply)")
        #expect(reply.contains(#""code":"bad_request""#), "\(reply)")
        // Nothing changed, and the server goes on.
        #expect(try await h.admin.node(reg.nodeId).labels.isEmpty)
        #expect(try ConnectionLimitTests.RawConnection(port: h.server.port).get("/healthz").hasPrefix("HTTP/1.1 200"))
    }
}
