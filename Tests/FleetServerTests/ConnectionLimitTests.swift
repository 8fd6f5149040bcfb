import FleetTestSupport
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The server keeps its open connections under `maxConnections` (below its file limit), so a
/// flood of agents never leaves it without descriptors for its database and threads.
@Suite struct ConnectionLimitTests {
    /// A plain TCP connection to 127.0.0.1:port with a receive timeout.
    final class RawConnection {
        let fd: Int32

        init(port: Int) throws {
            fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            guard fd >= 0 else { throw POSIXError(.EMFILE) }
            var timeout = timeval(tv_sec: 5, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_port = in_port_t(UInt16(port).bigEndian)
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            let rc = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard rc == 0 else {
                close(fd)
                throw POSIXError(.ECONNREFUSED)
            }
        }

        /// Sends a GET and returns what came back before the server closed or 5 s passed ("" when
        /// the server closed the connection without a word).
        func get(_ path: String) -> String {
            exchange("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        }

        /// Sends `request` as it is (bytes an HTTP client would not send) and returns what came
        /// back before the server closed or 5 s passed.
        func exchange(_ request: String) -> String {
            _ = request.withCString { send(fd, $0, strlen($0), Int32(MSG_NOSIGNAL)) }
            var reply = [UInt8]()
            var buffer = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = recv(fd, &buffer, buffer.count, 0)
                if n <= 0 { break }
                reply += buffer[0..<n]
            }
            return String(decoding: reply, as: UTF8.self)
        }

        deinit { close(fd) }
    }

    @Test func connectionsAboveTheLimitAreClosedAndTheServerGoesOn() async throws {
        let h = try await Harness.start { $0.maxConnections = 3 }
        defer { Task { await h.finish() } }
        let port = h.server.port
        // Three idle connections (agents holding their sockets) fill the limit.
        var held = try (0..<3).map { _ in try RawConnection(port: port) }
        try await Task.sleep(for: .milliseconds(300))
        // A fourth is closed without an answer.
        let extra = try RawConnection(port: port)
        #expect(extra.get("/healthz").isEmpty, "a connection above the limit was served")
        // One leaves: the next one is served again.
        held.removeLast()
        try await Task.sleep(for: .milliseconds(300))
        let next = try RawConnection(port: port)
        #expect(next.get("/healthz").hasPrefix("HTTP/1.1 200"))
        // The held ones are still served (they were admitted).
        #expect(held[0].get("/healthz").hasPrefix("HTTP/1.1 200"))
    }
}
