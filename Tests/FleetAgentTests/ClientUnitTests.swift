import FleetAPI
import Foundation
import Glibc
import TestSupport
import Testing

@testable import FleetClient

@Suite("FleetClient without a server")
struct ClientUnitTests {
    @Test("a closed port is .unreachable and names the server and the reason")
    func unreachable() async throws {
        let client = try FleetClient(ClientOptions(serverURL: "http://127.0.0.1:1", connectTimeout: 2))
        do {
            _ = try await client.send(method: "GET", path: "/healthz")
            Issue.record("expected an error")
        } catch {
            guard case .unreachable(let message) = error else {
                Issue.record("expected .unreachable, got \(error)")
                return
            }
            #expect(message.hasPrefix("cannot reach http://127.0.0.1:1"))
            #expect(message.contains("Connection refused"))
        }
    }

    /// A server that takes the connection and never answers (a stopped process, a database
    /// stall behind it): the error says so, not "cannot reach", which would send an operator
    /// after the network. Still `.unreachable`, so an agent moves on to its next server.
    @Test("a request sent and not answered within the timeout is 'no complete reply', not 'cannot reach'")
    func noReply() async throws {
        let listener = try SilentListener()
        defer { listener.close() }
        let base = "http://127.0.0.1:\(listener.port)"
        let client = try FleetClient(ClientOptions(serverURL: base, connectTimeout: 2, requestTimeout: 1))
        do {
            _ = try await client.send(method: "POST", path: "/api/v1/nodes/n1/samples", body: Data("{}".utf8))
            Issue.record("expected an error")
        } catch {
            guard case .unreachable(let message) = error else {
                Issue.record("expected .unreachable, got \(error)")
                return
            }
            #expect(
                message == "no complete reply from \(base) within 1 s after connecting and sending the request")
        }
    }

    @Test("the timeout a push states to the server, and the share of it the server's database work may take")
    func clientTimeoutHeader() {
        #expect(ClientTimeout.value(30) == "30" && ClientTimeout.value(2.5) == "2.5")
        #expect(ClientTimeout.value(0) == nil && ClientTimeout.value(.infinity) == nil && ClientTimeout.value(3601) == nil)
        #expect(ClientTimeout.parse("30") == 30 && ClientTimeout.parse("2.5") == 2.5 && ClientTimeout.parse("3600") == 3600)
        for bad in ["", "0", "-1", "3601", "inf", "nan", "30s", " 30", "+30", "1e1", "0x10", "1.2345", "30.", ".5", "0.000", "1.2.3"] {
            #expect(ClientTimeout.parse(bad) == nil, "\(bad)")
        }
        #expect(ClientTimeout.parse("0.001") == 0.001 && ClientTimeout.parse("12.5") == 12.5)
        // To the millisecond, as parse takes it back.
        #expect(ClientTimeout.value(0.1 + 0.2) == "0.3")
        #expect(ClientTimeout.value(0.0004) == nil && ClientTimeout.value(0.05) == "0.05")
        for seconds in [0.001, 0.25, 2.5, 29.999, 30, 1234.567, 3600] {
            #expect(ClientTimeout.value(seconds).flatMap(ClientTimeout.parse) == seconds, "\(seconds)")
        }
        #expect(ClientTimeout.serverLimit(30) == 27 && ClientTimeout.serverLimit(6) == 4)
        #expect(ClientTimeout.serverLimit(1) == 2 && ClientTimeout.serverLimit(0.001) == 2, "never under the least")
    }

    @Test("seconds in messages are written as the header writes them, past the header's hour too")
    func secondsText() {
        #expect(SecondsText.of(milliseconds: 30_000) == "30" && SecondsText.of(milliseconds: 300) == "0.3")
        #expect(SecondsText.of(milliseconds: 1_050) == "1.05" && SecondsText.of(milliseconds: 7_200_000) == "7200")
        #expect(SecondsText.of(.milliseconds(2500)) == "2.5" && SecondsText.of(.seconds(60)) == "60")
        #expect(SecondsText.of(.nanoseconds(1_499_999)) == "0.001", "to the nearest millisecond")
        // The client's message for a two-hour timeout (the header refuses it; "7200.0 s" before).
        #expect(FleetClient.seconds(7_200_000) == "7200 s" && FleetClient.seconds(1_500) == "1.5 s")
    }

    @Test("typed calls report an unreachable server the same way")
    func unreachableTyped() async throws {
        let client = try FleetClient(ClientOptions(serverURL: "http://127.0.0.1:1/", token: "t", connectTimeout: 2))
        await #expect(throws: ClientError.self) {
            _ = try await client.config(nodeId: "n1", ifNoneMatch: 3, waitSeconds: 1)
        }
    }

    @Test(
        "bad server URLs are refused up front",
        arguments: ["127.0.0.1:8080", "ftp://host", "http://", "https:///x", "http://h/?q=1", ""])
    func invalidURL(_ url: String) {
        #expect(throws: ClientError.self) { try FleetClient(ClientOptions(serverURL: url)) }
        do {
            _ = try FleetClient(ClientOptions(serverURL: url))
        } catch {
            guard case .invalidURL = error else {
                Issue.record("expected .invalidURL, got \(error)")
                return
            }
        }
    }

    @Test("URLs join the base, the path and a percent-encoded query")
    func urls() throws {
        let client = try FleetClient(ClientOptions(serverURL: "https://fleet.example:8443/base/"))
        #expect(client.url(path: "/api/v1/nodes") == "https://fleet.example:8443/base/api/v1/nodes")
        #expect(
            client.url(path: "/api/v1/nodes", query: [("selector", "rack=a b,zone=é"), ("wait", "30")])
                == "https://fleet.example:8443/base/api/v1/nodes?selector=rack%3Da%20b%2Czone%3D%C3%A9&wait=30")
    }

    @Test("headers: names lowercased, repeats joined, only the final response after 1xx")
    func headers() {
        let raw =
            "HTTP/1.1 100 Continue\r\nX-Old: 1\r\n\r\nHTTP/1.1 200 OK\r\nContent-Type: application/json\r\nETag: \"7\"\r\nSet-Cookie: a\r\nset-cookie: b\r\n\r\n"
        let h = parseHeaders(raw)
        #expect(h["content-type"] == "application/json")
        #expect(h["etag"] == "\"7\"")
        #expect(h["set-cookie"] == "a, b")
        #expect(h["x-old"] == nil)
    }

    @Test("non-JSON error bodies become a synthesized API error")
    func synthesizedError() {
        let response = HTTPResponse(status: 502, headers: [:], body: Data("<html>bad gateway</html>".utf8))
        do {
            try FleetClient.throwIfError(response)
            Issue.record("expected an error")
        } catch {
            #expect(error.status == 502)
            #expect(error.code == "http_502")
            #expect(error.description.contains("bad gateway"))
        }
    }

    @Test("JSON error bodies keep the server's code and field")
    func jsonError() throws {
        let body = try JSONEncoder().encode(APIErrorBody(code: "invalid_value", message: "too big", field: "thresCoef"))
        do {
            try FleetClient.throwIfError(HTTPResponse(status: 422, headers: [:], body: body))
            Issue.record("expected an error")
        } catch {
            #expect(error.code == "invalid_value")
            #expect(error.description.contains("thresCoef"))
        }
    }
}

/// A loopback TCP port that completes connections (the kernel's backlog) and never reads or
/// answers.
private final class SilentListener: Sendable {
    let fd: Int32
    let port: Int

    init() throws {
        (fd, port) = try LoopbackSocket.listening(backlog: 16)
    }

    func close() { _ = Glibc.close(fd) }
}
