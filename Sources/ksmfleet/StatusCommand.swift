import ArgumentParser
import FleetAPI
import FleetClient
import Foundation
import KSMCore

/// The fleet at a glance, as `status --output json` prints it.
struct FleetStatus: Codable, Equatable {
    struct Attention: Codable, Equatable {
        var id: String
        var name: String
        var online: Bool
        var connection: NodeConnection
        var lastSeenAt: Date?
        var phase: KSMPhase?
        var phaseReason: String?
        var drift: Bool
        var driftReason: String?
        var applyError: String?
        var desiredGeneration: Int64
        var appliedGeneration: Int64?
        /// The node's warning and error findings (why KSM saves little), most severe first.
        var findings: [Finding]?
    }

    var nodes: Int
    var online: Int
    /// Silent past the offline threshold without a goodbye (`FleetNow.offline`).
    var offline: Int
    var agentStopped: Int
    var neverReported: Int
    /// Nodes per last reported phase; nodes that never reported count as `unknown`.
    var phases: [String: Int]
    var driftNodes: Int
    /// Sum over online nodes of their last sample's saved bytes (`FleetNow`, as the server computed it).
    var savedBytes: Int64
    /// Sum over online nodes of their last sample's ksmd CPU (% of one CPU).
    var ksmdCPUPercent: Double
    /// Sum of the last saved bytes of the nodes that are not reporting (shown apart).
    var lastKnownSavedBytesNotReporting: Int64
    /// Nodes that are offline, drifting or failed to apply, with why.
    var attention: [Attention]

    init(_ list: [NodeInfo], summary: FleetNow? = nil) {
        let now = summary ?? FleetNow.of(list)
        nodes = list.count
        online = now.online
        offline = now.offline
        agentStopped = now.agentStopped
        neverReported = now.neverReported
        phases = Dictionary(grouping: list, by: { $0.phase?.rawValue ?? "unknown" }).mapValues(\.count)
        driftNodes = list.filter(\.drift).count
        savedBytes = now.savedBytes
        ksmdCPUPercent = now.ksmdCPUPercent
        lastKnownSavedBytesNotReporting = now.lastKnownSavedBytesNotReporting
        attention = list.filter { !$0.online || $0.drift || $0.applyError != nil || !Self.serious($0).isEmpty }
            .sorted { ($0.name, $0.id) < ($1.name, $1.id) }
            .map {
                Attention(
                    id: $0.id, name: $0.name, online: $0.online, connection: $0.connection, lastSeenAt: $0.lastSeenAt, phase: $0.phase,
                    phaseReason: $0.phaseReason, drift: $0.drift, driftReason: $0.driftReason,
                    applyError: $0.applyError, desiredGeneration: $0.config.generation,
                    appliedGeneration: $0.appliedGeneration, findings: Self.serious($0).nilIfEmpty)
            }
    }

    /// Findings worth the attention list: warnings and errors (info ones are in `nodes show`).
    static func serious(_ n: NodeInfo) -> [Finding] {
        (n.findings ?? []).filter { $0.severity >= .warning }
    }
}

struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "The fleet at a glance: nodes online/offline, phases, drift and why, memory saved, ksmd CPU.")

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        try await global.run { session in
            let reply = try await session.client.allNodes()
            let list = reply.nodes
            let status = FleetStatus(list, summary: reply.summary)
            if session.json {
                try printJSON(status)
                return
            }
            var kv = KeyValues()
            kv.add(
                "Nodes",
                "\(status.nodes) (\(status.online) online, \(status.agentStopped) agent stopped, \(status.offline) offline"
                    + (status.neverReported > 0 ? ", \(status.neverReported) never reported)" : ")"))
            let phaseOrder = KSMPhase.allCases.map(\.rawValue) + ["unknown"]
            let phases = phaseOrder.compactMap { p in status.phases[p].map { "\(p) \($0)" } }
            kv.add("Phases", phases.isEmpty ? "-" : phases.joined(separator: ", "))
            kv.add("Drift", status.driftNodes == 0 ? "none" : "\(status.driftNodes) node(s) lag their desired config")
            kv.add("Memory saved", "\(Fmt.bytes(status.savedBytes)) (online nodes, last samples)")
            // Nodes that reported once and stopped (a node that never reported has no figure).
            if status.agentStopped + status.offline > 0 {
                kv.add(
                    "Not reporting",
                    "\(Fmt.bytes(status.lastKnownSavedBytesNotReporting)) at their last report"
                        + " (\(status.agentStopped) agent stopped, \(status.offline) offline; not counted above)")
            }
            kv.add("ksmd CPU", "\(Fmt.percent(status.ksmdCPUPercent)) of one CPU (sum over online nodes)")
            print(kv.render())
            if !list.isEmpty {
                print("")
                var t = Table(
                    [
                        ("NAME", .left), ("STATE", .left), ("PHASE", .left), ("SAVED", .right), ("KSMD CPU", .right),
                        ("WHY", .left),
                    ])
                for n in list.sorted(by: { ($0.name, $0.id) < ($1.name, $1.id) }) {
                    t.add([
                        n.name, Fmt.connection(n), Fmt.phaseShown(n),
                        n.lastSample.map { Fmt.bytes($0.savedBytes) } ?? "-",
                        Fmt.percent(n.lastSample?.ksmdCPUPercent), n.phaseReason ?? "-",
                    ])
                }
                print(t.render())
            }
            if !status.attention.isEmpty {
                print("\nNeeds attention:")
                for a in status.attention {
                    var why: [String] = []
                    if !a.online {
                        // A node that never reported was last heard from at its registration.
                        let seen = a.connection == .never ? ", registered " : ", last reported "
                        why.append(
                            a.connection.describe(lastSeenAgo: nil)
                                + (a.lastSeenAt == nil ? "" : seen + Fmt.dateAgo(a.lastSeenAt)))
                    }
                    if a.drift {
                        why.append(
                            "drift: "
                                + (a.driftReason
                                    ?? "applied generation \(Fmt.opt(a.appliedGeneration)) of \(a.desiredGeneration)"))
                    }
                    if let e = a.applyError { why.append("apply failed: \(e)") }
                    // The apply error is said above; the other findings with their code.
                    for f in a.findings ?? [] where f.code != "config_not_applied" {
                        why.append("\(f.message) [\(f.code)]")
                    }
                    print("  \(a.name) (\(a.id)): \(why.joined(separator: "; "))")
                }
            }
        }
    }
}

extension Array {
    fileprivate var nilIfEmpty: Self? { isEmpty ? nil : self }
}
