import FleetAPI
import FleetClient
import FleetTestSupport
import Foundation
import KSMCore
import Testing
import TestSupport

/// `ksmfleet-agent run` as a subprocess against an in-process server, on a fake sysfs directory
/// (regular files), so it never touches the real kernel.
@Suite("ksmfleet-agent run as a process")
struct AgentProcessTests {
    @Test("registers, applies a server change, takes SIGUSR1, stops on SIGTERM with exit 0 and restores")
    func lifecycle() async throws {
        guard let binary = builtProduct("ksmfleet-agent") else {
            try Test.cancel("ksmfleet-agent is not built next to the tests (swift build --build-tests builds it)")
        }
        let server = try await TestServer.start()
        defer { server.removeDataDir() }
        let root = makeTemporaryDirectory(prefix: "ksmfleet-proc").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        let sysfs = root + "/ksm"
        try FakeSysfsDirectory.create(at: sysfs)
        let enroll = try await server.makeEnrollmentToken()
        let tokenFile = root + "/enroll-token"
        try enroll.write(toFile: tokenFile, atomically: true, encoding: .utf8)
        let conf = root + "/agent.conf"
        try """
            KSMFLEET_SERVER=\(server.baseURL)
            enroll-token-file=\(tokenFile)
            sample-interval=0.3
            tune-interval=1
            restore-on-exit=true
            """.write(toFile: conf, atomically: true, encoding: .utf8)

        let logPath = root + "/agent.log"
        let p = try startLogged(
            binary,
            ["run", "--config-file", conf, "--state-dir", root + "/state", "--sysfs", sysfs, "--node-name", "proc-agent"],
            logPath: logPath)
        defer { if p.isRunning { kill(p.processIdentifier, SIGKILL) } }
        var log: String { readText(logPath) }

        do {
            let admin = try adminClient(server)
            var nodeId: String?
            let registered = await waitUntil(timeout: .seconds(20)) {
                guard let list = try? await admin.listNodes(),
                    let n = list.nodes.first(where: { $0.name == "proc-agent" }), n.appliedGeneration != nil
                else { return false }
                nodeId = n.id
                return true
            }
            #expect(registered, "the agent process did not register: \(log)")
            let id = try #require(nodeId)

            _ = try await admin.patchConfig(id, ConfigPatch(run: .run, thresCoef: 100))
            let running = await waitUntil(timeout: .seconds(5), poll: .milliseconds(50)) { readText(sysfs + "/run") == "1" }
            #expect(running, "the server's change did not reach the fake sysfs: \(log)")

            kill(p.processIdentifier, SIGUSR1)
            let kicked = await waitUntil(timeout: .seconds(5)) { log.contains("source=SIGUSR1") }
            #expect(kicked, "SIGUSR1 was not taken as a kick: \(log)")
            #expect(p.isRunning, "SIGUSR1 must not stop the agent")

            kill(p.processIdentifier, SIGTERM)
            let exited = await waitUntil(timeout: .seconds(15), poll: .milliseconds(50)) { !p.isRunning }
            #expect(exited, "the agent did not stop on SIGTERM")
            if exited { #expect(p.terminationStatus == 0, "exit status \(p.terminationStatus): \(log)") }
            #expect(readText(sysfs + "/run") == "0", "run was not restored on exit")

            // Secrets stay out of the log; the state files are private.
            let nodeFile = root + "/state/node.json"
            let identity = try JSONDecoder().decode([String: String].self, from: Data(contentsOf: URL(fileURLWithPath: nodeFile)))
            let nodeToken = try #require(identity["nodeToken"])
            #expect(!log.contains(nodeToken), "the node token is in the log")
            #expect(!log.contains(enroll), "the enrollment token is in the log")
            let attrs = try FileManager.default.attributesOfItem(atPath: nodeFile)
            #expect((attrs[.posixPermissions] as? Int) == 0o600)
            #expect(log.contains("registered"))
        } catch {
            await server.stop()
            throw error
        }
        await server.stop()
    }

    @Test("invalid settings exit 2; not enrolled exits 3, with the reason on stderr")
    func exitCodes() async throws {
        guard let binary = builtProduct("ksmfleet-agent") else {
            try Test.cancel("ksmfleet-agent is not built next to the tests")
        }
        let root = makeTemporaryDirectory(prefix: "ksmfleet-proc-exit").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FakeSysfsDirectory.create(at: root + "/ksm")
        func run(_ args: [String]) async throws -> (Int32, String) {
            try await offPool { try runToEnd(binary, args) }
        }
        let (bad, badText) = try await run(["run", "--server", "http://127.0.0.1:1", "--sample-interval", "zero"])
        #expect(bad == 2, "\(badText)")
        #expect(badText.contains("sample-interval"))
        let (noServer, noServerText) = try await run(["run", "--state-dir", root + "/s0"])
        #expect(noServer == 2)
        #expect(noServerText.contains("server"))
        let (notEnrolled, text) = try await run([
            "run", "--server", "http://127.0.0.1:1", "--state-dir", root + "/s1", "--sysfs", root + "/ksm", "--once",
        ])
        #expect(notEnrolled == 3, "\(text)")
        #expect(text.contains("enrollment token"))
    }
}

/// `ksmfleet-agent standalone --watch DIR` (fake sysfs): a new entry in the directory is a kick
/// in throttle mode, as for the connected agent and kata's throttler (which watched /run/vc/sbs);
/// standalone had only SIGUSR1, though its shipped example is throttle mode.
@Suite("ksmfleet-agent standalone --watch")
struct StandaloneWatchTests {
    @Test func aNewEntryInAWatchedDirectoryKicks() async throws {
        guard let binary = builtProduct("ksmfleet-agent") else {
            try Test.cancel("ksmfleet-agent is not built next to the tests (swift build --build-tests builds it)")
        }
        let root = makeTemporaryDirectory(prefix: "ksmfleet-sa-watch").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        let sysfs = root + "/ksm"
        try FakeSysfsDirectory.create(at: sysfs)
        let watched = root + "/vms"
        try FileManager.default.createDirectory(atPath: watched, withIntermediateDirectories: true)
        let config = root + "/standalone.json"
        try #"{"run":"run","mode":"throttle","thresCoef":100}"#.write(toFile: config, atomically: true, encoding: .utf8)
        let logPath = root + "/agent.log"
        let p = try startLogged(
            binary, ["standalone", "--config", config, "--interval", "60", "--sysfs", sysfs, "--watch", watched],
            logPath: logPath)
        defer { if p.isRunning { kill(p.processIdentifier, SIGKILL) } }
        var log: String { readText(logPath) }
        let started = await waitUntil(timeout: .seconds(15)) { log.contains("throttle is idle (not kicked yet)") }
        #expect(started, "\(log)")
        try await Task.sleep(for: .milliseconds(300))  // the watch is set up beside the first step
        #expect(FileManager.default.createFile(atPath: watched + "/vm-1", contents: nil))
        let kicked = await waitUntil(timeout: .seconds(10)) { log.contains("source=watch:\(watched)/vm-1") }
        #expect(kicked, "a new entry in the watched directory was no kick: \(log)")
        #expect(readText(sysfs + "/sleep_millisecs") == "1", "not aggressive after the kick: \(log)")
        kill(p.processIdentifier, SIGTERM)
        let exited = await waitUntil(timeout: .seconds(15), poll: .milliseconds(50)) { !p.isRunning }
        #expect(exited && p.terminationStatus == 0, "\(log)")
    }
}
