import FleetServer
import FleetStore
import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import TestSupport

/// The real server, in-process, on 127.0.0.1 and an ephemeral port, with a temporary data
/// directory. Start it, talk to `baseURL` with the real client, `stop()` it. Restarting on the
/// same `dataDir` keeps everything.
public final class TestServer: Sendable {
    /// `http://127.0.0.1:<port>`
    public let baseURL: String
    public let port: Int
    public let adminToken: String
    public let dataDir: URL
    private let group: ServiceGroup
    private let runTask: Task<Void, Never>

    private init(baseURL: String, port: Int, adminToken: String, dataDir: URL, group: ServiceGroup, runTask: Task<Void, Never>) {
        self.baseURL = baseURL
        self.port = port
        self.adminToken = adminToken
        self.dataDir = dataDir
        self.group = group
        self.runTask = runTask
    }

    public struct StartError: Error, CustomStringConvertible {
        public var description: String
    }

    /// Starts a server. `dataDir` nil makes a fresh temporary directory; `adminToken` nil makes a
    /// random one. `offlineAfterSeconds` is the server's online threshold.
    /// `configure` changes the config before start (rate limits, token rotation, trusted proxies,
    /// login throttling); by default the rate limits are off, since every test client comes from 127.0.0.1.
    public static func start(
        dataDir: URL? = nil, port: Int = 0, adminToken: String? = nil, offlineAfterSeconds: Double = 60,
        configure: (inout ServerConfig) -> Void = { _ in }
    ) async throws -> TestServer {
        let dir = dataDir ?? makeTemporaryDirectory(prefix: "ksmfleet-server")
        let token = adminToken ?? Secrets.newToken(.admin)
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        var config = ServerConfig(
            host: "127.0.0.1", port: port, dataDir: dir, offlineAfterSeconds: offlineAfterSeconds, adminToken: token,
            logLevel: testLogLevel(),
            onServerRunning: { port in
                continuation.yield(port)
                continuation.finish()
            })
        if TestStore.isPostgres { config.database = try TestStore.location(for: dir) }
        config.registrationRateLimit = 0
        config.failedAuthRateLimit = 0
        configure(&config)
        let app = try await buildApplication(config)
        var logger = Logger(label: "ksmfleet.test-server")
        logger.logLevel = testLogLevel()
        let group = ServiceGroup(configuration: .init(services: [app], gracefulShutdownSignals: [], logger: logger))
        // The server's tasks run on their own threads: a test elsewhere in the process that
        // blocks the cooperative pool (Process.waitUntilExit, readDataToEndOfFile) must not
        // stop this server from answering.
        let runTask = Task(executorPreference: TestServerExecutor.shared) {
            do {
                try await group.run()
            } catch {
                logger.error("test server stopped with an error", metadata: ["error": "\(error)"])
            }
            continuation.finish()
        }
        var bound: Int?
        for await p in ports {
            bound = p
            break
        }
        guard let bound, bound > 0 else {
            await group.triggerGracefulShutdown()
            _ = await runTask.value
            throw StartError(description: "the test server did not start listening (port \(port), data dir \(dir.path))")
        }
        return TestServer(
            baseURL: "http://127.0.0.1:\(bound)", port: bound, adminToken: token, dataDir: dir, group: group,
            runTask: runTask)
    }

    /// A fresh enrollment token (created directly in the database, as an admin would through the
    /// API). `expiresAt` may be in the past here, to test expiry.
    public func makeEnrollmentToken(expiresAt: Date? = nil) async throws -> String {
        try await Self.makeEnrollmentToken(dataDir: dataDir, expiresAt: expiresAt)
    }

    static func makeEnrollmentToken(dataDir: URL, expiresAt: Date? = nil) async throws -> String {
        let db = try FleetDatabase.open(try TestStore.location(for: dataDir))
        let info = try await db.createEnrollmentToken(description: "test", expiresAt: expiresAt)
        try db.close()
        guard let token = info.token else { throw StartError(description: "no token returned") }
        return token
    }

