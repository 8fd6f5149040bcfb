#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import KSMCore

// Wire types of the history and savings-report API (admin token):
//
//   GET /api/v1/nodes/{id}/history?since=&until=&resolution=raw|hour|day
//   GET /api/v1/reports/savings?since=&until=&by=node|label|day&label=KEY[&format=csv]
//
// `since` / `until` accept ISO 8601 (`2026-11-01T00:00:00Z`, offsets allowed), a UTC date
// (`2026-11-01`), `now`, or a time relative to now (`-24h`, `-30d`, `-90m`, `-2w`); see
// `ReportTime.parse`. Defaults: until = now, since = until − 24 h. The period is [since, until).
//
// Gaps are gaps: a time with no data is listed in `gaps` and never counted as zero or
// interpolated. A sample's value holds until the next sample, but not across a silence longer
// than the server's `maxGapSeconds`; the last sample before such a silence holds `tailSeconds`.

/// How finely `GET /nodes/{id}/history` answers. Without `resolution` the server picks raw for
/// spans up to 24 hours (hour when the node sent more samples than one answer carries), hour up
/// to 14 days, day beyond.
public enum HistoryResolution: String, Codable, Sendable, CaseIterable {
    case raw, hour, day

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        let raw = try c.decode(String.self)
        guard let v = HistoryResolution(rawValue: raw) else {
            throw DecodingError.dataCorruptedError(in: c, debugDescription: "unknown resolution '\(raw)', expected raw, hour or day")
        }
        self = v
    }

    /// The resolution the server picks for a span when none is asked for.
    public static func automatic(spanSeconds: Double) -> HistoryResolution {
        if spanSeconds <= 24 * 3600 { return .raw }
        if spanSeconds <= 14 * 86400 { return .hour }
        return .day
    }
}

/// A half-open time interval [from, to).
public struct TimeRange: Codable, Sendable, Equatable, Hashable {
    public var from: Date
    public var to: Date
    public init(from: Date, to: Date) {
        self.from = from
        self.to = to
    }
    public var seconds: Double { to.timeIntervalSince(from) }
}

/// One stored sample, as `resolution=raw` returns it.
public struct HistorySample: Codable, Sendable, Equatable {
    public var seq: Int64
    public var takenAt: Date
    public var phase: KSMPhase
    public var phaseReason: String
    public var run: Int
    public var pagesToScan: Int
    public var sleepMillisecs: Int
    public var pagesShared: Int64
    public var pagesSharing: Int64
    public var pagesUnshared: Int64
    public var pagesVolatile: Int64
    /// Cumulative (the kernel's counter).
    public var fullScans: Int64
    public var savedBytes: Int64
    public var generalProfit: Int64?
    public var memTotalBytes: Int64
    public var memAvailableBytes: Int64
    public var ksmdCPUPercent: Double?
    /// Cumulative ksmd CPU seconds (resets when ksmd restarts).
    public var ksmdCPUSeconds: Double?
    public var appliedGeneration: Int64?
    public var applyError: String?

    public init(
        seq: Int64, takenAt: Date, phase: KSMPhase, phaseReason: String, run: Int, pagesToScan: Int,
        sleepMillisecs: Int, pagesShared: Int64, pagesSharing: Int64, pagesUnshared: Int64,
        pagesVolatile: Int64, fullScans: Int64, savedBytes: Int64, generalProfit: Int64?,
        memTotalBytes: Int64, memAvailableBytes: Int64, ksmdCPUPercent: Double?, ksmdCPUSeconds: Double?,
        appliedGeneration: Int64?, applyError: String?
    ) {
        self.seq = seq
        self.takenAt = takenAt
        self.phase = phase
        self.phaseReason = phaseReason
        self.run = run
        self.pagesToScan = pagesToScan
        self.sleepMillisecs = sleepMillisecs
        self.pagesShared = pagesShared
        self.pagesSharing = pagesSharing
        self.pagesUnshared = pagesUnshared
        self.pagesVolatile = pagesVolatile
        self.fullScans = fullScans
        self.savedBytes = savedBytes
        self.generalProfit = generalProfit
        self.memTotalBytes = memTotalBytes
        self.memAvailableBytes = memAvailableBytes
        self.ksmdCPUPercent = ksmdCPUPercent
        self.ksmdCPUSeconds = ksmdCPUSeconds
        self.appliedGeneration = appliedGeneration
        self.applyError = applyError
    }
}

