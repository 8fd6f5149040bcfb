import FleetStore
import Foundation
import Synchronization
import TestSupport

/// The BUILT `ksmfleet-server` binary as a subprocess on 127.0.0.1 and a free port, for tests
/// that kill -9 or restart the server. Its output goes to `logFile`.
public final class ServerProcess: Sendable {
    public let baseURL: String
    public let port: Int
    public let adminToken: String
    public let dataDir: URL
    public let logFile: URL
    public let pid: Int32
    /// The flags given on top of the usual ones (kept for `restart()`).
    public let extraArguments: [String]
    private let process: Mutex<Process>

    private init(
        baseURL: String, port: Int, adminToken: String, dataDir: URL, logFile: URL, extraArguments: [String],
        process: Process
    ) {
        self.extraArguments = extraArguments
        self.baseURL = baseURL
        self.port = port
        self.adminToken = adminToken
        self.dataDir = dataDir
        self.logFile = logFile
        self.pid = process.processIdentifier
        self.process = Mutex(process)
    }

    public struct StartError: Error, CustomStringConvertible {
        public var description: String
    }

    /// The path of the built `ksmfleet-server`, next to the test binary.
    public static func binaryPath() -> String? { builtProduct("ksmfleet-server") }

    /// Starts the binary and waits (up to `timeout`) until it listens. Without `adminToken` the
    /// server keeps (or generates) its own, read back from `<dataDir>/admin-token`.
    public static func start(
        dataDir: URL? = nil, adminToken: String? = nil, extraArguments: [String] = [], timeout: Duration = .seconds(30)
    ) async throws -> ServerProcess {
        guard let binary = binaryPath() else {
            throw StartError(
                description: "ksmfleet-server is not built next to the tests; run `swift build --build-tests` first")
        }
        let dir = dataDir ?? makeTemporaryDirectory(prefix: "ksmfleet-server-proc")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let portFile = dir.appending(path: "port")
        try? FileManager.default.removeItem(at: portFile)
        let logFile = dir.appending(path: "server-\(UUID().uuidString.prefix(6)).log")
        _ = FileManager.default.createFile(atPath: logFile.path, contents: nil)
        let log = try FileHandle(forWritingTo: logFile)

        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments =
            ["--host", "127.0.0.1", "--port", "0", "--data-dir", dir.path, "--port-file", portFile.path, "--log-level", "info",
             "--registration-rate-limit", "0", "--failed-auth-rate-limit", "0"]
            + (TestStore.isPostgres ? ["--database", try TestStore.location(for: dir)] : [])
            + extraArguments
        var env = ProcessInfo.processInfo.environment
        // No token given: the server uses its stored one or generates one into <dataDir>/admin-token.
        env["KSMFLEET_ADMIN_TOKEN"] = adminToken
        p.environment = env
        p.standardOutput = log
        p.standardError = log
        p.standardInput = FileHandle.nullDevice
        try p.run()
        try? log.close()

        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while clock.now < deadline {
            if let text = try? String(contentsOf: portFile, encoding: .utf8),
                let port = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)), port > 0
            {
                let stored = try? String(contentsOf: dir.appending(path: "admin-token"), encoding: .utf8)
                let token = adminToken ?? stored?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
                // With --tls-cert the server speaks HTTPS.
                let scheme = extraArguments.contains("--tls-cert") ? "https" : "http"
                return ServerProcess(
                    baseURL: "\(scheme)://127.0.0.1:\(port)", port: port, adminToken: token, dataDir: dir,
                    logFile: logFile, extraArguments: extraArguments, process: p)
            }
            if !p.isRunning { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        if p.isRunning { kill(p.processIdentifier, SIGKILL) }
        _ = try? await offPool { p.waitUntilExit() }
        let output = (try? String(contentsOf: logFile, encoding: .utf8)) ?? ""
        throw StartError(description: "ksmfleet-server did not start within \(timeout):\n\(output)")
    }

    /// A fresh enrollment token, written straight into the server's database (WAL allows it).
    public func makeEnrollmentToken(expiresAt: Date? = nil) async throws -> String {
        try await TestServer.makeEnrollmentToken(dataDir: dataDir, expiresAt: expiresAt)
    }

    public var isRunning: Bool { process.withLock { $0.isRunning } }

    /// `kill -9`: no shutdown code runs. Returns once the process is gone.
    public func kill9() async {
        await signalAndWait(SIGKILL, grace: .seconds(10))
    }

    /// SIGTERM (graceful shutdown), then SIGKILL after `grace`.
    public func stop(grace: Duration = .seconds(10)) async {
        await signalAndWait(SIGTERM, grace: grace)
        if isRunning { await signalAndWait(SIGKILL, grace: .seconds(10)) }
    }

    /// The exit status, once it has exited.
    public var terminationStatus: Int32? {
        process.withLock { $0.isRunning ? nil : $0.terminationStatus }
    }

    private func signalAndWait(_ signal: Int32, grace: Duration) async {
        guard isRunning else { return }
        kill(pid, signal)
        let clock = ContinuousClock()
        let deadline = clock.now + grace
        while isRunning && clock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
    }

    /// A new process on the same data directory and admin token (a restart).
    public func restart() async throws -> ServerProcess {
        await stop()
        return try await ServerProcess.start(dataDir: dataDir, adminToken: adminToken, extraArguments: extraArguments)
    }

    /// Sends `signal` (e.g. SIGHUP) and returns at once.
    public func send(signal: Int32) {
        kill(pid, signal)
    }

    /// What the server printed so far.
    public func output() -> String {
        (try? String(contentsOf: logFile, encoding: .utf8)) ?? ""
    }
}