    /// Starts a server, runs `body` with it, then stops it and removes its data directory, also
    /// when `body` throws.
    public static func with<T>(
        offlineAfterSeconds: Double = 60, _ body: (TestServer) async throws -> T
    ) async throws -> T {
        let server = try await start(offlineAfterSeconds: offlineAfterSeconds)
        do {
            let value = try await body(server)
            await server.stop()
            server.removeDataDir()
            return value
        } catch {
            await server.stop()
            server.removeDataDir()
            throw error
        }
    }

    /// Graceful shutdown; waiting long-polls are answered at once.
    public func stop() async {
        await group.triggerGracefulShutdown()
        _ = await runTask.value
    }

    /// Removes the data directory (after `stop()`).
    public func removeDataDir() {
        try? FileManager.default.removeItem(at: dataDir)
    }
}

/// A new empty directory under the system temp dir, removed with everything in it when the test
/// process exits (`KSMFLEET_KEEP_TEST_DIRS=1` keeps them, to look at after a failure). Before,
/// every `make test` left about 20 of them in /tmp.
public func makeTemporaryDirectory(prefix: String) -> URL {
    _ = removeTemporaryDirectoriesAtExit
    let url = FileManager.default.temporaryDirectory.appending(
        path: "\(prefix)-\(ProcessInfo.processInfo.processIdentifier)-\(UUID().uuidString.prefix(8))", directoryHint: .isDirectory)
    try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    temporaryDirectories.withLock { $0.append(url) }
    return url
}

private let temporaryDirectories = Mutex<[URL]>([])
private let removeTemporaryDirectoriesAtExit: Void = {
    atexit {
        guard ProcessInfo.processInfo.environment["KSMFLEET_KEEP_TEST_DIRS"] == nil else { return }
        for url in temporaryDirectories.withLock({ $0 }) { try? FileManager.default.removeItem(at: url) }
    }
}()

/// Server logs in tests: warnings and up unless `KSMFLEET_TEST_LOG=debug|info|…`.
func testLogLevel() -> Logger.Level {
    ProcessInfo.processInfo.environment["KSMFLEET_TEST_LOG"].flatMap(Logger.Level.init(rawValue:)) ?? .warning
}

/// Runs the in-process servers' jobs on threads of its own (plain pthreads, not dispatch).
///
/// On Linux, Swift's cooperative pool is a dispatch queue of width "one per CPU" that targets
/// libdispatch's default-QoS global root queue, and so does every concurrent `DispatchQueue`
/// (concurrent queues are NOT overcommitting; only serial queues are) and
/// `DispatchQueue.global()`. That root queue has a small thread pool (the CPU count, grown by a
/// once-a-second monitor to about twice that). A dispatch-backed executor therefore shares its
/// threads with every blocked test: when a few tests wait on subprocesses there, the servers'
/// jobs never run, and a subprocess waiting for a server waits out its whole timeout.
/// Threads owned here cannot be taken by anything else.
final class TestServerExecutor: TaskExecutor, @unchecked Sendable {
    static let shared = TestServerExecutor(threads: 4)

    // Guarded by `condition`.
    private let condition = NSCondition()
    private var jobs: [UnownedJob] = []
    private var head = 0

    private init(threads: Int) {
        for i in 0..<threads {
            let thread = Thread { [self] in self.work() }
            thread.name = "test-server-\(i)"
            thread.stackSize = 8 << 20
            thread.start()
        }
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        condition.lock()
        jobs.append(job)
        condition.signal()
        condition.unlock()
    }

    private func work() {
        while true {
            condition.lock()
            while head == jobs.count { condition.wait() }
            let job = jobs[head]
            head += 1
            if head == jobs.count {
                jobs.removeAll(keepingCapacity: true)
                head = 0
            }
            condition.unlock()
            job.runSynchronously(on: asUnownedTaskExecutor())
        }
    }
}