/// Seconds spent in each phase (keys are `KSMPhase` raw values: Running, Stopped, Pruned,
/// Unmanaged; phases with no time are left out).
public typealias PhaseSeconds = [String: Double]

/// One hour or one UTC day of a node's history (`resolution=hour|day`). Buckets with no data at
/// all are left out (they show in `gaps`).
public struct HistoryBucket: Codable, Sendable, Equatable {
    public var start: Date
    public var end: Date
    /// Seconds of the bucket covered by samples (the rest is in `gaps`).
    public var dataSeconds: Double
    public var samples: Int
    /// Time-weighted average over `dataSeconds`.
    public var avgSavedBytes: Double
    public var peakSavedBytes: Int64
    /// Integral of saved bytes over time, in byte-hours.
    public var savedByteHours: Double
    /// ksmd CPU in % of one CPU: average over `dataSeconds`, and highest sample.
    public var avgKsmdCPUPercent: Double
    public var peakKsmdCPUPercent: Double?
    /// ksmd CPU seconds spent within the bucket (counter deltas; resets handled).
    public var ksmdCPUSeconds: Double
    /// Full scans completed within the bucket (counter deltas; resets handled).
    public var fullScans: Int64
    public var runningSeconds: Double
    public var phaseSeconds: PhaseSeconds
    /// Time-weighted average of general_profit where the kernel reports it.
    public var avgNetProfitBytes: Double?
    /// `dataSeconds` over the part of the bucket the node existed (from its registration, or its
    /// first data, to its deletion or now), at most 1 (`ReportAggregation.coverage`, as a
    /// report's row has it): the hour of its registration and the hour under way are covered
    /// whole when no sample was missed. Worked out on the whole bucket, whatever the period's
    /// edges. Nil when the node did not exist in the bucket.
    public var coverage: Double?

    public init(
        start: Date, end: Date, dataSeconds: Double, samples: Int, avgSavedBytes: Double, peakSavedBytes: Int64,
        savedByteHours: Double, avgKsmdCPUPercent: Double, peakKsmdCPUPercent: Double?, ksmdCPUSeconds: Double,
        fullScans: Int64, runningSeconds: Double, phaseSeconds: PhaseSeconds, avgNetProfitBytes: Double?,
        coverage: Double? = nil
    ) {
        self.start = start
        self.end = end
        self.dataSeconds = dataSeconds
        self.samples = samples
        self.avgSavedBytes = avgSavedBytes
        self.peakSavedBytes = peakSavedBytes
        self.savedByteHours = savedByteHours
        self.avgKsmdCPUPercent = avgKsmdCPUPercent
        self.peakKsmdCPUPercent = peakKsmdCPUPercent
        self.ksmdCPUSeconds = ksmdCPUSeconds
        self.fullScans = fullScans
        self.runningSeconds = runningSeconds
        self.phaseSeconds = phaseSeconds
        self.avgNetProfitBytes = avgNetProfitBytes
        self.coverage = coverage
    }
}

/// `GET /api/v1/nodes/{id}/history`. `samples` is set for raw resolution, `buckets` otherwise.
public struct HistoryResponse: Codable, Sendable, Equatable {
    public var nodeId: String
    public var name: String
    public var since: Date
    public var until: Date
    public var resolution: HistoryResolution
    public var samples: [HistorySample]?
    /// With `samples`: how many samples of the period come after the last one sent (an answer
    /// carries at most `HistoryResponse.maxSamples`); nil when none.
    public var omittedSamples: Int?
    public var buckets: [HistoryBucket]?
    /// Intervals of `existence` with no data (the node existed but sent nothing).
    public var gaps: [TimeRange]
    /// The part of [since, until) the node existed: from its registration (or first data) to its
    /// deletion or now. nil when it did not exist in the period at all. Outside it is not a gap.
    public var existence: TimeRange?

