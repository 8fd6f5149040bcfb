import Foundation
import Testing
import TestSupport

/// The agent must stay lean: no full Foundation, no server stack (Hummingbird/NIO), no GRDB.
@Suite("ksmfleet-agent binary")
struct AgentBinaryTests {
    func run(_ tool: String, _ args: [String]) async throws -> String {
        try await offPool { try Self.runBlocking(tool, args) }
    }

    static func runBlocking(_ tool: String, _ args: [String]) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: tool)
        p.arguments = args
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return String(decoding: data, as: UTF8.self)
    }

    @Test("links neither full Foundation nor Hummingbird, NIO, NIOSSL or GRDB")
    func lean() async throws {
        guard let agent = builtProduct("ksmfleet-agent") else {
            try Test.cancel("ksmfleet-agent is not built next to the tests (swift build --build-tests builds it)")
        }
        for tool in ["/usr/bin/ldd", "/usr/bin/nm"] where !FileManager.default.isExecutableFile(atPath: tool) {
            try Test.cancel("\(tool) is not installed")
        }
        let libs = try await run("/usr/bin/ldd", [agent])
        #expect(libs.contains("libcurl"), "ldd output: \(libs)")
        for forbidden in ["libFoundation.so", "libFoundationInternationalization", "libFoundationNetworking", "lib_FoundationICU", "libsqlite3"] {
            #expect(!libs.contains(forbidden), "ksmfleet-agent links \(forbidden)")
        }
        let symbols = try await run("/usr/bin/nm", ["--defined-only", agent])
        // The check itself works: the agent's own module is found the same way.
        #expect(symbols.contains("$s10FleetAgent"), "no symbols read from \(agent)")
        for module in ["11Hummingbird", "4GRDB", "6NIOCore", "7NIOSSL", "10FleetStore", "11FleetServer"] {
            #expect(!symbols.contains("$s\(module)"), "ksmfleet-agent contains symbols of \(module)")
        }
    }

    /// agent/ksmfleet-agent.service keeps the agent stopped on exit status 2 (invalid settings):
    /// a flag or value ArgumentParser refuses must exit 2 too, not its 64, else systemd restarts
    /// the agent every 5 s for a typo in ExecStart=.
    @Test(
        "a refused flag or value exits 2 with ArgumentParser's message; help and version exit 0",
        arguments: [
            (["run", "--bogus"], "Unknown option '--bogus'"),
            (["run", "--log-level", "loud", "--server", "http://127.0.0.1:1"], "log-level must be one of"),
            (["run", "--sample-interval", "0", "--server", "http://127.0.0.1:1"], "sample-interval must be"),
            (["standalone", "--config", "/nonexistent", "--interval", "0"], "--interval must be greater than 0"),
            (["standalone"], "Missing expected argument '--config <config>'"),
        ])
    func refusedSettingsExitTwo(args: [String], message: String) async throws {
        guard let agent = builtProduct("ksmfleet-agent") else {
            try Test.cancel("ksmfleet-agent is not built next to the tests (swift build --build-tests builds it)")
        }
        let (status, _, stderr) = try await offPool { try Self.exitStatus(agent, args) }
        #expect(status == 2, "exit \(status) for \(args): \(stderr)")
        #expect(stderr.contains(message), "\(stderr)")
        for ok in [["--help"], ["--version"], ["run", "--help"]] {
            let (status, out, _) = try await offPool { try Self.exitStatus(agent, ok) }
            #expect(status == 0 && !out.isEmpty, "\(ok): exit \(status)")
        }
    }

    static func exitStatus(_ tool: String, _ args: [String]) throws -> (Int32, String, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: tool)
        p.arguments = args
        let out = Pipe()
        let err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let errData = err.fileHandleForReading.readDataToEndOfFile()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: outData, as: UTF8.self), String(decoding: errData, as: UTF8.self))
    }
}
