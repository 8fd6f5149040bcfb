import FleetAPI
import Foundation
import KSMCore

/// A node as reports see it (deleted nodes included until purged).
struct ReportNode: Sendable {
    var id: String
    var name: String
    var labels: [String: String]
    var registeredAt: Double
    var deletedAt: Double?
}

/// One source of a report period: a rollup table over whole buckets, or raw samples.
enum ReportSource: Sendable, Equatable {
    case rollup(RollupLevel, Interval)
    case raw(Interval)

    /// How a period [since, until) splits: raw samples for partial hours at the edges, hour
    /// rollups for whole hours, day rollups for whole days, and month rollups for whole calendar
    /// months when the period is longer than 62 days. (Group series stay hourly for periods up
    /// to a week: `nodeInputs` reads them apart from hour rows where the figures come from days.)
    static func plan(_ period: Interval) -> [ReportSource] {
        let hs = (period.from / ReportTime.hour).rounded(.up) * ReportTime.hour
        let he = ReportTime.hourStart(period.to)
        guard hs < he else { return period.length > 0 ? [.raw(period)] : [] }
        var out: [ReportSource] = []
        if period.from < hs { out.append(.raw(Interval(period.from, hs))) }
        let ds = (hs / ReportTime.day).rounded(.up) * ReportTime.day
        let de = ReportTime.dayStart(he)
        if ds < de {
            if hs < ds { out.append(.rollup(.hour, Interval(hs, ds))) }
            let ms = ReportTime.monthStart(ds) == ds ? ds : ReportTime.nextMonthStart(ds)
            let me = ReportTime.monthStart(de)
            if period.length > 62 * ReportTime.day && ms < me {
                if ds < ms { out.append(.rollup(.day, Interval(ds, ms))) }
                out.append(.rollup(.month, Interval(ms, me)))
                if me < de { out.append(.rollup(.day, Interval(me, de))) }
            } else {
                out.append(.rollup(.day, Interval(ds, de)))
            }
            if de < he { out.append(.rollup(.hour, Interval(de, he))) }
        } else {
            out.append(.rollup(.hour, Interval(hs, he)))
        }
        if he < period.to { out.append(.raw(Interval(he, period.to))) }
        return out
    }
}

/// Every node's raw samples over a period (and `maxGapSeconds` either side), by node id.
struct PeakStreams {
    var streams: [(node: ReportNode, samples: [ReportSample], horizon: Double)]
    var policy: ReportPolicy

    /// The raw samples a sweep over `period` reads, in unix milliseconds: the period and
    /// `maxGapSeconds` either side (a sample before the period holds into it; one after ends a
    /// gap in it).
    static func readRange(_ period: Interval, policy: ReportPolicy) -> (from: Int64, to: Int64) {
        (Int64(((period.from - policy.maxGapSeconds) * 1000).rounded(.down)),
         Int64(((period.to + policy.maxGapSeconds) * 1000).rounded(.up)))
    }

    /// The streams of the `nodes` among samples read by node (others' and empty lists left
    /// out), each node's data ending at its deletion or `now`.
    init(_ read: [(String, [ReportSample])], nodes: [String: ReportNode], now: Double, policy: ReportPolicy) {
        streams = read.compactMap { (id, samples) in
            guard let n = nodes[id], !samples.isEmpty else { return nil }
            return (n, samples, min(now, n.deletedAt ?? now))
        }
        self.policy = policy
    }

    /// Exact group peaks (`ReportMath.groupPeak`) per group key over `window` (inside the
    /// period read): a node's samples outside the window and its margins make no segment in it.
    func peaks(within window: Interval, group: (ReportNode) -> String) -> [String: Double] {
        var lists: [String: [(samples: [ReportSample], horizon: Double)]] = [:]
        for s in streams { lists[group(s.node), default: []].append((s.samples, s.horizon)) }
        var out: [String: Double] = [:]
        for (g, list) in lists {
            if let p = ReportMath.groupPeak(list, from: window.from, to: window.to, policy: policy) { out[g] = p }
        }
        return out
    }
}

/// Raw samples split by node as they are read in time order: one hash look-up a row (a node's
/// list by its slot), and the check whether the report wants the node once per node.
struct SamplesByNode {
    private var slots: [String: Int] = [:]
    private var refused: Set<String> = []
    private var ids: [String] = []
    var lists: [[ReportSample]] = []
    /// The ids seen by `slot(utf8:count:if:)`, by their bytes: an open-addressing table of
    /// indexes into `seen` (-1: empty), a power of two long, at most half full.
    private var table = [Int32](repeating: -1, count: 64)
    private var seen: [(hash: UInt64, bytes: [UInt8], slot: Int?)] = []

    /// `slot(_:if:)` of the id whose UTF-8 is the `count` bytes at `bytes` (as SQLite hands a
    /// column over): a String is made only for an id not seen before.
    mutating func slot(utf8 bytes: UnsafePointer<UInt8>?, count: Int, if wanted: (String) -> Bool) -> Int? {
        let key = UnsafeBufferPointer(start: bytes, count: bytes == nil ? 0 : count)
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325  // FNV-1a
        for b in key { hash = (hash ^ UInt64(b)) &* 0x100_0000_01b3 }
        let mask = table.count - 1
        var i = Int(truncatingIfNeeded: hash) & mask
        while table[i] >= 0 {
            let e = seen[Int(table[i])]
            if e.hash == hash && e.bytes.elementsEqual(key) { return e.slot }
            i = (i + 1) & mask
        }
        let slot = slot(String(decoding: key, as: UTF8.self), if: wanted)
        table[i] = Int32(seen.count)
        seen.append((hash, Array(key), slot))
        if seen.count * 2 > table.count {
            table = [Int32](repeating: -1, count: table.count * 2)
            for (n, e) in seen.enumerated() {
                var j = Int(truncatingIfNeeded: e.hash) & (table.count - 1)
                while table[j] >= 0 { j = (j + 1) & (table.count - 1) }
                table[j] = Int32(n)
            }
        }
        return slot
    }

    /// The slot of node `id`'s list, made when first seen if `wanted(id)`; nil when not wanted.
    mutating func slot(_ id: String, if wanted: (String) -> Bool) -> Int? {
        if let i = slots[id] { return i }
        if refused.contains(id) { return nil }
        guard wanted(id) else {
            refused.insert(id)
            return nil
        }
        slots[id] = lists.count
        ids.append(id)
        lists.append([])
        return lists.count - 1
    }

    /// Every node's list, by node id.
    var sorted: [(String, [ReportSample])] {
        ids.indices.sorted { ids[$0] < ids[$1] }.map { (ids[$0], lists[$0]) }
    }
}

/// How many hours of raw samples one report's exact group peaks may still sweep beside the
/// stored hour peaks (`storedPeaks`): as many as a period of `exactPeakMaxSeconds` swept whole
/// reaches (24 whole hours and its two partial edge hours). A period of any length whose hours'
/// peaks are stored is exact; one whose unknown hours (not computed yet, or every hour's label
/// peaks just after a label change) would take more gets the rollup lower bound, as a period
/// longer than a day always did, until the rollup service has computed them.
final class PeakSweepBudget {
    static let defaultHours = Int(FleetDatabase.exactPeakMaxSeconds / ReportTime.hour) + 2
    private var hours: Int
    /// Whether a sweep was refused: the peaks it was for are not exact.
    private(set) var refused = false

    init(hours: Int = PeakSweepBudget.defaultHours) { self.hours = hours }

    /// Takes `n` hours if that many are left; otherwise takes none and returns false.
    func take(hours n: Int) -> Bool {
        guard n <= hours else {
            refused = true
            return false
        }
        hours -= n
        return true
    }
}

/// Raw samples a report has read (by node, in read order), with the range of `taken_at` read
/// and the nodes it kept, so that the exact-peak sweep of the same edges reuses them instead of
/// reading them again. Lives for one report, inside one read transaction.
final class RawReads {
    private var reads: [(from: Int64, to: Int64, wanted: Set<String>, samples: [(String, [ReportSample])])] = []

    func add(from: Int64, to: Int64, wanted: Set<String>, samples: [(String, [ReportSample])]) {
        reads.append((from, to, wanted, samples))
    }

    /// What reading `taken_at` in [from, to) for `nodes` would give, from a read that covers it
    /// (every wanted node's samples in that range, in the same order); nil without one.
    func samples(from: Int64, to: Int64, nodes: [String: ReportNode]) -> [(String, [ReportSample])]? {
        guard
            let read = reads.first(where: { r in
                r.from <= from && r.to >= to && nodes.keys.allSatisfy { r.wanted.contains($0) }
            })
        else { return nil }
        return read.samples.compactMap { (id, list) in
            guard nodes[id] != nil else { return nil }
            // A node's samples are in time order: the range is one slice of them (the whole
            // list, shared, when it holds nothing outside), found by two binary searches.
            let lo = Self.firstIndex(in: list, atOrAfter: from)
            let hi = Self.firstIndex(in: list, atOrAfter: to)
            guard lo < hi else { return nil }
            return (id, lo == 0 && hi == list.count ? list : Array(list[lo..<hi]))
        }
    }

