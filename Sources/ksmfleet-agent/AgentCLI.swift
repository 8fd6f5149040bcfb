import ArgumentParser

@main
struct AgentCLI: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ksmfleet-agent",
        abstract: "Tunes KSM on this host: from a ksmfleet server, or standalone from a config file.",
        subcommands: [ConnectedCommand.self, StandaloneCommand.self],
        defaultSubcommand: ConnectedCommand.self)
}

/// What both modes do with the process around the tuning: the KSM settings at exit, and the
/// start-up pages once start-up is over.
struct ProcessFlags: ParsableArguments {
    @Flag(name: .customLong("restore-on-exit"), help: "Put back the KSM settings captured at start when stopping.")
    var restoreOnExit = false

    @Flag(
        name: .customLong("no-trim-memory"),
        help: "Keep start-up's clean file pages mapped (by default they are dropped from the page tables once, see agent/README.md).")
    var noTrimMemory = false
}
