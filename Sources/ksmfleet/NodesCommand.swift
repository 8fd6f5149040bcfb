import ArgumentParser
import FleetAPI
import FleetClient
import Foundation
import KSMCore

struct NodesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nodes",
        abstract: "List, show, label and delete nodes; decide pending registrations; rotate node tokens.",
        subcommands: [
            List.self, Show.self, Label.self, Delete.self, Pending.self, Accept.self, Reject.self, RotateToken.self,
        ])
}

extension NodesCommand {
    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List nodes, optionally only those matching labels, a phase, offline or drifting.")

        /// `--selector` too, as `kick` and `config apply` name a label filter.
        @Option(
            name: [.customLong("label"), .customLong("selector")],
            help: "Only nodes with this label (k=v, or k=v,k2=v2 as --selector); repeat to require several.")
        var labels: [String] = []

        @Option(help: "Only nodes in this phase (Running, Stopped, Pruned, Unmanaged).")
        var phase: KSMPhase?

        @Flag(help: "Only nodes not seen recently.")
        var offline = false

        @Flag(help: "Only nodes whose applied config lags the desired one.")
        var drift = false

        @Option(help: .hidden)
        var pageSize = NodePages.clientPage

        @OptionGroup var global: GlobalOptions

        func validate() throws {
            guard (1...NodePages.maxLimit).contains(pageSize) else {
                throw ValidationError("--page-size must be from 1 to \(NodePages.maxLimit)")
            }
        }

        func run() async throws {
            var selector: String? = nil
            if !labels.isEmpty {
                let text = labels.joined(separator: ",")
                do throws(InputError) {
                    _ = try parseSelector(text)
                } catch {
                    fail(.usage("--label: \(error.message); use --label key=value"))
                }
                selector = text
            }
            try await global.run { session in
                let list = try await session.client.allNodes(
                    selector: selector, phase: phase, online: offline ? false : nil, drift: drift ? true : nil,
                    pageSize: pageSize)
                if session.json {
                    try printJSON(list)
                    return
                }
                if list.nodes.isEmpty {
                    print("no nodes match")
                    return
                }
                var t = Table(
                    [
                        ("NAME", .left), ("ID", .left), ("STATE", .left), ("PHASE", .left), ("MODE", .left),
                        ("GEN", .right), ("SAVED", .right), ("KSMD CPU", .right), ("LAST SEEN", .left),
                        ("LABELS", .left),
                    ])
                for n in list.nodes.sorted(by: { ($0.name, $0.id) < ($1.name, $1.id) }) {
                    let gen =
                        n.drift ? "\(Fmt.opt(n.appliedGeneration))/\(n.config.generation)!" : "\(n.config.generation)"
                    t.add([
                        n.name, n.id, n.connection.describe(lastSeenAgo: nil), Fmt.phaseShown(n),
                        "\(n.config.config.run.rawValue)/\(n.config.config.mode.rawValue)", gen,
                        n.lastSample.map { Fmt.bytes($0.savedBytes) } ?? "-", Fmt.percent(n.lastSample?.ksmdCPUPercent),
                        n.lastSeenAt.map { Fmt.ago($0) } ?? "never", Fmt.labels(n.labels),
                    ])
                }
                print(t.render())
                if list.nodes.contains(where: \.drift) {
                    print(
                        "\nGEN a/b! = applied generation a of desired b (drift); see `ksmfleet nodes show NODE` for why"
                    )
                }
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "One node: config, phase and why, drift, last status counters, saved memory, ksmd CPU.")

        @Argument(help: "Node id or name.")
        var node: String

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await global.run { session in
                let n = try await session.resolve(node)
                if session.json {
                    try printJSON(n)
                    return
                }
                print(NodeView.render(n))
            }
        }
    }

    struct Label: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Set (k=v) or remove (k-) labels of a node.",
            discussion: "Example: ksmfleet nodes label web-1 rack=a12 env=prod old-")

        @Argument(help: "Node id or name.")
        var node: String

        @Argument(help: "k=v to set a label, k- to remove it.")
        var changes: [String]

        @OptionGroup var global: GlobalOptions

        /// Parses `k=v` / `k-` arguments: (labels to set, keys to remove).
        static func parse(_ changes: [String]) throws(CLIError) -> ([String: String], Set<String>) {
            var set: [String: String] = [:]
            var remove: Set<String> = []
            for change in changes {
                if let eq = change.firstIndex(of: "=") {
                    let key = change[..<eq].trimmed
                    let value = change[change.index(after: eq)...].trimmed
                    guard !key.isEmpty, !key.contains(","), !value.contains(",") else {
                        throw .usage(
                            "label '\(change)': the key must not be empty and neither may contain ','; use k=v or k-")
                    }
                    set[key] = value
                } else if change.hasSuffix("-"), change.count > 1 {
                    remove.insert(String(change.dropLast()))
                } else {
                    throw .usage("label '\(change)' is neither k=v (set) nor k- (remove)")
                }
            }
            if let both = remove.first(where: { set[$0] != nil }) {
                throw .usage("label '\(both)' is both set and removed")
            }
            return (set, remove)
        }

        func run() async throws {
            if changes.isEmpty { fail(.usage("give at least one k=v or k-")) }
            let (set, remove) = orExit { () throws(CLIError) in try Self.parse(changes) }
            try await global.run { session in
                let n = try await session.resolve(node)
                var labels = n.labels
                for (k, v) in set { labels[k] = v }
                for k in remove { labels.removeValue(forKey: k) }
                if labels != n.labels {
                    try await session.client.setLabels(n.id, labels)
                }
                let after = try await session.client.node(n.id)
                if session.json {
                    try printJSON(after)
                    return
                }
                print("\(after.name) (\(after.id)) labels: \(Fmt.labels(after.labels))")
            }
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Delete a node (its agent must register again). Asks first unless --yes.",
            discussion: "Without --yes and with stdin not a terminal the command refuses (exit 64).")

        @Argument(help: "Node id or name.")
        var node: String

        @Flag(help: "Also delete the node's samples and rollups (otherwise reports keep its history).")
        var purgeHistory = false

        @Flag(name: [.short, .long], help: "Do not ask for confirmation.")
        var yes = false

        @OptionGroup var global: GlobalOptions

        struct Result: Codable {
            var deleted: String
            var name: String
            var purgedHistory: Bool
        }

        func run() async throws {
            if !yes && !Terminal.stdinIsTTY {
                fail(
                    .usage(
                        "refusing to delete node '\(node)' without confirmation: stdin is not a terminal; pass --yes"))
            }
            try await global.run { session in
                let n = try await session.resolve(node)
                if !yes {
                    writeStderr(
                        "Delete node \(n.name) (\(n.id))\(purgeHistory ? " and its whole history" : "")? [y/N] ")
                    let answer = readLine()?.trimmed.lowercased() ?? ""
                    guard answer == "y" || answer == "yes" else {
                        throw CLIError(ExitStatus.usage, "not deleted (answer was not yes)")
                    }
                }
                try await session.client.deleteNode(n.id, purgeHistory: purgeHistory)
                if session.json {
                    try printJSON(Result(deleted: n.id, name: n.name, purgedHistory: purgeHistory))
                } else {
                    print(
                        "deleted node \(n.name) (\(n.id))\(purgeHistory ? " and its history" : "; its history stays for reports")"
                    )
                }
            }
        }
    }
}

