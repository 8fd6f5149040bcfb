/// Whether a node's agent is reporting, and if not, why its figures are old.
public enum NodeConnection: String, Codable, Sendable, CaseIterable {
    /// Sent a sample within the server's offline threshold.
    case online
    /// The agent said goodbye on a clean stop (its last sample says what it left in the kernel).
    case agentStopped
    /// Silent for longer than the offline threshold without a goodbye (crash, host down, network).
    case offline
    /// Registered but never sent a sample.
    case never

    public init(from decoder: any Decoder) throws {
        self = try decodeEnum(decoder, Self.self)
    }

    /// The state of a node last heard from at `lastSeenAt` (Unix seconds), whose newest sample
    /// was (`agentStopped`) or was not a goodbye.
    public static func of(lastSeenAt: Double?, agentStopped: Bool, now: Double, offlineAfter: Double) -> NodeConnection {
        guard let seen = lastSeenAt else { return .never }
        if agentStopped { return .agentStopped }
        return now - seen <= offlineAfter ? .online : .offline
    }

    /// In an operator's words, e.g. "agent stopped, last reported 5m ago"; a node that never
    /// reported was last heard from at its registration: "never reported, registered 2m ago".
    public func describe(lastSeenAgo: String?) -> String {
        let ago = lastSeenAgo.map { ", last reported \($0) ago" } ?? ""
        switch self {
        case .online: return "online"
        case .agentStopped: return "agent stopped" + ago
        case .offline: return "offline" + ago
        case .never: return "never reported" + (lastSeenAgo.map { ", registered \($0) ago" } ?? "")
        }
    }
}

/// The fleet's figures "now": the sum of the last samples of the nodes that are reporting, and,
/// apart, the last figures of the nodes that are not (agent stopped or offline) — their kernels
/// may still share those pages, but nobody is watching them.
public struct FleetNow: Codable, Sendable, Equatable {
    public var nodes: Int
    public var online: Int
    public var agentStopped: Int
    public var offline: Int
    public var neverReported: Int
    /// Sum of the online nodes' last saved bytes.
    public var savedBytes: Int64
    /// Sum of the online nodes' last ksmd CPU (% of one CPU).
    public var ksmdCPUPercent: Double
    /// Sum of the last saved bytes reported by nodes that are not reporting now.
    public var lastKnownSavedBytesNotReporting: Int64

    public init(
        nodes: Int = 0, online: Int = 0, agentStopped: Int = 0, offline: Int = 0, neverReported: Int = 0,
        savedBytes: Int64 = 0, ksmdCPUPercent: Double = 0, lastKnownSavedBytesNotReporting: Int64 = 0
    ) {
        self.nodes = nodes
        self.online = online
        self.agentStopped = agentStopped
        self.offline = offline
        self.neverReported = neverReported
        self.savedBytes = savedBytes
        self.ksmdCPUPercent = ksmdCPUPercent
        self.lastKnownSavedBytesNotReporting = lastKnownSavedBytesNotReporting
    }

    /// One node as the summary needs it.
    public struct Node: Sendable {
        public var connection: NodeConnection
        public var savedBytes: Int64?
        public var ksmdCPUPercent: Double?
        public init(connection: NodeConnection, savedBytes: Int64?, ksmdCPUPercent: Double?) {
            self.connection = connection
            self.savedBytes = savedBytes
            self.ksmdCPUPercent = ksmdCPUPercent
        }
    }

    /// The summary, computed once here for the API, the CLI, the dashboard and /metrics.
    public static func summarize(_ nodes: [Node]) -> FleetNow {
        var f = FleetNow(nodes: nodes.count)
        for n in nodes {
            switch n.connection {
            case .online:
                f.online += 1
                f.savedBytes = f.savedBytes.addingSaturating(n.savedBytes ?? 0)
                f.ksmdCPUPercent += n.ksmdCPUPercent ?? 0
            case .agentStopped, .offline:
                if n.connection == .agentStopped { f.agentStopped += 1 } else { f.offline += 1 }
                f.lastKnownSavedBytesNotReporting = f.lastKnownSavedBytesNotReporting.addingSaturating(n.savedBytes ?? 0)
            case .never:
                f.neverReported += 1
            }
        }
        return f
    }
}

extension Int64 {
    func addingSaturating(_ o: Int64) -> Int64 {
        let (r, overflow) = addingReportingOverflow(o)
        return overflow ? (o > 0 ? .max : .min) : r
    }
}
