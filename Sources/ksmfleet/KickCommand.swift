import ArgumentParser
import FleetAPI
import FleetClient
import Foundation
import KSMCore

struct KickCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kick",
        abstract: "Kick nodes in throttle or adaptive mode: ksmd scans aggressively again, then slows down.")

    @Argument(help: "Node ids or names.")
    var nodes: [String] = []

    @Option(help: "Kick every node whose labels match, k=v[,k2=v2].")
    var selector: String?

    @OptionGroup var global: GlobalOptions

    struct Result: Codable {
        var nodeId: String
        var name: String
        /// The node's mode when kicked: kicks only change what ksmd does in throttle mode.
        var mode: TuningMode
        var kickCounter: Int64?
        var generation: Int64?
        var error: APIErrorBody.Detail?
    }

    struct Results: Codable {
        var results: [Result]
    }

    func validate() throws {
        if nodes.isEmpty == (selector == nil) {
            throw ValidationError("give either NODE arguments or --selector k=v")
        }
    }

    func run() async throws {
        if let selector {
            do throws(InputError) {
                _ = try parseSelector(selector)
            } catch {
                fail(.usage("--selector: \(error.message); use --selector key=value[,key2=value2]"))
            }
        }
        try await global.run { session in
            var targets: [NodeInfo] = []
            if let selector {
                targets = try await session.client.allNodes(selector: selector).nodes
                if targets.isEmpty { throw CLIError(ExitStatus.refused, "no node matches --selector \(selector)") }
            } else {
                for node in nodes { targets.append(try await session.resolve(node)) }
            }
            var results: [Result] = []
            for t in targets {
                do throws(ClientError) {
                    let k = try await session.client.kick(t.id)
                    results.append(
                        Result(
                            nodeId: t.id, name: t.name, mode: t.config.config.mode, kickCounter: k.kickCounter,
                            generation: k.generation))
                } catch {
                    guard case .api(let status, let body, _) = error, (400..<500).contains(status), status != 401,
                        status != 403
                    else { throw error }
                    results.append(Result(nodeId: t.id, name: t.name, mode: t.config.config.mode, error: body.error))
                }
            }
            if session.json {
                try printJSON(Results(results: results))
            } else {
                var table = Table([
                    ("NODE", .left), ("ID", .left), ("KICKS", .right), ("GEN", .right), ("RESULT", .left),
                ])
                for r in results {
                    table.add([
                        r.name, r.nodeId, Fmt.opt(r.kickCounter), Fmt.opt(r.generation),
                        r.error.map { "failed: \($0.code): \($0.message)" }
                            ?? (r.mode == .throttle || r.mode == .adaptive
                                ? "kicked"
                                : "kicked; no effect while mode is \(r.mode.rawValue) (kicks drive the throttle and adaptive modes)"),
                    ])
                }
                print(table.render())
            }
            if results.contains(where: { $0.error != nil }) {
                throw CLIError(ExitStatus.refused, "some kicks were refused (see the table)")
            }
        }
    }
}
