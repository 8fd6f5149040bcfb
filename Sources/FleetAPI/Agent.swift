#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import KSMCore

/// `POST /api/v1/register` (enrollment token).
public struct RegisterRequest: Codable, Sendable, Equatable, KnownFields {
    public var hostname: String
    /// /etc/machine-id: re-registering the same machine returns the same node.
    public var machineId: String
    public var kernel: String
    public var memTotalBytes: Int64
    public var numaNodes: Int
    /// KSM files found under /sys/kernel/mm/ksm (features are detected, never assumed).
    public var ksmFeatures: [String]
    public var agentVersion: String
    public var pageSize: Int?
    /// Proof of identity: the node's current token. A machine id the server already knows keeps
    /// its node only with it; without it the registration becomes a pending one (409).
    public var nodeToken: String?
    /// A random secret the agent keeps in its state directory (0600) and sends with every
    /// registration attempt, so that an accepted pending registration is claimed by this agent
    /// alone (and not by another host with the same machine id).
    public var registrationKey: String?

    public init(
        hostname: String, machineId: String, kernel: String, memTotalBytes: Int64, numaNodes: Int,
        ksmFeatures: [String], agentVersion: String, pageSize: Int? = nil, nodeToken: String? = nil,
        registrationKey: String? = nil
    ) {
        self.hostname = hostname
        self.machineId = machineId
        self.kernel = kernel
        self.memTotalBytes = memTotalBytes
        self.numaNodes = numaNodes
        self.ksmFeatures = ksmFeatures
        self.agentVersion = agentVersion
        self.pageSize = pageSize
        self.nodeToken = nodeToken
        self.registrationKey = registrationKey
    }

    public static let fieldNames: Set<String> = [
        "hostname", "machineId", "kernel", "memTotalBytes", "numaNodes", "ksmFeatures", "agentVersion", "pageSize",
        "nodeToken", "registrationKey",
    ]
}

/// `PUT /api/v1/nodes/{id}/facts` (the node's own token): what the host is now. The agent sends
/// it each time it starts with an identity it already has, and again after it lost the server,
/// so that a kernel or agent upgrade (or downgrade) reaches the server without registering
/// again (which would replace the token). Validated like the same fields of `RegisterRequest`.
public struct NodeFactsRequest: Codable, Sendable, Equatable, KnownFields {
    public var kernel: String
    public var memTotalBytes: Int64
    public var numaNodes: Int
    /// KSM files found under /sys/kernel/mm/ksm (features are detected, never assumed).
    public var ksmFeatures: [String]
    public var agentVersion: String
    public var pageSize: Int?

    public init(
        kernel: String, memTotalBytes: Int64, numaNodes: Int, ksmFeatures: [String], agentVersion: String,
        pageSize: Int? = nil
    ) {
        self.kernel = kernel
        self.memTotalBytes = memTotalBytes
        self.numaNodes = numaNodes
        self.ksmFeatures = ksmFeatures
        self.agentVersion = agentVersion
        self.pageSize = pageSize
    }

    /// The facts a registration carries.
    public init(_ r: RegisterRequest) {
        self.init(
            kernel: r.kernel, memTotalBytes: r.memTotalBytes, numaNodes: r.numaNodes, ksmFeatures: r.ksmFeatures,
            agentVersion: r.agentVersion, pageSize: r.pageSize)
    }

    public static let fieldNames: Set<String> = [
        "kernel", "memTotalBytes", "numaNodes", "ksmFeatures", "agentVersion", "pageSize",
    ]

    /// Longest kernel release and agent version the server stores.
    public static let maxTextBytes = 256
    /// Most KSM file names a node may report, and their longest (the directory has about 20).
    public static let maxFeatures = 128
    public static let maxFeatureBytes = 64

