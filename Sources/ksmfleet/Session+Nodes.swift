import FleetAPI
import FleetClient
import Foundation
import KSMCore

extension Session {
    /// The node with this id or exact name; nil when there is none (404).
    func lookup(_ node: String) async throws(ClientError) -> NodeInfo? {
        do {
            return try await client.node(node)
        } catch {
            if error.status == 404 { return nil }
            throw error
        }
    }

    /// The node named by id or exact name; a clear error when there is none.
    func resolve(_ node: String) async throws -> NodeInfo {
        guard let n = try await lookup(node) else {
            throw CLIError(ExitStatus.refused, "no node has the id or name '\(node)'; see `ksmfleet nodes list`")
        }
        return n
    }
}

/// Whether stdin is a terminal.
enum Terminal {
    static var stdinIsTTY: Bool { isatty(STDIN_FILENO) == 1 }
}
