#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import KSMCore

/// `GET /api/v1/reports/processes`: who benefited from KSM over a period, per node and process
/// group (VM, container, pod, unit, command), from the agents' process reports.
public struct ProcessSavingsReport: Codable, Sendable, Equatable {
    public var since: Date
    public var until: Date
    /// The node asked for (id), or nil for the whole fleet.
    public var node: String?
    public var generatedAt: Date
    /// Largest peak first.
    public var rows: [ProcessSavingsRow]

    public init(since: Date, until: Date, node: String?, generatedAt: Date, rows: [ProcessSavingsRow]) {
        self.since = since
        self.until = until
        self.node = node
        self.generatedAt = generatedAt
        self.rows = rows
    }
}

/// One group on one node over the period. Merged bytes are the group's pages that map a KSM
/// page or the zero page (`ksm_merging_pages + ksm_zero_pages`, times the page size).
public struct ProcessSavingsRow: Codable, Sendable, Equatable {
    public var nodeId: String
    public var nodeName: String?
    public var kind: ProcessGroupKind
    public var name: String
    /// Reports (of the period's UTC days) that listed the group among the node's top groups.
    public var reports: Int
    public var peakMergedBytes: Int64
    public var peakAt: Date
    /// Mean over the reports that listed the group.
    public var avgMergedBytes: Double
    public var lastMergedBytes: Int64
    public var lastAt: Date
    /// Processes of the group in its last report.
    public var processes: Int

    public init(
        nodeId: String, nodeName: String?, kind: ProcessGroupKind, name: String, reports: Int,
        peakMergedBytes: Int64, peakAt: Date, avgMergedBytes: Double, lastMergedBytes: Int64, lastAt: Date,
        processes: Int
    ) {
        self.nodeId = nodeId
        self.nodeName = nodeName
        self.kind = kind
        self.name = name
        self.reports = reports
        self.peakMergedBytes = peakMergedBytes
        self.peakAt = peakAt
        self.avgMergedBytes = avgMergedBytes
        self.lastMergedBytes = lastMergedBytes
        self.lastAt = lastAt
        self.processes = processes
    }
}
