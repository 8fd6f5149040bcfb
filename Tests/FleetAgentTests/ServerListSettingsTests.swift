import FleetAgent
import FleetClient
import Foundation
import Testing
import TestSupport
import FleetTestSupport

/// `--server`, `KSMFLEET_SERVER` and `server=`: one list of replicas, one rule for all three.
@Suite("agent settings: several servers")
struct ServerListSettingsTests {
    @Test("repeated and comma-separated, from flags, environment or file; the first source that names any wins")
    func sources() throws {
        let flags = try AgentOptions.resolve(
            flags: ["server": ["http://a:1, http://b:2", "https://c:3/prefix/"]], environment: [:], configFile: nil)
        #expect(flags.serverURLs == ["http://a:1", "http://b:2", "https://c:3/prefix/"])
        #expect(flags.serverURL == "http://a:1")

        let env = try AgentOptions.resolve(
            flags: [:], environment: ["KSMFLEET_SERVER": "http://e:1,http://e:2,"], configFile: nil)
        #expect(env.serverURLs == ["http://e:1", "http://e:2"])

        let conf = FileManager.default.temporaryDirectory.appending(path: "servers-\(UUID().uuidString).conf").path
        defer { try? FileManager.default.removeItem(atPath: conf) }
        try "server=http://f:1\nKSMFLEET_SERVER=http://f:2,http://f:3\n".write(
            toFile: conf, atomically: true, encoding: .utf8)
        let file = try AgentOptions.resolve(flags: [:], environment: [:], configFile: conf)
        #expect(file.serverURLs == ["http://f:1", "http://f:2", "http://f:3"])
        // Flags name servers: the file's list is not merged in.
        let both = try AgentOptions.resolve(flags: ["server": ["http://g:1"]], environment: [:], configFile: conf)
        #expect(both.serverURLs == ["http://g:1"])
    }

    @Test(
        "every entry must be an http(s) URL, none twice, at least one",
        arguments: [
            (["http://a:1,ftp://b"], "ftp://b"),
            (["http://a:1", "b:2"], "must start with http:// or https://"),
            (["http://a:1,http:///x"], "has no host"),
            (["http://a:1,http://a:1/"], "listed twice"),
            (["http://a:1?x=1"], "query"),
            ([" , "], "no server URL"),
        ])
    func refused(values: [String], message: String) {
        do {
            let o = try AgentOptions.resolve(flags: ["server": values], environment: [:], configFile: nil)
            Issue.record("accepted \(values) as \(o.serverURLs)")
        } catch {
            #expect(error.message.contains(message), "\(error.message)")
        }
    }

    /// Configuration management rewriting `https://fleet:8443/` as `https://fleet:8443` (or the
    /// host's case) sent every agent to register again without its token as proof: a pending
    /// registration per node for an admin to accept.
    @Test("the stored identity is kept across spellings of its server's URL, dropped for another server")
    func identityAcrossSpellings() async throws {
        #expect(FleetClient.comparableBase("HTTPS://Fleet.Example:8443/api/") == "https://fleet.example:8443/api")
        #expect(FleetClient.comparableBase("https://fleet.example:8443/API") == "https://fleet.example:8443/API")
        for (stored, configured, kept) in [
            ("http://Fleet-A:18080/", ["http://fleet-a:18080"], true),
            ("http://fleet-a:18080", ["http://other:1", "HTTP://FLEET-A:18080//"], true),
            ("http://fleet-a:18080", ["http://fleet-b:18080"], false),
        ] {
            let root = makeTemporaryDirectory(prefix: "ksmfleet-spelling").path
            defer { try? FileManager.default.removeItem(atPath: root) }
            try AgentStateDir(root + "/state").saveIdentity(NodeIdentity(nodeId: "n-kept", nodeToken: "kn_x", serverURL: stored))
            var o = AgentOptions(serverURLs: configured, stateDir: root + "/state")
            o.sysfsRoot = root + "/none"
            let agent = try FleetAgent(options: o, kernel: FakeKSMKernel(), logger: quietLogger())
            #expect(await agent.status().nodeId == (kept ? "n-kept" : nil), "\(stored) with \(configured)")
        }
        // One server listed twice in two spellings is refused as before.
        #expect(throws: AgentOptionsError.self) { try AgentOptions.serverList(["http://a:1/", "HTTP://A:1"]) }
    }
}
