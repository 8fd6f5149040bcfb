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
        var lastSeenAt: Date?
        var phase: KSMPhase?
        var phaseReason: String?
        var drift: Bool
        var driftReason: String?
        var applyError: String?
        var desiredGeneration: Int64
        var appliedGeneration: Int64?
    }

    var nodes: Int
    var online: Int
    var offline: Int
    /// Nodes per last reported phase; nodes that never reported count as `unknown`.
    var phases: [String: Int]
    var driftNodes: Int
    /// Sum over online nodes of their last sample's saved bytes.
    var savedBytes: Int64
    /// Sum over online nodes of their last sample's ksmd CPU (% of one CPU).
    var ksmdCPUPercent: Double
    /// Nodes that are offline, drifting or failed to apply, with why.
    var attention: [Attention]

    init(_ list: [NodeInfo]) {
        nodes = list.count
        online = list.filter(\.online).count
        offline = nodes - online
        phases = Dictionary(grouping: list, by: { $0.phase?.rawValue ?? "unknown" }).mapValues(\.count)
        driftNodes = list.filter(\.drift).count
        let live = list.filter(\.online).compactMap(\.lastSample)
        savedBytes = live.reduce(0) { $0 + $1.savedBytes }
        ksmdCPUPercent = live.reduce(0) { $0 + ($1.ksmdCPUPercent ?? 0) }
        attention = list.filter { !$0.online || $0.drift || $0.applyError != nil }
            .sorted { ($0.name, $0.id) < ($1.name, $1.id) }
            .map {
                Attention(
                    id: $0.id, name: $0.name, online: $0.online, lastSeenAt: $0.lastSeenAt, phase: $0.phase,
                    phaseReason: $0.phaseReason, drift: $0.drift, driftReason: $0.driftReason,
                    applyError: $0.applyError, desiredGeneration: $0.config.generation,
                    appliedGeneration: $0.appliedGeneration)
            }
    }
}

struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "The fleet at a glance: nodes online/offline, phases, drift and why, memory saved, ksmd CPU.")

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        try await global.run { session in
            let list = try await session.client.listNodes().nodes
            let status = FleetStatus(list)
            if session.json {
                try printJSON(status)
                return
            }
            var kv = KeyValues()
            kv.add("Nodes", "\(status.nodes) (\(status.online) online, \(status.offline) offline)")
            let phaseOrder = KSMPhase.allCases.map(\.rawValue) + ["unknown"]
            let phases = phaseOrder.compactMap { p in status.phases[p].map { "\(p) \($0)" } }
            kv.add("Phases", phases.isEmpty ? "-" : phases.joined(separator: ", "))
            kv.add("Drift", status.driftNodes == 0 ? "none" : "\(status.driftNodes) node(s) lag their desired config")
            kv.add("Memory saved", "\(Fmt.bytes(status.savedBytes)) (online nodes, last samples)")
            kv.add("ksmd CPU", "\(Fmt.percent(status.ksmdCPUPercent)) of one CPU (sum over online nodes)")
            print(kv.render())
            if !list.isEmpty {
                print("")
                var t = Table(
                    [
                        ("NAME", .left), ("ONLINE", .left), ("PHASE", .left), ("SAVED", .right), ("KSMD CPU", .right),
                        ("WHY", .left),
                    ])
                for n in list.sorted(by: { ($0.name, $0.id) < ($1.name, $1.id) }) {
                    t.add([
                        n.name, n.online ? "yes" : "no", Fmt.phase(n),
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
                    if !a.online { why.append("offline, last seen \(Fmt.dateAgo(a.lastSeenAt))") }
                    if a.drift {
                        why.append(
                            "drift: "
                                + (a.driftReason
                                    ?? "applied generation \(Fmt.opt(a.appliedGeneration)) of \(a.desiredGeneration)"))
                    }
                    if let e = a.applyError { why.append("apply failed: \(e)") }
                    print("  \(a.name) (\(a.id)): \(why.joined(separator: "; "))")
                }
            }
        }
    }
}
