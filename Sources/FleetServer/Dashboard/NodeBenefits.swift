import FleetAPI
import Foundation
import KSMCore

/// The node page's "Why KSM saves little" and "Who benefits" panels (`node.mustache`): the
/// node's findings and its newest process report, as text the template only prints.
struct NodeBenefits: Sendable, Equatable {
    struct FindingRow: Sendable, Equatable {
        var badge: Badge
        var code: String
        var message: String
        var evidence: [String]
        var advice: String
    }

    struct GroupRow: Sendable, Equatable {
        var name: String
        var kind: String
        var processes: String
        var merged: String
        var tracked: String
        var profit: String
    }

    var findings: [FindingRow]
    /// One line on the scan: mergeable processes, how many merged, THP, when.
    var summary: String?
    /// Why there is no table: no report yet, or a kernel without per-process figures.
    var note: String?
    var groups: [GroupRow]
    /// Stored, not computed: the templates see stored properties only.
    var hasFindings: Bool
    var hasGroups = false

    init(_ n: NodeInfo, now: Date) {
        findings = (n.findings ?? []).map {
            FindingRow(
                badge: Badge(
                    text: $0.severity.rawValue,
                    kind: $0.severity == .error ? "bad" : $0.severity == .warning ? "warn" : "info"),
                code: $0.code, message: $0.message, evidence: $0.evidence, advice: $0.advice)
        }
        hasFindings = !findings.isEmpty
        let pageSize = Int64(n.lastSample?.pageSize ?? 4096)
        guard let p = n.processes else {
            summary = nil
            note =
                "No process report yet: agents send one with a sample about once a minute, on kernels with "
                + "/proc/PID/ksm_stat (6.1+) or /proc/PID/ksm_merging_pages (5.19+)."
            groups = []
            return
        }
        guard p.perProcessStats else {
            summary = nil
            note = "This kernel gives no per-process KSM figures (/proc/PID/ksm_stat needs Linux 6.1, ksm_merging_pages 5.19)."
            groups = []
            return
        }
        var line =
            "\(p.mergeableProcesses) of \(p.processesScanned) processes have mergeable memory, "
            + "\(p.mergingProcesses) \(p.mergingProcesses == 1 ? "has" : "have") merged pages; KSM tracks \(HTML.bytes(p.rmapItems * pageSize))"
        if let thp = p.transparentHugePages { line += "; transparent huge pages [\(thp)]" }
        if p.truncated { line += "; the scan stopped at its cap" }
        line += " (scanned \(HTML.ago(n.processesAt, now: now)))"
        summary = line
        note = p.groups.isEmpty ? "No process has KSM pages." : nil
        groups = p.groups.map {
            GroupRow(
                name: $0.name, kind: $0.kind.rawValue, processes: String($0.processes),
                merged: HTML.bytes($0.mergedBytes(pageSize: Int(pageSize))), tracked: HTML.bytes($0.rmapItems * pageSize),
                profit: $0.profitBytes.map { HTML.bytes($0) } ?? "—")
        }
        hasGroups = !groups.isEmpty
    }
}
