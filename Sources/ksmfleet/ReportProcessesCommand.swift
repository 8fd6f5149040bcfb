import ArgumentParser
import FleetAPI
import FleetClient
import Foundation
import KSMCore

extension ReportCommand {
    struct Processes: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Who benefited: merged memory per node and process group (VM, container, pod, unit, command).",
            discussion: """
                From the agents' process reports (/proc/PID/ksm_stat, kernels 6.1+), kept per UTC day: \
                the peak, the mean and the last merged memory of each group that was among its node's top \
                groups. Merged memory is a group's pages that map a KSM page or the zero page; summed over \
                groups it exceeds the node's saving by one copy of each shared page.
                """)

        @OptionGroup var period: PeriodOptions

        @Option(help: "One node (id or name); all nodes when left out.")
        var node: String?

        @Option(help: "Most rows (1-10000).")
        var limit: Int = 50

        @OptionGroup var global: GlobalOptions

        func validate() throws {
            guard (1...10_000).contains(limit) else { throw ValidationError("--limit must be from 1 to 10000") }
        }

        func run() async throws {
            let (since, until) = orExit { () throws(CLIError) in try period.resolved() }
            try await global.run { session in
                let r = try await session.client.processReport(since: since, until: until, node: node, limit: limit)
                if session.json {
                    try printJSON(r)
                    return
                }
                print(Self.table(r))
            }
        }

        static func table(_ r: ProcessSavingsReport) -> String {
            var out = "Who benefited from \(Fmt.isoSeconds(r.since)) to \(Fmt.isoSeconds(r.until))"
            if let n = r.node { out += " on \(n)" }
            out += "\n\n"
            guard !r.rows.isEmpty else {
                return out + "No process reports in this period (agents send them on kernels with /proc/PID/ksm_stat)."
            }
            var t = Table(
                [
                    ("NODE", .left), ("GROUP", .left), ("KIND", .left), ("PEAK MERGED", .right), ("AVG", .right),
                    ("LAST", .right), ("PROCS", .right), ("LAST SEEN", .left),
                ])
            for row in r.rows {
                t.add([
                    row.nodeName ?? row.nodeId, row.name, row.kind.rawValue, Fmt.bytes(row.peakMergedBytes),
                    Fmt.bytes(row.avgMergedBytes), Fmt.bytes(row.lastMergedBytes), "\(row.processes)",
                    Fmt.isoSeconds(row.lastAt),
                ])
            }
            return out + t.render()
        }
    }
}
