import ArgumentParser
import FleetAPI
import FleetClient
import Foundation
import KSMCore

enum OutputFormat: String, ExpressibleByArgument, CaseIterable, Sendable {
    case table, json
}

/// Options every command takes: where the server is, the credential, the output format.
struct GlobalOptions: ParsableArguments {
    @Option(help: "Server URL, e.g. http://fleet:8080 (else KSMFLEET_SERVER, else server= in the config file).")
    var server: String?

    @Option(help: "Credential: the admin token or a named credential's token (else KSMFLEET_TOKEN, else token= in the config file).")
    var token: String?

    @Option(name: .customLong("ca-file"), help: "CA certificate file (PEM) to verify an https server with.")
    var caFile: String?

    @Option(help: "Seconds to wait for one request.")
    var timeout: Double = 30

    @Option(name: [.short, .long], help: "Output format: table for people, json (sorted keys) for scripts.")
    var output: OutputFormat = .table

    mutating func validate() throws {
        if !(timeout > 0 && timeout <= 3600) {
            throw ValidationError("--timeout must be between 0 and 3600 seconds")
        }
    }

    /// Where the server, token and CA file come from: flag, then environment, then config file.
    func resolved(environment: [String: String] = ProcessInfo.processInfo.environment) throws(CLIError) -> Connection {
        let file = ConfigFileSettings.load(environment: environment)
        func pick(_ flag: String?, _ env: String, _ key: String) -> String? {
            if let flag, !flag.isEmpty { return flag }
            if let v = environment[env], !v.isEmpty { return v }
            if let v = file.values[key], !v.isEmpty { return v }
            return nil
        }
        guard let server = pick(server, "KSMFLEET_SERVER", "server") else {
            throw .usage(
                "no server given; pass --server URL, set KSMFLEET_SERVER, or put server=URL in \(ConfigFileSettings.path(environment: environment))"
            )
        }
        guard let token = pick(token, "KSMFLEET_TOKEN", "token") else {
            throw .usage(
                "no admin token given; pass --token, set KSMFLEET_TOKEN, or put token=... in \(ConfigFileSettings.path(environment: environment))"
            )
        }
        let ca = pick(caFile, "KSMFLEET_CA_FILE", "ca-file")
        if let ca, !FileManager.default.isReadableFile(atPath: ca) {
            throw .usage("the CA file \(ca) does not exist or cannot be read; pass --ca-file with a PEM file")
        }
        return Connection(
            server: server, token: token, caFile: ca, timeout: timeout,
            output: output)
    }

    /// Resolves the connection, runs `body` with a client, and reports every error as one line
    /// on stderr with its exit code.
    func run(_ body: (Session) async throws -> Void) async throws {
        var serverText = server ?? ""
        do {
            let connection = try resolved()
            serverText = connection.server
            let client = try FleetClient(
                ClientOptions(
                    serverURL: connection.server, token: connection.token, caFile: connection.caFile,
                    connectTimeout: min(10, connection.timeout), requestTimeout: connection.timeout))
            try await body(Session(client: client, server: connection.server, output: connection.output))
        } catch let error as CLIError {
            fail(error)
        } catch let error as ClientError {
            fail(CLIError.from(error, server: serverText))
        } catch let error as InputError {
            fail(CLIError.invalid(error))
        } catch let error as ConfigValidationError {
            fail(CLIError.invalid(error.issues))
        } catch let error as ExitCode {
            throw error
        } catch {
            fail(CLIError(ExitStatus.serverError, "\(error)"))
        }
    }
}

/// Where to send requests, and how to show what comes back.
struct Connection: Sendable {
    var server: String
    var token: String
    var caFile: String?
    var timeout: Double
    var output: OutputFormat
}

/// What a command runs with.
struct Session: Sendable {
    let client: FleetClient
    let server: String
    let output: OutputFormat

    var json: Bool { output == .json }
}

/// `$XDG_CONFIG_HOME/ksmfleet/config` (default `~/.config/ksmfleet/config`): `key=value` lines,
/// `#` comments. Keys: server, token, ca-file.
struct ConfigFileSettings {
    var values: [String: String] = [:]

    static func path(environment: [String: String]) -> String {
        let base: String
        if let xdg = environment["XDG_CONFIG_HOME"], !xdg.isEmpty {
            base = xdg
        } else {
            base = (environment["HOME"] ?? NSHomeDirectory()) + "/.config"
        }
        return base + "/ksmfleet/config"
    }

    static func load(environment: [String: String]) -> ConfigFileSettings {
        let path = path(environment: environment)
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8)
        else { return ConfigFileSettings() }
        var out = ConfigFileSettings()
        for line in text.split(whereSeparator: \.isNewline) {
            let t = line.trimmed
            if t.isEmpty || t.hasPrefix("#") { continue }
            let kv = t.split(separator: "=", maxSplits: 1).map(\.trimmed)
            guard kv.count == 2 else { continue }
            var value = kv[1]
            if value.count >= 2,
                (value.hasPrefix("\"") && value.hasSuffix("\"")) || (value.hasPrefix("'") && value.hasSuffix("'"))
            {
                value = String(value.dropFirst().dropLast())
            }
            out.values[kv[0].lowercased()] = value
        }
        if out.values["token"] != nil, let attrs = try? FileManager.default.attributesOfItem(atPath: path),
            let mode = attrs[.posixPermissions] as? Int, mode & 0o077 != 0
        {
            writeStderr("ksmfleet: warning: \(path) holds a token but others can read it; chmod 600 \(path)\n")
        }
        return out
    }
}
