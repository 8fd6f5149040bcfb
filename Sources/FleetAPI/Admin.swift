#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import KSMCore

/// A node as the admin API shows it.
public struct NodeInfo: Codable, Sendable, Equatable, KnownFields {
    public var id: String
    public var name: String
    public var machineId: String
    public var labels: [String: String]
    public var kernel: String
    public var memTotalBytes: Int64
    public var numaNodes: Int
    public var ksmFeatures: [String]
    public var agentVersion: String
    public var registeredAt: Date
    public var lastSeenAt: Date?
    /// Seen within the server's offline threshold, and the agent did not say goodbye.
    public var online: Bool
    /// online, agentStopped (clean stop, with a goodbye sample), offline (silent), never.
    public var connection: NodeConnection
    public var config: NodeConfig
    /// Last reported phase and why.
    public var phase: KSMPhase?
    public var phaseReason: String?
    public var appliedGeneration: Int64?
    public var applyError: String?
    /// Desired generation not yet applied (or failed), with the reason in words.
    public var drift: Bool
    public var driftReason: String?
    public var lastSample: StatusSample?
    /// Who benefits: the newest process report the agent sent (every Nth sample), and when.
    public var processes: ProcessReport?
    public var processesAt: Date?
    /// Why KSM saves little on this node, most severe first (`Findings.evaluate`); empty when
    /// nothing stands out, nil from a server older than findings.
    public var findings: [Finding]?

    public init(
        id: String, name: String, machineId: String, labels: [String: String], kernel: String,
        memTotalBytes: Int64, numaNodes: Int, ksmFeatures: [String], agentVersion: String,
        registeredAt: Date, lastSeenAt: Date?, online: Bool, connection: NodeConnection, config: NodeConfig,
        phase: KSMPhase?,
        phaseReason: String?, appliedGeneration: Int64?, applyError: String?, drift: Bool,
        driftReason: String?, lastSample: StatusSample?, processes: ProcessReport? = nil,
        processesAt: Date? = nil, findings: [Finding]? = nil
    ) {
        self.id = id
        self.name = name
        self.machineId = machineId
        self.labels = labels
        self.kernel = kernel
        self.memTotalBytes = memTotalBytes
        self.numaNodes = numaNodes
        self.ksmFeatures = ksmFeatures
        self.agentVersion = agentVersion
        self.registeredAt = registeredAt
        self.lastSeenAt = lastSeenAt
        self.online = online
        self.connection = connection
        self.config = config
        self.phase = phase
        self.phaseReason = phaseReason
        self.appliedGeneration = appliedGeneration
        self.applyError = applyError
        self.drift = drift
        self.driftReason = driftReason
        self.lastSample = lastSample
        self.processes = processes
        self.processesAt = processesAt
        self.findings = findings
    }

    public static let fieldNames: Set<String> = [
        "id", "name", "machineId", "labels", "kernel", "memTotalBytes", "numaNodes", "ksmFeatures",
        "agentVersion", "registeredAt", "lastSeenAt", "online", "connection", "config", "phase", "phaseReason",
        "appliedGeneration", "applyError", "drift", "driftReason", "lastSample", "processes", "processesAt",
        "findings",
    ]
}

public struct NodeList: Codable, Sendable, Equatable {
    public var nodes: [NodeInfo]
    /// The listed nodes' figures now (`FleetNow.summarize`), the one source of "saved now".
    /// Present when the answer lists every node that matches (one page of a longer list does not
    /// say what the rest hold).
    public var summary: FleetNow?
    /// Asked with `limit` and more matching nodes follow: the `after` of the next page (the name
    /// of this page's last node).
    public var next: String?
    public init(nodes: [NodeInfo], summary: FleetNow? = nil, next: String? = nil) {
        self.nodes = nodes
        self.summary = summary
        self.next = next
    }
}

extension NodeList {
    /// Nodes read in several pages, each once: a node in two pages (renamed between them) is
    /// kept where it was read last.
    public static func lastOfEach(_ nodes: [NodeInfo]) -> [NodeInfo] {
        var last: [String: Int] = [:]
        for (i, n) in nodes.enumerated() { last[n.id] = i }
        return nodes.enumerated().filter { last[$0.element.id] == $0.offset }.map(\.element)
    }
}

/// Pages of `GET /api/v1/nodes` (`limit`, `after`): nodes by name in byte order.
public enum NodePages {
    /// The most nodes one page holds.
    public static let maxLimit = 10_000
    /// The page the CLI asks for: at about 1.1 kB a node, a 1 MB answer.
    public static let clientPage = 1_000
}

extension FleetNow {
    /// The summary of these nodes.
    public static func of(_ nodes: [NodeInfo]) -> FleetNow {
        summarize(
            nodes.map {
                Node(
                    connection: $0.connection, savedBytes: $0.lastSample?.savedBytes,
                    ksmdCPUPercent: $0.lastSample?.ksmdCPUPercent)
            })
    }
}

