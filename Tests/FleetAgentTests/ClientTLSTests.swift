import FleetClient
import FleetTestSupport
import Foundation
import Testing
import TestSupport

/// HTTPS with a private CA (CURLOPT_CAINFO): a throwaway self-signed certificate (openssl) and a
/// tiny TLS server (python3) on 127.0.0.1. Skipped where either tool is missing.
@Suite("FleetClient over HTTPS")
struct ClientTLSTests {
    @Test("a private CA file makes the server trusted; without it the TLS failure is .unreachable")
    func privateCA() async throws {
        for tool in ["/usr/bin/openssl", "/usr/bin/python3"] where !FileManager.default.isExecutableFile(atPath: tool) {
            try Test.cancel("\(tool) is not installed")
        }
        let dir = makeTemporaryDirectory(prefix: "ksmfleet-tls").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let gen = Process()
        gen.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        gen.arguments = [
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", dir + "/key.pem", "-out", dir + "/cert.pem",
            "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
        ]
        gen.standardOutput = FileHandle.nullDevice
        gen.standardError = FileHandle.nullDevice
        try gen.run()
        _ = try await offPool { gen.waitUntilExit() }
        try #require(gen.terminationStatus == 0, "openssl could not make a certificate")

        let script = """
            import http.server, ssl, sys
            class H(http.server.BaseHTTPRequestHandler):
                protocol_version = "HTTP/1.1"
                def do_GET(self):
                    b = b'{"ok":true}'
                    self.send_response(200); self.send_header('Content-Length', str(len(b))); self.end_headers(); self.wfile.write(b)
                def log_message(self, *a): pass
            s = http.server.HTTPServer(('127.0.0.1', 0), H)
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); ctx.load_cert_chain(sys.argv[1], sys.argv[2])
            s.socket = ctx.wrap_socket(s.socket, server_side=True)
            print(s.server_address[1], flush=True)
            s.serve_forever()
            """
        let server = Process()
        server.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        server.arguments = ["-c", script, dir + "/cert.pem", dir + "/key.pem"]
        let out = Pipe()
        server.standardOutput = out
        server.standardError = FileHandle.nullDevice
        try server.run()
        do {
            try await Self.useServer(stdout: out, dir: dir)
        } catch {
            await Self.stop(server)
            throw error
        }
        await Self.stop(server)
    }

    /// SIGKILL, not terminate(): a child inherits ignored signals, and other suites in this
    /// process ignore SIGTERM (the agent's signal handling), so SIGTERM left it running. Reaped
    /// off the cooperative pool.
    static func stop(_ server: Process) async {
        kill(server.processIdentifier, SIGKILL)
        _ = try? await offPool { server.waitUntilExit() }
    }

    static func useServer(stdout out: Pipe, dir: String) async throws {
        // Reading the port blocks until python prints it: off the cooperative pool.
        let portLine = try await offPool { () -> Data in
            var line = Data()
            while !line.contains(UInt8(ascii: "\n")) {
                let chunk = out.fileHandleForReading.availableData
                if chunk.isEmpty { break }
                line.append(chunk)
            }
            return line
        }
        let port = try #require(Int(String(decoding: portLine, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)))
        let url = "https://127.0.0.1:\(port)"

        let untrusted = try FleetClient(ClientOptions(serverURL: url, connectTimeout: 5))
        do {
            _ = try await untrusted.send(method: "GET", path: "/x")
            Issue.record("a self-signed certificate was trusted without the CA file")
        } catch {
            #expect(error.isUnreachable)
            #expect(error.description.contains("certificate"), "\(error)")
        }
        let trusted = try FleetClient(ClientOptions(serverURL: url, caFile: dir + "/cert.pem", connectTimeout: 5))
        let r = try await trusted.send(method: "GET", path: "/x")
        #expect(r.status == 200)
        #expect(r.text == "{\"ok\":true}")
    }
}
