/// One node's figures for a report period, as the store reads them (rollups for whole hours and
/// days, raw samples for partial edges).
public struct NodeReportInput: Sendable, Equatable {
    public var nodeId: String
    public var name: String
    public var labels: [String: String]
    public var deleted: Bool
    /// The part of the period the node existed (registered … deleted).
    public var existence: Interval
    public var stats: BucketStats
    /// Intervals of `existence` without data.
    public var gaps: [Interval]
    /// Saved bytes per bucket start averaged over the whole bucket (hours, or days for long
    /// periods), for group peaks.
    public var series: [Double: Double]

    public init(
        nodeId: String, name: String, labels: [String: String] = [:], deleted: Bool = false, existence: Interval,
        stats: BucketStats, gaps: [Interval], series: [Double: Double] = [:]
    ) {
        self.nodeId = nodeId
        self.name = name
        self.labels = labels
        self.deleted = deleted
        self.existence = existence
        self.stats = stats
        self.gaps = gaps
        self.series = series
    }

    /// The covered parts of `existence`.
    public var covered: [Interval] { ReportMath.complement(of: gaps, within: existence) }
}

/// What a row's peak was computed from (docs/numbers.md, "Peak").
public enum PeakBasis: String, Sendable, Equatable, Codable, CaseIterable {
    /// Exact: the highest value (node) or highest sum of the nodes' values at one moment (group),
    /// from the raw samples.
    case samples
    /// A group over rollups: the higher of the highest sum of its nodes' bucket averages and its
    /// highest single-node peak sample. A lower bound of the exact peak.
    case hour, day, month
}

/// The figures of one report row (node, label value, day or fleet).
public struct ReportRowFigures: Sendable, Equatable {
    public var key: String
    public var name: String?
    public var deleted: Bool?
    public var nodes: Int
    public var avgSavedBytes: Double?
    public var peakSavedBytes: Double?
    public var peakBasis: PeakBasis?
    public var savedGiBHours: Double
    public var ksmdCPUHours: Double
    public var avgKsmdCPUCores: Double?
    public var efficiencyGiBPerCore: Double?
    public var avgNetProfitBytes: Double?
    public var phaseHours: [String: Double]
    public var dataHours: Double
    public var periodHours: Double
    /// dataHours / periodHours; nil when none of the row's nodes existed in its period (a day
    /// before the first registration): nothing was expected, so nothing is missing either.
    public var coverage: Double?
    public var gaps: [Interval]
}

public enum ReportAggregation {
    static let gib = 1_073_741_824.0

    static func efficiency(avgSaved: Double?, avgCores: Double?) -> Double? {
        guard let s = avgSaved, let c = avgCores, c > 0 else { return nil }
        return s / gib / c
    }

    static func phaseHours(_ st: BucketStats) -> [String: Double] {
        st.phaseSeconds.mapValues { $0 / 3600 }
    }

    /// Coverage: time with data over the time the row's nodes existed (docs/numbers.md), at most
    /// 1; nil when they did not exist at all (nothing was expected, so nothing is missing). Both
    /// in one unit.
    public static func coverage(data: Double, life: Double) -> Double? {
        life > 0 ? min(1, data / life) : nil
    }

    /// A history bucket's coverage: its data time over the part of it the node existed
    /// (`existence`: from its registration to its deletion or now), as a report's row has it. A
    /// node that registered mid-hour, or the hour under way, is covered whole when no sample
    /// was missed.
    public static func coverage(dataSeconds: Double, bucket: Interval, existence: Interval?) -> Double? {
        guard let e = existence else { return nil }
        return coverage(data: dataSeconds, life: Interval(max(bucket.from, e.from), min(bucket.to, e.to)).length)
    }

    /// A node's row.
    public static func nodeRow(_ n: NodeReportInput) -> ReportRowFigures {
        let st = n.stats
        let period = n.existence.length / 3600
        let data = st.dataSeconds / 3600
        return ReportRowFigures(
            key: n.nodeId, name: n.name, deleted: n.deleted, nodes: st.dataSeconds > 0 ? 1 : 0,
            avgSavedBytes: st.avgSavedBytes, peakSavedBytes: st.peakSavedBytes.map(Double.init),
            peakBasis: st.peakSavedBytes == nil ? nil : .samples, savedGiBHours: st.savedGiBHours, ksmdCPUHours: st.cpuSeconds / 3600, avgKsmdCPUCores: st.avgCPUCores,
            efficiencyGiBPerCore: efficiency(avgSaved: st.avgSavedBytes, avgCores: st.avgCPUCores),
            avgNetProfitBytes: st.avgNetProfitBytes, phaseHours: phaseHours(st), dataHours: data,
            periodHours: period, coverage: coverage(data: data, life: period), gaps: n.gaps)
    }

    /// A group's row (label value, day, fleet): averages are sums of the nodes' averages, hour
    /// figures are sums, and the gaps are where some of the nodes existed and none had data (time
    /// before the first of them registered is no gap).
    /// The peak is `exactPeak` (the highest sum at one moment, `ReportMath.groupPeak`) when the
    /// raw samples were read; otherwise the higher of the highest value of `series` (the group's
    /// summed saving averaged over each whole bucket, or the sum of the nodes' series) and the
    /// highest member peak: values the group reached at some moment, so a lower bound of the
    /// exact figure that is never below any member's own peak.
    public static func groupRow(
        key: String, nodes: [NodeReportInput], period: Interval, series given: [Double: Double]? = nil,
        exactPeak: Double? = nil, basis: PeakBasis = .hour
    ) -> ReportRowFigures {
        var series: [Double: Double] = [:]
        if given == nil { for n in nodes { for (k, v) in n.series { series[k, default: 0] += v } } }
        return groupRow(
            key: key, sums: GroupSums(nodes), series: given ?? series, gaps: groupGaps(nodes), exactPeak: exactPeak,
            basis: basis)
    }

