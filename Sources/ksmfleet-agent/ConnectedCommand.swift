import ArgumentParser

/// Owned by the agent work (issue 5): register with the server, long-poll, apply, push.
struct ConnectedCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "run", abstract: "Not built yet (issue 5).")
    func run() async throws { throw ValidationError("the server-connected agent is not built yet") }
}
