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
}
