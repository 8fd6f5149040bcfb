import ArgumentParser

@main
struct ServerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ksmfleet-server", abstract: "Not built yet (issue 4).")
    func run() async throws { throw ValidationError("the server is not built yet") }
}
