import ArgumentParser

/// Owned by the node-engine work (issue 3): the tuning loop from a local config file.
struct StandaloneCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "standalone", abstract: "Not built yet (issue 3).")
    func run() async throws { throw ValidationError("standalone mode is not built yet") }
}
