import FleetAPI
import FleetClient
import FleetTestSupport
import Foundation
import KSMCore
import TestSupport
import Testing

/// The server's own TLS end to end: a throwaway CA and server certificate (openssl), the BUILT
/// server started with `--tls-cert/--tls-key` on 127.0.0.1, and the agent's HTTP client pinning
/// the CA with its CA file. Then a new certificate from another CA, SIGHUP, and the new one is
/// served without a restart. Skipped where openssl is missing.
@Suite("ksmfleet-server with its own TLS")
struct ServerTLSTests {
    /// Runs openssl with `arguments` in `dir`; throws with its output when it fails.
    static func openssl(_ arguments: [String], in dir: URL) async throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        p.arguments = arguments
        p.currentDirectoryURL = dir
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        try p.run()
        let text = try await offPool { () -> Data in
            let data = out.fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            return data
        }
        try #require(
            p.terminationStatus == 0,
            "openssl \(arguments.joined(separator: " ")): \(String(decoding: text, as: UTF8.self))")
    }

    /// A CA (`<name>-ca.pem`) and a server certificate for 127.0.0.1 signed by it
    /// (`<name>-cert.pem`, `<name>-key.pem`).
    static func makeCA(_ name: String, in dir: URL) async throws {
        try await openssl(
            [
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "\(name)-ca-key.pem", "-out",
                "\(name)-ca.pem",
                "-days", "2", "-subj", "/CN=ksmfleet test CA \(name)",
                "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            ], in: dir)
        try await openssl(
            [
                "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "\(name)-key.pem", "-out", "\(name).csr",
                "-subj", "/CN=127.0.0.1",
            ], in: dir)
        try "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n".write(
            to: dir.appending(path: "\(name).ext"), atomically: true, encoding: .utf8)
        try await openssl(
            [
                "x509", "-req", "-in", "\(name).csr", "-CA", "\(name)-ca.pem", "-CAkey", "\(name)-ca-key.pem",
                "-CAcreateserial", "-out", "\(name)-cert.pem", "-days", "2", "-extfile", "\(name).ext",
            ], in: dir)
    }

    static func client(_ url: String, caFile: String?) throws -> FleetClient {
        try FleetClient(ClientOptions(serverURL: url, caFile: caFile, connectTimeout: 5, requestTimeout: 10))
    }

    @Test("HTTPS with a pinned CA; the wrong CA fails clearly; SIGHUP serves a new certificate")
    func endToEnd() async throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/openssl") else {
            try Test.cancel("/usr/bin/openssl is not installed")
        }
        let dir = makeTemporaryDirectory(prefix: "ksmfleet-server-tls")
        defer { try? FileManager.default.removeItem(at: dir) }
        try await Self.makeCA("one", in: dir)
        try await Self.makeCA("two", in: dir)
        let cert = dir.appending(path: "server-cert.pem"), key = dir.appending(path: "server-key.pem")
        try FileManager.default.copyItem(at: dir.appending(path: "one-cert.pem"), to: cert)
        try FileManager.default.copyItem(at: dir.appending(path: "one-key.pem"), to: key)

        let server = try await ServerProcess.start(
            dataDir: dir.appending(path: "data"), extraArguments: ["--tls-cert", cert.path, "--tls-key", key.path])
        defer { Task { await server.stop() } }
        #expect(server.baseURL.hasPrefix("https://127.0.0.1:"))

        // Pinned to the right CA: the API answers, with HSTS.
        let pinned = try Self.client(server.baseURL, caFile: dir.appending(path: "one-ca.pem").path)
        let health = try await pinned.send(method: "GET", path: "/healthz")
        #expect(health.status == 200)
        #expect(health.headers["strict-transport-security"] != nil)
        let admin = try FleetClient(
            ClientOptions(
                serverURL: server.baseURL, token: server.adminToken, caFile: dir.appending(path: "one-ca.pem").path,
                connectTimeout: 5))
        #expect(try await admin.listNodes().nodes.isEmpty)
        // The dashboard's session cookie is Secure over the server's own TLS.
        let login = try await pinned.send(method: "GET", path: "/login")
        #expect(login.headers["set-cookie"]?.contains("Secure") == true)

        // The wrong CA: a TLS failure that says it is about the certificate.
        let wrong = try Self.client(server.baseURL, caFile: dir.appending(path: "two-ca.pem").path)
        do {
            _ = try await wrong.send(method: "GET", path: "/healthz")
            Issue.record("a certificate from another CA was trusted")
        } catch {
            #expect(error.isUnreachable)
            #expect(error.description.contains("certificate"), "\(error)")
        }
        // The real agent binary, pinning the CA with --ca-file: registers and reports once.
        try await Self.agentOnce(server: server, caFile: dir.appending(path: "one-ca.pem").path, in: dir, admin: admin)

        // Plain HTTP to the TLS port gets nothing useful.
        let plain = try Self.client("http://127.0.0.1:\(server.port)", caFile: nil)
        let plainReply = try? await plain.send(method: "GET", path: "/healthz")
        #expect(plainReply?.status != 200)

        // A long-poll open across the reload (its connection shook hands with the old
        // certificate) is not dropped: it returns the config changed after the reload.
        let anon = try Self.client(server.baseURL, caFile: dir.appending(path: "one-ca.pem").path)
        let reg = try await anon.register(
            Fixtures.registerRequest(hostname: "long-poller"), enrollmentToken: try await server.makeEnrollmentToken())
        let poller = try FleetClient(
            ClientOptions(
                serverURL: server.baseURL, token: reg.nodeToken, caFile: dir.appending(path: "one-ca.pem").path,
                connectTimeout: 5, requestTimeout: 30))
        let generation = try #require(try await poller.config(nodeId: reg.nodeId, ifNoneMatch: nil, waitSeconds: nil))
            .generation
        let longPoll = Task { try await poller.config(nodeId: reg.nodeId, ifNoneMatch: generation, waitSeconds: 20) }
        try await Task.sleep(for: .milliseconds(300))

        // New files from CA two, then SIGHUP: new connections get the new certificate.
        try FileManager.default.removeItem(at: cert)
        try FileManager.default.removeItem(at: key)
        try FileManager.default.copyItem(at: dir.appending(path: "two-cert.pem"), to: cert)
        try FileManager.default.copyItem(at: dir.appending(path: "two-key.pem"), to: key)
        // The SIGHUP handler is in place once the server says so.
        try #require(await waitUntil(timeout: .seconds(10)) { server.output().contains("SIGHUP reloads it") })
        server.send(signal: SIGHUP)
        try #require(
            await waitUntil(timeout: .seconds(10)) { server.output().contains("TLS certificate reloaded") },
            "\(server.output())")
        let fresh = try Self.client(server.baseURL, caFile: dir.appending(path: "two-ca.pem").path)
        #expect(try await fresh.send(method: "GET", path: "/healthz").status == 200)
        let stale = try Self.client(server.baseURL, caFile: dir.appending(path: "one-ca.pem").path)
        await #expect(throws: ClientError.self) { _ = try await stale.send(method: "GET", path: "/healthz") }
        #expect(server.isRunning)
        let adminTwo = try FleetClient(
            ClientOptions(
                serverURL: server.baseURL, token: server.adminToken, caFile: dir.appending(path: "two-ca.pem").path,
                connectTimeout: 5))
        let changed = try await adminTwo.patchConfig(reg.nodeId, ConfigPatch(mode: .high))
        let woken = try await longPoll.value
        #expect(woken?.generation == changed.generation, "the long-poll across the reload was dropped")

        // A broken key on reload is refused and the served certificate stays.
        try "not a key".write(to: key, atomically: true, encoding: .utf8)
        server.send(signal: SIGHUP)
        try #require(
            await waitUntil(timeout: .seconds(10)) { server.output().contains("TLS reload refused") },
            "\(server.output())")
        #expect(try await fresh.send(method: "GET", path: "/healthz").status == 200)
    }

    /// `ksmfleet-agent run --once` over HTTPS with `--ca-file` (a fake KSM sysfs): the node is
    /// registered and its sample arrives. With the wrong CA it fails and says the certificate is
    /// the problem.
    static func agentOnce(server: ServerProcess, caFile: String, in dir: URL, admin: FleetClient) async throws {
        guard let binary = builtProduct("ksmfleet-agent") else {
            Issue.record("ksmfleet-agent is not built next to the tests")
            return
        }
        let sysfs = dir.appending(path: "ksm").path
        try FakeSysfsDirectory.create(at: sysfs)
        let token = try await server.makeEnrollmentToken()
        let common = ["--server", server.baseURL, "--enroll-token", token, "--sysfs", sysfs, "--once"]
        let wrongCA = dir.appending(path: "two-ca.pem").path
        let (refused, refusedText) = try await offPool {
            try runToEnd(
                binary, ["run", "--ca-file", wrongCA, "--state-dir", dir.appending(path: "agent-wrong").path] + common)
        }
        #expect(refused != 0, "\(refusedText)")
        #expect(refusedText.contains("certificate"), "\(refusedText)")
        let (status, text) = try await offPool {
            try runToEnd(
                binary,
                ["run", "--ca-file", caFile, "--state-dir", dir.appending(path: "agent").path, "--node-name", "tls-agent"]
                    + common)
        }
        #expect(status == 0, "\(text)")
        let nodes = try await admin.listNodes().nodes
        #expect(nodes.contains { $0.name == "tls-agent" && $0.lastSample != nil }, "\(nodes.map(\.name))")
    }

    /// A server given a key that does not belong to its certificate refuses to start, saying so.
    @Test func aMismatchedKeyStopsTheStart() async throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/openssl") else {
            try Test.cancel("/usr/bin/openssl is not installed")
        }
        let dir = makeTemporaryDirectory(prefix: "ksmfleet-server-tls-bad")
        defer { try? FileManager.default.removeItem(at: dir) }
        try await Self.makeCA("one", in: dir)
        try await Self.makeCA("two", in: dir)
        do {
            let server = try await ServerProcess.start(
                dataDir: dir.appending(path: "data"),
                extraArguments: [
                    "--tls-cert", dir.appending(path: "one-cert.pem").path, "--tls-key",
                    dir.appending(path: "two-key.pem").path,
                ], timeout: .seconds(15))
            await server.stop()
            Issue.record("the server started with a key that does not fit its certificate")
        } catch let error as ServerProcess.StartError {
            #expect(error.description.contains("does not fit"), "\(error)")
        }
    }
}