    /// The first index of `list` (in time order) whose sample was taken at or after `ms`, as
    /// `taken_at` (milliseconds) reads it; `list.count` if none.
    static func firstIndex(in list: [ReportSample], atOrAfter ms: Int64) -> Int {
        var (lo, hi) = (0, list.count)
        while lo < hi {
            let mid = (lo + hi) / 2
            if Int64((list[mid].at * 1000).rounded()) < ms { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }
}

/// Per-node figures gathered from the sources of a period.
struct NodeAccumulator: Sendable {
    var stats = BucketStats()
    var covered: [Interval] = []
}

/// Nodes' first data instants (`FleetDatabase.firstData`), each read at most once: for the
/// reads of one report, within one transaction.
final class FirstDataMemo {
    private var known: [String: Double?] = [:]

    func firstData(_ db: StoreDB, nodeId: String) throws -> Double? {
        if let v = known[nodeId] { return v }
        let v = try FleetDatabase.firstData(db, nodeId: nodeId)
        known.updateValue(v, forKey: nodeId)
        return v
    }

    /// Reads, a few hundred nodes a statement, the first data of the `nodes` whose existence in
    /// `period` needs it (`FleetDatabase.existence`): a young fleet's report asked two queries of
    /// every node (10,000 nodes registered within the period: 38 % of the dashboard's overview on
    /// SQLite, and on PostgreSQL each a round trip).
    func prefetch(_ db: StoreDB, nodes: [ReportNode], period: Interval) throws {
        let wanted = nodes.filter { FleetDatabase.needsFirstData($0, period: period) && known[$0.id] == nil }.map(\.id)
        known.reserveCapacity(known.count + wanted.count)
        for first in stride(from: 0, to: wanted.count, by: 500) {
            let chunk = Array(wanted[first..<min(wanted.count, first + 500)])
            for (id, v) in try FleetDatabase.firstData(db, nodeIds: chunk) { known.updateValue(v, forKey: id) }
        }
    }
}

/// Nodes' label JSON decoded once per distinct text: nodes mostly share a few label sets (a rack,
/// a zone).
struct LabelTexts {
    private var decoded: [String: [String: String]] = [:]

    mutating func labels(_ text: String) throws -> [String: String] {
        if let labels = decoded[text] { return labels }
        let labels = try StoredJSON.decode([String: String].self, text)
        decoded[text] = labels
        return labels
    }
}

extension FleetDatabase {
    /// The nodes a report over `period` may read, in the bytes order of their names (then ids):
    /// the order of a by-node report's rows, and the order its total and each label group add
    /// their nodes in (`byteOrder`: whatever PostgreSQL's collation).
    static func reportNodes(_ db: StoreDB, period: Interval) throws -> [ReportNode] {
        let rows = try StoreRow.fetchAll(
            db,
            sql: """
                SELECT id, name, labels, registered_at, deleted_at FROM nodes
                WHERE deleted_at IS NULL OR deleted_at > ? ORDER BY \(db.byteOrder("name")), id
                """,
            arguments: [Int64(period.from * 1000)])
        var texts = LabelTexts()
        return try rows.map { r in
            ReportNode(
                id: r[0], name: r[1], labels: try texts.labels(r[2]), registeredAt: Double(r[3] as Int64) / 1000,
                deletedAt: (r[4] as Int64?).map { Double($0) / 1000 })
        }
    }

    /// The part of `period` a node existed, up to `now` (`ReportMath.existence`): from its
    /// registration, or from its first data when history predates the registration (replayed).
    ///
    /// `firstData`: nodes' first data instants already read in this transaction (a by-day report
    /// asks for the existence of every node in its whole days, its total and each partial day).
    static func existence(
        _ db: StoreDB, node: ReportNode, period: Interval, now: Double, firstData known: FirstDataMemo? = nil
    ) throws -> Interval? {
        var firstData: Double?
        if needsFirstData(node, period: period) {
            firstData = try (known ?? FirstDataMemo()).firstData(db, nodeId: node.id)
        }
        return ReportMath.existence(
            registeredAt: node.registeredAt, firstData: firstData, deletedAt: node.deletedAt, period: period,
            now: now)
    }

    /// Whether a node's life in `period` depends on its first data: registered less than
    /// `maxGapSeconds` before the period began (`ReportMath.existence`).
    static func needsFirstData(_ node: ReportNode, period: Interval) -> Bool {
        node.registeredAt > period.from - ReportPolicy.default.maxGapSeconds
    }

    /// The first instant a node has data for: its oldest raw sample, or the first covered
    /// instant of its oldest hour rollup (the bucket's start plus any gap it opens with).
    static func firstData(_ db: StoreDB, nodeId: String) throws -> Double? {
        var first: Double?
        if let r = try StoreRow.fetchOne(
            db, sql: "SELECT bucket_start, gaps FROM rollup_hour WHERE node_id = ? ORDER BY bucket_start LIMIT 1",
            arguments: [nodeId])
        {
            first = firstCovered(start: r[0], gaps: r[1])
        }
        if let raw = try Int64.fetchOne(db, sql: "SELECT MIN(taken_at) FROM samples WHERE node_id = ?", arguments: [nodeId]) {
            first = min(first ?? .infinity, Double(raw) / 1000)
        }
        return first
    }

    /// `firstData` of several nodes in one statement (each node's oldest sample and oldest hour
    /// row found through their indexes, as one node's queries find them); a node without data
    /// maps to nil, an unknown id is left out.
    static func firstData(_ db: StoreDB, nodeIds: [String]) throws -> [String: Double?] {
        guard !nodeIds.isEmpty else { return [:] }
        let oldestHour = "FROM rollup_hour h WHERE h.node_id = n.id ORDER BY h.bucket_start LIMIT 1"
        let rows = try StoreRow.fetchAll(
            db,
            sql: """
                SELECT n.id, (SELECT MIN(s.taken_at) FROM samples s WHERE s.node_id = n.id),
                (SELECT h.bucket_start \(oldestHour)), (SELECT h.gaps \(oldestHour))
                FROM nodes n WHERE \(db.inJSONArray("n.id"))
                """, arguments: [StoredJSON.strings(nodeIds)])
        var out: [String: Double?] = [:]
        out.reserveCapacity(rows.count)
        for r in rows {
            var first: Double? = (r[2] as Int64?).map { firstCovered(start: $0, gaps: r[3]) } ?? nil
            if let raw = r[1] as Int64? { first = min(first ?? .infinity, Double(raw) / 1000) }
            out.updateValue(first, forKey: r[0])
        }
        return out
    }

    /// The first covered instant of an hour row: its start, or the end of the gap it opens with.
    private static func firstCovered(start: Int64, gaps: String?) -> Double? {
        let bucket = Interval(Double(start), Double(start) + ReportTime.hour)
        return ReportMath.complement(of: decodeGaps(gaps), within: bucket).first?.from
    }

    /// Periods up to this long get exact group peaks from one sweep of all their raw samples
    /// (longer ones only from stored hour peaks: see `storedPeaks`).
    static let exactPeakMaxSeconds = ReportTime.day

    /// The raw sample streams exact group peaks are computed from (`PeakStreams`), read once
    /// for every grouping and window of a report; nil when the period is longer than `sweepCap`
    /// or its raw samples are no longer all kept (retention), so that the caller falls back to
    /// rollups.
    static func peakStreams(
        _ db: StoreDB, period: Interval, nodes: [ReportNode], policy: ReportPolicy, now: Double, enabled: Bool = true,
        reads: RawReads? = nil, sweepCap: Double = exactPeakMaxSeconds, packs: Bool = false
    ) throws -> PeakStreams? {
        guard try exactPeaksPossible(db, period: period, policy: policy, enabled: enabled, sweepCap: sweepCap)
        else { return nil }
        var known: [String: ReportNode] = [:]
        for n in nodes { known[n.id] = n }
        let (from, to) = PeakStreams.readRange(period, policy: policy)
        if let cached = reads?.samples(from: from, to: to, nodes: known) {
            return PeakStreams(cached, nodes: known, now: now, policy: policy)
        }
        let byNode = try rawSamples(db, from: from, to: to, full: false, packs: packs, wanted: { [known] in known[$0] != nil })
        return PeakStreams(byNode.sorted, nodes: known, now: now, policy: policy)
    }

    /// Whether a period's group peaks can be exact: it is up to `sweepCap` long and its raw
    /// samples are complete, which they are unless retention has cut into them (the cut it
    /// applied is recorded by `retentionPass`).
    static func exactPeaksPossible(
        _ db: StoreDB, period: Interval, policy: ReportPolicy, enabled: Bool, sweepCap: Double = exactPeakMaxSeconds
    ) throws -> Bool {
        guard enabled, period.length <= sweepCap, period.length > 0 else { return false }
        if let cut = try stateValue(db, samplesCutKey), Double(cut) / 1000 > period.from - policy.maxGapSeconds
        {
            return false
        }
        return true
    }

    /// The fleet's exact peak over `window` (what `exactGroupPeaks` gives for the fleet as one
    /// group), or nil (no exact peak: see `peakStreams`; or no node had data). With `stored`,
    /// whole hours whose peak `fleetPeakPass` stored (and that did not change since) are not
    /// swept again: see `storedPeaks`.
    static func exactFleetPeak(
        _ db: StoreDB, window: Interval, nodes: [ReportNode], policy: ReportPolicy, now: Double, enabled: Bool,
        stored: Bool, reads: RawReads? = nil, budget: PeakSweepBudget = PeakSweepBudget(),
        sweepCap: Double = exactPeakMaxSeconds
    ) throws -> Double? {
        let fleet: (ReportNode) -> String = { _ in "fleet" }
        guard stored, policy == .default else {
            return try exactGroupPeaks(
                db, period: window, nodes: nodes, group: fleet, policy: policy, now: now, enabled: enabled,
                sweepCap: sweepCap)?["fleet"]
        }
        return try storedPeaks(
            db, window: window, nodes: nodes, label: nil, group: fleet, policy: policy, now: now, enabled: enabled,
            reads: reads, budget: budget)?["fleet"]
    }

    /// Exact peaks of the groups of label key `label` over `window` (what `exactGroupPeaks` gives
    /// grouping by the nodes' values of it) and the fleet's, or nil when they cannot be exact;
    /// with `stored`, from the hour peaks `fleetPeakPass` stored per label group and for the fleet
    /// (see `storedPeaks`), one sweep serving both.
    static func exactLabelPeaks(
        _ db: StoreDB, window: Interval, nodes: [ReportNode], label: String, policy: ReportPolicy, now: Double,
        enabled: Bool, stored: Bool, reads: RawReads? = nil, budget: PeakSweepBudget = PeakSweepBudget()
    ) throws -> (groups: [String: Double], fleet: Double?)? {
        let group: (ReportNode) -> String = { n in n.labels[label] ?? "" }
        guard stored, policy == .default else {
            guard let streams = try peakStreams(db, period: window, nodes: nodes, policy: policy, now: now, enabled: enabled)
            else { return nil }
            return (streams.peaks(within: window, group: group), streams.peaks(within: window, group: { _ in "fleet" })["fleet"])
        }
        var fleet: Double?
        guard
            let groups = try storedPeaks(
                db, window: window, nodes: nodes, label: label, group: group, policy: policy, now: now, enabled: enabled,
                reads: reads, budget: budget, fleet: &fleet)
        else { return nil }
        return (groups, fleet)
    }

    /// Group peaks over `window` from stored hour peaks: the fleet's (`label` nil, key "fleet")
    /// or label `label`'s groups. Each group's peak is the highest of its whole hours' stored
    /// peaks and of a sweep of the rest (the partial hours at the window's edges, hours whose
    /// peaks are not known), with the raw samples already read where `reads` has them — the
    /// same value as one sweep of the window, since a peak is a maximum over moments and sums of
    /// whole bytes are exact in any order. A window of any length whose raw samples are all kept
    /// can be exact this way; nil when the peaks cannot be exact (`exactPeaksPossible`) or when
    /// the rest would take more of the report's sweep `budget` than it has left. With `label`,
    /// `fleet` gets the fleet's peak from the same sweeps and the fleet's stored hour peaks (an
    /// hour whose label peaks are known has its fleet peak known too: they are stored together,
    /// and only a label change forgets one without the other).
    static func storedPeaks(
        _ db: StoreDB, window: Interval, nodes: [ReportNode], label: String?, group: (ReportNode) -> String,
        policy: ReportPolicy, now: Double, enabled: Bool, reads: RawReads?, budget: PeakSweepBudget
    ) throws -> [String: Double]? {
        var unused: Double?
        return try storedPeaks(
            db, window: window, nodes: nodes, label: label, group: group, policy: policy, now: now, enabled: enabled,
            reads: reads, budget: budget, fleet: &unused)
    }

    static func storedPeaks(
        _ db: StoreDB, window: Interval, nodes: [ReportNode], label: String?, group: (ReportNode) -> String,
        policy: ReportPolicy, now: Double, enabled: Bool, reads: RawReads?, budget: PeakSweepBudget,
        fleet: inout Double?
    ) throws -> [String: Double]? {
        guard try exactPeaksPossible(db, period: window, policy: policy, enabled: enabled, sweepCap: .infinity)
        else { return nil }
        let hs = (window.from / ReportTime.hour).rounded(.up) * ReportTime.hour
        var he = ReportTime.hourStart(window.to)
        // Samples stored after the last rollup pass (after the report's catch-up, or on another
        // replica) may lie in hours whose peaks were stored without them: from the first hour
        // the earliest of them reaches, stored peaks are not used (the sweep reads them).
        if let t = try Self.firstUnrolledSample(db) {
            he = min(he, ReportTime.hourStart(t - policy.maxGapSeconds))
        }
        var best: [String: Double] = [:]
        func note(_ key: String, _ p: Double) { best[key] = max(best[key] ?? p, p) }
        // The fleet's hour rows the window reaches: every hour with data has one; its peak is
        // known when computed since its last change and the hour is not dirty.
        let lo = Int64(ReportTime.hourStart(window.from))
        let hi = Int64(window.to.rounded(.up))
        let fleetRows = try StoreRow.fetchAll(
            db,
            sql: """
                SELECT bucket_start, saved_peak,
                  CAST(CASE WHEN peak_known = 1 AND bucket_start NOT IN
                    (SELECT bucket_start FROM rollup_fleet_dirty WHERE bucket_start >= ? AND bucket_start < ?)
                    THEN 1 ELSE 0 END AS BIGINT) AS known,
                  CAST(CASE WHEN labels_known = 1 THEN 1 ELSE 0 END AS BIGINT) AS labels_known
                FROM rollup_fleet_hour WHERE bucket_start >= ? AND bucket_start < ? ORDER BY bucket_start
                """, arguments: [lo, hi, lo, hi]
        ).map { r -> (hour: Double, peak: Int64?, known: Bool, labelsKnown: Bool) in
            (Double(r[0] as Int64), r[1], (r[2] as Int64) == 1, (r[3] as Int64) == 1)
        }
        let withData = Set(fleetRows.map(\.hour))
        let fleetKnown = fleetRows.filter { $0.known && $0.hour >= hs && $0.hour < he }
        var known: [Double] = []
        if let label, hs < he {
            // An hour is known for the key when its fleet peak and its label peaks are
            // (labels_known: computed since the last label change). Its rows of the key are its
            // groups' peaks; with none, no node of the hour had the key when they were computed,
            // so all of them were the group "" and its peak is the fleet's.
            var byHour: [Double: [(String, Int64?)]] = [:]
            for r in try StoreRow.fetchAll(
                db,
                sql: """
                    SELECT bucket_start, label_value, saved_peak FROM rollup_label_hour
                    WHERE label_key = ? AND bucket_start >= ? AND bucket_start < ?
                    """, arguments: [label, Int64(hs), Int64(he)])
            {
                byHour[Double(r[0] as Int64), default: []].append((r[1], r[2]))
            }
            for r in fleetKnown where r.labelsKnown {
                known.append(r.hour)
                if let p = r.peak { fleet = max(fleet ?? Double(p), Double(p)) }
                guard let groups = byHour[r.hour] else {
                    if let p = r.peak { note("", Double(p)) }
                    continue
                }
                for (value, peak) in groups { if let p = peak { note(value, Double(p)) } }
            }
        } else if label == nil {
            for r in fleetKnown {
                known.append(r.hour)
                if let p = r.peak { note("fleet", Double(p)) }
            }
        }
        var sweep: [Interval] = []
        var t = window.from
        for h in known {
            if t < h { sweep.append(Interval(t, h)) }
            t = h + ReportTime.hour
        }
        if t < window.to { sweep.append(Interval(t, window.to)) }
        // What the sweep costs: the hours it reaches that hold data (a fleet hour row), and every
        // hour from `he` up to now (samples not rolled up yet have no row). Hours without data
        // cost a read of nothing.
        var cost = 0
        for w in sweep {
            var h = ReportTime.hourStart(w.from)
            while h < w.to {
                if (h >= he && h < now + policy.maxGapSeconds) || withData.contains(h) { cost += 1 }
                h += ReportTime.hour
            }
        }
        guard budget.take(hours: cost) else { return nil }
        for w in sweep {
            guard
                let streams = try peakStreams(
                    db, period: w, nodes: nodes, policy: policy, now: now, reads: reads, sweepCap: .infinity, packs: true)
            else { continue }
            for (key, p) in streams.peaks(within: w, group: group) { note(key, p) }
            if label != nil, let p = streams.peaks(within: w, group: { _ in "fleet" })["fleet"] {
                fleet = max(fleet ?? p, p)
            }
        }
        if label == nil { fleet = best["fleet"] }
        return best
    }

    /// Exact group peaks per group key (see `PeakStreams.peaks`), or nil (see `peakStreams`).
    static func exactGroupPeaks(
        _ db: StoreDB, period: Interval, nodes: [ReportNode], group: (ReportNode) -> String, policy: ReportPolicy,
        now: Double, enabled: Bool = true, sweepCap: Double = exactPeakMaxSeconds
    ) throws -> [String: Double]? {
        try peakStreams(db, period: period, nodes: nodes, policy: policy, now: now, enabled: enabled, sweepCap: sweepCap)?
            .peaks(within: period, group: group)
    }

    /// The rollup level a period's group series are read at (`ReportSource.plan`).
    static func peakBasis(_ period: Interval) -> PeakBasis {
        if period.length > 62 * ReportTime.day { return .month }
        return period.length > 7 * ReportTime.day ? .day : .hour
    }

    /// Adds one rollup source to the accumulators: each node's rows summed in bucket order,
    /// coverage from bucket rows and their recorded gaps; optionally the per-group series of
    /// bucket averages. Groups that are not the whole fleet and not label groups' stored hours
    /// have their series from the same rows, folded in Swift (`accumulateRows`), on both
    /// engines. Otherwise SQLite folds the rows too, and PostgreSQL sums them in SQL
    /// (`accumulateSums`; the same doubles): sending every row costs it more than the sums
    /// (a year by node 0.083 against 0.099 s, by label 0.121 against 0.101 s the other way;
    /// docs/benchmarks.md). The fleet's and stored hours' series: `accumulateSeries`.
    static func accumulate(
        _ db: StoreDB, level: RollupLevel, range: Interval, into acc: inout [String: NodeAccumulator],
        groups: [String: String]?, label: String? = nil, series: inout [String: [Double: Double]],
        fleetRollup: Bool = true
    ) throws {
        let fromRows = groups.map { g in !Self.isOneGroup(g) && !(level == .hour && label != nil) } ?? false
        if db.engine == .postgres && !fromRows {
            try accumulateSums(db, level: level, range: range, into: &acc)
        } else {
            try accumulateRows(db, level: level, range: range, into: &acc, groups: fromRows ? groups : nil, series: &series)
            if fromRows { return }
        }
        try accumulateSeries(
            db, level: level, range: range, groups: groups, label: label, series: &series, fleetRollup: fleetRollup)
    }

    /// Whether every node of a group map is in one group (the fleet's series: `accumulateSeries`).
    static func isOneGroup(_ groups: [String: String]) -> Bool {
        guard let only = groups.values.first else { return false }
        return groups.values.allSatisfy { $0 == only }
    }

    /// `accumulate`'s sums on PostgreSQL, by SQL, where no group series is read from the rows:
    /// each node's rows added in bucket order (as `accumulateRows` adds them), its missing
    /// buckets and recorded gaps read apart.
    ///
    /// The rows come to plain `SUM`s from a subquery sorted by node and bucket: PostgreSQL keeps
    /// a subquery's `ORDER BY` (such a subquery is not merged into the query) and its group
    /// aggregate adds the rows in the order they come, which PostgreSQL's documentation gives as
    /// the other way to order an aggregate's input ("Aggregate Expressions"). `SUM(x ORDER BY
    /// bucket_start)` sorts each node's rows again for each of the ten sums: 47 against 21 ms for
    /// the 28,000 day rows at the start of a year's report (`EXPLAIN ANALYZE`, docs/benchmarks.md).
    /// `AccumulateRowsTests` holds the sums to the rows added in bucket order, with the rows
    /// written in reverse.
    static func accumulateSums(
        _ db: StoreDB, level: RollupLevel, range: Interval, into acc: inout [String: NodeAccumulator]
    ) throws {
        let table = level.table
        let len = level.seconds
        let args: StoreArguments = [Int64(range.from), Int64(range.to)]
        let sums = try StoreRow.fetchCursor(
            db,
            sql: """
                SELECT node_id, SUM(data_seconds) AS data_seconds, CAST(SUM(samples) AS BIGINT) AS samples,
                  SUM(saved_byte_seconds) AS saved_byte_seconds, MAX(saved_peak) AS saved_peak,
                  SUM(cpu_seconds) AS cpu_seconds, MAX(cpu_pct_peak) AS cpu_pct_peak,
                  CAST(SUM(full_scans) AS BIGINT) AS full_scans,
                  SUM(running_seconds) AS running_seconds, SUM(stopped_seconds) AS stopped_seconds,
                  SUM(pruned_seconds) AS pruned_seconds, SUM(unmanaged_seconds) AS unmanaged_seconds,
                  SUM(profit_byte_seconds) AS profit_byte_seconds, SUM(profit_seconds) AS profit_seconds,
                  MIN(bucket_start) AS first, MAX(bucket_start) AS last, COUNT(*) AS n
                FROM (
                  SELECT node_id, bucket_start, data_seconds, samples, saved_byte_seconds, saved_peak, cpu_seconds,
                    cpu_pct_peak, full_scans, running_seconds, stopped_seconds, pruned_seconds, unmanaged_seconds,
                    profit_byte_seconds, profit_seconds
                  FROM \(table) WHERE bucket_start >= ? AND bucket_start < ? ORDER BY node_id, bucket_start
                ) AS r GROUP BY node_id
                """, arguments: args)
        // Covered = [first, last + len) minus missing buckets minus recorded gaps.
        var spans: [String: Interval] = [:]
        var withHoles: [String] = []
        while let r = try sums.next() {
            let id: String = r["node_id"]
            guard acc[id] != nil else { continue }
            acc[id]?.stats.merge(stats(r))
            let first = Double(r["first"] as Int64)
            let last = Double(r["last"] as Int64)
            spans[id] = Interval(first, last + len)
            // A node with fewer rows than buckets in its span misses some: find them below.
            if Double(r["n"] as Int64) < ((last - first) / len).rounded() + 1 { withHoles.append(id) }
        }
        var holes: [String: [Interval]] = [:]
        if !withHoles.isEmpty {
            let list = String(decoding: try JSONEncoder().encode(withHoles), as: UTF8.self)
            let missing = try StoreRow.fetchCursor(
                db,
                sql: """
                    SELECT node_id, prev, bucket_start FROM (
                      SELECT node_id, bucket_start,
                        LAG(bucket_start) OVER (PARTITION BY node_id ORDER BY bucket_start) AS prev
                      FROM \(table) WHERE node_id IN \(db.jsonArrayValues())
                        AND bucket_start >= ? AND bucket_start < ?) AS w
                    WHERE bucket_start - prev > ?
                    """, arguments: [list, Int64(range.from), Int64(range.to), Int64(len)])
            while let r = try missing.next() {
                let prev: Int64 = r["prev"]
                let start: Int64 = r["bucket_start"]
                holes[r["node_id"], default: []].append(Interval(Double(prev) + len, Double(start)))
            }
        }
        let gapRows = try StoreRow.fetchCursor(
            db,
            sql: """
                SELECT node_id, gaps FROM \(table) \(db.indexedBy("\(table)_gaps"))
                WHERE gaps IS NOT NULL AND bucket_start >= ? AND bucket_start < ?
                """,
            arguments: args)
        while let r = try gapRows.next() {
            holes[r["node_id"], default: []].append(contentsOf: decodeGaps(r["gaps"]))
        }
        for (id, span) in spans where acc[id] != nil {
            let clipped = Interval(max(span.from, range.from), min(span.to, range.to))
            acc[id]?.covered.append(contentsOf: ReportMath.complement(of: holes[id] ?? [], within: clipped))
        }
    }

    /// Adds each group's series over `range` at `level` (bucket start → value) to `series`.
    /// `label`: the key the groups are the values of (a report by label), whose hourly sums the
    /// rollup service stores (`labelHourSeries`).
    static func accumulateSeries(
        _ db: StoreDB, level: RollupLevel, range: Interval, groups: [String: String]?, label: String? = nil,
        series: inout [String: [Double: Double]], fleetRollup: Bool
    ) throws {
        let table = level.table
        let len = level.seconds
        let args: StoreArguments = [Int64(range.from), Int64(range.to)]
        // A group's series value for a bucket is the time average of its nodes' summed saving over
        // the whole bucket (a node without data adds nothing): never above what the group saved at
        // some moment of it, so the peak built from it is a lower bound. (Summing the nodes'
        // averages over their own data time is not: a node that left at 10:30 and one that came
        // at 10:30 would add up to both at once.)
        if let groups, Self.isOneGroup(groups), let only = groups.values.first {
            // One group (the fleet): a plain sum per bucket, no join; hours from the fleet rollup.
            if level == .hour && fleetRollup {
                let hours = try fleetHourSeries(db, range: range)
                series[only, default: [:]].merge(hours) { _, new in new }
                return
            }
            let rows = try StoreRow.fetchCursor(
                db,
                sql: """
                    SELECT bucket_start AS b, \(db.orderedSum("saved_byte_seconds")) / \(len) AS s
                    FROM \(db.bucketRows(table, columns: "saved_byte_seconds")) GROUP BY bucket_start
                    """, arguments: args)
            while let r = try rows.next() {
                series[only, default: [:]][Double(r["b"] as Int64)] = r["s"]
            }
        } else if level == .hour, let label, groups?.isEmpty == false {
            for (value, hours) in try labelHourSeries(db, range: range, key: label, stored: fleetRollup) {
                series[value, default: [:]].merge(hours) { _, new in new }
            }
        } else if let groups {
            // Other groups: from the rows, as `accumulate` builds them (each group's nodes added
            // in id order, bytes, as the rows come).
            var scratch = Dictionary(uniqueKeysWithValues: groups.keys.map { ($0, NodeAccumulator()) })
            try accumulateRows(db, level: level, range: range, into: &scratch, groups: groups, series: &series)
        }
    }

    /// The fleet's series as the sum of its groups' (bucket start → value), the groups added in key
    /// order: a dictionary's own order differs from one instance to the next, and so would the
    /// double sums.
    static func fleetSeries(ofGroups series: [String: [Double: Double]]) -> [Double: Double] {
        var fleet: [Double: Double] = [:]
        for (_, s) in series.sorted(by: { $0.key < $1.key }) { for (k, v) in s { fleet[k, default: 0] += v } }
        return fleet
    }

    /// The hourly series of the groups of label key `key` over `range` (value → hour start → the
    /// sum of its nodes' `saved_byte_seconds` in that hour over the hour's length), by
    /// `labelHourSums`. `stored`: the hours whose sums the rollup service stored
    /// (`rollup_label_sum`) and that did not change since (not dirty, no label change) are read
    /// from there, the others summed here; otherwise every hour is summed here (the reference).
    static func labelHourSeries(_ db: StoreDB, range: Interval, key: String, stored: Bool) throws -> [String: [Double: Double]] {
        let (from, to) = (Int64(range.from), Int64(range.to))
        var out: [String: [Double: Double]] = [:]
        func add(_ hour: Int64, _ value: String, _ sum: Double) { out[value, default: [:]][Double(hour)] = sum / ReportTime.hour }
        var summed: [Range<Int64>] = [from..<to]
        if stored {
            var known: [Int64: Bool] = [:]
            let hours = try StoreRow.fetchCursor(
                db,
                sql: """
                    SELECT bucket_start, CAST(label_sums_known AS BIGINT) FROM rollup_fleet_hour
                    WHERE bucket_start >= ? AND bucket_start < ?
                    """, arguments: [from, to])
            while let r = try hours.next() { known[r[0]] = (r[1] as Int64) == 1 }
            let dirty = try Int64.fetchAll(
                db, sql: "SELECT bucket_start FROM rollup_fleet_dirty WHERE bucket_start >= ? AND bucket_start < ?",
                arguments: [from, to])
            for h in dirty { known[h] = false }
            var read: Set<Int64> = []
            let rows = try StoreRow.fetchCursor(
                db,
                sql: """
                    SELECT bucket_start, label_value, saved_byte_seconds FROM rollup_label_sum
                    WHERE bucket_start >= ? AND bucket_start < ? AND label_key = ?
                    """, arguments: [from, to, key])
            while let r = try rows.next() {
                let h: Int64 = r[0]
                guard known[h] == true else { continue }
                add(h, r[1], r[2])
                read.insert(h)
            }
            // Hours not read: not stored, changed since, or stored before any node had the key.
            // Runs of them are summed here, one range each.
            summed = []
            for h in known.keys.sorted() where !read.contains(h) {
                let next = h + Int64(ReportTime.hour)
                if let last = summed.last, last.upperBound == h {
                    summed[summed.count - 1] = last.lowerBound..<next
                } else {
                    summed.append(h..<next)
                }
            }
        }
        guard !summed.isEmpty else { return out }
        let labels = try nodeLabels(db)
        for r in summed {
            for (hour, sums) in try labelHourSums(db, from: r.lowerBound, to: r.upperBound, keys: [key], labels: labels) {
                for (value, sum) in sums[key] ?? [:] { add(hour, value, sum) }
            }
        }
        return out
    }

    /// The fleet's hourly series over [from, to): hour start → the sum of every node's
    /// `saved_byte_seconds` in that hour over the hour's length, from `rollup_fleet_hour`; hours the
    /// rollup service has not recomputed yet (`rollup_fleet_dirty`) are summed from `rollup_hour`
    /// here, so the series always equals the sum over `rollup_hour` as this read sees it.
    static func fleetHourSeries(_ db: StoreDB, range: Interval) throws -> [Double: Double] {
        let args: StoreArguments = [Int64(range.from), Int64(range.to)]
        var out: [Double: Double] = [:]
        let rows = try StoreRow.fetchCursor(
            db, sql: "SELECT bucket_start, saved_byte_seconds FROM rollup_fleet_hour WHERE bucket_start >= ? AND bucket_start < ?",
            arguments: args)
        while let r = try rows.next() { out[Double(r[0] as Int64)] = (r[1] as Double) / ReportTime.hour }
        let dirty = try Int64.fetchAll(
            db, sql: "SELECT bucket_start FROM rollup_fleet_dirty WHERE bucket_start >= ? AND bucket_start < ?", arguments: args)
        for h in dirty { out[Double(h)] = try fleetHourSum(db, hour: h).map { $0 / ReportTime.hour } }
        return out
    }

    /// Adds month rollups (few rows per node: aggregated here rather than in SQL).
    ///
    /// Read in node id and month order: each node's figures add its months in month order, and
    /// each group's month series adds its nodes in id order, on both engines and whatever plan
    /// the engine picks, so that two reads of the same rows give the same doubles. (Without the
    /// order, SQLite returned them in `rollup_month_start`'s order, by each month's average
    /// saving, and PostgreSQL in the table's physical order, which updates and vacuums change.)
    /// SQLite walks the nodes by their key and finds each one's months by the primary key
    /// (`sqliteRollupRows`: no sort, and only the period's months); PostgreSQL sends each node's
    /// months as arrays, put in that order (`postgresRollupRows`).
    static func accumulateMonths(
        _ db: StoreDB, range: Interval, into acc: inout [String: NodeAccumulator], groups: [String: String]?,
        series: inout [String: [Double: Double]]
    ) throws {
        func add(_ r: RollupRow) {
            let id = r.nodeId
            guard acc[id] != nil else { return }
            let start = Double(r.start)
            acc[id]?.stats.merge(r.stats)
            let bucket = Interval(start, min(ReportTime.nextMonthStart(start), range.to))
            acc[id]?.covered.append(
                contentsOf: ReportMath.complement(of: r.gaps == nil ? [] : decodeGaps(r.gaps), within: bucket))
            if let g = groups?[id] {
                // Time average over the whole month (see `accumulate`).
                series[g, default: [:]][start, default: 0] += r.stats.savedByteSeconds / (ReportTime.nextMonthStart(start) - start)
            }
        }
        let rows = try rollupRows(db, table: "rollup_month", from: Int64(range.from), to: Int64(range.to))
        while let r = try rows.next() { add(r) }
    }

    /// Adds raw samples over a partial-hour edge. Read in time order (see `peakStreams`).
    static func accumulateRaw(
        _ db: StoreDB, range: Interval, policy: ReportPolicy, now: Double, horizons: [String: Double],
        into acc: inout [String: NodeAccumulator],
        groups: [String: String]?, series: inout [String: [Double: Double]], reads: RawReads? = nil, packs: Bool
    ) throws {
        let (from, to) = PeakStreams.readRange(range, policy: policy)
        let wanted = Set(acc.keys)
        let byNode = try rawSamples(db, from: from, to: to, full: true, packs: packs, wanted: { wanted.contains($0) })
        let sorted = byNode.sorted
        reads?.add(from: from, to: to, wanted: wanted, samples: sorted)
        for (id, samples) in sorted {
            let result = ReportMath.integrate(
                samples, from: range.from, to: range.to, bucketSeconds: ReportTime.hour, policy: policy,
                horizon: min(now, horizons[id] ?? now))
            if let i = acc.index(forKey: id) {
                acc.values[i].stats.merge(result.total)
                acc.values[i].covered.append(contentsOf: result.covered)
            }
            if let g = groups?[id] {
                // Time average over the part of the hour in the range and past (see `accumulate`).
                for (b, st) in result.buckets {
                    let length = min(b + ReportTime.hour, range.to, now) - max(b, range.from)
                    if length > 0 { series[g, default: [:]][b, default: 0] += st.savedByteSeconds / length }
                }
            }
        }
    }

    /// Every node's figures over `period`, and the series of each group named in `groups`
    /// (node id → group key) for group peaks: hourly for periods up to 7 days (`peakBasis`), also
    /// over the whole days whose figures come from day rows (read apart, from the fleet's hour
    /// rows for the fleet), by day or month beyond.
    static func nodeInputs(
        _ db: StoreDB, period: Interval, policy: ReportPolicy, now: Double, groups: ((ReportNode) -> String)?,
        label: String? = nil, candidates: [ReportNode]? = nil, fleetRollup: Bool = true, reads: RawReads? = nil,
        firstData: FirstDataMemo? = nil
    ) throws -> (inputs: [NodeReportInput], series: [String: [Double: Double]], nodes: [ReportNode]) {
        let candidates = try candidates ?? reportNodes(db, period: period)
        let firstData = firstData ?? FirstDataMemo()
        try firstData.prefetch(db, nodes: candidates, period: period)
        // Sized once: grown a node at a time, these tables were rehashed at every doubling, 14
        // times up to 10,000 nodes (docs/benchmarks.md, "The overview's dictionaries").
        var nodes: [(node: ReportNode, existence: Interval)] = []
        nodes.reserveCapacity(candidates.count)
        for n in candidates {
            if let e = try self.existence(db, node: n, period: period, now: now, firstData: firstData) {
                nodes.append((n, e))
            }
        }
        var acc: [String: NodeAccumulator] = [:]
        acc.reserveCapacity(nodes.count)
        var deletions: [String: Double] = [:]
        for (n, _) in nodes {
            acc[n.id] = NodeAccumulator()
            if let d = n.deletedAt { deletions[n.id] = d }
        }
        var groupMap: [String: String]?
        if let groups {
            var m: [String: String] = [:]
            m.reserveCapacity(nodes.count)
            for (n, _) in nodes { m[n.id] = groups(n) }
            groupMap = m
        }
        var series: [String: [Double: Double]] = [:]
        let hourlySeries = peakBasis(period) == .hour
        for source in ReportSource.plan(period) {
            switch source {
            case .rollup(.day, let range) where hourlySeries && groupMap != nil:
                try accumulate(db, level: .day, range: range, into: &acc, groups: nil, series: &series, fleetRollup: fleetRollup)
                try accumulateSeries(
                    db, level: .hour, range: range, groups: groupMap, label: label, series: &series, fleetRollup: fleetRollup)
            case .rollup(.month, let range):
                try accumulateMonths(db, range: range, into: &acc, groups: groupMap, series: &series)
            case .rollup(let level, let range):
                try accumulate(
                    db, level: level, range: range, into: &acc, groups: groupMap, label: label, series: &series,
                    fleetRollup: fleetRollup)
            case .raw(let range):
                try accumulateRaw(
                    db, range: range, policy: policy, now: now, horizons: deletions, into: &acc, groups: groupMap,
                    series: &series, reads: reads, packs: fleetRollup)
            }
        }
        let inputs = nodes.compactMap { n, e -> NodeReportInput? in
            guard let a = acc[n.id] else { return nil }
            let covered = ReportMath.clip(ReportMath.coalesce(a.covered), to: e)
            return NodeReportInput(
                nodeId: n.id, name: n.name, labels: n.labels, deleted: n.deletedAt != nil, existence: e,
                stats: a.stats, gaps: ReportMath.complement(of: covered, within: e))
        }
        return (inputs, series, nodes.map(\.node))
    }

    /// One whole UTC day of a by-day report: the fleet's sums and gaps over the day, and its
    /// hourly series (for the day's rollup peak).
    struct WholeDay: Sendable {
        var sums: GroupSums
        var gaps: [Interval]
        var series: [Double: Double]
    }

    /// The fleet's sums and gaps over one whole UTC day from its nodes' day rows, folded in node
    /// id order with each node existing the whole day: what `rollup_fleet_day` stores
    /// (`flushFleetDays`). The by-day report folds the same way itself the days whose stored row
    /// it cannot use (`wholeDays`), so the two are the same to the last bit.
    static func foldFleetDay(
        _ day: Interval, _ rows: [(id: String, stats: BucketStats, gaps: [Interval])]
    ) -> (sums: GroupSums, gaps: [Interval]) {
        let inputs = rows.sorted { $0.id < $1.id }.map { r in dayInput(r.id, existence: day, row: (r.stats, r.gaps)) }
        return (GroupSums(inputs), ReportAggregation.groupGaps(inputs))
    }

    /// A node's input for (part of) one day: its day row's figures, and the row's gaps within the
    /// part it existed; no row: no figures, and that part is all gap.
    static func dayInput(_ id: String, existence: Interval, row: (BucketStats, [Interval])?) -> NodeReportInput {
        guard let (stats, gaps) = row else {
            return NodeReportInput(nodeId: id, name: "", existence: existence, stats: BucketStats(), gaps: [existence])
        }
        return NodeReportInput(
            nodeId: id, name: "", existence: existence, stats: stats,
            gaps: ReportMath.clip(ReportMath.coalesce(gaps), to: existence))
    }

    /// The fleet's figures and hourly series for every whole UTC day of `period`.
    ///
    /// A day is read from its `rollup_fleet_day` row (migrations/0045_rollup_fleet_day.sql) when
    /// that row is up to date (the day is not marked dirty) and every node of `candidates` existed
    /// either the whole day or not at all, since the row was folded with every node existing
    /// the whole day; its time is then 86,400 s per node that existed. Other days (and every day
    /// with `fleetRollup: false`, the reference) are folded here from the day's rollup_day rows:
    /// one input per node that existed in the day, existence clipped to it, in node id order.
    static func wholeDays(
        _ db: StoreDB, period: Interval, candidates: [ReportNode], now: Double, fleetRollup: Bool = true,
        firstData: FirstDataMemo? = nil
    ) throws -> [Double: WholeDay] {
        let first = (period.from / ReportTime.day).rounded(.up) * ReportTime.day
        let last = ReportTime.dayStart(period.to)
        guard first < last else { return [:] }
        var existence: [(node: ReportNode, existence: Interval)] = []
        let firstData = firstData ?? FirstDataMemo()
        try firstData.prefetch(db, nodes: candidates, period: period)
        for n in candidates {
            if let e = try Self.existence(db, node: n, period: period, now: now, firstData: firstData) {
                existence.append((n, e))
            }
        }
        existence.sort { $0.node.id < $1.node.id }
        let days = Int(((last - first) / ReportTime.day).rounded())
        func dayIndex(_ start: Int64) -> Int? {
            let di = Int(((Double(start) - first) / ReportTime.day).rounded(.down))
            return di >= 0 && di < days ? di : nil
        }
        let (whole, partial) = Self.dayCoverage(existence.map(\.existence), first: first, days: days)
        var out: [Double: WholeDay] = [:]
        var folded = [Bool](repeating: false, count: days)
        if fleetRollup {
            var dirty = Set<Int>()
            for b in try Int64.fetchAll(
                db, sql: "SELECT bucket_start FROM rollup_fleet_day_dirty WHERE bucket_start >= ? AND bucket_start < ?",
                arguments: [Int64(first), Int64(last)])
            {
                if let di = dayIndex(b) { dirty.insert(di) }
            }
            var stored: [Int: (rows: Int, sums: GroupSums, gaps: [Interval])] = [:]
            let rows = try StoreRow.fetchCursor(
                db,
                sql: "SELECT bucket_start, \(fleetDayColumns) FROM rollup_fleet_day WHERE bucket_start >= ? AND bucket_start < ?",
                arguments: [Int64(first), Int64(last)])
            while let r = try rows.next() {
                guard let di = dayIndex(r[0]) else { continue }
                let st = BucketStats(
                    dataSeconds: r[3], samples: Int(r[4] as Int64), savedByteSeconds: r[5], peakSavedBytes: r[6],
                    cpuSeconds: r[7], peakCPUPercent: r[8], fullScans: r[9], runningSeconds: r[10], stoppedSeconds: r[11],
                    prunedSeconds: r[12], unmanagedSeconds: r[13], profitByteSeconds: r[14], profitSeconds: r[15])
                let sums = GroupSums(
                    total: st, withData: Int(r[2] as Int64), avgSaved: r[16], avgCores: r[17], netProfit: r[18],
                    periodSeconds: 0)
                let gapText: String? = r[19]
                stored[di] = (Int(r[1] as Int64), sums, decodeGaps(gapText))
            }
            for di in 0..<days where !dirty.contains(di) && !partial[di] {
                let d = first + Double(di) * ReportTime.day
                var (rows, sums, gaps) = stored[di] ?? (0, GroupSums(), [Interval(d, d + ReportTime.day)])
                // A row folded from a node that did not exist that day (not expected: a node has no
                // data outside its existence) would count it: the day is folded here instead.
                guard rows <= whole[di] else { continue }
                sums.periodSeconds = Double(whole[di]) * ReportTime.day
                if whole[di] == 0 { gaps = [] }
                out[d] = WholeDay(sums: sums, gaps: gaps, series: [:])
                folded[di] = true
            }
        }
        // The other days, from their rollup_day rows: one query for the whole range when most
        // days need it (the reference; a database whose fleet days are not folded yet).
        let left = (0..<days).filter { !folded[$0] }
        if !left.isEmpty {
            var slot: [String: Int] = [:]
            for (i, n) in existence.enumerated() { slot[n.node.id] = i }
            var rowsByDay: [Int: [(BucketStats, [Interval])?]] = [:]
            func read(_ sql: String, _ arguments: StoreArguments) throws {
                let rows = try StoreRow.fetchCursor(db, sql: sql, arguments: arguments)
                while let r = try rows.next() {
                    guard let i = slot[r[0] as String], let di = dayIndex(r[1]), !folded[di] else { continue }
                    let gapText: String? = r[17]
                    rowsByDay[di, default: Array(repeating: nil, count: existence.count)][i] =
                        (stats(r, at: 2), gapText == nil ? [] : decodeGaps(gapText))
                }
            }
            let select = "SELECT node_id, bucket_start, \(rollupColumns) FROM rollup_day"
            if left.count * 4 > days {
                try read("\(select) WHERE bucket_start >= ? AND bucket_start < ?", [Int64(first), Int64(last)])
            } else {
                for di in left { try read("\(select) WHERE bucket_start = ?", [Int64(first + Double(di) * ReportTime.day)]) }
            }
            for di in left {
                let d = first + Double(di) * ReportTime.day
                let day = Interval(d, d + ReportTime.day)
                let dayRows = rowsByDay[di]
                var inputs: [NodeReportInput] = []
                inputs.reserveCapacity(existence.count)
                for (i, (n, e)) in existence.enumerated() {
                    let ex = Interval(max(day.from, e.from), min(day.to, e.to))
                    guard ex.length > 0 else { continue }
                    inputs.append(dayInput(n.id, existence: ex, row: dayRows?[i] ?? nil))
                }
                out[d] = WholeDay(sums: GroupSums(inputs), gaps: ReportAggregation.groupGaps(inputs), series: [:])
            }
        }
        if fleetRollup {
            for (b, v) in try fleetHourSeries(db, range: Interval(first, last)) {
                out[ReportTime.dayStart(b)]?.series[b] = v
            }
        } else {
            let hours = try StoreRow.fetchCursor(
                db,
                sql: """
                    SELECT bucket_start AS b, \(db.orderedSum("saved_byte_seconds")) / 3600.0 AS s
                    FROM \(db.bucketRows("rollup_hour", columns: "saved_byte_seconds")) GROUP BY bucket_start
                    """, arguments: [Int64(first), Int64(last)])
            while let r = try hours.next() {
                let b = Double(r["b"] as Int64)
                out[ReportTime.dayStart(b)]?.series[b] = r["s"]
            }
        }
        return out
    }

    /// Per day of `days` whole UTC days from `first`: how many of the existences span the whole
    /// day, and whether one covers only part of it. From each existence's ends: whole days lie
    /// between them, and a day is partial when an end falls inside it.
    static func dayCoverage(_ existences: [Interval], first: Double, days: Int) -> (whole: [Int], partial: [Bool]) {
        var starts = [Int](repeating: 0, count: days + 1)
        var partial = [Bool](repeating: false, count: days)
        for e in existences where e.to > e.from {
            let from = (e.from - first) / ReportTime.day
            let to = (e.to - first) / ReportTime.day
            let lo = max(0, Int(from.rounded(.up)))
            let hi = min(days, Int(to.rounded(.down)))
            if lo < hi {
                starts[lo] += 1
                starts[hi] -= 1
            }
            for end in [from, to] where end.rounded(.down) != end {
                let di = Int(end.rounded(.down))
                if di >= 0 && di < days { partial[di] = true }
            }
        }
        var whole = [Int](repeating: 0, count: days)
        var running = 0
        for di in 0..<days {
            running += starts[di]
            whole[di] = running
        }
        return (whole, partial)
    }

    /// The savings report over [since, until). Rolls up samples that just arrived first.
    ///
    /// `exactPeaks: false` skips reading the raw samples and stored hour peaks for exact group
    /// peaks: for callers that do not show peaks (the dashboard's overview cards), since on a big
    /// fleet that read is most of a short report's cost. The peaks then come from rollups.
    public func savingsReport(
        since: Date, until: Date, by: ReportGrouping, label: String?, policy: ReportPolicy = .default,
        now: Date = Date(), exactPeaks: Bool = true
    ) async throws -> SavingsReport {
        let period = Interval(since.timeIntervalSince1970, until.timeIntervalSince1970)
        try await rollupCatchUp(policy: policy, now: now, scope: .wholeHoursIn(period))
        return try await savingsReport(
            since: since, until: until, by: by, label: label, policy: policy, now: now, exactPeaks: exactPeaks,
            fleetRollup: true)
    }

    /// The report as it stands, without a catch-up. `fleetRollup: false` reads the fleet's hourly
    /// series by summing `rollup_hour` (how reports read it before `rollup_fleet_hour`), the
    /// reference the fleet rollup is tested against.
    func savingsReport(
        since: Date, until: Date, by: ReportGrouping, label: String?, policy: ReportPolicy, now: Date,
        exactPeaks: Bool, fleetRollup: Bool
    ) async throws -> SavingsReport {
        let period = Interval(since.timeIntervalSince1970, until.timeIntervalSince1970)
        let nowT = now.timeIntervalSince1970
        let basis = Self.peakBasis(period)
        // The reference (`fleetRollup: false`) sweeps every raw sample of a period of any length
        // whose raw samples are kept; reports read stored hour peaks and sweep within a budget.
        let sweepCap = fleetRollup ? Self.exactPeakMaxSeconds : .infinity
        return try await read { db in
            try db.reportWorkMemory()
            let budget = PeakSweepBudget()
            var rows: [SavingsRow] = []
            let total: ReportRowFigures
            switch by {
            case .node, .label:
                let labelKey = label ?? ""
                let group: (ReportNode) -> String = by == .label ? { n in n.labels[labelKey] ?? "" } : { _ in "fleet" }
                // The raw edges read for the figures serve the fleet peak's sweep of the same edges.
                let reads = fleetRollup ? RawReads() : nil
                let (inputs, series, nodes) = try Self.nodeInputs(
                    db, period: period, policy: policy, now: nowT, groups: group, label: by == .label ? labelKey : nil,
                    fleetRollup: fleetRollup, reads: reads)
                if by == .node {
                    rows = inputs.map { SavingsRow(ReportAggregation.nodeRow($0)) }
                    // The fleet is one group: its stored hour peaks spare most of the raw read.
                    let peak = try Self.exactFleetPeak(
                        db, window: period, nodes: nodes, policy: policy, now: nowT, enabled: exactPeaks,
                        stored: fleetRollup, reads: reads, budget: budget, sweepCap: sweepCap)
                    total = ReportAggregation.groupRow(
                        key: "fleet", nodes: inputs, period: period, series: series["fleet"] ?? [:],
                        exactPeak: peak, basis: basis)
                } else if fleetRollup {
                    // Label groups and the fleet from their stored hour peaks, one sweep of the rest.
                    let exact = try Self.exactLabelPeaks(
                        db, window: period, nodes: nodes, label: labelKey, policy: policy, now: nowT, enabled: exactPeaks,
                        stored: true, reads: reads, budget: budget)
                    rows = ReportAggregation.labelRows(
                        inputs, label: labelKey, period: period, series: series, exactPeaks: exact?.groups, basis: basis
                    ).map(SavingsRow.init)
                    let fleet = Self.fleetSeries(ofGroups: series)
                    // The label groups' sweep refused (their peaks not computed yet, e.g. after a
                    // label change): the fleet's own stored hour peaks may still make its peak exact.
                    let fleetPeak =
                        try exact == nil
                        ? Self.exactFleetPeak(
                            db, window: period, nodes: nodes, policy: policy, now: nowT, enabled: exactPeaks,
                            stored: true, reads: reads, budget: budget)
                        : exact?.fleet
                    total = ReportAggregation.groupRow(
                        key: "fleet", nodes: inputs, period: period, series: fleet, exactPeak: fleetPeak, basis: basis)
                } else {
                    let streams = try Self.peakStreams(
                        db, period: period, nodes: nodes, policy: policy, now: nowT, enabled: exactPeaks, sweepCap: sweepCap)
                    let exact = streams?.peaks(within: period, group: group)
                    rows = ReportAggregation.labelRows(
                        inputs, label: labelKey, period: period, series: series, exactPeaks: exact, basis: basis
                    ).map(SavingsRow.init)
                    let fleet = Self.fleetSeries(ofGroups: series)
                    let fleetPeak = streams?.peaks(within: period, group: { _ in "fleet" })["fleet"]
                    total = ReportAggregation.groupRow(
                        key: "fleet", nodes: inputs, period: period, series: fleet, exactPeak: fleetPeak, basis: basis)
                }
            case .day:
                var d = ReportTime.dayStart(period.from)
                var fleetSeries: [Double: Double] = [:]
                let candidates = try Self.reportNodes(db, period: period)
                let firstData = FirstDataMemo()
                // The period's total: every node's figures over the whole days in one read (day
                // rows, months over 62 days), merged with its figures over the partial first and
                // last days, read below.
                var all: [String: NodeReportInput] = [:]
                func merge(_ inputs: [NodeReportInput]) {
                    for n in inputs {
                        if var prev = all[n.nodeId] {
                            prev.stats.merge(n.stats)
                            prev.gaps += n.gaps
                            prev.existence = Interval(
                                min(prev.existence.from, n.existence.from), max(prev.existence.to, n.existence.to))
                            all[n.nodeId] = prev
                        } else {
                            all[n.nodeId] = n
                        }
                    }
                }
                let first = (period.from / ReportTime.day).rounded(.up) * ReportTime.day
                let last = ReportTime.dayStart(period.to)
                if first < last {
                    merge(
                        try Self.nodeInputs(
                            db, period: Interval(first, last), policy: policy, now: nowT, groups: nil,
                            candidates: candidates, fleetRollup: fleetRollup, firstData: firstData
                        ).inputs)
                }
                let whole = try Self.wholeDays(
                    db, period: period, candidates: candidates, now: nowT, fleetRollup: fleetRollup, firstData: firstData)
                // Each day with data whose raw samples are kept gets an exact peak. With stored
                // fleet hour peaks (the default policy) it sweeps only what has none, within the
                // report's budget, days in order (once it refused a day, the days after it get
                // rollup peaks, with no more reads); without them (another policy) only periods
                // up to 24 h are swept. The reference reads every raw sample of the period once,
                // or of each day when retention cut into the period. The period's peak is the
                // highest of its days' when its raw samples are all kept and no day was refused.
                let periodExact = try Self.exactPeaksPossible(
                    db, period: period, policy: policy, enabled: exactPeaks, sweepCap: .infinity)
                let streams =
                    !fleetRollup && periodExact
                    ? try Self.peakStreams(
                        db, period: period, nodes: candidates, policy: policy, now: nowT, enabled: exactPeaks,
                        sweepCap: .infinity) : nil
                let daysExact = exactPeaks && (!fleetRollup || policy == .default || period.length <= Self.exactPeakMaxSeconds)
                // Days before retention's cut (and its margin) have no exact peak: not asked for.
                let rawFrom = try Self.stateValue(db, Self.samplesCutKey).map { Double($0) / 1000 + policy.maxGapSeconds }
                var highestDay: Double?
                while d < period.to {
                    let window = Interval(max(d, period.from), min(d + ReportTime.day, period.to))
                    let sums: GroupSums
                    let gaps: [Interval]
                    let s: [Double: Double]
                    // A partial day's raw edges serve its peak's sweep (with the nodes that existed in it).
                    let reads = fleetRollup ? RawReads() : nil
                    var dayNodes = candidates
                    if let w = whole[d] {
                        (sums, gaps, s) = (w.sums, w.gaps, w.series)
                    } else {
                        // A partial day: its nodes in id order, as whole days are folded.
                        let (i, series, nodes) = try Self.nodeInputs(
                            db, period: window, policy: policy, now: nowT, groups: { _ in "fleet" },
                            candidates: candidates, fleetRollup: fleetRollup, reads: reads, firstData: firstData)
                        let inputs = i.sorted { $0.nodeId < $1.nodeId }
                        (sums, gaps, s) = (GroupSums(inputs), ReportAggregation.groupGaps(inputs), series["fleet"] ?? [:])
                        merge(inputs)
                        if fleetRollup { dayNodes = nodes }
                    }
                    var dayPeak: Double?
                    if !daysExact || !(sums.total.dataSeconds > 0) {
                        // No exact day peaks, or no data: no peak to read.
                    } else if let streams {
                        dayPeak = streams.peaks(within: window, group: { _ in "fleet" })["fleet"]
                    } else if window.from < rawFrom ?? -.infinity || (fleetRollup && budget.refused) {
                        // Raw samples cut, or the budget is spent: a rollup peak.
                    } else {
                        dayPeak = try Self.exactFleetPeak(
                            db, window: window, nodes: dayNodes, policy: policy, now: nowT, enabled: exactPeaks,
                            stored: fleetRollup, reads: reads, budget: budget, sweepCap: .infinity)
                        if let p = dayPeak { highestDay = max(highestDay ?? p, p) }
                    }
                    rows.append(
                        SavingsRow(
                            ReportAggregation.groupRow(
                                key: ReportTime.dayKey(d), sums: sums, series: s, gaps: gaps, exactPeak: dayPeak,
                                basis: .hour)))
                    for (k, v) in s { fleetSeries[k, default: 0] += v }
                    d += ReportTime.day
                }
                let fleetPeak =
                    fleetRollup
                    ? (periodExact && daysExact && !budget.refused ? highestDay : nil)
                    : streams?.peaks(within: period, group: { _ in "fleet" })["fleet"]
                total = ReportAggregation.groupRow(
                    key: "fleet", nodes: all.values.sorted { $0.nodeId < $1.nodeId }, period: period, series: fleetSeries,
                    exactPeak: fleetPeak, basis: .hour)
            }
            return SavingsReport(
                since: since, until: until, by: by, label: by == .label ? label : nil, generatedAt: now, rows: rows,
                total: SavingsRow(total), maxGapSeconds: policy.maxGapSeconds)
        }
    }

    /// A node's history over [since, until): raw samples or hour/day rollups, with its gaps.
    /// nil when the node is unknown (deleted nodes' history stays until purged).
    ///
    /// Gaps are only where the node existed (registered, not yet deleted, and time has passed)
    /// and sent nothing: the time before its registration or after `now` is not a gap, it is
    /// outside the node's life (`existence` in the reply).
    public func history(
        nodeId: String, since: Date, until: Date, resolution: HistoryResolution, policy: ReportPolicy = .default,
        maxSamples: Int = HistoryResponse.maxSamples, now: Date = Date()
    ) async throws -> HistoryResponse? {
        // "Now" to the millisecond: the hour under way is cut at it and its row stores its gaps
        // (the part of the hour not over yet among them) to the millisecond, so the node's life,
        // which ends at the same "now", ends where that row's data does, not a fraction of a
        // millisecond later (a gap of "0s" at the end of the hour under way).
        let now = Date(timeIntervalSince1970: (now.timeIntervalSince1970 * 1000).rounded(.down) / 1000)
        if resolution != .raw { try await rollupCatchUp(policy: policy, now: now, scope: .node(nodeId)) }
        let period = Interval(since.timeIntervalSince1970, until.timeIntervalSince1970)
        let nowT = now.timeIntervalSince1970
        return try await read { db -> HistoryResponse? in
            guard
                let row = try StoreRow.fetchOne(
                    db, sql: "SELECT id, name, registered_at, deleted_at FROM nodes WHERE id = ?", arguments: [nodeId])
            else { return nil }
            let name: String = row["name"]
            let node = ReportNode(
                id: nodeId, name: name, labels: [:], registeredAt: Double(row["registered_at"] as Int64) / 1000,
                deletedAt: (row["deleted_at"] as Int64?).map { Double($0) / 1000 })
            let existence = try Self.existence(db, node: node, period: period, now: nowT)
            func gapsWithin(_ covered: [Interval]) -> [TimeRange] {
                guard let existence else { return [] }
                return ReportMath.complement(of: covered, within: existence).map(TimeRange.init)
            }
            switch resolution {
            case .raw:
                // Times are whole seconds on the wire: samples less than a second apart share a
                // taken_at, and PostgreSQL returns ties in any order (SQLite in insertion order).
                // Ties go by sequence number, the agent's order, on both engines.
                let (lo, hi) = (Int64(period.from * 1000), Int64(period.to * 1000))
                var rows = try StoreRow.fetchAll(
                    db,
                    sql: """
                        SELECT seq, taken_at, phase, phase_reason, run, pages_to_scan, sleep_millisecs, pages_shared,
                          pages_sharing, pages_unshared, pages_volatile, full_scans, saved_bytes, general_profit,
                          mem_total_kb, mem_available_kb, ksmd_cpu_percent, ksmd_cpu_seconds, applied_generation, apply_error
                        FROM samples WHERE node_id = ? AND taken_at >= ? AND taken_at < ? ORDER BY taken_at, seq LIMIT ?
                        """,
                    arguments: [nodeId, lo, hi, maxSamples + 1])
                // More than `maxSamples`: the first ones, and how many more there are.
                var omitted: Int?
                if rows.count > maxSamples {
                    rows.removeLast(rows.count - maxSamples)
                    let all = try Int.fetchOne(
                        db, sql: "SELECT COUNT(*) FROM samples WHERE node_id = ? AND taken_at >= ? AND taken_at < ?",
                        arguments: [nodeId, lo, hi])
                    omitted = (all ?? maxSamples) - maxSamples
                }
                let samples = rows.map { r -> HistorySample in
                    let phase: String = r["phase"]
                    return HistorySample(
                        seq: r["seq"], takenAt: Time.date(r["taken_at"] as Int64),
                        phase: KSMPhase(rawValue: phase) ?? .stopped, phaseReason: (r["phase_reason"] as String?) ?? "",
                        run: (r["run"] as Int?) ?? 0, pagesToScan: (r["pages_to_scan"] as Int?) ?? 0,
                        sleepMillisecs: (r["sleep_millisecs"] as Int?) ?? 0,
                        pagesShared: (r["pages_shared"] as Int64?) ?? 0, pagesSharing: (r["pages_sharing"] as Int64?) ?? 0,
                        pagesUnshared: (r["pages_unshared"] as Int64?) ?? 0,
                        pagesVolatile: (r["pages_volatile"] as Int64?) ?? 0, fullScans: (r["full_scans"] as Int64?) ?? 0,
                        savedBytes: r["saved_bytes"], generalProfit: r["general_profit"],
                        memTotalBytes: ((r["mem_total_kb"] as Int64?) ?? 0) * 1024,
                        memAvailableBytes: ((r["mem_available_kb"] as Int64?) ?? 0) * 1024,
                        ksmdCPUPercent: r["ksmd_cpu_percent"], ksmdCPUSeconds: r["ksmd_cpu_seconds"],
                        appliedGeneration: r["applied_generation"], applyError: r["apply_error"])
                }
                let reduced = try Self.reportSamples(
                    db, nodeId: nodeId, from: period.from - policy.maxGapSeconds, to: period.to + policy.maxGapSeconds)
                let integ = ReportMath.integrate(
                    reduced, from: period.from, to: period.to, bucketSeconds: ReportTime.hour, policy: policy,
                    horizon: nowT)
                return HistoryResponse(
                    nodeId: nodeId, name: name, since: since, until: until, resolution: .raw, samples: samples,
                    omittedSamples: omitted, gaps: gapsWithin(integ.covered), existence: existence.map(TimeRange.init))
            case .hour, .day:
                let level: RollupLevel = resolution == .hour ? .hour : .day
                let from = level == .hour ? ReportTime.hourStart(period.from) : ReportTime.dayStart(period.from)
                let rows = try StoreRow.fetchAll(
                    db,
                    sql: """
                        SELECT bucket_start, \(Self.rollupColumns) FROM \(level.table)
                        WHERE node_id = ? AND bucket_start >= ? AND bucket_start < ? ORDER BY bucket_start
                        """,
                    arguments: [nodeId, Int64(from), Int64(period.to)])
                var covered: [Interval] = []
                let firstData = FirstDataMemo()
                // By position (a year of hours is 8,760 rows; a name is looked up per column and row).
                let buckets = try rows.compactMap { r -> HistoryBucket? in
                    let start = Double(r[0] as Int64)
                    covered += ReportMath.complement(
                        of: Self.decodeGaps(r[16]), within: Interval(start, start + level.seconds))
                    let stats = Self.stats(r, at: 1)
                    // A row without data time (its only sample an agent's goodbye after a gap,
                    // which holds no time) is no data: left out, its time a gap, not a bucket of 0 B.
                    guard stats.dataSeconds > 0 else { return nil }
                    // Its coverage over the node's life in the whole bucket, not the life cut at
                    // the period's edges (a bucket --since or --until falls inside of is measured
                    // whole, as its data time is).
                    let bucket = Interval(start, start + level.seconds)
                    return HistoryBucket(
                        start: start, seconds: level.seconds, stats: stats,
                        existence: try Self.existence(db, node: node, period: bucket, now: nowT, firstData: firstData))
                }
                return HistoryResponse(
                    nodeId: nodeId, name: name, since: since, until: until, resolution: resolution, buckets: buckets,
                    gaps: gapsWithin(covered), existence: existence.map(TimeRange.init))
            }
        }
    }

    /// The fleet's saved bytes per bucket over [since, until) (sum of the nodes' bucket averages),
    /// and the ksmd CPU % summed likewise, for the dashboard's savings chart; each bucket's rows
    /// added in `bucketRowOrder` on both engines. Every stored sample is in it; the hour under
    /// way is as the rollup service last cut it (its pending rows are refreshed about every
    /// minute, and whenever a node's sample arrives), not recomputed for each chart: on a live
    /// fleet that is every node's row. `nodes` counts the rows with data time; a bucket none of
    /// whose rows has any (its only samples agents' goodbyes after a gap) is no data, left out
    /// like a bucket without rows: the chart's gap, never a point at 0 B. Such rows add 0 to the
    /// sums (their averages are 0), so the sums are those of the rows with data.
    public func fleetSeries(since: Date, until: Date, level: RollupLevel) async throws
        -> [(start: Date, savedBytes: Double, cpuPercent: Double, nodes: Int)]
    {
        try await rollupCatchUp(
            scope: .wholeHoursIn(Interval(since.timeIntervalSince1970, until.timeIntervalSince1970)))
        let range: StoreArguments = [Int64(since.timeIntervalSince1970), Int64(until.timeIntervalSince1970)]
        return try await read { db in
            try db.reportWorkMemory()
            // Rows without data time, per bucket, from the partial index `<table>_no_data`
            // (migration 0054, postgres 0023): rare, and not in the covering index.
            var noData: [Int64: Int] = [:]
            for r in try StoreRow.fetchAll(
                db,
                sql: """
                    SELECT bucket_start, COUNT(*) AS n
                    FROM \(level.table) \(db.indexedBy(level.table + "_no_data"))
                    WHERE data_seconds = 0 AND bucket_start >= ? AND bucket_start < ? GROUP BY bucket_start
                    """, arguments: range)
            {
                noData[r["bucket_start"]] = r["n"]
            }
            return try StoreRow.fetchAll(
                db,
                sql: """
                    SELECT bucket_start, \(db.orderedSum("saved_avg")) AS s, \(db.orderedSum("cpu_pct_avg")) AS c, COUNT(*) AS n
                    FROM \(db.bucketRows(level.table, columns: "saved_avg, cpu_pct_avg"))
                    GROUP BY bucket_start ORDER BY bucket_start
                    """,
                arguments: range
            ).compactMap { r in
                let start: Int64 = r["bucket_start"]
                let nodes = (r["n"] as Int) - noData[start, default: 0]
                guard nodes > 0 else { return nil }
                return (Date(timeIntervalSince1970: Double(start)), r["s"], r["c"], nodes)
            }
        }
    }
}