    /// The first field the server refuses, with why (nil when every field is acceptable): the
    /// registration's own limits, shared by `POST /api/v1/register` and the facts update.
    public var invalidField: (field: String, message: String)? {
        for (field, value) in [("kernel", kernel), ("agentVersion", agentVersion)]
        where value.utf8.count > Self.maxTextBytes {
            return (field, "must be at most \(Self.maxTextBytes) bytes")
        }
        if ksmFeatures.count > Self.maxFeatures {
            return ("ksmFeatures", "at most \(Self.maxFeatures) names; got \(ksmFeatures.count)")
        }
        if let bad = ksmFeatures.first(where: { $0.isEmpty || $0.utf8.count > Self.maxFeatureBytes }) {
            return ("ksmFeatures", "each name must be 1 to \(Self.maxFeatureBytes) bytes; got '\(bad.prefix(40))' (\(bad.utf8.count) bytes)")
        }
        if memTotalBytes < 0 { return ("memTotalBytes", "must not be negative") }
        if numaNodes < 0 { return ("numaNodes", "must not be negative") }
        if let p = pageSize, p <= 0 { return ("pageSize", "must be positive") }
        return nil
    }
}

/// The answer to `PUT /api/v1/nodes/{id}/facts`: the fields whose stored value changed (empty
/// when the server had them already).
public struct NodeFactsResponse: Codable, Sendable, Equatable, KnownFields {
    public var nodeId: String
    public var changed: [String]

    public init(nodeId: String, changed: [String]) {
        self.nodeId = nodeId
        self.changed = changed
    }

    public static let fieldNames: Set<String> = ["nodeId", "changed"]
}

public struct RegisterResponse: Codable, Sendable, Equatable, KnownFields {
    public var nodeId: String
    /// Shown once; the server keeps only its hash.
    public var nodeToken: String
    public var config: NodeConfig
    /// True when this machine id was already known (the node proved its identity, or an admin
    /// accepted this registration; its token was replaced).
    public var reregistered: Bool

    public init(nodeId: String, nodeToken: String, config: NodeConfig, reregistered: Bool) {
        self.nodeId = nodeId
        self.nodeToken = nodeToken
        self.config = config
        self.reregistered = reregistered
    }

    public static let fieldNames: Set<String> = ["nodeId", "nodeToken", "config", "reregistered"]
    public static var nestedFields: [String: any KnownFields.Type] { ["config": NodeConfig.self] }
}

/// One status sample from an agent. `seq` increases by one per sample on a node and survives
/// agent restarts (it is kept in the state directory), so the server can deduplicate replays.
public struct StatusSample: Codable, Sendable, Equatable, KnownFields {
    public var seq: Int64
    public var takenAt: Date
    public var status: KSMStatus
    public var memory: MemorySnapshot
    public var pageSize: Int
    /// ksmd CPU in % of one CPU since the previous sample; nil for the first one.
    public var ksmdCPUPercent: Double?
    /// Cumulative ksmd CPU seconds (utime+stime), for CPU-hours in reports.
    public var ksmdCPUSeconds: Double?
    public var phase: KSMPhase
    public var phaseReason: String
    /// The config generation in force on the node; nil before the first apply.
    public var appliedGeneration: Int64?
    /// Why the last apply failed, in words; nil when it succeeded.
    public var applyError: String?
    /// Samples the agent's spool dropped (oldest first) since the last accepted batch.
    public var droppedSamples: Int64?
    /// The agent's goodbye on a clean stop: the kernel as it left it (run state, pages still
    /// merged) and, in `phaseReason`, what it did. Its data ends here (no tail).
    public var agentStopped: Bool?
    /// Who benefits: the agent's scan of `/proc/PID/ksm_stat`, on every Nth sample only (see
    /// agent/README); nil on the others and on kernels before 5.19.
    public var processes: ProcessReport?

    public init(
        seq: Int64, takenAt: Date, status: KSMStatus, memory: MemorySnapshot, pageSize: Int,
        ksmdCPUPercent: Double? = nil, ksmdCPUSeconds: Double? = nil, phase: KSMPhase,
        phaseReason: String, appliedGeneration: Int64? = nil, applyError: String? = nil,
        droppedSamples: Int64? = nil, agentStopped: Bool? = nil, processes: ProcessReport? = nil
    ) {
        self.seq = seq
        self.takenAt = takenAt
        self.status = status
        self.memory = memory
        self.pageSize = pageSize
        self.ksmdCPUPercent = ksmdCPUPercent
        self.ksmdCPUSeconds = ksmdCPUSeconds
        self.phase = phase
        self.phaseReason = phaseReason
        self.appliedGeneration = appliedGeneration
        self.applyError = applyError
        self.droppedSamples = droppedSamples
        self.agentStopped = agentStopped
        self.processes = processes
    }

