import ArgumentParser

@main
struct FleetCLI: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ksmfleet", abstract: "Not built yet (issue 6).")
    func run() async throws { throw ValidationError("the CLI is not built yet") }
}
