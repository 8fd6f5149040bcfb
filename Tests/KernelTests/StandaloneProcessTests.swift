import Foundation
import KSMCore
import KSMNode
import TestSupport
import Testing

/// `ksmfleet-agent standalone` as a subprocess on the real kernel.
@Suite("Real kernel: standalone agent process", .serialized)
struct StandaloneProcessTests {
    struct Agent {
        let process: Process
        let logPath: String
        var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

        func waitForExit(timeout: Duration) async -> Bool {
            await waitUntil(timeout: timeout, poll: .milliseconds(50)) { !process.isRunning }
        }

        func kill() {
            if process.isRunning { Glibc.kill(process.processIdentifier, SIGKILL) }
        }
    }

    static func agentPath() throws -> String {
        guard let path = builtProduct("ksmfleet-agent") else {
            Issue.record(
                "ksmfleet-agent is not built next to the test binary (\(productsDirectory() ?? "?")); run `swift build --build-tests` first"
            )
            throw CancellationError()
        }
        return path
    }

    static func tempDir() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ksmfleet-sa-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    static func start(_ arguments: [String], in dir: URL) throws -> Agent {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try agentPath())
        p.arguments = arguments
        let logPath = dir.appendingPathComponent("agent.log").path
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        p.standardError = FileHandle(forWritingAtPath: logPath)
        p.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        try p.run()
        return Agent(process: p, logPath: logPath)
    }

    @Test func mergesThenStopsCleanlyAndRestores() async throws {
        try await withRealKSM { snapshot in
            let dir = try Self.tempDir()
            defer { try? FileManager.default.removeItem(at: dir) }
            let config = dir.appendingPathComponent("ksm.json").path
            // Merge the test buffer fast.
            try """
            {"run": "run", "mode": "customized", "thresCoef": 100,
             "parameters": {"boost": 0, "decay": 0, "minPages": 5000, "maxPages": 5000, "sleepMsec": 10}}
            """.write(toFile: config, atomically: true, encoding: .utf8)

            let baseline = try realStatus().pagesSharing
            let buffer = try MergeableBuffer(pages: 4096)
            let agent = try Self.start(
                ["standalone", "--config", config, "--interval", "1", "--restore-on-exit"], in: dir)
            defer { agent.kill() }

            let merged = await waitForMerge(above: baseline, pages: 2048)
            #expect(merged, "pages did not merge under the standalone agent; log:\n\(agent.log)")
            #expect(try realStatus().run == 1)

            // SIGUSR1 retunes at once.
            Glibc.kill(agent.process.processIdentifier, SIGUSR1)
            let kicked = await waitUntil(timeout: .seconds(5)) { agent.log.contains("source=SIGUSR1") }
            #expect(kicked, "no kick logged after SIGUSR1; log:\n\(agent.log)")

            // A status line with the counters was logged.
            let statusLogged = await waitUntil(timeout: .seconds(5)) { agent.log.contains("pages_sharing=") }
            #expect(statusLogged)
            #expect(agent.log.contains("saved_mib="))
            #expect(agent.log.contains("ksmd_cpu_pct="))
            #expect(agent.log.contains("phase=Running"))

            agent.process.terminate()  // SIGTERM
            let exited = await agent.waitForExit(timeout: .seconds(30))
            #expect(exited, "the agent did not exit after SIGTERM; log:\n\(agent.log)")
            if exited {
                #expect(agent.process.terminationReason == .exit)
                #expect(agent.process.terminationStatus == 0, "log:\n\(agent.log)")
            }
            #expect(try snapshot.matchesKernel(), "settings not restored: \(statusText()) vs \(snapshot.settings)")
            #expect(agent.log.contains("restored"))
            _ = buffer.checksum()
        }
    }

    @Test(arguments: [
        ("bad.json", #"{"run": "run", "mode": "standard", "thresCoef": 150}"#, "thresCoef"),
        ("bad.json", #"{"run": "run", "mode": "standard", "thresCoef": 20, "speed": 9}"#, "speed"),
        (
            "bad2.json",
            #"{"run": "run", "mode": "customized", "thresCoef": 20, "parameters": {"boost": 0, "decay": 0, "minPages": 900, "maxPages": 100, "sleepMsec": 10}}"#,
            "parameters.minPages"
        ),
        ("old.yaml", "run: run\nmode: standard\nthresCoef: 20\n", "YAML"),
    ])
    func invalidConfigIsRefusedBeforeAnythingIsWritten(file: String, content: String, field: String) async throws {
        try await withRealKSM { snapshot in
            let dir = try Self.tempDir()
            defer { try? FileManager.default.removeItem(at: dir) }
            let config = dir.appendingPathComponent(file).path
            try content.write(toFile: config, atomically: true, encoding: .utf8)
            let agent = try Self.start(["standalone", "--config", config, "--interval", "1"], in: dir)
            defer { agent.kill() }
            let exited = await agent.waitForExit(timeout: .seconds(15))
            #expect(exited)
            #expect(agent.process.terminationStatus != 0)
            #expect(agent.log.contains(field), "stderr must name \(field): \(agent.log)")
            #expect(agent.log.contains("invalid config file"))
            #expect(try snapshot.matchesKernel(), "an invalid config must write nothing")
        }
    }
}