    /// The most raw samples one answer of `GET /nodes/{id}/history` carries.
    public static let maxSamples = 20_000

    public init(
        nodeId: String, name: String, since: Date, until: Date, resolution: HistoryResolution,
        samples: [HistorySample]? = nil, omittedSamples: Int? = nil, buckets: [HistoryBucket]? = nil, gaps: [TimeRange],
        existence: TimeRange? = nil
    ) {
        self.nodeId = nodeId
        self.name = name
        self.since = since
        self.until = until
        self.resolution = resolution
        self.samples = samples
        self.omittedSamples = omittedSamples
        self.buckets = buckets
        self.gaps = gaps
        self.existence = existence
    }
}

/// How `GET /api/v1/reports/savings` groups its rows.
public enum ReportGrouping: String, Codable, Sendable, CaseIterable {
    /// One row per node (deleted nodes included for the part of the period they existed).
    case node
    /// One row per value of the label named by `label=KEY` (nodes without it: value "").
    case label
    /// One row per UTC day, for the whole fleet.
    case day

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        let raw = try c.decode(String.self)
        guard let v = ReportGrouping(rawValue: raw) else {
            throw DecodingError.dataCorruptedError(in: c, debugDescription: "unknown grouping '\(raw)', expected node, label or day")
        }
        self = v
    }
}

/// One row of the savings report: a node, a label value, a day, or the whole fleet.
///
/// Averages are over the time with data, so a node offline half the period is not shown as
/// saving half as much: its `coverage` says 0.5 and its `gaps` say when. For a group (label,
/// day, fleet) the averages are the sums of its nodes' averages (what the group saves at once),
/// and the hour figures are sums.
public struct SavingsRow: Codable, Sendable, Equatable {
    /// Node id, label value, `YYYY-MM-DD`, or `fleet`.
    public var key: String
    /// Node name for node rows.
    public var name: String?
    /// Node rows: the node has been deleted (its history stays until purged).
    public var deleted: Bool?
    /// Nodes with data in this row.
    public var nodes: Int
    /// Average memory saved (bytes); nil without data.
    public var avgSavedBytes: Double?
    /// Node rows: the highest sample. Group rows: the highest sum of the nodes' values at one
    /// moment, exact from the raw samples (and the hour peaks stored from them) while they are
    /// kept; otherwise a lower bound from rollups (see `peakBasis` and docs/numbers.md). Never
    /// below any member's peak.
    public var peakSavedBytes: Double?
    /// What `peakSavedBytes` was computed from: `samples` (exact), or `hour`/`day`/`month` rollups.
    public var peakBasis: PeakBasis?
    /// Memory saved integrated over time, GiB-hours.
    public var savedGiBHours: Double
    /// ksmd CPU spent, CPU-hours.
    public var ksmdCPUHours: Double
    /// Average ksmd CPU use in cores (1.0 = one CPU busy); nil without data.
    public var avgKsmdCPUCores: Double?
    /// GiB saved per ksmd CPU core: avg saved GiB / avg cores. nil when ksmd used no CPU.
    public var efficiencyGiBPerCore: Double?
    /// Average general_profit (bytes saved minus KSM's metadata) where kernels report it (6.7+).
    public var avgNetProfitBytes: Double?
    /// Hours spent in each phase (keys are KSMPhase raw values).
    public var phaseHours: [String: Double]
    /// Hours with data, summed over the row's nodes.
    public var dataHours: Double
    /// Hours the row's nodes existed in the period (registration and deletion clip it).
    public var periodHours: Double
    /// dataHours / periodHours (0...1); absent when none of the row's nodes existed in the
    /// period (e.g. a day before the first registration).
    public var coverage: Double?
    /// Node rows: the node's intervals without data. Group rows: intervals where some of its
    /// nodes existed and none had data.
    public var gaps: [TimeRange]

