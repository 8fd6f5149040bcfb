import Foundation
import Synchronization

/// A tiny HTTP/1.1 server on 127.0.0.1 that answers from a routing closure, for replies a real
/// server gives only in a race (409) or a failure (5xx). One connection at a time on its own
/// thread (never on the cooperative pool), `Connection: close`, every wait bounded.
public final class StubServer: Sendable {
    public struct Reply: Sendable {
        public var status: Int
        public var body: String
        public var contentType: String
        /// Further headers (`Retry-After`, …).
        public var headers: [String: String]

        public init(status: Int, body: String, contentType: String = "application/json", headers: [String: String] = [:]) {
            self.status = status
            self.body = body
            self.contentType = contentType
            self.headers = headers
        }
    }

    public typealias Route = @Sendable (_ method: String, _ path: String) -> Reply

    public let baseURL: String
    private let fd: Int32
    private let stopped = Atomic<Bool>(false)
    private let requests = Mutex<[String]>([])
    private let done = DispatchSemaphore(value: 0)

    /// "METHOD /path?query" of every request served, in order.
    public var requestLines: [String] { requests.withLock { $0 } }

    public init(route: @escaping Route) throws {
        let (fd, port) = try LoopbackSocket.listening(backlog: 16)
        self.fd = fd
        baseURL = "http://127.0.0.1:\(port)"
        let thread = Thread { [self] in
            serve(route)
            done.signal()
        }
        thread.start()
    }

    /// Stops accepting and waits (bounded) for the serving thread to end.
    public func stop() {
        stopped.store(true, ordering: .sequentiallyConsistent)
        _ = done.wait(timeout: .now() + 10)
        close(fd)
    }

    private func serve(_ route: Route) {
        // At most 10 minutes, polling every 100 ms for a connection or the stop flag.
        for _ in 0..<6000 {
            if stopped.load(ordering: .sequentiallyConsistent) { return }
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, 100) > 0 else { continue }
            let client = accept(fd, nil, nil)
            guard client >= 0 else { continue }
            handle(client, route)
            close(client)
        }
    }

    private func handle(_ client: Int32, _ route: Route) {
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var data = [UInt8]()
        var buf = [UInt8](repeating: 0, count: 4096)
        var headerEnd: Int?
        var contentLength = 0
        for _ in 0..<1000 {
            let n = recv(client, &buf, buf.count, 0)
            if n <= 0 { break }
            data += buf[0..<n]
            if headerEnd == nil, let r = findHeaderEnd(data) {
                headerEnd = r
                let head = String(decoding: data[0..<r], as: UTF8.self)
                for line in head.split(separator: "\r\n") where line.lowercased().hasPrefix("content-length:") {
                    contentLength = Int(line.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) ?? 0
                }
            }
            if let h = headerEnd, data.count >= h + 4 + contentLength { break }
        }
        let head = String(decoding: data.prefix(headerEnd ?? data.count), as: UTF8.self)
        let requestLine = head.split(separator: "\r\n").first.map(String.init) ?? ""
        let parts = requestLine.split(separator: " ")
        let method = parts.first.map(String.init) ?? ""
        let target = parts.count > 1 ? String(parts[1]) : "/"
        requests.withLock { $0.append("\(method) \(target)") }
        let path = String(target.split(separator: "?", maxSplits: 1).first ?? "")
        let reply = route(method, path)
        let body = Array(reply.body.utf8)
        let extra = reply.headers.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)\r\n" }.joined()
        let response =
            "HTTP/1.1 \(reply.status) Stub\r\nContent-Type: \(reply.contentType)\r\nContent-Length: \(body.count)\r\n\(extra)Connection: close\r\n\r\n"
        let bytes = Array(response.utf8) + body
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBufferPointer {
                send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
            }
            if n <= 0 { break }
            sent += n
        }
    }

    private func findHeaderEnd(_ d: [UInt8]) -> Int? {
        guard d.count >= 4 else { return nil }
        for i in 0...(d.count - 4) where d[i] == 13 && d[i + 1] == 10 && d[i + 2] == 13 && d[i + 3] == 10 { return i }
        return nil
    }
}
