import ArgumentParser
import FleetAPI
import FleetClient
import Foundation
import KSMCore

extension HistoryResolution: ExpressibleByArgument {}
extension ReportGrouping: ExpressibleByArgument {}

/// `--since` / `--until` for history and reports.
struct PeriodOptions: ParsableArguments {
    @Option(
        parsing: .unconditional, help: "Start: ISO 8601, now, or a duration ago (24h, 7d). Default: 24h before --until."
    )
    var since: String?

    @Option(parsing: .unconditional, help: "End: ISO 8601, now, or a duration ago. Default: now.")
    var until: String?

    func resolved(now: Date = Date()) throws(CLIError) -> (Date?, Date?) {
        // In whole seconds, as the client sends times, and rounded up: a period that ends now
        // takes in every sample taken up to now.
        let now = Date(timeIntervalSince1970: now.timeIntervalSince1970.rounded(.up))
        let s = try since.map { t throws(CLIError) in
            try TimeArgument.parse(t, option: "--since", direction: .past, now: now)
        }
        let u = try until.map { t throws(CLIError) in
            try TimeArgument.parse(t, option: "--until", direction: .past, now: now)
        }
        if let s, let u, s >= u {
            throw .usage("--since (\(Fmt.isoSeconds(s))) must be before --until (\(Fmt.isoSeconds(u)))")
        }
        if let s, u == nil, s >= now { throw .usage("--since \(Fmt.isoSeconds(s)) is in the future") }
        // A period with a start and no end ends now, by this clock: left to the server, "now" is
        // read a moment later, and `--since 24h` was 24 h and a fraction long: past the 24 h up to
        // which a history's automatic resolution is raw samples (and, before stored hour peaks
        // made longer periods exact, a report's group peaks came from rollups). An end up
        // to a second past the server's now adds nothing: time after now is outside every node's
        // life (docs/numbers.md), neither data nor a gap.
        return (s, s == nil ? u : (u ?? now))
    }
}

struct HistoryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "history",
        abstract: "A node's samples (short periods) or hourly/daily rollups (long ones) over time.",
        discussion: "Gaps (the node existed but sent nothing: offline, agent stopped) are listed, never shown as zero; time before its registration is not a gap.")

    @Argument(help: "Node id or name.")
    var node: String

    @OptionGroup var period: PeriodOptions

    @Option(help: "raw samples, hour or day buckets. Default: the server picks by the length of the period.")
    var resolution: HistoryResolution?

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let (since, until) = orExit { () throws(CLIError) in try period.resolved() }
        try await global.run { session in
            let n = try await session.resolve(node)
            let h = try await session.client.history(n.id, since: since, until: until, resolution: resolution)
            if session.json {
                try printJSON(h)
                return
            }
            print(
                "\(h.name) (\(h.nodeId)) from \(Fmt.isoSeconds(h.since)) to \(Fmt.isoSeconds(h.until)), \(h.resolution.rawValue)"
            )
            print("")
            if let samples = h.samples {
                if samples.isEmpty { print("no samples in this period") }
                var t = Table(
                    [
                        ("TAKEN", .left), ("PHASE", .left), ("SAVED", .right), ("KSMD CPU", .right), ("SHARED", .right),
                        ("SHARING", .right), ("TO SCAN", .right), ("SLEEP", .right), ("FULL SCANS", .right),
                        ("MEM AVAIL", .right), ("WHY", .left),
                    ])
                for s in samples where !samples.isEmpty {
                    t.add([
                        Fmt.isoSeconds(s.takenAt), s.phase.rawValue, Fmt.bytes(s.savedBytes),
                        Fmt.percent(s.ksmdCPUPercent),
                        "\(s.pagesShared)", "\(s.pagesSharing)", "\(s.pagesToScan)", "\(s.sleepMillisecs)ms",
                        "\(s.fullScans)",
                        Fmt.memAvailable(
                            MemorySnapshot(memTotalKB: s.memTotalBytes / 1024, memAvailableKB: s.memAvailableBytes / 1024),
                            thresCoef: n.config.config.thresCoef),
                        s.applyError.map { "apply failed: \($0)" } ?? s.phaseReason,
                    ])
                }
                if !samples.isEmpty { print(t.render()) }
                if let more = h.omittedSamples, let last = samples.last {
                    print(
                        "\n\(more) more samples after \(Fmt.isoSeconds(last.takenAt)) not shown (the server sends at most"
                            + " \(HistoryResponse.maxSamples) at a time): narrow the period with --since/--until, or use --resolution hour")
                }
            }
            if let buckets = h.buckets {
                if buckets.isEmpty { print("no data in this period") }
                var t = Table(
                    [
                        ("START", .left), ("SAMPLES", .right), ("AVG SAVED", .right), ("PEAK SAVED", .right),
                        ("AVG CPU", .right), ("CPU SEC", .right), ("FULL SCANS", .right), ("RUNNING", .right),
                        ("COVERED", .right),
                    ])
                for b in buckets {
                    // The server's coverage (docs/numbers.md): data time over the part of the
                    // whole bucket the node existed.
                    let covered = b.coverage
                    t.add([
                        Fmt.isoSeconds(b.start), "\(b.samples)", Display.bytes(b.avgSavedBytes),
                        Fmt.bytes(b.peakSavedBytes),
                        Fmt.percent(b.avgKsmdCPUPercent), Display.number(b.ksmdCPUSeconds), "\(b.fullScans)",
                        Fmt.duration(Int(b.runningSeconds)),
                        covered.map(Display.fraction) ?? "-",
                    ])
                }
                if !buckets.isEmpty { print(t.render()) }
            }
            if !h.gaps.isEmpty {
                print("\nGaps (no data):")
                for g in h.gaps {
                    print("  \(Fmt.isoSeconds(g.from)) → \(Fmt.isoSeconds(g.to)) (\(Fmt.duration(Int(g.seconds))))")
                }
            }
        }
    }
}
