import ArgumentParser

@main
struct AgentCLI: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ksmfleet-agent",
        abstract: "Tunes KSM on this host: from a ksmfleet server, or standalone from a config file.",
        subcommands: [ConnectedCommand.self, StandaloneCommand.self],
        defaultSubcommand: ConnectedCommand.self)
}

/// What both modes do with the process around the tuning: the KSM settings at exit.
struct ProcessFlags: ParsableArguments {
    @Flag(
        name: .customLong("restore-on-exit"),
        help:
            "Put back the KSM settings found before the first write (kept in the state directory as initial-settings.json) when stopping."
    )
    var restoreOnExit = false
}
