import ArgumentParser
import FleetAPI
import FleetClient
import Foundation
import KSMCore

struct ConfigCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "Show and change node configs, one node or fleet-wide.",
        subcommands: [Get.self, Set.self, Apply.self])
}

extension ConfigCommand {
    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A node's desired config.")

        @Argument(help: "Node id or name.")
        var node: String

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await global.run { session in
                let n = try await session.resolve(node)
                let config = try await session.client.nodeConfig(n.id)
                if session.json {
                    try printJSON(config)
                    return
                }
                print("\(n.name) (\(n.id))")
                print(Fmt.config(config).render(indent: "  "))
            }
        }
    }

    struct Set: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Change some fields of one node's config.",
            discussion: """
                Reads the config, checks the change against it (the server's own rules, so nothing \
                invalid is sent), and sends it with If-Match on the generation read. If someone \
                changed the config in between, the server refuses (409) and nothing changes: run \
                the command again.
                """)

        @Argument(help: "Node id or name.")
        var node: String

        @OptionGroup var flags: ConfigFlags

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            let patch = flags.patch
            if patch.isEmpty {
                fail(
                    .usage(
                        "nothing to change; give at least one of --run, --mode, --thres-coef, --boost, --decay, --min-pages, --max-pages, --sleep-msec, --merge-across-nodes, --max-cpu-percent"
                    ))
            }
            orExit { () throws(CLIError) in try PatchCheck.check(patch) }
            try await global.run { session in
                let n = try await session.resolve(node)
                let current = try await session.client.nodeConfig(n.id)
                do throws(ConfigValidationError) {
                    _ = try patch.applied(to: current.config)
                } catch {
                    throw CLIError.invalid(error.issues)
                }
                let updated: NodeConfig
                do throws(ClientError) {
                    updated = try await session.client.patchConfig(n.id, patch, ifMatch: current.generation)
                } catch {
                    guard error.status == 409 else { throw error }
                    throw CLIError(
                        ExitStatus.refused,
                        "the config of \(n.name) changed on the server after it was read (generation \(current.generation)); nothing was changed, run the command again"
                    )
                }
                if session.json {
                    try printJSON(updated)
                    return
                }
                let changes = configDiff(current.config, updated.config)
                if changes.isEmpty {
                    print("\(n.name): unchanged (generation \(updated.generation))")
                } else {
                    print("\(n.name): generation \(current.generation) → \(updated.generation)")
                    for c in changes { print("  \(c)") }
                }
            }
        }
    }

    struct Apply: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Change the config of many nodes at once: all, by label selector, or a list.",
            discussion: """
                The change comes from the flags or from --file (JSON with the fields of a config \
                change, e.g. {"mode": "customized", "parameters": {"maxPages": 5000}}). \
                Prints one line per node: changed, unchanged, would_change (--dry-run), failed (with \
                the reason) or not_found. Exits 65 when any node failed or was not found.
                """)

        @Flag(help: "Every node.")
        var all = false

        @Option(help: "Nodes whose labels match, k=v[,k2=v2] (all must match).")
        var selector: String?

        @Argument(help: "Node ids or names (an unknown one is reported as not_found).")
        var nodes: [String] = []

        @OptionGroup var flags: ConfigFlags

        @Option(help: "The change as a JSON file instead of flags.")
        var file: String?

        @Flag(help: "Show, per node, what would change; change nothing.")
        var dryRun = false

        @OptionGroup var global: GlobalOptions

        func validate() throws {
            let targets = (all ? 1 : 0) + (selector == nil ? 0 : 1) + (nodes.isEmpty ? 0 : 1)
            if targets != 1 {
                throw ValidationError("give exactly one of --all, --selector k=v, or NODE arguments")
            }
            if file != nil && !flags.isEmpty {
                throw ValidationError("give the change either as flags or as --file, not both")
            }
            if file == nil && flags.isEmpty {
                throw ValidationError("nothing to change; give config flags (see --help) or --file")
            }
        }

        func run() async throws {
            let patch = orExit { () throws(CLIError) in
                let p = try file.map { path throws(CLIError) in try PatchCheck.load(file: path) } ?? flags.patch
                if p.isEmpty { throw .usage("the change is empty") }
                try PatchCheck.check(p)
                return p
            }
            if let selector {
                do throws(InputError) {
                    _ = try parseSelector(selector)
                } catch {
                    fail(.usage("--selector: \(error.message); use --selector key=value[,key2=value2]"))
                }
            }
            try await global.run { session in
                let request = ApplyRequest(
                    nodes: nodes.isEmpty ? nil : nodes, selector: selector, all: all ? true : nil, change: patch,
                    dryRun: dryRun ? true : nil)
                let response = try await session.client.applyConfig(request)
                if session.json {
                    try printJSON(response)
                } else {
                    print(Self.table(response))
                }
                if response.results.contains(where: { $0.status == "failed" || $0.status == "not_found" }) {
                    throw CLIError(ExitStatus.refused, "the change was refused for some nodes (see the table)")
                }
            }
        }

        static func table(_ r: ApplyResponse) -> String {
            if r.results.isEmpty { return "no nodes matched" }
            var t = Table([("NODE", .left), ("ID", .left), ("RESULT", .left), ("GEN", .right), ("CHANGES", .left)])
            for res in r.results {
                let detail: String
                if let e = res.error {
                    detail = "\(e.code)\(e.field.map { " (\($0))" } ?? ""): \(e.message)"
                } else if res.changes.isEmpty {
                    detail = "-"
                } else {
                    detail = res.changes.joined(separator: "; ")
                }
                t.add([res.name ?? "-", res.nodeId, res.status, Fmt.opt(res.generation), detail])
            }
            var out = t.render()
            let counts = Dictionary(grouping: r.results, by: \.status).mapValues(\.count)
            out += "\n\n" + counts.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
            if r.dryRun { out += " (dry run: nothing was changed)" }
            return out
        }
    }
}
