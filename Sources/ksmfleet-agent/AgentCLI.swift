import ArgumentParser

@main
struct AgentCLI: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ksmfleet-agent",
        abstract: "Tunes KSM on this host: from a ksmfleet server, or standalone from a config file.",
        subcommands: [ConnectedCommand.self, StandaloneCommand.self],
        defaultSubcommand: ConnectedCommand.self)
}