extension NodesCommand {
    struct Pending: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List pending registrations: hosts that claimed a known or deleted node's machine id without proof.",
            discussion: """
                A registration whose machine id belongs to a live node is kept pending unless the agent proves \
                it is that node (its current node token); so is one whose machine id belongs to a deleted node. \
                Decide with 'ksmfleet nodes accept ID' or 'ksmfleet nodes reject ID'.
                """)

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await global.run { session in
                let list = try await session.client.pendingRegistrations()
                if session.json {
                    try printJSON(list)
                    return
                }
                if list.registrations.isEmpty {
                    print("no pending registrations")
                    return
                }
                for p in list.registrations {
                    print(PendingView.render(p))
                    print("")
                }
            }
        }
    }

    struct Accept: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Accept a pending registration: the host's next attempt takes the node over (or becomes a new node).",
            discussion: """
                For a 'conflict' (a live node has the machine id) the accepted host takes that node over, config and \
                history included, and the other host's token stops working: the way back for a re-imaged host. For \
                a 'deleted' one the host registers as a new node.
                """)

        @Argument(help: "Pending registration id (p-…).")
        var id: String

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await global.run { session in
                let p = try await session.client.decideRegistration(id, accept: true)
                if session.json { try printJSON(p) } else {
                    print("accepted registration \(p.id) of \(p.newcomer.hostname); its agent takes over at its next attempt")
                }
            }
        }
    }

    struct Reject: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Reject a pending registration: the host stays out (its agent waits an hour between attempts).")

        @Argument(help: "Pending registration id (p-…).")
        var id: String

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await global.run { session in
                let p = try await session.client.decideRegistration(id, accept: false)
                if session.json { try printJSON(p) } else { print("rejected registration \(p.id) of \(p.newcomer.hostname)") }
            }
        }
    }

    struct RotateToken: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rotate-token",
            abstract: "Have a node's agent replace its token at its next sample push (no sample or config is lost).")

        @Argument(help: "Node id or name.")
        var node: String

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await global.run { session in
                let n = try await session.resolve(node)
                let r = try await session.client.requestTokenRotation(n.id)
                if session.json { try printJSON(r) } else {
                    print("token rotation asked for node \(n.name) (\(n.id)); its agent replaces the token at its next push")
                }
            }
        }
    }
}