    /// A group's gaps: where some of its nodes existed and none had data.
    public static func groupGaps(_ nodes: [NodeReportInput]) -> [Interval] {
        let covered = nodes.flatMap(\.covered)
        return ReportMath.coalesce(nodes.map(\.existence)).flatMap { ReportMath.complement(of: covered, within: $0) }
    }

    /// A group's row from its sums (`GroupSums`), its series and its gaps: the figures of
    /// `groupRow(key:nodes:…)`, for a group whose sums were folded ahead (the fleet's day rows,
    /// `rollup_fleet_day`).
    public static func groupRow(
        key: String, sums: GroupSums, series: [Double: Double], gaps: [Interval], exactPeak: Double? = nil,
        basis: PeakBasis = .hour
    ) -> ReportRowFigures {
        let total = sums.total
        let withData = sums.withData
        let memberPeak = total.peakSavedBytes.map(Double.init)
        let peak = exactPeak ?? maxOpt(series.values.max(), memberPeak)
        let data = total.dataSeconds / 3600
        let periodHours = sums.periodSeconds / 3600
        return ReportRowFigures(
            key: key, name: nil, deleted: nil, nodes: withData, avgSavedBytes: sums.avgSaved,
            peakSavedBytes: withData > 0 ? peak : nil,
            peakBasis: withData > 0 && peak != nil ? (exactPeak != nil ? .samples : basis) : nil,
            savedGiBHours: total.savedGiBHours,
            ksmdCPUHours: total.cpuSeconds / 3600, avgKsmdCPUCores: sums.avgCores,
            efficiencyGiBPerCore: efficiency(avgSaved: sums.avgSaved, avgCores: sums.avgCores),
            avgNetProfitBytes: sums.netProfit,
            phaseHours: phaseHours(total), dataHours: data, periodHours: periodHours,
            coverage: coverage(data: data, life: periodHours), gaps: gaps)
    }

    /// Rows grouped by the value of `label` (nodes without it under ""), sorted by value.
    public static func labelRows(
        _ nodes: [NodeReportInput], label: String, period: Interval, series: [String: [Double: Double]]? = nil,
        exactPeaks: [String: Double]? = nil, basis: PeakBasis = .hour
    ) -> [ReportRowFigures] {
        var groups: [String: [NodeReportInput]] = [:]
        for n in nodes { groups[n.labels[label] ?? "", default: []].append(n) }
        return groups.keys.sorted().map { key in
            groupRow(
                key: key, nodes: groups[key] ?? [], period: period, series: series.map { $0[key] ?? [:] },
                exactPeak: exactPeaks?[key], basis: basis)
        }
    }
}

/// What a group's row is computed from, folded over its nodes in their order: the merged
/// figures, the sums of the nodes' averages (each node counts once however long it had data),
/// the number of nodes with data, and the time the nodes existed.
public struct GroupSums: Sendable, Equatable {
    public var total = BucketStats()
    /// Nodes with an average (data in the period).
    public var withData = 0
    /// Sums of the nodes' averages: nil when no node has one.
    public var avgSaved: Double?
    public var avgCores: Double?
    /// The sum of the nodes' net savings (`general_profit`), only while every node with data
    /// reports it: beside the whole group's average saved, a sum over some of its nodes read as
    /// KSM's metadata eating most of the saving (10 nodes saving 10 GiB each, one on a kernel
    /// with general_profit: "net 9.8 GiB" beside "100 GiB"). Nil otherwise.
    public var netProfit: Double?
    /// A node with data but no net saving was folded in: `netProfit` stays nil.
    public private(set) var netProfitIncomplete = false
    /// The sum of the nodes' existence within the period.
    public var periodSeconds = 0.0

    public init() {}

    public init(
        total: BucketStats, withData: Int, avgSaved: Double?, avgCores: Double?, netProfit: Double?, periodSeconds: Double
    ) {
        self.total = total
        self.withData = withData
        self.avgSaved = avgSaved
        self.avgCores = avgCores
        self.netProfit = netProfit
        self.periodSeconds = periodSeconds
    }

    public init(_ nodes: [NodeReportInput]) {
        for n in nodes { add(n.stats, existence: n.existence.length) }
    }

    /// Folds one node in.
    public mutating func add(_ st: BucketStats, existence: Double) {
        total.merge(st)
        periodSeconds += existence
        if let a = st.avgSavedBytes {
            withData += 1
            avgSaved = (avgSaved ?? 0) + a
        }
        if let c = st.avgCPUCores { avgCores = (avgCores ?? 0) + c }
        guard st.avgSavedBytes != nil, !netProfitIncomplete else { return }
        if let p = st.avgNetProfitBytes {
            netProfit = (netProfit ?? 0) + p
        } else {
            netProfitIncomplete = true
            netProfit = nil
        }
    }
}
