import ArgumentParser
import FleetAPI
import Foundation

@main
struct FleetCLI: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ksmfleet",
        abstract: "Run a fleet of KSM nodes from one terminal: configs, nodes, history, savings, tokens.",
        discussion: """
            The server URL and admin token come from --server/--token, else the environment \
            (KSMFLEET_SERVER, KSMFLEET_TOKEN), else the config file \
            $XDG_CONFIG_HOME/ksmfleet/config (default ~/.config/ksmfleet/config) with lines \
            server=URL and token=TOKEN. NODE is a node id or its name (case does not matter).

            Every command takes --output table|json; JSON is the API's own types with sorted keys, \
            stable for scripts. Times are ISO 8601 (2026-11-01, 2026-11-01T12:00:00Z) or relative \
            to now (30m, 24h, 7d, 2w).

            Exit codes:
              0   success
              64  usage: a bad flag or value, refused before sending
              65  the server refused (4xx); its code, message, field shown
              69  the server could not be reached, or its database is unavailable
              70  the server failed (5xx) or its reply was unreadable
              77  auth: the server refused the token (401/403)

            Shell completion: ksmfleet --generate-completion-script bash|zsh|fish
            """,
        version: FleetVersion.current,
        subcommands: [
            StatusCommand.self, NodesCommand.self, ConfigCommand.self, KickCommand.self,
            HistoryCommand.self, ReportCommand.self, TokensCommand.self, CredentialsCommand.self,
            AuditCommand.self,
        ])

    /// ArgumentParser's main, except that a usage error is one line on stderr (exit 64) instead
    /// of the message plus the whole usage text; help and --version print as usual.
    static func main() async {
        do {
            var command = try await asyncParseAsRoot()
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            let code = exitCode(for: error)
            if code == .success || error is ExitCode || error is CleanExit {
                exit(withError: error)
            }
            var text = message(for: error).split(separator: "\n").first.map(String.init) ?? "\(error)"
            while text.hasSuffix(".") { text.removeLast() }
            // ArgumentParser's own hint names the subcommand: "See 'ksmfleet config set --help' …".
            let full = fullMessage(for: error)
            var help = "ksmfleet --help"
            if let start = full.range(of: "See '"), let end = full[start.upperBound...].firstIndex(of: "'") {
                help = String(full[start.upperBound..<end])
            }
            writeStderr("ksmfleet: error: \(text); see '\(help)'\n")
            Foundation.exit(code.rawValue)
        }
    }
}
