import Foundation
import KSMCore
import TestSupport
import Testing

/// What one run of the built `ksmfleet` binary did.
struct CLIResult: Sendable, CustomStringConvertible {
    var status: Int32
    var stdout: String
    var stderr: String

    var description: String { "exit \(status)\nstdout:\n\(stdout)\nstderr:\n\(stderr)" }

    /// stdout parsed as JSON into an API type.
    func json<T: Decodable>(_ type: T.Type) throws -> T {
        try StrictJSON.decoder().decode(T.self, from: Data(stdout.utf8))
    }

    /// stdout parsed as a generic JSON object.
    func object() throws -> [String: Any] {
        guard let o = try JSONSerialization.jsonObject(with: Data(stdout.utf8)) as? [String: Any] else {
            throw CLIRunnerError("stdout is not a JSON object: \(stdout)")
        }
        return o
    }
}

struct CLIRunnerError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// Runs the built `ksmfleet` as a subprocess. The process is started and waited for on a thread
/// of its own (`offPool`), never on a dispatch worker: on Linux the cooperative pool, every
/// concurrent queue and `DispatchQueue.global()` share one small thread pool, and parallel CLI
/// tests blocked there in `waitUntilExit` starved the in-process servers the CLIs were calling.
/// stdout/stderr go to temporary files (no pipe can fill up), stdin is /dev/null (not a
/// terminal), and the environment is clean: HOME and XDG_CONFIG_HOME point at an empty
/// directory unless the caller gives others.
enum CLI {
    /// Deadlines only. Serial, so it runs on libdispatch's overcommitting pool, which gets a
    /// thread even when the default pool is busy.
    static let deadlines = DispatchQueue(label: "cli-tests.deadlines")

    /// The built `ksmfleet` binary (next to the test binary; `KSMFLEET_CLI_BINARY` overrides).
    static func binary() throws -> URL {
        if let env = ProcessInfo.processInfo.environment["KSMFLEET_CLI_BINARY"] { return URL(fileURLWithPath: env) }
        guard let path = builtProduct("ksmfleet") else {
            throw CLIRunnerError(
                "the ksmfleet binary was not found next to the tests; build every product first: swift build --build-tests"
            )
        }
        return URL(fileURLWithPath: path)
    }

    static func run(
        _ arguments: [String], environment: [String: String] = [:], home: URL? = nil, timeout: Double = 300,
        executable: URL? = nil, stdin: String? = nil
    ) async throws -> CLIResult {
        let binary = try executable ?? binary()
        let fm = FileManager.default
        let scratch = fm.temporaryDirectory.appending(path: "ksmfleet-cli-\(UUID().uuidString)")
        try fm.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? fm.removeItem(at: scratch) }
        let outURL = scratch.appending(path: "stdout")
        let errURL = scratch.appending(path: "stderr")
        let inURL = scratch.appending(path: "stdin")
        try Data((stdin ?? "").utf8).write(to: inURL)
        guard fm.createFile(atPath: outURL.path, contents: nil), fm.createFile(atPath: errURL.path, contents: nil)
        else {
            throw CLIRunnerError("cannot create output files in \(scratch.path)")
        }
        let homeDir = home ?? scratch
        var env: [String: String] = [
            "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin",
            "HOME": homeDir.path,
            "XDG_CONFIG_HOME": homeDir.appending(path: ".config").path,
            "LANG": "C.UTF-8",
        ]
        for (k, v) in environment { env[k] = v }
        let processEnvironment = env

        let status: Int32 = try await offPool {
            let out = try FileHandle(forWritingTo: outURL)
            let err = try FileHandle(forWritingTo: errURL)
            let input = try FileHandle(forReadingFrom: inURL)
            defer {
                try? out.close()
                try? err.close()
                try? input.close()
            }
            let p = Process()
            p.executableURL = binary
            p.arguments = arguments
            p.environment = processEnvironment
            p.standardInput = stdin == nil ? FileHandle.nullDevice : input
            p.standardOutput = out
            p.standardError = err
            try p.run()
            // A functional deadline: a hung CLI is killed, and the test fails on its status.
            // SIGKILL: the CLI inherits this process's ignored SIGTERM (the agent suites').
            let pid = p.processIdentifier
            let killer = DispatchWorkItem { if p.isRunning { kill(pid, SIGKILL) } }
            deadlines.asyncAfter(deadline: .now() + timeout, execute: killer)
            p.waitUntilExit()
            killer.cancel()
            return p.terminationStatus
        }
        let stdout = (try? String(contentsOf: outURL, encoding: .utf8)) ?? ""
        let stderr = (try? String(contentsOf: errURL, encoding: .utf8)) ?? ""
        return CLIResult(status: status, stdout: stdout, stderr: stderr)
    }
}

extension CLI {
    static let script = URL(fileURLWithPath: "/usr/bin/script")

    /// Whether util-linux `script` is installed (the terminal tests are skipped, visibly, without it).
    static var canRunOnTerminal: Bool { FileManager.default.isExecutableFile(atPath: script.path) }

    /// Runs the CLI on a pseudo-terminal through util-linux `script`, typing `input`.
    static func runOnTerminal(_ arguments: [String], input: String) async throws -> CLIResult {
        guard canRunOnTerminal else { throw CLIRunnerError("\(script.path) (util-linux) is not installed") }
        let command = ([try binary().path] + arguments).map {
            "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'"
        }
        .joined(separator: " ")
        return try await run(["-qec", command, "/dev/null"], executable: script, stdin: input)
    }
}

/// Exit codes the CLI documents.
enum Exit {
    static let ok: Int32 = 0
    static let usage: Int32 = 64
    static let refused: Int32 = 65
    static let unreachable: Int32 = 69
    static let serverError: Int32 = 70
    static let auth: Int32 = 77
}

/// Runs `body` with the URL of an address where nothing listens: a loopback port held bound
/// (so no other test can take it) but never listening, so every connection is refused.
func withDeadServer<T>(_ body: (String) async throws -> T) async throws -> T {
    let (fd, port) = try LoopbackSocket.bound()
    defer { close(fd) }
    return try await body("http://127.0.0.1:\(port)")
}
