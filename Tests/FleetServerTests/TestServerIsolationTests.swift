import FleetTestSupport
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// The in-process test server keeps answering while every thread of the process's shared
/// dispatch pool is blocked. Regression: on Linux the cooperative pool, concurrent
/// `DispatchQueue`s and `DispatchQueue.global()` share one small pool; parallel CLI tests
/// blocked in `Process.waitUntilExit` there, the servers their CLIs were calling could not run a
/// single job, and everything stalled until the CLIs' own 180 s timeout.
@Suite struct TestServerIsolationTests {
    @Test("the in-process server answers while the shared dispatch pool is blocked")
    func answersWhileTheSharedPoolIsBlocked() async throws {
        let server = try await TestServer.start()
        let port = server.port
        // Everything below runs on a plain thread: the test's own task cannot run while the
        // pool is blocked. The blockers are released as soon as the request is answered.
        let status: Int = await withCheckedContinuation { continuation in
            let thread = Thread {
                let release = DispatchSemaphore(value: 0)
                let blockers = 16 * ProcessInfo.processInfo.activeProcessorCount
                for _ in 0..<blockers { DispatchQueue.global().async { release.wait() } }
                Thread.sleep(forTimeInterval: 0.3)
                let status = blockingGet(port: port, path: "/readyz", timeoutSeconds: 10)
                for _ in 0..<blockers { release.signal() }
                continuation.resume(returning: status)
            }
            thread.start()
        }
        await server.stop()
        server.removeDataDir()
        #expect(status == 200, "the server did not answer while the shared dispatch pool was blocked")
    }
}

/// `GET path` on 127.0.0.1:port with plain blocking sockets (no dispatch, no Swift task): the
/// status code, or -1 when there was no answer within `timeoutSeconds`.
private func blockingGet(port: Int, path: String, timeoutSeconds: Int) -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return -1 }
    defer { close(fd) }
    var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = UInt16(port).bigEndian
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    let connected = withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard connected == 0 else { return -1 }
    let request = Array("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".utf8)
    let sent = request.withUnsafeBufferPointer { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    guard sent == request.count else { return -1 }
    var response = [UInt8]()
    var buffer = [UInt8](repeating: 0, count: 4096)
    while !response.contains(UInt8(ascii: "\n")) {
        let n = recv(fd, &buffer, buffer.count, 0)
        if n <= 0 { return -1 }
        response += buffer[0..<n]
    }
    // "HTTP/1.1 200 OK"
    let statusLine = String(decoding: response.prefix(while: { $0 != UInt8(ascii: "\r") }), as: UTF8.self)
    let parts = statusLine.split(separator: " ")
    return parts.count > 1 ? Int(parts[1]) ?? -1 : -1
}
