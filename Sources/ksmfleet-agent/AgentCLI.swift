import ArgumentParser
import FleetAPI
import FleetLog

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

@main
struct AgentCLI: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ksmfleet-agent",
        abstract: "Tunes KSM on this host: from a ksmfleet server, or standalone from a config file.",
        version: FleetVersion.current,
        subcommands: [ConnectedCommand.self, StandaloneCommand.self],
        defaultSubcommand: ConnectedCommand.self)

    /// ArgumentParser's own main, but for its exit status on a refused flag or value: 2
    /// ("invalid settings", as for a bad config file) rather than its 64. The systemd unit keeps
    /// the agent stopped on 2 (`RestartPreventExitStatus=2 3`); on 64 a typo in `ExecStart=`
    /// restarted it every 5 s for ever.
    static func main() async {
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            if error is ExitCode || error is CleanExit || exitCode(for: error) != .validationFailure {
                exit(withError: error)
            }
            var text = fullMessage(for: error)
            if !text.hasSuffix("\n") { text += "\n" }
            StandardError.write(text)
            exitProcess(invalidSettings)
        }
    }

    /// The exit status for settings the agent cannot run with.
    static let invalidSettings: Int32 = 2
}

/// The C library's exit: inside a command, `exit` names ArgumentParser's `exit(withError:)`.
private func exitProcess(_ code: Int32) -> Never {
    #if canImport(Glibc)
    Glibc.exit(code)
    #else
    Musl.exit(code)
    #endif
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
