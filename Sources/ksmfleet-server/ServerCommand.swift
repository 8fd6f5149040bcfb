import ArgumentParser
import FleetServer
import Foundation
import FleetLog
import Logging

/// `ksmfleet-server`: the server (`serve`, the default: `ksmfleet-server --data-dir …` as
/// always) and `migrate-data` (a SQLite store into PostgreSQL).
@main
struct ServerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ksmfleet-server",
        abstract: "The ksmfleet central server (serve, the default) and moving its data (migrate-data).",
        subcommands: [Serve.self, MigrateData.self],
        defaultSubcommand: Serve.self)

    /// `ksmfleet-server --help` shows the server's options, as before there were subcommands
    /// (argument-parser would show the list of subcommands); `ksmfleet-server help` shows that.
    static func main() async {
        let arguments = Array(CommandLine.arguments.dropFirst())
        if arguments == ["--help"] || arguments == ["-h"] {
            print(helpMessage(for: Serve.self))
            return
        }
        await main(arguments)
    }
}

/// `ksmfleet-server [serve]`: parses flags and runs the app until SIGTERM/SIGINT (graceful shutdown).
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "The ksmfleet central server: node configs, status history, admin API, metrics.",
        discussion: """
            The default subcommand: `ksmfleet-server --data-dir …` is `ksmfleet-server serve \
            --data-dir …`.

            On first start it generates an admin token, prints it once and writes it to \
            DATA-DIR/admin-token (mode 0600). KSMFLEET_ADMIN_TOKEN in the environment sets the \
            admin token instead.

            TLS: with --tls-cert and --tls-key the server speaks HTTPS itself; SIGHUP re-reads \
            both files (new connections get the new certificate, nothing is dropped). Behind a \
            reverse proxy that terminates TLS instead, name it with --trusted-proxy so that its \
            X-Forwarded-Proto/-For are believed (Secure cookies, HSTS, the client's address).

            Moving a SQLite installation to PostgreSQL: `ksmfleet-server migrate-data --from \
            sqlite:DATA-DIR/ksmfleet.sqlite --to postgres://…` (see `ksmfleet-server \
            migrate-data --help`), then start the server with --database.
            """)

    @Option(help: "Address to listen on.")
    var host = "127.0.0.1"

    @Option(help: "Port to listen on (0 picks a free one).")
    var port = 8080

    @Option(help: "Directory for the SQLite database and the generated admin token.")
    var dataDir: String

    @Option(
        help: ArgumentHelp(
            "The store: a postgres://user:password@host:port/database URL (several replicas may share it), else the SQLite file in --data-dir. Also KSMFLEET_DATABASE. libpq's parameters: sslmode (default prefer), sslrootcert, sslcert, sslkey, passfile, host=/socket-dir; SIGHUP re-reads their files.",
            valueName: "url"))
    var database: String?

    @Option(help: "Seconds without news after which a node counts as offline (3 × the agent's sample interval).")
    var offlineAfter: Double = 60

    @Option(help: "Days of raw samples to keep (rollups keep the long history).")
    var rawRetentionDays = 14

    @Option(help: "Days of hourly/daily rollups to keep (the history reports read); deleted by whole months, so up to a month more is kept.")
    var rollupRetentionDays = 730

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel = "info"

    @Option(help: "Largest request body in bytes (413 above).")
    var maxBodyBytes = 1 << 20

    @Flag(help: "Serve /metrics without a credential (by default a scrape needs a viewer credential).")
    var metricsPublic = false

    @Option(help: "Days after which a node's token is replaced (the agent is told in a sample reply; nothing is lost). 0 turns scheduled rotation off.")
    var tokenRotationDays: Double = 30

    @Option(help: "Registrations accepted per source address per minute (429 with Retry-After above). 0 = no limit.")
    var registrationRateLimit = 30

    @Option(help: "Failed token checks (401) per source address per minute; above it every request from that address gets 429 until the minute is over. 0 = no limit.")
    var failedAuthRateLimit = 30
    @Option(help: "Open client connections at most (each agent holds one or two); a new one above it is closed at once. Default: the file limit less 512.")
    var maxConnections: Int?

    @Option(help: "PEM certificate (chain) to serve HTTPS with; needs --tls-key. Re-read on SIGHUP.")
    var tlsCert: String?

    @Option(help: "PEM private key of --tls-cert (keep it mode 0600). Re-read on SIGHUP.")
    var tlsKey: String?

    @Option(
        help: ArgumentHelp(
            "IP address of a reverse proxy whose X-Forwarded-Proto and X-Forwarded-For are believed (repeatable).",
            valueName: "address"))
    var trustedProxy: [String] = []

    @Option(
        help: "Failed dashboard sign-ins from one address within 15 minutes before it gets 429 for the rest of them.")
    var loginMaxFailures = 5

    @Option(help: ArgumentHelp("Write the bound port to this file once listening (for tests and scripts).", visibility: .hidden))
    var portFile: String?

    func validate() throws {
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("--log-level must be one of: trace, debug, info, notice, warning, error, critical")
        }
        guard (0...65535).contains(port) else { throw ValidationError("--port must be 0–65535") }
        guard offlineAfter > 0 else { throw ValidationError("--offline-after must be positive") }
        guard rawRetentionDays > 0 else { throw ValidationError("--raw-retention-days must be positive") }
        guard tokenRotationDays >= 0 else { throw ValidationError("--token-rotation-days must not be negative") }
        for (flag, value) in [
            ("--registration-rate-limit", registrationRateLimit), ("--failed-auth-rate-limit", failedAuthRateLimit),
        ] where value < 0 {
            throw ValidationError("\(flag) must not be negative (0 turns the limit off)")
        }
        guard (tlsCert == nil) == (tlsKey == nil) else {
            throw ValidationError("--tls-cert and --tls-key go together")
        }
        if let maxConnections, maxConnections < 1 { throw ValidationError("--max-connections must be positive") }
        guard loginMaxFailures > 0 else { throw ValidationError("--login-max-failures must be positive") }
        for proxy in trustedProxy where proxy.isEmpty {
            throw ValidationError("--trusted-proxy needs an IP address")
        }
        guard rollupRetentionDays >= rawRetentionDays else {
            throw ValidationError("--rollup-retention-days must be at least --raw-retention-days")
        }
    }

    func run() async throws {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        // One line per record, keys sorted (the agent's format). swift-log's StreamLogHandler
        // re-renders all metadata whenever a key is set, which Hummingbird does per request.
        LoggingSystem.bootstrap { label in StderrLogHandler(label: label, level: level) }
        raiseFileLimit()
        let env = ProcessInfo.processInfo.environment["KSMFLEET_ADMIN_TOKEN"]
        var config = ServerConfig(
            host: host, port: port, dataDir: URL(fileURLWithPath: dataDir, isDirectory: true),
            offlineAfterSeconds: offlineAfter, rawRetentionDays: rawRetentionDays,
            rollupRetentionDays: rollupRetentionDays,
            adminToken: env?.isEmpty == false ? env : nil, maxBodyBytes: maxBodyBytes, logLevel: level,
            onAdminTokenGenerated: { token, file in
                // Printed once, on stdout, for the operator; never logged.
                let text = "admin token (also written to \(file.path), mode 0600):\n\(token)\n"
                FileHandle.standardOutput.write(Data(text.utf8))
            },
            onServerRunning: { [portFile] port in
                if let portFile {
                    try? Data("\(port)\n".utf8).write(to: URL(fileURLWithPath: portFile), options: .atomic)
                }
            })
        config.metricsPublic = metricsPublic
        config.tokenRotationDays = tokenRotationDays
        config.registrationRateLimit = registrationRateLimit
        config.failedAuthRateLimit = failedAuthRateLimit
        if let tlsCert, let tlsKey {
            config.tls = .init(certificatePath: tlsCert, privateKeyPath: tlsKey)
        }
        config.trustedProxies = trustedProxy
        config.loginMaxFailures = loginMaxFailures
        config.maxConnections = maxConnections
        let envDatabase = ProcessInfo.processInfo.environment["KSMFLEET_DATABASE"]
        config.database = database ?? (envDatabase?.isEmpty == false ? envDatabase : nil)
        let app = try await buildApplication(config)
        try await app.runService()
        Logger(label: "ksmfleet-server").notice("ksmfleet-server stopped")
    }

    /// Each waiting long-poll holds a socket: allow as many as the hard limit permits.
    func raiseFileLimit() {
        var limit = rlimit()
        if getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max
            _ = setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
        }
    }
}