    public init(
        key: String, name: String? = nil, deleted: Bool? = nil, nodes: Int, avgSavedBytes: Double?,
        peakSavedBytes: Double?, peakBasis: PeakBasis? = nil, savedGiBHours: Double, ksmdCPUHours: Double, avgKsmdCPUCores: Double?,
        efficiencyGiBPerCore: Double?, avgNetProfitBytes: Double?, phaseHours: [String: Double],
        dataHours: Double, periodHours: Double, coverage: Double?, gaps: [TimeRange]
    ) {
        self.key = key
        self.name = name
        self.deleted = deleted
        self.nodes = nodes
        self.avgSavedBytes = avgSavedBytes
        self.peakSavedBytes = peakSavedBytes
        self.peakBasis = peakBasis
        self.savedGiBHours = savedGiBHours
        self.ksmdCPUHours = ksmdCPUHours
        self.avgKsmdCPUCores = avgKsmdCPUCores
        self.efficiencyGiBPerCore = efficiencyGiBPerCore
        self.avgNetProfitBytes = avgNetProfitBytes
        self.phaseHours = phaseHours
        self.dataHours = dataHours
        self.periodHours = periodHours
        self.coverage = coverage
        self.gaps = gaps
    }
}

/// `GET /api/v1/reports/savings` (JSON; `Accept: text/csv` or `format=csv` gives
/// `SavingsReport.csvHeader` and one line per row, the fleet total last with key `fleet`).
public struct SavingsReport: Codable, Sendable, Equatable {
    public var since: Date
    public var until: Date
    public var by: ReportGrouping
    /// The label key for `by=label`.
    public var label: String?
    public var generatedAt: Date
    public var rows: [SavingsRow]
    public var total: SavingsRow
    /// Silence longer than this (seconds) between two samples is a gap.
    public var maxGapSeconds: Double

    public init(
        since: Date, until: Date, by: ReportGrouping, label: String?, generatedAt: Date, rows: [SavingsRow],
        total: SavingsRow, maxGapSeconds: Double
    ) {
        self.since = since
        self.until = until
        self.by = by
        self.label = label
        self.generatedAt = generatedAt
        self.rows = rows
        self.total = total
        self.maxGapSeconds = maxGapSeconds
    }

    public static let csvHeader =
        "key,name,deleted,nodes,avg_saved_bytes,peak_saved_bytes,saved_gib_hours,ksmd_cpu_hours,avg_ksmd_cpu_cores,efficiency_gib_per_core,avg_net_profit_bytes,running_hours,stopped_hours,pruned_hours,unmanaged_hours,data_hours,period_hours,coverage,gaps,peak_basis"
}

extension SavingsReport {
    /// The report as CSV: `csvHeader`, one line per row, the fleet total last.
    public func csv() -> String {
        var out = Self.csvHeader + "\n"
        for row in rows + [total] { out += row.csvLine() + "\n" }
        return out
    }
}

extension SavingsRow {
    /// One CSV line (RFC 4180 quoting, text cells made inert per OWASP's CSV-injection
    /// guidance: see `CSVCell`); gaps as `from/to` ISO pairs separated by `;`.
    public func csvLine() -> String {
        func field(_ s: String) -> String { CSVCell.text(s) }
        // Every digit of the JSON's double (docs/numbers.md): a rounding wrote 0 for a tiny
        // efficiency and 1 for a coverage of 0.9999996.
        func num(_ v: Double?) -> String { v.map { ReportTime.exactDecimal($0) } ?? "" }
        let gapText = gaps.map {
            ReportTime.iso($0.from.timeIntervalSince1970) + "/" + ReportTime.iso($0.to.timeIntervalSince1970)
        }.joined(separator: ";")
        let cols: [String] = [
            field(key), field(name ?? ""), deleted.map { $0 ? "true" : "false" } ?? "", String(nodes),
            num(avgSavedBytes), num(peakSavedBytes), num(savedGiBHours), num(ksmdCPUHours),
            num(avgKsmdCPUCores), num(efficiencyGiBPerCore), num(avgNetProfitBytes),
            num(phaseHours[KSMPhase.running.rawValue] ?? 0), num(phaseHours[KSMPhase.stopped.rawValue] ?? 0),
            num(phaseHours[KSMPhase.pruned.rawValue] ?? 0), num(phaseHours[KSMPhase.unmanaged.rawValue] ?? 0),
            num(dataHours), num(periodHours), num(coverage), field(gapText), peakBasis?.rawValue ?? "",
        ]
        return cols.joined(separator: ",")
    }
}

