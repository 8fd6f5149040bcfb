import ArgumentParser
import FleetAPI
import FleetClient
import Foundation
import KSMCore

struct ReportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Reports over the fleet's history.",
        subcommands: [Savings.self, Processes.self])
}

extension ReportCommand {
    enum Format: String, ExpressibleByArgument, CaseIterable {
        case table, json, csv
    }

    struct Savings: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Memory KSM saved and the ksmd CPU it cost, per node, label value or day.",
            discussion: """
                Averages are over the time with data: a node offline half the period shows coverage \
                50 % and its gaps, not half the saving. The last row is the fleet total.
                """)

        @OptionGroup var period: PeriodOptions

        @Option(help: "Rows per node, per label value (with --label KEY) or per UTC day.")
        var by: ReportGrouping = .node

        @Option(help: "The label key for --by label.")
        var label: String?

        @Option(help: "table, json or csv (default: --output).")
        var format: Format?

        @OptionGroup var global: GlobalOptions

        func validate() throws {
            if by == .label && (label ?? "").isEmpty {
                throw ValidationError("--by label needs --label KEY (the label whose values make the rows)")
            }
            if by != .label && label != nil {
                throw ValidationError("--label KEY only goes with --by label")
            }
        }

        func run() async throws {
            let (since, until) = orExit { () throws(CLIError) in try period.resolved() }
            let format = format ?? (global.output == .json ? .json : .table)
            try await global.run { session in
                switch format {
                case .csv:
                    let text = try await session.client.savingsReportCSV(
                        since: since, until: until, by: by, label: label)
                    print(text, terminator: text.hasSuffix("\n") ? "" : "\n")
                case .json:
                    try printJSON(
                        try await session.client.savingsReport(since: since, until: until, by: by, label: label))
                case .table:
                    let r = try await session.client.savingsReport(since: since, until: until, by: by, label: label)
                    print(Self.table(r))
                }
            }
        }

        static func table(_ r: SavingsReport) -> String {
            var out = "Savings from \(Fmt.isoSeconds(r.since)) to \(Fmt.isoSeconds(r.until)) by \(r.by.rawValue)"
            if let l = r.label { out += " '\(l)'" }
            out += "\n\n"
            let keyHeader = r.by == .node ? "NODE" : r.by == .day ? "DAY" : "VALUE"
            var t = Table(
                [
                    (keyHeader, .left), ("NODES", .right), ("AVG SAVED", .right), ("PEAK SAVED", .right),
                    ("GiB-HOURS", .right), ("CPU-HOURS", .right), ("AVG CPU", .right), ("GiB/CORE", .right),
                    ("RUNNING", .right), ("COVERAGE", .right),
                ])
            func add(_ row: SavingsRow, key: String) {
                let running = row.phaseHours[KSMPhase.running.rawValue] ?? 0
                t.add([
                    key, "\(row.nodes)", Fmt.bytes(row.avgSavedBytes),
                    Fmt.bytes(row.peakSavedBytes) + (row.peakBasis.map { $0 == .samples ? "" : "*" } ?? ""),
                    Display.number(row.savedGiBHours), Display.number(row.ksmdCPUHours),
                    row.avgKsmdCPUCores.map { Fmt.percent($0 * 100) } ?? "-", Fmt.number(row.efficiencyGiBPerCore),
                    Display.hours(running), row.coverage.map(Display.fraction) ?? "-",
                ])
            }
            func label(_ row: SavingsRow) -> String {
                var key =
                    row.name.map { "\($0) (\(row.key))" } ?? (row.key.isEmpty && r.by == .label ? "(none)" : row.key)
                if row.deleted == true { key += " [deleted]" }
                return key
            }
            for row in r.rows { add(row, key: label(row)) }
            add(r.total, key: "TOTAL")
            out += t.render()
            if (r.rows + [r.total]).contains(where: { $0.peakBasis != nil && $0.peakBasis != .samples }) {
                out +=
                    "\n\n* peak from rollups (raw samples no longer kept, or hour peaks not computed yet): the higher of the highest hourly (daily) average of the group's total and"
                    + " the highest single-node peak, a lower bound of the peak at one moment (docs/numbers.md)"
            }
            let gappy = r.rows.filter { !$0.gaps.isEmpty }
            if !gappy.isEmpty {
                out += "\n\nGaps (no data; not counted as zero):"
                for row in gappy {
                    let shown = row.gaps.prefix(5).map {
                        "\(Fmt.isoSeconds($0.from)) → \(Fmt.isoSeconds($0.to))"
                    }.joined(separator: ", ")
                    out += "\n  \(label(row)): \(shown)\(row.gaps.count > 5 ? " and \(row.gaps.count - 5) more" : "")"
                }
            }
            return out
        }
    }
}
