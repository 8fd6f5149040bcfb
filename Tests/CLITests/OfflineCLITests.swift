import Foundation
import Testing

/// The CLI on its own: values refused before any request (proved by pointing it at an address
/// where nothing listens and still getting the usage code, not "unreachable"), connection
/// settings, and the unreachable exit code.
@Suite("ksmfleet without a server")
struct OfflineCLITests {
    @Test(
        "bad values are refused with exit 64 before anything is sent",
        arguments: [
            (["config", "set", "n1", "--thres-coef", "101"], "thresCoef: 101 is outside 0–100"),
            (
                ["config", "set", "n1", "--min-pages", "500", "--max-pages", "100"],
                "minPages 500 is greater than maxPages 100"
            ),
            (["config", "set", "n1", "--boost", "-1"], "parameters.boost: -1 is outside"),
            (["config", "set", "n1", "--merge-across-nodes", "2"], "mergeAcrossNodes: 2 is outside 0–1"),
            (["config", "set", "n1", "--mode", "adaptive", "--max-cpu-percent", "0"], "maxCpuPercent: 0.0 is outside 0.1–100"),
            (["config", "apply", "--all", "--thres-coef", "-5"], "thresCoef: -5 is outside 0–100"),
            (
                ["config", "apply", "--selector", "env=prod", "--min-pages", "500", "--max-pages", "100"],
                "greater than maxPages"
            ),
            (["config", "apply", "--all", "--mode", "standard", "--max-pages", "5000"], "preset"),
            (["config", "apply", "--selector", "nonsense", "--run", "run"], "--selector"),
            (["nodes", "list", "--label", "novalue"], "--label"),
            (["nodes", "label", "n1", "bad"], "neither k=v"),
            (["history", "n1", "--since", "yesterday-ish"], "--since"),
            (["tokens", "create", "--expires", "soonish"], "--expires"),
            (["nodes", "delete", "n1"], "--yes"),
        ])
    func refusedBeforeSending(args: [String], message: String) async throws {
        try await withDeadServer { url in
            let r = try await CLI.run(args + ["--server", url, "--token", "t"])
            #expect(r.status == Exit.usage, "\(r)")
            #expect(r.stderr.contains(message), "\(r)")
            #expect(!r.stderr.contains("reach"), "\(r)")
        }
    }

    @Test("flag parsing errors are usage errors too")
    func parsingErrors() async throws {
        for args in [
            ["config", "set", "n1", "--run", "sometimes"], ["config", "set", "n1", "--thres-coef", "abc"],
            ["config", "apply", "--thres-coef", "20"], ["nodes", "list", "--phase", "Dancing"],
        ] {
            let r = try await CLI.run(args + ["--server", "http://127.0.0.1:1", "--token", "t"])
            #expect(r.status == Exit.usage, "\(args): \(r)")
            #expect(r.stderr.hasPrefix("ksmfleet: error: "), "\(r)")
            #expect(r.stderr.split(separator: "\n").count == 1, "one line: \(r)")
            #expect(r.stderr.contains("--help"), "\(r)")
        }
    }

    @Test("an unreachable server gives exit 69 and says what to check")
    func unreachable() async throws {
        try await withDeadServer { url in
            for args in [
                ["status"], ["nodes", "list"], ["config", "set", "n1", "--thres-coef", "30"], ["tokens", "list"],
            ] {
                let r = try await CLI.run(args + ["--server", url, "--token", "t"])
                #expect(r.status == Exit.unreachable, "\(args): \(r)")
                #expect(r.stderr.hasPrefix("ksmfleet: error: "), "\(r)")
                #expect(r.stderr.contains("KSMFLEET_SERVER"), "\(r)")
                #expect(r.stderr.split(separator: "\n").count == 1, "one line: \(r)")
            }
        }
    }

    @Test("no server configured is a usage error naming the three ways to give one")
    func noServer() async throws {
        let r = try await CLI.run(["status", "--token", "t"])
        #expect(r.status == Exit.usage, "\(r)")
        #expect(
            r.stderr.contains("--server") && r.stderr.contains("KSMFLEET_SERVER")
                && r.stderr.contains("ksmfleet/config"), "\(r)")
        let bad = try await CLI.run(["status", "--server", "ftp://x", "--token", "t"])
        #expect(bad.status == Exit.usage, "\(bad)")
    }

    @Test("server and token come from the environment and from $XDG_CONFIG_HOME/ksmfleet/config")
    func settingsSources() async throws {
        try await withDeadServer { url in
            // Environment: the dead server is used, so the run gets as far as connecting.
            let fromEnv = try await CLI.run(["status"], environment: ["KSMFLEET_SERVER": url, "KSMFLEET_TOKEN": "t"])
            #expect(fromEnv.status == Exit.unreachable, "\(fromEnv)")

            let home = FileManager.default.temporaryDirectory.appending(path: "ksmfleet-home-\(UUID().uuidString)")
            defer { try? FileManager.default.removeItem(at: home) }
            let xdg = home.appending(path: "xdg")
            try FileManager.default.createDirectory(
                at: xdg.appending(path: "ksmfleet"), withIntermediateDirectories: true)
            let file = xdg.appending(path: "ksmfleet/config")
            try "# fleet\nserver=\(url)\ntoken = \"secret\"\n".write(to: file, atomically: true, encoding: .utf8)
            try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: file.path)
            let fromFile = try await CLI.run(["nodes", "list"], environment: ["XDG_CONFIG_HOME": xdg.path], home: home)
            #expect(fromFile.status == Exit.unreachable, "\(fromFile)")
            #expect(fromFile.stderr.contains(url), "\(fromFile)")

            // A flag beats the file: a bad URL on the command line is a usage error.
            let flagWins = try await CLI.run(
                ["nodes", "list", "--server", "nope"], environment: ["XDG_CONFIG_HOME": xdg.path], home: home)
            #expect(flagWins.status == Exit.usage, "\(flagWins)")
        }
    }

    @Test("help documents the exit codes and completion scripts are generated")
    func helpAndCompletion() async throws {
        let help = try await CLI.run(["--help"])
        #expect(help.status == Exit.ok)
        for code in ["64", "65", "69", "70", "77"] { #expect(help.stdout.contains("  \(code)  "), "\(help)") }
        let bash = try await CLI.run(["--generate-completion-script", "bash"])
        #expect(bash.status == Exit.ok)
        #expect(bash.stdout.contains("ksmfleet") && bash.stdout.contains("nodes"), "\(bash.stdout.prefix(300))")
    }
}