/// CSV cells that a spreadsheet cannot take for formulas (OWASP, "CSV Injection"): a text cell
/// that starts with `=`, `+`, `-`, `@`, a tab or a carriage return gets a leading `'` and is
/// quoted; any cell holding `,`, `"`, CR or LF is quoted with `"` doubled (RFC 4180). Numbers
/// the server computes are written as they are.
public enum CSVCell {
    public static func text(_ s: String) -> String {
        var value = s
        var quote = false
        if let first = value.unicodeScalars.first, "=+-@\t\r".unicodeScalars.contains(first) {
            value = "'" + value
            quote = true
        }
        if value.unicodeScalars.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) { quote = true }
        return quote ? "\"" + value.replacing("\"", with: "\"\"") + "\"" : value
    }
}

extension ReportTime {
    /// `parse(_:now:)` on Dates.
    public static func parseDate(_ text: String, now: Date) -> Date? {
        parse(text, now: now.timeIntervalSince1970).map { Date(timeIntervalSince1970: $0) }
    }
}

extension TimeRange {
    public init(_ iv: Interval) {
        self.init(from: Date(timeIntervalSince1970: iv.from), to: Date(timeIntervalSince1970: iv.to))
    }
}

extension SavingsRow {
    /// The wire row of computed figures.
    public init(_ f: ReportRowFigures) {
        self.init(
            key: f.key, name: f.name, deleted: f.deleted, nodes: f.nodes, avgSavedBytes: f.avgSavedBytes,
            peakSavedBytes: f.peakSavedBytes, peakBasis: f.peakBasis, savedGiBHours: f.savedGiBHours, ksmdCPUHours: f.ksmdCPUHours,
            avgKsmdCPUCores: f.avgKsmdCPUCores, efficiencyGiBPerCore: f.efficiencyGiBPerCore,
            avgNetProfitBytes: f.avgNetProfitBytes, phaseHours: f.phaseHours, dataHours: f.dataHours,
            periodHours: f.periodHours, coverage: f.coverage, gaps: f.gaps.map(TimeRange.init))
    }
}

extension HistoryBucket {
    /// The wire bucket of rollup sums; `existence`: the node's life within the bucket.
    public init(start: Double, seconds: Double, stats s: BucketStats, existence: Interval?) {
        let bucket = Interval(start, start + seconds)
        self.init(
            start: Date(timeIntervalSince1970: start), end: Date(timeIntervalSince1970: start + seconds),
            dataSeconds: s.dataSeconds, samples: s.samples, avgSavedBytes: s.avgSavedBytes ?? 0,
            peakSavedBytes: s.peakSavedBytes ?? 0, savedByteHours: s.savedByteHours,
            avgKsmdCPUPercent: s.avgCPUPercent ?? 0, peakKsmdCPUPercent: s.peakCPUPercent,
            ksmdCPUSeconds: s.cpuSeconds, fullScans: s.fullScans, runningSeconds: s.runningSeconds,
            phaseSeconds: s.phaseSeconds, avgNetProfitBytes: s.avgNetProfitBytes,
            coverage: ReportAggregation.coverage(dataSeconds: s.dataSeconds, bucket: bucket, existence: existence))
    }
}
