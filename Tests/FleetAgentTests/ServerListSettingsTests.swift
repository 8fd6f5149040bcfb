import FleetAgent
import Foundation
import Testing

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
}