    /// Bytes KSM saves on the node at this sample.
    public var savedBytes: Int64 { Savings.savedBytes(status, pageSize: pageSize) }

    public static let fieldNames: Set<String> = [
        "seq", "takenAt", "status", "memory", "pageSize", "ksmdCPUPercent", "ksmdCPUSeconds", "phase",
        "phaseReason", "appliedGeneration", "applyError", "droppedSamples", "agentStopped", "processes",
    ]
    public static var nestedFields: [String: any KnownFields.Type] {
        ["status": KSMStatus.self, "memory": MemorySnapshot.self, "processes": ProcessReport.self]
    }
}

extension KSMStatus: KnownFields {
    public static let fieldNames: Set<String> = [
        "run", "pagesToScan", "sleepMillisecs", "pagesShared", "pagesSharing", "pagesUnshared",
        "pagesVolatile", "fullScans", "mergeAcrossNodes", "maxPageSharing", "stableNodeChains",
        "stableNodeDups", "useZeroPages", "ksmZeroPages", "generalProfit", "pagesScanned", "pagesSkipped",
        "smartScan", "advisorMode", "advisorTargetScanTime", "advisorMinPagesToScan", "advisorMaxPagesToScan",
        "advisorMaxCPU",
    ]
}

extension ProcessReport: KnownFields {
    public static let fieldNames: Set<String> = [
        "perProcessStats", "processesScanned", "mergeableProcesses", "mergingProcesses", "rmapItems",
        "mergingPages", "anonHugePagesKB", "anonymousKB", "transparentHugePages", "truncated", "scanMillis", "groups",
    ]
    public static var nestedFields: [String: any KnownFields.Type] { ["groups": ProcessGroupSavings.self] }
    /// Most groups a report may carry (the server keeps no more).
    public static let maxGroups = 50
    /// Longest group name the server keeps (longer ones are cut).
    public static let maxNameLength = 200
}

extension ProcessGroupSavings: KnownFields {
    public static let fieldNames: Set<String> = [
        "kind", "name", "processes", "mergingPages", "zeroPages", "rmapItems", "profitBytes",
    ]
}

extension MemorySnapshot: KnownFields {
    public static let fieldNames: Set<String> = [
        "memTotalKB", "memAvailableKB", "memFreeKB", "buffersKB", "cachedKB", "anonPagesKB",
    ]
}

/// `POST /api/v1/nodes/{id}/samples`.
public struct SampleBatch: Codable, Sendable, Equatable, KnownFields {
    public var samples: [StatusSample]
    public init(samples: [StatusSample]) { self.samples = samples }
    public static let fieldNames: Set<String> = ["samples"]
    public static var nestedFields: [String: any KnownFields.Type] { ["samples": StatusSample.self] }
    /// Most samples one batch may carry.
    public static let maxSamples = 1000
}

public struct SampleBatchAck: Codable, Sendable, Equatable, KnownFields {
    /// Highest sequence number the server holds for this node; the agent may forget every
    /// spooled sample up to it.
    public var highestSeq: Int64
    /// Samples of this batch that were new.
    public var stored: Int
    /// Samples of this batch the server already had.
    public var duplicates: Int
    /// True when the node's token is due for rotation (the server's schedule, or an admin's
    /// `ksmfleet nodes rotate-token`): the agent should get a new one with
    /// `POST /api/v1/nodes/{id}/token`. Absent otherwise.
    public var rotateToken: Bool?
    public init(highestSeq: Int64, stored: Int, duplicates: Int, rotateToken: Bool? = nil) {
        self.highestSeq = highestSeq
        self.stored = stored
        self.duplicates = duplicates
        self.rotateToken = rotateToken
    }
    public static let fieldNames: Set<String> = ["highestSeq", "stored", "duplicates", "rotateToken"]
}

extension SampleBatchAck {
    /// The reply body as `JSONEncoder` with sorted keys writes it (three integers, so no
    /// escaping), without the encoder: it is sent once per push.
    public var json: String {
        let rotate = rotateToken == true ? #","rotateToken":true"# : ""
        return #"{"duplicates":\#(duplicates),"highestSeq":\#(highestSeq)\#(rotate),"stored":\#(stored)}"#
    }
}
