import FleetTestSupport
import Foundation
import Testing

/// A request the HTTP parser refuses is the client's error: 400 with the API's JSON error (the
/// part at fault as its field), whether the parser refused it before it became a request or
/// while a route read its body; never a 500 logged as the server's, nor a 400 without a body.
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

    /// Bytes refused before they became a request (no route saw them): the JSON error, the
    /// connection closed (what follows cannot be framed), nothing stored, the server goes on.
    enum BadHead: String, CaseIterable, Sendable {
        case lengthNotANumber, lengthAndChunked, headersOver80KiB
        var header: String {
            switch self {
            case .lengthNotANumber: "Content-Length: abc\r\n"
            case .lengthAndChunked: "Content-Length: 2\r\nTransfer-Encoding: chunked\r\n"
            case .headersOver80KiB: "X-Padding: " + String(repeating: "a", count: 81 * 1024) + "\r\n"
            }
        }
        var expected: String {
            switch self {
            case .lengthNotANumber: #""field":"Content-Length""#
            case .lengthAndChunked: #""code":"bad_request""#
            case .headersOver80KiB: #""field":"headers""#
            }
        }
    }

    @Test(arguments: BadHead.allCases)
    func bytesTheParserRefusesGetTheJSONError(_ bad: BadHead) async throws {
        let (header, expected) = (bad.header, bad.expected)
        let h = try await Harness.start()
        defer { Task { await h.finish() } }
        let (reg, _) = try await h.register()
        let reply = try ConnectionLimitTests.RawConnection(port: h.server.port).exchange(
            "PUT /api/v1/nodes/\(reg.nodeId)/labels HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                + "Authorization: Bearer \(h.server.adminToken)\r\nContent-Type: application/json\r\n"
                + header + "\r\n{\"labels\":{\"a\":\"b\"}}")
        let (head, body) = try Self.split(reply)
        #expect(head.hasPrefix("HTTP/1.1 400"), "\(reply.prefix(300))")
        #expect(head.lowercased().contains("content-type: application/json"), "\(head)")
        #expect(head.lowercased().contains("connection: close"), "\(head)")
        #expect(body.contains(#""code":"bad_request""#), "\(body)")
        #expect(body.contains(expected), "\(body)")
        #expect(head.lowercased().contains("content-length: \(body.utf8.count)"), "\(head)")
        #expect(try await h.admin.node(reg.nodeId).labels.isEmpty)
        #expect(try ConnectionLimitTests.RawConnection(port: h.server.port).get("/healthz").hasPrefix("HTTP/1.1 200"))
    }

    /// Bad bytes after a whole request (pipelined): that request is answered first, then the
    /// JSON error, never one inside the other.
    @Test func badBytesAfterAPipelinedRequestAreAnsweredAfterIt() async throws {
        let h = try await Harness.start()
        defer { Task { await h.finish() } }
        let reply = try ConnectionLimitTests.RawConnection(port: h.server.port).exchange(
            "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
                + "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: -1\r\n\r\n")
        let parts = reply.components(separatedBy: "HTTP/1.1 ")
        #expect(parts.count == 3, "\(reply)")
        #expect(parts.dropFirst().first?.hasPrefix("200") == true, "\(reply)")
        #expect(parts.last?.hasPrefix("400") == true, "\(reply)")
        #expect(parts.last?.contains(#""field":"Content-Length""#) == true, "\(reply)")
    }

    /// Bad bytes after a request that asked to close the connection: its response, then the
    /// close; nothing written after the response that said so.
    @Test func badBytesAfterARequestThatClosesGetNoAnswer() async throws {
        let h = try await Harness.start()
        defer { Task { await h.finish() } }
        let reply = try ConnectionLimitTests.RawConnection(port: h.server.port).exchange(
            "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
                + "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: -1\r\n\r\n")
        #expect(reply.hasPrefix("HTTP/1.1 200"), "\(reply)")
        #expect(reply.components(separatedBy: "HTTP/1.1 ").count == 2, "\(reply)")
        // `Connection: Close` is not Hummingbird's "close" (it keeps the connection): the bad
        // bytes after it get their JSON error, not a connection left hanging.
        let kept = try ConnectionLimitTests.RawConnection(port: h.server.port).exchange(
            "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Close\r\n\r\n"
                + "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: -1\r\n\r\n")
        let parts = kept.components(separatedBy: "HTTP/1.1 ")
        #expect(parts.count == 3 && parts[2].hasPrefix("400"), "\(kept)")
    }

    /// A reply's head and body.
    static func split(_ reply: String) throws -> (head: String, body: String) {
        let r = try #require(reply.range(of: "\r\n\r\n"), "no head in \(reply.prefix(300))")
        return (String(reply[..<r.lowerBound]), String(reply[r.upperBound...]))
    }
}
