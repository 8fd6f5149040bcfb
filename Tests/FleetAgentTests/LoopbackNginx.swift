import Foundation
import TestSupport

/// Debian's nginx (`/usr/sbin/nginx`) as a plain reverse proxy on 127.0.0.1 and a free port, in
/// front of one or several upstream ports (replicas of one server): no daemon, every file
/// (config, logs, temp dirs, pid) in `directory`. The access log records each reply's status
/// and the upstream(s) that served it.
struct LoopbackNginx {
    let process: Process
    let directory: String
    let port: Int
    var baseURL: String { "http://127.0.0.1:\(port)" }

    struct StartError: Error, CustomStringConvertible {
        var description: String
    }

    static func start(directory: String, upstream: Int) async throws -> LoopbackNginx {
        try await start(directory: directory, upstreams: [upstream])
    }

    /// In front of several replicas, as a deployment would put them: requests are spread over
    /// the upstreams; one that refuses or drops a connection is taken out for 10 s
    /// (`max_fails=1 fail_timeout=10s`) and the request goes to the next one, POSTs included
    /// (`non_idempotent`: a sample push is idempotent by sequence number, a config change by
    /// its generation check). With one upstream nginx answers 502 when it is down.
    /// `proxy_read_timeout` is above the longest long-poll wait (60 s).
    static func start(directory: String, upstreams: [Int]) async throws -> LoopbackNginx {
        precondition(!upstreams.isEmpty, "nginx needs an upstream")
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let port = try freeLoopbackPort()
        let servers = upstreams.map { "        server 127.0.0.1:\($0) max_fails=1 fail_timeout=10s;" }
            .joined(separator: "\n")
        let conf = """
            daemon off;
            master_process off;
            worker_processes 1;
            pid \(directory)/nginx.pid;
            error_log \(directory)/error.log warn;
            events { worker_connections 256; }
            http {
                log_format upstreams '$remote_addr [$time_local] "$request" $status $body_bytes_sent '
                                     'upstream=$upstream_addr upstream_status=$upstream_status';
                access_log \(directory)/access.log upstreams;
                client_body_temp_path \(directory)/body;
                proxy_temp_path \(directory)/proxy;
                fastcgi_temp_path \(directory)/fastcgi;
                uwsgi_temp_path \(directory)/uwsgi;
                scgi_temp_path \(directory)/scgi;
                upstream replicas {
            \(servers)
                    keepalive 16;
                }
                server {
                    listen 127.0.0.1:\(port);
                    location / {
                        proxy_pass http://replicas;
                        proxy_http_version 1.1;
                        proxy_set_header Connection "";
                        proxy_connect_timeout 2s;
                        proxy_read_timeout 120s;
                        proxy_next_upstream error timeout http_502 non_idempotent;
                    }
                }
            }
            """
        try conf.write(toFile: directory + "/nginx.conf", atomically: true, encoding: .utf8)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/sbin/nginx")
        p.arguments = ["-c", directory + "/nginx.conf", "-p", directory, "-e", directory + "/error.log"]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        let nginx = LoopbackNginx(process: p, directory: directory, port: port)
        let listening = await waitUntil(timeout: .seconds(10), poll: .milliseconds(50)) {
            guard p.isRunning else { return false }
            return canConnect(port: port)
        }
        guard listening else {
            await nginx.stop()
            throw StartError(description: "nginx did not start on port \(port): \(nginx.errorLog())")
        }
        return nginx
    }

    /// SIGKILL: started from the test process, nginx inherits its blocked signals (SIGTERM
    /// included: it never stops on it, and with `master_process off` it does not unblock them),
    /// and a proxy in a test has nothing to save. Never blocks a thread waiting.
    func stop() async {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        _ = await waitUntil(timeout: .seconds(5), poll: .milliseconds(20)) { !process.isRunning }
    }

    func accessLog() -> String { readText(directory + "/access.log") }
    func errorLog() -> String { readText(directory + "/error.log") }
}

/// A TCP port on 127.0.0.1 that nothing listens on now (the kernel picks it; a small race with
/// other processes remains until the caller binds it).
func freeLoopbackPort() throws -> Int {
    let (fd, port) = try LoopbackSocket.bound()
    close(fd)
    return port
}

/// Whether something accepts TCP connections on 127.0.0.1:`port`.
func canConnect(port: Int) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = in_port_t(UInt16(port).bigEndian)
    return withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
        }
    }
}