/// `PUT /api/v1/nodes/{id}/labels`: the node's whole label set.
public struct LabelsRequest: Codable, Sendable, Equatable, KnownFields {
    public var labels: [String: String]
    public init(labels: [String: String]) { self.labels = labels }
    public static let fieldNames: Set<String> = ["labels"]
    /// Labels a node may carry, and their sizes in bytes (Kubernetes' label names are 63 too).
    public static let maxLabels = 64
    public static let maxKeyBytes = 63
    public static let maxValueBytes = 253
}

/// `POST /api/v1/config/apply`: a change to many nodes, by ids or by label selector
/// (`k=v,k2=v2`, all must match). Exactly one of `nodes`, `selector`, `all` is given.
public struct ApplyRequest: Codable, Sendable, Equatable, KnownFields {
    public var nodes: [String]?
    public var selector: String?
    public var all: Bool?
    public var change: ConfigPatch
    public var dryRun: Bool?

    public init(nodes: [String]? = nil, selector: String? = nil, all: Bool? = nil, change: ConfigPatch, dryRun: Bool? = nil) {
        self.nodes = nodes
        self.selector = selector
        self.all = all
        self.change = change
        self.dryRun = dryRun
    }

    public static let fieldNames: Set<String> = ["nodes", "selector", "all", "change", "dryRun"]
    public static var nestedFields: [String: any KnownFields.Type] { ["change": ConfigPatch.self] }
}

public struct ApplyResult: Codable, Sendable, Equatable {
    /// `changed`, `unchanged`, `would_change` (dry run), `failed`, `not_found`.
    public var status: String
    public var nodeId: String
    public var name: String?
    public var generation: Int64?
    public var changes: [String]
    public var error: APIErrorBody.Detail?

    public init(status: String, nodeId: String, name: String?, generation: Int64?, changes: [String], error: APIErrorBody.Detail? = nil) {
        self.status = status
        self.nodeId = nodeId
        self.name = name
        self.generation = generation
        self.changes = changes
        self.error = error
    }
}

public struct ApplyResponse: Codable, Sendable, Equatable {
    public var results: [ApplyResult]
    public var dryRun: Bool
    public init(results: [ApplyResult], dryRun: Bool) {
        self.results = results
        self.dryRun = dryRun
    }
}

public struct KickResponse: Codable, Sendable, Equatable {
    public var nodeId: String
    public var kickCounter: Int64
    public var generation: Int64
    public init(nodeId: String, kickCounter: Int64, generation: Int64) {
        self.nodeId = nodeId
        self.kickCounter = kickCounter
        self.generation = generation
    }
}

/// `POST /api/v1/enrollment-tokens`.
public struct CreateEnrollmentTokenRequest: Codable, Sendable, Equatable, KnownFields {
    public var expiresAt: Date?
    public var description: String?
    public init(expiresAt: Date? = nil, description: String? = nil) {
        self.expiresAt = expiresAt
        self.description = description
    }
    public static let fieldNames: Set<String> = ["expiresAt", "description"]
}

public struct EnrollmentTokenInfo: Codable, Sendable, Equatable {
    public var id: String
    public var description: String?
    public var createdAt: Date
    public var expiresAt: Date?
    public var revokedAt: Date?
    /// Only in the reply to create: the token itself, shown once.
    public var token: String?
    public init(id: String, description: String?, createdAt: Date, expiresAt: Date?, revokedAt: Date?, token: String? = nil) {
        self.id = id
        self.description = description
        self.createdAt = createdAt
        self.expiresAt = expiresAt
        self.revokedAt = revokedAt
        self.token = token
    }
}

public struct EnrollmentTokenList: Codable, Sendable, Equatable {
    public var tokens: [EnrollmentTokenInfo]
    public init(tokens: [EnrollmentTokenInfo]) { self.tokens = tokens }
}

/// Parses a label selector `k=v,k2=v2` (all must match).
public func parseSelector(_ text: String) throws(InputError) -> [String: String] {
    var out: [String: String] = [:]
    for part in text.split(separator: ",") {
        let kv = part.split(separator: "=", maxSplits: 1).map(\.trimmed)
        guard kv.count == 2, !kv[0].isEmpty else {
            throw InputError(code: "invalid_value", field: "selector", message: "'\(part)' is not key=value")
        }
        // `env=prod,env=staging` matches no node (all must match); keeping the last value
        // changed every env=staging node instead.
        guard out[kv[0]] == nil else {
            throw InputError(
                code: "invalid_value", field: "selector",
                message: "'\(kv[0])' is named twice; a node has one value per label (all pairs must match)")
        }
        out[kv[0]] = kv[1]
    }
    if out.isEmpty { throw InputError(code: "invalid_value", field: "selector", message: "empty selector") }
    return out
}