/// `nodes pending` for people.
enum PendingView {
    static func render(_ p: PendingRegistration, now: Date = Date()) -> String {
        var kv = KeyValues()
        kv.add("Pending", "\(p.id) (\(p.status), \(p.reason))")
        kv.add("Machine ID", p.machineId)
        kv.add("Why", p.explanation)
        kv.add("New host", host(p.newcomer, now: now))
        if let h = p.holder { kv.add(h.deleted == true ? "Deleted node" : "Current node", host(h, now: now)) }
        kv.add("Attempts", "\(p.attempts), first \(Fmt.dateAgo(p.firstSeenAt, now: now)), last \(Fmt.dateAgo(p.lastSeenAt, now: now))")
        return kv.render()
    }

    static func host(_ h: RegistrationHost, now: Date) -> String {
        (h.nodeId.map { "\($0) " } ?? "") + "\(h.hostname), kernel \(h.kernel), agent \(h.agentVersion), from "
            + (h.source ?? "?") + ", seen " + Fmt.dateAgo(h.lastSeenAt, now: now)
    }
}

/// `nodes show` for people.
enum NodeView {
    static func render(_ n: NodeInfo, now: Date = Date()) -> String {
        var kv = KeyValues()
        kv.add("Name", n.name)
        kv.add("ID", n.id)
        kv.add("Machine ID", n.machineId)
        kv.add("Labels", Fmt.labels(n.labels))
        kv.add("State", Fmt.connection(n, now: now))
        kv.add("Last seen", Fmt.dateAgo(n.lastSeenAt, now: now))
        kv.add("Registered", Fmt.date(n.registeredAt))
        kv.add("Agent", n.agentVersion)
        kv.add("Kernel", n.kernel)
        kv.add("Memory", "\(Fmt.bytes(n.memTotalBytes)), \(n.numaNodes) NUMA node(s)")
        kv.add("KSM features", n.ksmFeatures.isEmpty ? "-" : n.ksmFeatures.joined(separator: ", "))
        kv.add("Phase", Fmt.phaseWhy(n) + (n.online || n.phase == nil ? "" : " (last reported)"))
        let applied = n.appliedGeneration.map { "\($0)" } ?? "none yet"
        if n.drift {
            kv.add("Drift", "yes: " + (n.driftReason ?? "applied generation \(applied) of \(n.config.generation)"))
        } else {
            kv.add("Drift", "no (applied generation \(applied))")
        }
        if let e = n.applyError { kv.add("Apply error", e) }
        if let s = n.lastSample {
            kv.add(
                "Saved",
                "\(Fmt.bytes(s.savedBytes))" + (s.status.generalProfit.map { " (net profit \(Fmt.bytes($0)))" } ?? ""))
            kv.add("ksmd CPU", Fmt.percent(s.ksmdCPUPercent))
            if !n.online { kv.add("Reported", "these are the last figures, \(Fmt.dateAgo(s.takenAt, now: now))") }
        } else {
            kv.add("Saved", "- (no sample yet)")
        }
        var out = kv.render()
        out += "\n\nConfig:\n" + Fmt.config(n.config).render(indent: "  ")
        if let s = n.lastSample {
            var st = KeyValues()
            st.add("taken", Fmt.dateAgo(s.takenAt, now: now))
            st.add("run", "\(s.status.run)")
            st.add("pages_to_scan", "\(s.status.pagesToScan)")
            st.add("sleep_millisecs", "\(s.status.sleepMillisecs)")
            st.add("pages_shared", "\(s.status.pagesShared)")
            st.add("pages_sharing", "\(s.status.pagesSharing)")
            st.add("pages_unshared", "\(s.status.pagesUnshared)")
            st.add("pages_volatile", "\(s.status.pagesVolatile)")
            st.add("full_scans", "\(s.status.fullScans)")
            if let v = s.status.mergeAcrossNodes { st.add("merge_across_nodes", "\(v)") }
            if let v = s.status.ksmZeroPages { st.add("ksm_zero_pages", "\(v)") }
            st.add(
                "MemAvailable",
                "\(Fmt.memAvailable(s.memory, thresCoef: n.config.config.thresCoef)) of \(Fmt.bytes(s.memory.memTotalKB * 1024))")
            out += "\n\nLast status:\n" + st.render(indent: "  ")
        }
        if let p = n.processes {
            out += "\n\n" + ProcessesView.render(p, at: n.processesAt, pageSize: n.lastSample?.pageSize ?? 4096, now: now)
        }
        if let f = n.findings {
            out += "\n\n" + ProcessesView.render(findings: f)
        }
        return out
    }
}
