import FleetAPI
import Foundation
import KSMCore

/// `nodes show`: who benefits (the node's newest process report) and why KSM saves little.
enum ProcessesView {
    static func render(_ p: ProcessReport, at: Date?, pageSize: Int, now: Date = Date()) -> String {
        var out = "Who benefits (processes, \(Fmt.dateAgo(at, now: now))):\n"
        guard p.perProcessStats else {
            return out + "  this kernel gives no per-process KSM figures (/proc/PID/ksm_stat needs 6.1+, ksm_merging_pages 5.19+)"
        }
        var kv = KeyValues()
        kv.add(
            "mergeable",
            "\(p.mergeableProcesses) of \(p.processesScanned) processes, \(p.mergingProcesses) with merged pages"
                + (p.truncated ? " (the scan stopped at its cap)" : ""))
        kv.add("tracked", "\(Fmt.bytes(p.rmapItems * Int64(pageSize))) (ksm_rmap_items \(p.rmapItems))")
        if let thp = p.transparentHugePages { kv.add("THP", "[\(thp)]") }
        out += kv.render(indent: "  ")
        if p.groups.isEmpty {
            return out + "\n  no process has KSM pages"
        }
        var t = Table(
            [
                ("GROUP", .left), ("KIND", .left), ("PROCS", .right), ("MERGED", .right), ("TRACKED", .right),
                ("PROFIT", .right),
            ])
        for g in p.groups {
            t.add([
                g.name, g.kind.rawValue, "\(g.processes)", Fmt.bytes(g.mergedBytes(pageSize: pageSize)),
                Fmt.bytes(g.rmapItems * Int64(pageSize)), g.profitBytes.map { Fmt.bytes($0) } ?? "-",
            ])
        }
        return out + "\n\n" + t.render().split(separator: "\n").map { "  " + $0 }.joined(separator: "\n")
    }

    static func render(findings: [Finding]) -> String {
        guard !findings.isEmpty else { return "Findings: none" }
        var lines = ["Findings:"]
        for f in findings {
            lines.append("  [\(f.severity.rawValue)] \(f.message) (\(f.code))")
            for e in f.evidence { lines.append("    evidence: \(e)") }
            lines.append("    advice: \(f.advice)")
        }
        return lines.joined(separator: "\n")
    }
}
