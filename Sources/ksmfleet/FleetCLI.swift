import ArgumentParser

@main
struct FleetCLI: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ksmfleet",
        abstract: "Run a fleet of KSM nodes from one terminal: configs, nodes, history, savings, tokens.",
        discussion: """
            The server URL and admin token come from --server/--token, else the environment \
            (KSMFLEET_SERVER, KSMFLEET_TOKEN), else the config file \
            $XDG_CONFIG_HOME/ksmfleet/config (default ~/.config/ksmfleet/config) with lines \
            server=URL and token=TOKEN. NODE is a node id or its exact name.

            Every command takes --output table|json; JSON is the API's own types with sorted keys, \
            stable for scripts. Times are ISO 8601 (2026-11-01, 2026-11-01T12:00:00Z) or relative \
            to now (30m, 24h, 7d, 2w).

            Exit codes:
              0   success
              64  usage: a bad flag or value, refused before sending
              65  the server refused (4xx); its code, message, field shown
              69  the server could not be reached
              70  the server failed (5xx) or its reply was unreadable
              77  auth: the server refused the token (401/403)

            Shell completion: ksmfleet --generate-completion-script bash|zsh|fish
            """,
        version: CLIVersion.current,
        subcommands: [
            StatusCommand.self, NodesCommand.self, ConfigCommand.self, KickCommand.self,
            HistoryCommand.self, ReportCommand.self, TokensCommand.self,
        ])
}

enum CLIVersion {
    static let current = "0.1.0"
}
