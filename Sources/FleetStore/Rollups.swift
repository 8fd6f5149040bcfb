import FleetAPI
import Foundation
import KSMCore

/// Which rollup table.
public enum RollupLevel: String, Sendable, CaseIterable {
    case hour, day, month
    var table: String {
        switch self {
        case .hour: return "rollup_hour"
        case .day: return "rollup_day"
        case .month: return "rollup_month"
        }
    }
    /// Bucket length (months: the longest, 31 days; use `end(of:)` for a month's real end).
    public var seconds: Double {
        switch self {
        case .hour: return ReportTime.hour
        case .day: return ReportTime.day
        case .month: return 31 * ReportTime.day
        }
    }
    /// The end of the bucket starting at `start`.
    public func end(of start: Double) -> Double {
        self == .month ? ReportTime.nextMonthStart(start) : start + seconds
    }
    /// The start of the bucket holding `t`.
    public func start(of t: Double) -> Double {
        switch self {
        case .hour: return ReportTime.hourStart(t)
        case .day: return ReportTime.dayStart(t)
        case .month: return ReportTime.monthStart(t)
        }
    }
}

/// What one rollup pass did.
public struct RollupPassResult: Sendable, Equatable {
    public var samples: Int
    public var hours: Int
    public var days: Int
    /// More new samples are waiting (the pass hit its batch size).
    public var more: Bool
}

/// What one retention pass deleted.
public struct RetentionResult: Sendable, Equatable {
    public var samples: Int
    public var hours: Int
    public var days: Int
    public var months: Int = 0
    /// Per-day process group rows (`process_savings_day`), pruned with the rollups.
    public var processDays: Int = 0
    /// Per-month process group rows (`process_savings_month`): those of months retention cut.
    public var processMonths: Int = 0
}

extension FleetDatabase {
    static let rollupColumns = """
        data_seconds, samples, saved_byte_seconds, saved_avg, saved_peak, cpu_seconds, cpu_pct_avg, cpu_pct_peak,
        full_scans, running_seconds, stopped_seconds, pruned_seconds, unmanaged_seconds, profit_byte_seconds,
        profit_seconds, gaps
        """
    /// `column = excluded.column` for every rollup column (the upsert of a bucket on PostgreSQL;
    /// SQLite keeps `INSERT OR REPLACE`: an upsert's conflict clause would override the `OR
    /// IGNORE` of the rollup_hour triggers, 0040_rollup_fleet_hour.sql).
    static let rollupUpdates = rollupColumns.split(separator: ",")
        .map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
        .map { "\($0) = excluded.\($0)" }.joined(separator: ", ")
    static let watermarkKey = "rollup_rowid"
    /// Counts the rollup passes stored: a pass stores its results only if none was stored since
    /// its snapshot.
    static let passKey = "rollup_pass"
    /// The latest retention cut of raw samples (unix ms): before it, samples may be gone.
    static let samplesCutKey = "samples_cut"
    /// Counts the changes that made stored hour peaks unknown: its value becomes the changed
    /// hours' `peak_version` (migrations/0044_fleet_hour_peak_version.sql).
    static let peakVersionKey = "peak_version"

    static func stats(_ row: StoreRow) -> BucketStats {
        BucketStats(
            dataSeconds: row["data_seconds"], samples: row["samples"], savedByteSeconds: row["saved_byte_seconds"],
            peakSavedBytes: row["saved_peak"], cpuSeconds: row["cpu_seconds"], peakCPUPercent: row["cpu_pct_peak"],
            fullScans: row["full_scans"], runningSeconds: row["running_seconds"], stoppedSeconds: row["stopped_seconds"],
            prunedSeconds: row["pruned_seconds"], unmanagedSeconds: row["unmanaged_seconds"],
            profitByteSeconds: row["profit_byte_seconds"], profitSeconds: row["profit_seconds"])
    }

    /// `stats(_:)` by position, for hot loops: the row holds `rollupColumns` from index `o` on.
    static func stats(_ row: StoreRow, at o: Int) -> BucketStats {
        BucketStats(
            dataSeconds: row[o], samples: row[o + 1], savedByteSeconds: row[o + 2], peakSavedBytes: row[o + 4],
            cpuSeconds: row[o + 5], peakCPUPercent: row[o + 7], fullScans: row[o + 8], runningSeconds: row[o + 9],
            stoppedSeconds: row[o + 10], prunedSeconds: row[o + 11], unmanagedSeconds: row[o + 12],
            profitByteSeconds: row[o + 13], profitSeconds: row[o + 14])
    }

    static func encodeGaps(_ gaps: [Interval]) -> String? {
        guard !gaps.isEmpty else { return nil }
        return "[" + gaps.map { "[\(ReportTime.decimal($0.from, places: 3)),\(ReportTime.decimal($0.to, places: 3))]" }
            .joined(separator: ",") + "]"
    }

    /// The gaps of a stored rollup row. Read by hand when the text has the shape `encodeGaps`
    /// writes (JSON pairs of plain decimals, no spaces): the JSON decoder cost a report over
    /// 10,000 young nodes an eighth of its time (every node's first hour row). Any other text
    /// goes to the JSON decoder, which gives the same for the hand-read shape
    /// (`decodeGapsAsJSON`, the oracle of its test).
    static func decodeGaps(_ text: String?) -> [Interval] {
        guard let text else { return [] }
        return GapText.parse(text) ?? decodeGapsAsJSON(text)
    }

    static func decodeGapsAsJSON(_ text: String) -> [Interval] {
        guard let data = text.data(using: .utf8),
            let pairs = try? JSONDecoder().decode([[Double]].self, from: data)
        else { return [] }
        return pairs.compactMap { $0.count == 2 ? Interval($0[0], $0[1]) : nil }
    }

    /// A node's samples with `taken_at` in [from, to) (Unix seconds), reduced for the report math.
    static func reportSamples(_ db: StoreDB, nodeId: String, from: Double, to: Double) throws -> [ReportSample] {
        let rows = try StoreRow.fetchCursor(
            db,
            sql: """
                SELECT taken_at, saved_bytes, ksmd_cpu_seconds, ksmd_cpu_percent, full_scans, phase, general_profit,
                  ends_data
                FROM samples WHERE node_id = ? AND taken_at >= ? AND taken_at < ? ORDER BY \(db.sampleOrder)
                """,
            arguments: [nodeId, Int64((from * 1000).rounded(.down)), Int64((to * 1000).rounded(.up))])
        var out: [ReportSample] = []
        // By position (the SELECT's order): looking columns up by name cost more than the rest
        // of the row, and a rollup pass reads every sample of each hour it touches.
        while let r = try rows.next() { out.append(reportSample(r)) }
        return out
    }

    /// Several nodes' samples with `taken_at` in [from, to), reduced for the report math, by node.
    static func reportSamples(_ db: StoreDB, nodeIds: [String], from: Double, to: Double) throws -> [String: [ReportSample]] {
        let rows = try StoreRow.fetchCursor(
            db,
            sql: """
                SELECT taken_at, saved_bytes, ksmd_cpu_seconds, ksmd_cpu_percent, full_scans, phase, general_profit,
                  ends_data, node_id
                FROM samples WHERE node_id IN \(db.jsonArrayValues()) AND taken_at >= ? AND taken_at < ?
                ORDER BY node_id, \(db.sampleOrder)
                """,
            arguments: [StoredJSON.strings(nodeIds), Int64((from * 1000).rounded(.down)), Int64((to * 1000).rounded(.up))])
        var out: [String: [ReportSample]] = [:]
        var node = ""
        var list: [ReportSample] = []
        while let r = try rows.next() {
            let id: String = r[8]
            if id != node {
                if !list.isEmpty { out[node] = list }
                node = id
                list = out[id] ?? []
            }
            list.append(reportSample(r))
        }
        if !list.isEmpty { out[node] = list }
        return out
    }

    /// A row of `reportSamples`' SELECT, by position.
    static func reportSample(_ r: StoreRow) -> ReportSample {
        let phase: String = r[5]
        return ReportSample(
            at: Double(r[0] as Int64) / 1000, savedBytes: r[1],
            cpuSeconds: r[2], cpuPercent: r[3],
            fullScans: (r[4] as Int64?) ?? 0, phase: KSMPhase(rawValue: phase) ?? .stopped,
            netProfit: r[6], endsData: ((r[7] as Int64?) ?? 0) != 0)
    }

    /// The highest samples rowid below which no sample can still appear. SQLite has one writer,
    /// so every rowid it shows is final. On PostgreSQL, replicas insert concurrently and a
    /// transaction can commit a lower rowid after a higher one is visible: a watermark moved past
    /// it would skip that sample for good. A SHARE lock on `samples` waits for the inserts under
    /// way (they hold ROW EXCLUSIVE until their commit) and makes new ones wait a moment; the
    /// highest rowid seen then has no uncommitted one below it.
    func committedRowidBound() async throws -> Int64 {
        guard engine == .postgres else { return Int64.max }
        return try await backgroundWrite { db in
            try db.execute(sql: "LOCK TABLE samples IN SHARE MODE")
            return try Int64.fetchOne(db, sql: "SELECT COALESCE(MAX(rowid), 0) FROM samples") ?? 0
        }
    }

    /// The highest samples rowid already rolled up.
    public func rollupWatermark() async throws -> Int64 {
        try await read { db in
            try Self.stateValue(db, Self.watermarkKey) ?? 0
        }
    }

    /// Rolls up samples stored since the last pass (at most `batch` of them): recomputes every
    /// hour those samples touch (a late or out-of-order sample changes its neighbours' spans too)
    /// from the raw samples, then the days holding those hours and the months holding those days,
    /// then moves the watermark. Everything is computed on a reader snapshot; the write
    /// transaction only stores the results, a few multi-row statements (on PostgreSQL on the
    /// background connection: ingest never waits for it there).
    ///
    /// `pendingRefresh`: an hour an earlier pass cut at "now" (its last sample's tail had not
    /// passed yet) is recomputed while time passes. Reports want it now (0, the default); the
    /// background service refreshes an hour that no new sample touched only when this process
    /// last computed it at least that many seconds ago. A live node's hour is touched by its
    /// next sample anyway, so the service's pass costs what the new samples cost, not the fleet.
    ///
    /// `batch`: a pass reads every sample of each node-hour it touches, so a backlog rolled up in
    /// small batches reads each hour once per batch (an hour of 1,000 nodes' samples, 144,000
    /// rows, in batches of 5,000: 29 passes each re-reading nearly every node's hour, 34 s); in
    /// batches of 50,000 each node-hour is read a few times. A pass's result is a row per
    /// node-hour touched, so its write stays small either way.
    ///
    /// `scope`: which of those pending hours a pass may recompute at all. A reader that wants its
    /// rows as of now asks only for the hours it reads (`PendingScope`); the others stay pending,
    /// for the service or a later reader. The samples the pass takes are rolled up whatever the
    /// scope: the watermark only moves past rows whose hours are computed.
    ///
    /// `readChunk`: how many nodes' rows one query reads (tests vary it; the result is the same).
    public func rollupPass(
        batch: Int = FleetDatabase.rollupBatch, policy: ReportPolicy = .default, now: Date = Date(), pendingRefresh: Double = 0,
        scope: PendingScope = .all, readChunk: Int = FleetDatabase.rollupReadChunk
    ) async throws -> RollupPassResult {
        struct Computed: Sendable {
            var pass: Int64
            var watermark: Int64
            var maxRowid: Int64
            var samples: Int
            var hours: [(NodeBucket, RollupBucket?)]
            var days: [(NodeBucket, RollupBucket?)]
            var months: [(NodeBucket, RollupBucket?)]
            var pendingBefore: Set<NodeBucket>
            /// Pending after this pass: the hours it cut at "now", and those it did not recompute.
            var pending: Set<NodeBucket>
            /// The hours this pass cut at "now".
            var cut: Set<NodeBucket>
            /// The slices (`raw_slice_pack`) its samples were taken in.
            var slices: Set<Int64>
            /// Stored hours of late samples' nodes kept as they were (retention cut their raw samples).
            var kept: Int
        }
        let key = Self.watermarkKey
        let horizon = now.timeIntervalSince1970
        let computedAt = pendingRefresh > 0 ? pendingComputedAt.withLock { $0 } : [:]
        let bound = try await committedRowidBound()
        let computed: Computed? = try await read { db in
            let pass = try Self.stateValue(db, Self.passKey) ?? 0
            let watermark = try Self.stateValue(db, key) ?? 0
            // Hours whose last sample's tail was cut at "now" by an earlier pass: recomputed until
            // the tail is whole, so an hour never claims time that had not passed and still gets
            // all of it once it has.
            // Only those in scope: a reader asks for a few of a live fleet's (every node's hour
            // under way), and on PostgreSQL reading them all is a transfer of every row.
            let pendingBefore = try Self.pendingHours(db, scope: scope)
            let rows = try StoreRow.fetchAll(
                db, sql: "SELECT rowid, node_id, taken_at FROM samples WHERE rowid > ? AND rowid <= ? ORDER BY rowid LIMIT ?",
                arguments: [watermark, bound, batch])
            var touched: [String: Set<Double>] = [:]
            var slices: Set<Int64> = []
            var maxRowid = watermark
            var keptStored = 0
            /// Data time of stored hours before the raw retention's cut, by node and hour.
            var storedEarly: [String: [Double: Double]] = [:]
            for r in rows {
                let rowid: Int64 = r[0]
                maxRowid = max(maxRowid, rowid)
                let t = Double(r[2] as Int64) / 1000
                slices.insert(Self.sliceStart(t))
                var h = ReportTime.hourStart(t - policy.maxGapSeconds)
                let last = ReportTime.hourStart(t + policy.maxGapSeconds)
                while h <= last {
                    touched[r[1], default: []].insert(h)
                    h += ReportTime.hour
                }
            }
            // Hours whose raw samples retention may have cut (their read reaches before the
            // cut): recomputed from what is left, a late sample's (a spool replayed after an
            // outage longer than the raw retention, a clock far behind) rewrote a stored hour
            // with the late samples alone and deleted the stored hours beside it. Such an hour's
            // stored row is kept when what is left holds less data time than it does (its own
            // samples are gone; the late samples in it go uncounted); else, as for an hour
            // without a row (the node sent nothing then) or one an earlier pass computed from
            // the first of the late samples, the recomputed row replaces it.
            if let cut = try Self.stateValue(db, Self.samplesCutKey) {
                let whole = Self.firstWholeHour(afterCut: cut, policy: policy)
                for (node, hours) in touched {
                    guard let first = hours.filter({ $0 < whole }).min() else { continue }
                    var stored: [Double: Double] = [:]
                    for r in try StoreRow.fetchAll(
                        db,
                        sql: "SELECT bucket_start, data_seconds FROM rollup_hour WHERE node_id = ? AND bucket_start >= ? AND bucket_start < ?",
                        arguments: [node, Int64(first), Int64(whole)])
                    {
                        stored[Double(r[0] as Int64)] = r[1]
                    }
                    if !stored.isEmpty { storedEarly[node] = stored }
                }
            }
            var pending: Set<NodeBucket> = []
            for p in pendingBefore where !(touched[p.nodeId]?.contains(p.start) ?? false) {
                if let at = computedAt[p], horizon - at < pendingRefresh {
                    pending.insert(p)  // computed a moment ago: stays pending, refreshed later
                } else {
                    touched[p.nodeId, default: []].insert(p.start)
                }
            }
            guard !touched.isEmpty else { return nil }
            var cut: Set<NodeBucket> = []
            var hours: [(NodeBucket, RollupBucket?)] = []
            var days: [(NodeBucket, RollupBucket?)] = []
            var months: [(NodeBucket, RollupBucket?)] = []
            // Nodes a chunk at a time, each read made for the whole chunk (nodes that need the
            // same range share a query): on PostgreSQL every query is a round trip, and a live
            // fleet touches every node's current hour pass after pass (10,000 nodes: 40,000
            // queries a minute, one node at a time).
            let nodes = touched.keys.sorted()
            for first in stride(from: 0, to: nodes.count, by: max(1, readChunk)) {
                let chunk = Array(nodes[first..<min(first + max(1, readChunk), nodes.count)])
                // Runs of nearby hours share one fetch.
                var runsOf: [String: [Interval]] = [:]
                for node in chunk {
                    var runs: [Interval] = []
                    for h in touched[node, default: []].sorted() {
                        if let last = runs.last, h - last.to <= 2 * ReportTime.hour {
                            runs[runs.count - 1].to = h
                        } else {
                            runs.append(Interval(h, h))
                        }
                    }
                    runsOf[node] = runs
                }
                // A deleted node's data ends at its deletion, as in the raw reads of reports.
                let deletedAt = try Self.deletedAt(db, nodeIds: chunk)
                var samplesOf: [String: [[ReportSample]]] = [:]  // a list per run
                for (runs, group) in Self.grouped(chunk, by: { runsOf[$0] ?? [] }) {
                    for run in runs {
                        let read = try Self.reportSamples(
                            db, nodeIds: group, from: run.from - policy.maxGapSeconds,
                            to: run.to + ReportTime.hour + policy.maxGapSeconds)
                        for node in group { samplesOf[node, default: []].append(read[node] ?? []) }
                    }
                }
                var hoursOf: [String: [Double: RollupBucket?]] = [:]
                for node in chunk {
                    let nodeHorizon = min(horizon, deletedAt[node] ?? horizon)
                    var nodeHours: [Double: RollupBucket?] = [:]
                    for (run, samples) in zip(runsOf[node] ?? [], samplesOf[node] ?? []) {
                        let from = run.from
                        let to = run.to + ReportTime.hour
                        let result = ReportMath.integrate(
                            samples, from: from, to: to, bucketSeconds: ReportTime.hour, policy: policy,
                            horizon: nodeHorizon)
                        // Cut at now (not at a deletion, which is final): recomputed while time passes.
                        if result.clippedAtHorizon && nodeHorizon == horizon {
                            // The cut tail lies in the hour of `now`, or spills into the next one;
                            // a sample dated ahead of the server (a clock up to 10 minutes fast
                            // is accepted) holds time in a later hour still: every hour up to its
                            // tail stays pending, or a node that stops then loses that time.
                            // Bounded by the skew a sample may have when accepted (measured on
                            // the accepting replica's clock; a later step back of this one's
                            // must not keep a day of hours pending).
                            let latest = min(
                                max(horizon, samples.map(\.at).max() ?? horizon),
                                horizon + StatusSample.maxClockAheadSeconds)
                            var h = ReportTime.hourStart(horizon)
                            while h <= ReportTime.hourStart(latest + policy.tailSeconds) {
                                cut.insert(NodeBucket(nodeId: node, start: h))
                                h += ReportTime.hour
                            }
                        }
                        var h = from
                        while h < to {
                            // A stored hour retention cut into, with more data time than what
                            // is left of its samples gives, is kept as it is (above).
                            if let storedSeconds = storedEarly[node]?[h],
                                (result.buckets[h]?.dataSeconds ?? 0) < storedSeconds
                            {
                                keptStored += 1
                                h += ReportTime.hour
                                continue
                            }
                            if let st = result.buckets[h], st.dataSeconds > 0 || st.samples > 0 {
                                let gaps = ReportMath.clip(result.gaps, to: Interval(h, h + ReportTime.hour))
                                nodeHours[h] = .some(RollupBucket(st, gaps: gaps))
                            } else {
                                nodeHours[h] = .some(nil)
                            }
                            h += ReportTime.hour
                        }
                    }
                    hoursOf[node] = nodeHours
                }
                // The days holding those hours and the months holding those days, from this
                // snapshot's rows with the new hours (and then days) in place of the old ones.
                let daysOf = try Self.rebuilt(db, .day, from: .hour, chunk, children: hoursOf)
                let monthsOf = try Self.rebuilt(db, .month, from: .day, chunk, children: daysOf)
                for node in chunk {
                    for (h, b) in (hoursOf[node] ?? [:]).sorted(by: { $0.key < $1.key }) {
                        hours.append((NodeBucket(nodeId: node, start: h), b))
                    }
                    for (d, b) in (daysOf[node] ?? [:]).sorted(by: { $0.key < $1.key }) {
                        days.append((NodeBucket(nodeId: node, start: d), b))
                    }
                    for (m, b) in (monthsOf[node] ?? [:]).sorted(by: { $0.key < $1.key }) {
                        months.append((NodeBucket(nodeId: node, start: m), b))
                    }
                }
            }
            return Computed(
                pass: pass, watermark: watermark, maxRowid: maxRowid, samples: rows.count, hours: hours, days: days,
                months: months, pendingBefore: pendingBefore, pending: pending.union(cut), cut: cut, slices: slices,
                kept: keptStored)
        }
        guard let computed else { return RollupPassResult(samples: 0, hours: 0, days: 0, more: false) }
        // Compare-and-set on the pass counter: a concurrent pass (the service and a report's
        // catch-up, or another replica's) that stored first makes this computation stale, so it
        // is dropped and redone.
        let stored = try await backgroundWrite { db -> Bool in
            let pass = try Self.stateValue(db, Self.passKey) ?? 0
            let current = try Self.stateValue(db, key) ?? 0
            guard pass == computed.pass, current == computed.watermark else { return false }
            for level in RollupLevel.allCases {
                let buckets = level == .hour ? computed.hours : level == .day ? computed.days : computed.months
                try Self.storeRollups(db, level: level, buckets)
            }
            try db.executeValues(
                "INSERT INTO rollup_state (key, value)", [[key, computed.maxRowid], [Self.passKey, pass + 1]],
                tail: "ON CONFLICT (key) DO UPDATE SET value = excluded.value")
            // Each slice a rolled-up sample was taken in gets this pass's number as its version: a
            // pack made of it before is not current any more (`slicePackPass`).
            try db.executeValues(
                "INSERT INTO raw_slice_pack (slice_start, version)", computed.slices.sorted().map { [$0, pass + 1] },
                tail: "ON CONFLICT (slice_start) DO UPDATE SET version = excluded.version")
            // Only the rows that changed: a live node's hour stays pending pass after pass.
            try db.executeValues(
                "DELETE FROM rollup_pending WHERE (node_id, bucket_start) IN (",
                computed.pendingBefore.subtracting(computed.pending).sorted().map { [$0.nodeId, Int64($0.start)] },
                tail: ")")
            try db.executeValues(
                "INSERT INTO rollup_pending (node_id, bucket_start)",
                computed.pending.subtracting(computed.pendingBefore).sorted().map { [$0.nodeId, Int64($0.start)] },
                tail: "ON CONFLICT DO NOTHING")
            return true
        }
        guard stored else { return RollupPassResult(samples: 0, hours: 0, days: 0, more: true) }
        if computed.kept > 0 {
            logger.notice(
                "late samples older than the raw retention: the stored hours around them kept as they were (their samples go uncounted there)",
                metadata: ["hours": "\(computed.kept)", "samples": "\(computed.samples)"])
        }
        pendingComputedAt.withLock { at in
            // The pending hours out of scope were not read: when they were computed still holds.
            at = at.filter { computed.pending.contains($0.key) || !scope.includes($0.key) }
            for p in computed.cut { at[p] = horizon }
        }
        return RollupPassResult(
            samples: computed.samples, hours: computed.hours.count, days: computed.days.count,
            more: computed.samples >= batch)
    }

    /// Stores computed rollup rows of one level: upserts the rows with data and deletes those
    /// without, a few hundred rows a statement.
    static func storeRollups(_ db: StoreDB, level: RollupLevel, _ buckets: [(NodeBucket, RollupBucket?)]) throws {
        var upserts: [StoreArguments] = []
        var deletes: [StoreArguments] = []
        for (key, bucket) in buckets {
            guard let bucket else {
                deletes.append([key.nodeId, Int64(key.start)])
                continue
            }
            let s = bucket.stats
            upserts.append([
                key.nodeId, Int64(key.start), s.dataSeconds, s.samples, s.savedByteSeconds, s.avgSavedBytes ?? 0,
                s.peakSavedBytes, s.cpuSeconds, s.avgCPUPercent ?? 0, s.peakCPUPercent, s.fullScans, s.runningSeconds,
                s.stoppedSeconds, s.prunedSeconds, s.unmanagedSeconds, s.profitByteSeconds, s.profitSeconds,
                encodeGaps(bucket.gaps),
            ])
        }
        try db.executeValues(
            "\(db.engine == .sqlite ? "INSERT OR REPLACE" : "INSERT") INTO \(level.table) (node_id, bucket_start, \(rollupColumns))",
            upserts, tail: db.engine == .sqlite ? "" : "ON CONFLICT (node_id, bucket_start) DO UPDATE SET \(rollupUpdates)")
        try db.executeValues("DELETE FROM \(level.table) WHERE (node_id, bucket_start) IN (", deletes, tail: ")")
    }

    /// The `level` rows holding each node's `children` (new child rows; nil: the child is gone),
    /// merged from the node's stored `child` rows in their range with `children` in their place;
    /// nil for a row left without children. Nodes whose rows span the same range are read with
    /// one query.
    static func rebuilt(
        _ db: StoreDB, _ level: RollupLevel, from child: RollupLevel, _ nodeIds: [String],
        children: [String: [Double: RollupBucket?]]
    ) throws -> [String: [Double: RollupBucket?]] {
        var startsOf: [String: Set<Double>] = [:]
        for node in nodeIds {
            let starts = Set((children[node] ?? [:]).keys.map(level.start(of:)))
            if !starts.isEmpty { startsOf[node] = starts }
        }
        var out: [String: [Double: RollupBucket?]] = [:]
        let withRows = nodeIds.filter { startsOf[$0] != nil }
        for (range, group) in grouped(withRows, by: { node -> Interval in
            let starts = startsOf[node] ?? []
            return Interval(starts.min() ?? 0, level.end(of: starts.max() ?? 0))
        }) {
            let rows = try rollupRows(db, child, nodeIds: group, from: range.from, to: range.to)
            for node in group {
                out[node] = merged(
                    level, from: child, rows: rows[node] ?? [:], children: children[node] ?? [:], starts: startsOf[node] ?? [])
            }
        }
        return out
    }

    /// The `level` rows at `starts` from their child `rows` with `children` in their place.
    static func merged(
        _ level: RollupLevel, from child: RollupLevel, rows stored: [Double: RollupBucket], children: [Double: RollupBucket?],
        starts: Set<Double>
    ) -> [Double: RollupBucket?] {
        var rows = stored
        for (start, bucket) in children { rows[start] = bucket }
        var out: [Double: RollupBucket?] = [:]
        for start in starts {
            let end = level.end(of: start)
            out[start] = .some(merged(level, from: child, start: start, rows.filter { $0.key >= start && $0.key < end }))
        }
        return out
    }

    /// Several nodes' `level` rows starting in [from, to), by node.
    static func rollupRows(_ db: StoreDB, _ level: RollupLevel, nodeIds: [String], from: Double, to: Double) throws
        -> [String: [Double: RollupBucket]]
    {
        let rows = try StoreRow.fetchCursor(
            db,
            sql: """
                SELECT node_id, bucket_start, \(rollupColumns) FROM \(level.table)
                WHERE node_id IN \(db.jsonArrayValues()) AND bucket_start >= ? AND bucket_start < ?
                """,
            arguments: [StoredJSON.strings(nodeIds), Int64(from), Int64(to)])
        var out: [String: [Double: RollupBucket]] = [:]
        while let r = try rows.next() {
            out[r[0] as String, default: [:]][Double(r[1] as Int64)] = RollupBucket(
                stats: stats(r, at: 2), storedGaps: decodeGaps(r[17]))
        }
        return out
    }

    /// When each of these nodes was deleted (Unix seconds); live nodes are absent.
    static func deletedAt(_ db: StoreDB, nodeIds: [String]) throws -> [String: Double] {
        let rows = try StoreRow.fetchAll(
            db, sql: "SELECT id, deleted_at FROM nodes WHERE \(db.inJSONArray("id")) AND deleted_at IS NOT NULL",
            arguments: [StoredJSON.strings(nodeIds)])
        var out: [String: Double] = [:]
        for r in rows { out[r[0] as String] = Double(r[1] as Int64) / 1000 }
        return out
    }

    /// `items` in groups that share `key`, each group in the items' order, groups in the order of
    /// their first item.
    static func grouped<Key: Hashable>(_ items: [String], by key: (String) -> Key) -> [(Key, [String])] {
        var order: [Key] = []
        var groups: [Key: [String]] = [:]
        for item in items {
            let k = key(item)
            if groups[k] == nil { order.append(k) }
            groups[k, default: []].append(item)
        }
        return order.map { ($0, groups[$0] ?? []) }
    }

    /// A node's `level` rows starting in [from, to).
    static func rollupRows(_ db: StoreDB, _ level: RollupLevel, nodeId: String, from: Double, to: Double) throws
        -> [Double: RollupBucket]
    {
        try rollupRows(db, level, nodeIds: [nodeId], from: from, to: to)[nodeId] ?? [:]
    }

    /// One `level` row from its `child` rows (any order): their sums, and as gaps what they do
    /// not cover (a missing child is a gap). Nil without children.
    static func merged(_ level: RollupLevel, from child: RollupLevel, start: Double, _ children: [Double: RollupBucket])
        -> RollupBucket?
    {
        guard !children.isEmpty else { return nil }
        var total = BucketStats()
        var covered: [Interval] = []
        for (c, bucket) in children.sorted(by: { $0.key < $1.key }) {
            total.merge(bucket.stats)
            covered += ReportMath.complement(of: bucket.gaps, within: Interval(c, child.end(of: c)))
        }
        return RollupBucket(total, gaps: ReportMath.complement(of: covered, within: Interval(start, level.end(of: start))))
    }

    /// Recomputes up to `limit` fleet hour rows (`rollup_fleet_hour`) whose hours the triggers on
    /// `rollup_hour` marked dirty, each with the per-hour sum `fleetHourSum` (the sum reports ran
    /// over `rollup_hour` themselves before the table existed, so the same double), and forgets
    /// their exact fleet and label peaks (`fleetPeakPass` computes them again). Returns how many
    /// hours it recomputed.
    static func flushFleetHours(_ db: StoreDB, limit: Int) throws -> Int {
        let hours = try Int64.fetchAll(
            db, sql: "SELECT bucket_start FROM rollup_fleet_dirty ORDER BY bucket_start LIMIT ?", arguments: [limit])
        guard !hours.isEmpty else { return 0 }
        // A peak computed on a snapshot from before this change must not be stored.
        let version = try nextPeakVersion(db)
        // The label groups' sums of the hour are forgotten too: the rollup service computes
        // them (`flushLabelSums`), not the report whose catch-up runs this.
        let put = try db.cachedStatement(
            sql: """
                INSERT INTO rollup_fleet_hour (bucket_start, saved_byte_seconds, peak_version) VALUES (?, ?, ?)
                ON CONFLICT (bucket_start) DO UPDATE SET saved_byte_seconds = excluded.saved_byte_seconds,
                  saved_peak = NULL, peak_known = 0, labels_known = 0, peak_version = excluded.peak_version,
                  label_sums_known = 0
                """)
        let dropLabels = try db.cachedStatement(sql: "DELETE FROM rollup_label_hour WHERE bucket_start = ?")
        let dropSums = try db.cachedStatement(sql: "DELETE FROM rollup_label_sum WHERE bucket_start = ?")
        let drop = try db.cachedStatement(sql: "DELETE FROM rollup_fleet_hour WHERE bucket_start = ?")
        let clean = try db.cachedStatement(sql: "DELETE FROM rollup_fleet_dirty WHERE bucket_start = ?")
        for h in hours {
            if let sum = try fleetHourSum(db, hour: h) {
                try put.execute(arguments: [h, sum, version])
            } else {
                try drop.execute(arguments: [h])
            }
            try dropLabels.execute(arguments: [h])
            try dropSums.execute(arguments: [h])
            try clean.execute(arguments: [h])
        }
        return hours.count
    }

    /// Every node's current labels (deleted nodes' too: their rows stay in reports until purged).
    static func nodeLabels(_ db: StoreDB) throws -> [String: [String: String]] {
        var texts = LabelTexts()
        var out: [String: [String: String]] = [:]
        for r in try StoreRow.fetchAll(db, sql: "SELECT id, labels FROM nodes") { out[r[0]] = try texts.labels(r[1]) }
        return out
    }

    /// The sums of `saved_byte_seconds` of each group of each label key in `keys`, per hour of
    /// [from, to) (hour → key → value → sum): a node is in the group of its current value of the
    /// key (`labels`), "" without it. Each hour's rows are added in one fixed order on both
    /// engines (`bucketRowOrder`, the covering index `rollup_hour_start`'s), whatever range is asked for,
    /// so the sum of an hour is the same double whether one hour or a week is read: the rollup
    /// service stores hours with it (`rollup_label_sum`) and reports sum the hours not stored,
    /// and the reference report every hour, with it.
    static func labelHourSums(
        _ db: StoreDB, from: Int64, to: Int64, keys: [String], labels: [String: [String: String]]
    ) throws -> [Int64: [String: [String: Double]]] {
        let rows = try StoreRow.fetchCursor(
            db,
            sql: """
                SELECT bucket_start, node_id, saved_byte_seconds FROM rollup_hour \(db.indexedBy("rollup_hour_start"))
                WHERE bucket_start >= ? AND bucket_start < ? ORDER BY bucket_start, \(db.bucketRowOrder)
                """, arguments: [from, to])
        var out: [Int64: [String: [String: Double]]] = [:]
        var hour: Int64?
        var sums: [String: [String: Double]] = [:]
        while let r = try rows.next() {
            let h: Int64 = r[0]
            if h != hour {
                if let hour { out[hour] = sums }
                hour = h
                sums = [:]
            }
            let nodeLabels = labels[r[1] as String] ?? [:]
            let saved: Double = r[2]
            for key in keys { sums[key, default: [:]][nodeLabels[key] ?? "", default: 0] += saved }
        }
        if let hour { out[hour] = sums }
        return out
    }

    /// Computes and stores the label groups' sums (`labelHourSums`, every key a node has) of up to
    /// `limit` hours whose sums are not known (their rows changed, a label changed, or hours
    /// older than migration 0046), newest first, skipping dirty hours (their fleet sum is redone
    /// first). Returns how many hours it did.
    static func flushLabelSums(_ db: StoreDB, limit: Int) throws -> Int {
        let hours = try Int64.fetchAll(
            db,
            sql: """
                SELECT bucket_start FROM rollup_fleet_hour WHERE label_sums_known = 0
                  AND bucket_start NOT IN (SELECT bucket_start FROM rollup_fleet_dirty)
                ORDER BY bucket_start DESC LIMIT ?
                """, arguments: [limit])
        guard !hours.isEmpty else { return 0 }
        let labels = try nodeLabels(db)
        let keys = Set(labels.values.flatMap(\.keys)).sorted()
        // The hour's fleet row first, as `flushFleetHours` and `setLabels` take it: on PostgreSQL
        // one of them changing it after this transaction's snapshot is a serialization failure
        // here (the write is retried on a newer snapshot), never sums of an older one stored.
        let known = try db.cachedStatement(
            sql: "UPDATE rollup_fleet_hour SET label_sums_known = 1 WHERE bucket_start = ? AND label_sums_known = 0")
        let clear = try db.cachedStatement(sql: "DELETE FROM rollup_label_sum WHERE bucket_start = ?")
        var rows: [StoreArguments] = []
        for h in hours {
            try known.execute(arguments: [h])
            guard db.changesCount == 1 else { continue }
            try clear.execute(arguments: [h])
            guard !keys.isEmpty else { continue }
            let sums = try labelHourSums(db, from: h, to: h + Int64(ReportTime.hour), keys: keys, labels: labels)[h] ?? [:]
            for key in keys {
                for (value, sum) in (sums[key] ?? [:]).sorted(by: { $0.key < $1.key }) { rows.append([h, key, value, sum]) }
            }
        }
        try db.executeValues(
            "INSERT INTO rollup_label_sum (bucket_start, label_key, label_value, saved_byte_seconds)", rows,
            tail: "ON CONFLICT (bucket_start, label_key, label_value) DO UPDATE SET saved_byte_seconds = excluded.saved_byte_seconds")
        return hours.count
    }

    /// Computes the label groups' sums of up to `maxHours` hours whose sums are not known, newest
    /// first, in short write transactions of `batch` hours; returns how many it did. The rollup
    /// service calls it every round with a bound, so that a label change (which forgets every
    /// hour's) does not hold up its other work: a year of 1,000 nodes' hours took 6 s on SQLite.
    @discardableResult
    public func flushLabelSums(batch: Int = 100, maxHours: Int = .max) async throws -> Int {
        var total = 0
        while total < maxHours {
            let limit = min(batch, maxHours - total)
            let n = try await backgroundWrite { db in try Self.flushLabelSums(db, limit: limit) }
            total += n
            if n < limit { break }
            await Task.yield()
        }
        return total
    }

    /// How many hours' label group sums are not known yet (for the rollup service's progress log).
    public func labelSumsLeft() async throws -> Int {
        try await read { db in
            try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM rollup_fleet_hour WHERE label_sums_known = 0") ?? 0
        }
    }

    /// The sum of `saved_byte_seconds` over every node's row of one hour (nil without rows), read
    /// in `bucketRowOrder` (on SQLite, from the covering index `rollup_hour_start` in its order),
    /// as the fleet series always was.
    static func fleetHourSum(_ db: StoreDB, hour: Int64) throws -> Double? {
        let sum = try db.cachedStatement(
            sql: """
                SELECT \(db.orderedSum("saved_byte_seconds"))
                FROM \(db.bucketRows("rollup_hour", columns: "saved_byte_seconds"))
                """)
        return try Double.fetchOne(sum, arguments: [hour, hour + 1])
    }

    /// Recomputes every dirty fleet hour, in short write transactions.
    @discardableResult
    public func flushFleetHours(batch: Int = 200) async throws -> Int {
        try await inBatches(batch) { db in try Self.flushFleetHours(db, limit: batch) }
    }

    /// Runs `step` (up to `batch` items in one short write transaction) until it does fewer;
    /// returns how many it did.
    func inBatches(_ batch: Int, _ step: @escaping @Sendable (StoreDB) throws -> Int) async throws -> Int {
        var total = 0
        while true {
            let n = try await backgroundWrite(step)
            total += n
            if n < batch { return total }
            await Task.yield()
        }
    }

    /// The columns of `rollup_fleet_day` (migrations/0045_rollup_fleet_day.sql) after `bucket_start`.
    static let fleetDayColumns = """
        nodes, with_data, data_seconds, samples, saved_byte_seconds, saved_peak, cpu_seconds, cpu_pct_peak, full_scans,
        running_seconds, stopped_seconds, pruned_seconds, unmanaged_seconds, profit_byte_seconds, profit_seconds,
        saved_avg_sum, cpu_cores_sum, net_profit_sum, gaps
        """

    /// Folds again up to `limit` fleet day rows (`rollup_fleet_day`) whose days the triggers on
    /// `rollup_day` marked dirty, each from the day's rollup_day rows with the fold the by-day
    /// report runs over them itself (`foldFleetDay`). Returns how many days it folded.
    ///
    /// Only days that started before `before` (the start of today): a report reads a day's row
    /// only when every node with data existed the whole day (`wholeDays`), so never before the
    /// day is over, and every rollup pass rewrites today's rows while agents push. Today stays
    /// marked and is folded once, after midnight (and again if its last rows still change).
    static func flushFleetDays(_ db: StoreDB, limit: Int, before: Int64 = .max) throws -> Int {
        let days = try Int64.fetchAll(
            db, sql: "SELECT bucket_start FROM rollup_fleet_day_dirty WHERE bucket_start < ? ORDER BY bucket_start LIMIT ?",
            arguments: [before, limit])
        guard !days.isEmpty else { return 0 }
        let columns = fleetDayColumns.split(separator: ",").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
        let put = try db.cachedStatement(
            sql: """
                INSERT INTO rollup_fleet_day (bucket_start, \(fleetDayColumns))
                VALUES (?\(String(repeating: ", ?", count: columns.count)))
                ON CONFLICT (bucket_start) DO UPDATE SET \(columns.map { "\($0) = excluded.\($0)" }.joined(separator: ", "))
                """)
        let drop = try db.cachedStatement(sql: "DELETE FROM rollup_fleet_day WHERE bucket_start = ?")
        let clean = try db.cachedStatement(sql: "DELETE FROM rollup_fleet_day_dirty WHERE bucket_start = ?")
        for d in days {
            var nodes: [(id: String, stats: BucketStats, gaps: [Interval])] = []
            let cursor = try StoreRow.fetchCursor(
                db, sql: "SELECT node_id, \(rollupColumns) FROM rollup_day WHERE bucket_start = ?", arguments: [d])
            while let r = try cursor.next() {
                let gapText: String? = r[16]
                nodes.append((r[0], stats(r, at: 1), gapText == nil ? [] : decodeGaps(gapText)))
            }
            if nodes.isEmpty {
                try drop.execute(arguments: [d])
            } else {
                let day = Double(d)
                let fold = foldFleetDay(Interval(day, day + ReportTime.day), nodes)
                let st = fold.sums.total
                let values: [(any StoreBindable)?] = [
                    d, Int64(nodes.count), Int64(fold.sums.withData), st.dataSeconds, Int64(st.samples),
                    st.savedByteSeconds, st.peakSavedBytes, st.cpuSeconds, st.peakCPUPercent, st.fullScans,
                    st.runningSeconds, st.stoppedSeconds, st.prunedSeconds, st.unmanagedSeconds, st.profitByteSeconds,
                    st.profitSeconds, fold.sums.avgSaved, fold.sums.avgCores, fold.sums.netProfit, encodeGaps(fold.gaps),
                ]
                try put.execute(arguments: StoreArguments(values))
            }
            try clean.execute(arguments: [d])
        }
        return days.count
    }

    /// Folds every dirty fleet day that is over at `now` again, in short write transactions.
    @discardableResult
    public func flushFleetDays(batch: Int = 30, now: Date = Date()) async throws -> Int {
        let today = Int64(ReportTime.dayStart(now.timeIntervalSince1970))
        return try await inBatches(batch) { db in try Self.flushFleetDays(db, limit: batch, before: today) }
    }

    /// Computes the exact fleet peak (`ReportMath.groupPeak` over every node's raw samples, what a
    /// report up to 24 h long would sweep) of up to `limit` hours whose peak is not known, newest
    /// first, and with it the exact peak of every group of every label key the nodes have
    /// (`rollup_label_hour`): hours that are over, whose fleet sums are up to date (not in
    /// `rollup_fleet_dirty`) and whose raw samples are all kept. Only hours over for at least
    /// `maxGapSeconds`: until then a live node's next sample still rewrites its rows of the hour
    /// (its rollup stays pending), which would make a peak stored earlier unknown again. Read on
    /// a snapshot; an hour's peaks are stored only if the hour's `peak_version` is still the one
    /// read there and it is not dirty: a change of the hour's rows (`flushFleetHours`, after a
    /// rollup pass, deletion or purge) or of any node's labels (`setLabels`) sets a new version,
    /// and makes the stored peaks unknown again. From the same read it stores the hour's raw
    /// samples in one blob (`RawHourPack`, under the same condition), which reports read for the
    /// partial hours at their edges; hours whose peaks are known but whose pack is not current
    /// (older than packs, or made unknown by a label change, which also sets a new version) are
    /// read for it too. Returns how many hours it stored peaks or a pack of.
    @discardableResult
    public func fleetPeakPass(now: Date = Date(), limit: Int = 24) async throws -> Int {
        let computed = try await computeHourPeaks(now: now, limit: limit)
        guard !computed.isEmpty else { return 0 }
        return try await storeHourPeaks(computed)
    }

    /// One hour's peaks as `fleetPeakPass` computed them, for the `peak_version` it read.
    struct HourPeaks: Sendable {
        var hour: Int64
        var version: Int64
        /// The fleet's exact peak (nil: no node had data).
        var fleet: Int64?
        /// label key → value → peak (nil: no node of the group had data).
        var labels: [String: [String: Int64?]]
        /// The hour's raw samples (`RawHourPack`), from the same read.
        var pack: [UInt8]
    }

    /// The read half of `fleetPeakPass`: the peaks of up to `limit` hours, on one snapshot.
    func computeHourPeaks(now: Date, limit: Int) async throws -> [HourPeaks] {
        let policy = ReportPolicy.default
        let nowT = now.timeIntervalSince1970
        return try await read { db in
            // Each hour's raw samples grouped by node, as a report reads them.
            try db.reportWorkMemory()
            // Hours with no raw sample within reach hold no peak to compute (reports sweep them
            // at no cost), nor do hours whose samples retention cut.
            guard let first = try Int64.fetchOne(db, sql: "SELECT MIN(taken_at) FROM samples") else { return [] }
            var lower = ReportTime.hourStart(Double(first) / 1000 - policy.maxGapSeconds)
            if let cut = try Self.stateValue(db, Self.samplesCutKey) {
                let firstWhole = Self.firstWholeHour(afterCut: cut, policy: policy)
                lower = max(lower, firstWhole)
            }
            let hours = try StoreRow.fetchAll(
                db,
                sql: """
                    SELECT bucket_start, peak_version FROM rollup_fleet_hour
                    WHERE (peak_known = 0 OR labels_known = 0
                        OR NOT EXISTS (SELECT 1 FROM raw_hour_pack p
                          WHERE p.bucket_start = rollup_fleet_hour.bucket_start AND p.peak_version = rollup_fleet_hour.peak_version))
                      AND bucket_start >= ? AND bucket_start <= ?
                      AND bucket_start NOT IN (SELECT bucket_start FROM rollup_fleet_dirty)
                    ORDER BY bucket_start DESC LIMIT ?
                    """, arguments: [Int64(lower), Int64(nowT - ReportTime.hour - policy.maxGapSeconds), limit]
            ).map { r -> (Int64, Int64) in (r[0], r[1]) }
            var out: [HourPeaks] = []
            for (h, version) in hours {
                let window = Interval(Double(h), Double(h) + ReportTime.hour)
                let nodes = try Self.reportNodes(db, period: window)
                // One read of the hour's rows (with the sweep's margins), every node's and every
                // column: the pack is made from it, the peaks swept from it.
                guard try Self.exactPeaksPossible(db, period: window, policy: policy, enabled: true) else { continue }
                let (from, to) = PeakStreams.readRange(window, policy: policy)
                let read = try Self.rawSamples(db, from: from, to: to, full: true, packs: false, wanted: { _ in true }).sorted
                let pack = RawHourPack.encode(read, fromMs: h * 1000, toMs: (h + Int64(ReportTime.hour)) * 1000)
                var known: [String: ReportNode] = [:]
                for n in nodes { known[n.id] = n }
                let streams = PeakStreams(read, nodes: known, now: nowT, policy: policy)
                let fleet = streams.peaks(within: window, group: { _ in "fleet" })["fleet"].map { Int64($0) }
                var labels: [String: [String: Int64?]] = [:]
                for key in Set(nodes.flatMap(\.labels.keys)) {
                    // Every group of the key, with or without data in the hour.
                    var groups: [String: Int64?] = [:]
                    for n in nodes { groups[n.labels[key] ?? ""] = .some(nil) }
                    for (value, peak) in streams.peaks(within: window, group: { $0.labels[key] ?? "" }) {
                        groups[value] = .some(Int64(peak))
                    }
                    labels[key] = groups
                }
                out.append(HourPeaks(hour: h, version: version, fleet: fleet, labels: labels, pack: pack))
            }
            return out
        }
    }

    /// The write half of `fleetPeakPass`: stores the peaks of the hours whose `peak_version` is
    /// still the one they were computed for and that are not dirty; returns how many it stored.
    func storeHourPeaks(_ computed: [HourPeaks]) async throws -> Int {
        try await backgroundWrite { db -> Int in
            // On PostgreSQL a version changed by a transaction that committed after this one's
            // snapshot is a serialization failure here (the engine retries the whole write, which
            // then sees the new version and stores nothing for the hour).
            let put = try db.cachedStatement(
                sql: """
                    UPDATE rollup_fleet_hour SET saved_peak = ?, peak_known = 1, labels_known = 1
                    WHERE bucket_start = ? AND peak_version = ? AND (peak_known = 0 OR labels_known = 0)
                      AND NOT EXISTS (SELECT 1 FROM rollup_fleet_dirty d WHERE d.bucket_start = ?)
                    """)
            let clear = try db.cachedStatement(sql: "DELETE FROM rollup_label_hour WHERE bucket_start = ?")
            // The pack, under the same condition as the peaks (its hour unchanged since the read),
            // also for an hour whose peaks were known already (made before packs existed).
            let putPack = try db.cachedStatement(
                sql: """
                    INSERT INTO raw_hour_pack (bucket_start, peak_version, data)
                    SELECT ?, ?, ? WHERE EXISTS (SELECT 1 FROM rollup_fleet_hour WHERE bucket_start = ? AND peak_version = ?)
                      AND NOT EXISTS (SELECT 1 FROM rollup_fleet_dirty d WHERE d.bucket_start = ?)
                    ON CONFLICT (bucket_start) DO UPDATE SET peak_version = excluded.peak_version, data = excluded.data
                    """)
            var stored = 0
            for hp in computed {
                try putPack.execute(arguments: [hp.hour, hp.version, Data(hp.pack), hp.hour, hp.version, hp.hour])
                let packed = db.changesCount == 1
                try put.execute(arguments: [hp.fleet, hp.hour, hp.version, hp.hour])
                let peaks = db.changesCount == 1
                if packed || peaks { stored += 1 }
                guard peaks else { continue }
                try clear.execute(arguments: [hp.hour])
                var rows: [StoreArguments] = []
                for (key, groups) in hp.labels.sorted(by: { $0.key < $1.key }) {
                    for (value, peak) in groups.sorted(by: { $0.key < $1.key }) { rows.append([hp.hour, key, value, peak]) }
                }
                try db.executeValues("INSERT INTO rollup_label_hour (bucket_start, label_key, label_value, saved_peak)", rows)
            }
            return stored
        }
    }

    /// Makes every fleet hour from `from` on dirty (its sum recomputed, its peaks unknown: a
    /// peak computed on an older snapshot is not stored, see `fleetPeakPass`) and bumps the pass
    /// counter so that a rollup pass computed on an older snapshot is not stored either: for
    /// changes that alter what the raw samples say without a rollup pass (a deletion moves the
    /// node's horizon back; a purge removes its samples).
    static func invalidateFleetHours(_ db: StoreDB, from: Double) throws {
        try db.execute(
            sql: """
                INSERT INTO rollup_fleet_dirty (bucket_start) SELECT bucket_start FROM rollup_fleet_hour
                WHERE bucket_start >= ? ON CONFLICT DO NOTHING
                """, arguments: [Int64(ReportTime.hourStart(from))])
        try bumpRollupPass(db)
        // On PostgreSQL a flush committed after this transaction's snapshot may have made a fleet
        // hour row it did not see (so did not mark): both bump the version counter, so one of the
        // two conflicts and is retried on a snapshot that sees the other.
        _ = try nextPeakVersion(db)
    }

    /// A value kept in `rollup_state` (watermark, counters, retention cuts); nil when never set.
    /// The first hour whose read (it reaches `maxGapSeconds` back) starts after the raw
    /// retention's cut (`samplesCutKey`, ms): the hours before it may have lost raw samples.
    static func firstWholeHour(afterCut cut: Int64, policy: ReportPolicy) -> Double {
        ((Double(cut) / 1000 + policy.maxGapSeconds) / ReportTime.hour).rounded(.up) * ReportTime.hour
    }

    static func stateValue(_ db: StoreDB, _ key: String) throws -> Int64? {
        try Int64.fetchOne(db, sql: "SELECT value FROM rollup_state WHERE key = ?", arguments: [key])
    }

    /// When the earliest sample not rolled up yet (above the watermark) was taken, in unix
    /// seconds; only `nodeId`'s with one. nil when every sample is rolled up.
    static func firstUnrolledSample(_ db: StoreDB, nodeId: String? = nil) throws -> Double? {
        try firstUnrolledSampleMs(db, nodeId: nodeId).map { Double($0) / 1000 }
    }

    /// `firstUnrolledSample` in unix milliseconds, as stored (what the pack readers compare).
    static func firstUnrolledSampleMs(_ db: StoreDB, nodeId: String? = nil) throws -> Int64? {
        let watermark = try stateValue(db, watermarkKey) ?? 0
        // `+taken_at`: SQLite would otherwise answer MIN from the taken_at index, walking it from
        // the oldest sample until one is past the watermark (every raw sample when none is:
        // 0.2 s for 3.5 M samples, once per window of a report); the rowid range holds only the
        // samples not rolled up yet.
        var sql = "SELECT MIN(+taken_at) FROM samples WHERE rowid > ?"
        var arguments: StoreArguments = [watermark]
        if let nodeId {
            sql += " AND node_id = ?"
            arguments += [nodeId]
        }
        return try Int64.fetchOne(db, sql: sql, arguments: arguments)
    }

    /// A new `peak_version` for hours whose stored peaks become unknown (bumps its counter).
    static func nextPeakVersion(_ db: StoreDB) throws -> Int64 {
        try db.execute(
            sql: """
                INSERT INTO rollup_state (key, value) VALUES (?, 1)
                ON CONFLICT (key) DO UPDATE SET value = rollup_state.value + 1
                """, arguments: [Self.peakVersionKey])
        return try stateValue(db, peakVersionKey) ?? 1
    }

    /// Bumps the pass counter (see `invalidateFleetHours`).
    static func bumpRollupPass(_ db: StoreDB) throws {
        try db.execute(
            sql: """
                INSERT INTO rollup_state (key, value) VALUES (?, 1)
                ON CONFLICT (key) DO UPDATE SET value = rollup_state.value + 1
                """, arguments: [Self.passKey])
    }

    /// Samples a rollup pass takes at most (see `rollupPass`).
    public static let rollupBatch = 50_000
    /// Nodes whose rows a rollup pass reads with one query each (`rollupPass`).
    public static let rollupReadChunk = 200

    /// The pending hours `scope` includes. A pass that read only these leaves the others as they
    /// are: it deletes only pending rows it read, and its cut hours are inserted if not there.
    static func pendingHours(_ db: StoreDB, scope: PendingScope = .all) throws -> Set<NodeBucket> {
        var sql = "SELECT node_id, bucket_start FROM rollup_pending"
        var arguments: StoreArguments = []
        switch scope {
        case .all: break
        case .node(let id):
            sql += " WHERE node_id = ?"
            arguments = [id]
        case .wholeHoursIn(let period):
            sql += " WHERE bucket_start >= ? AND bucket_start <= ?"
            arguments = [Int64(period.from.rounded(.up)), Int64((period.to - ReportTime.hour).rounded(.down))]
        }
        var out: Set<NodeBucket> = []
        let rows = try StoreRow.fetchCursor(db, sql: sql, arguments: arguments)
        while let r = try rows.next() {
            let p = NodeBucket(nodeId: r[0], start: Double(r[1] as Int64))
            if scope.includes(p) { out.insert(p) }
        }
        return out
    }

    /// Recomputes one `level` row from the `child` rows inside it (hour → day, day → month);
    /// missing children are gaps.
    static func rebuild(
        _ db: StoreDB, _ level: RollupLevel, from child: RollupLevel, nodeId: String, start: Double
    ) throws {
        let rows = try rollupRows(db, child, nodeId: nodeId, from: start, to: level.end(of: start))
        try storeRollups(
            db, level: level, [(NodeBucket(nodeId: nodeId, start: start), merged(level, from: child, start: start, rows))])
    }

    /// Merges day rollups into months where month rows are missing (a database upgraded from
    /// before month rollups). Idempotent and cheap when there is nothing to do.
    @discardableResult
    public func backfillMonthRollups() async throws -> Int {
        let missing: [NodeBucket] = try await read { db in
            let rows = try StoreRow.fetchAll(
                db,
                sql: """
                    SELECT DISTINCT d.node_id, d.bucket_start FROM rollup_day d
                    WHERE NOT EXISTS (SELECT 1 FROM rollup_month m WHERE m.node_id = d.node_id
                      AND m.bucket_start <= d.bucket_start AND m.bucket_start > d.bucket_start - 32 * 86400)
                    """)
            var set: Set<NodeBucket> = []
            for r in rows {
                set.insert(NodeBucket(nodeId: r["node_id"], start: ReportTime.monthStart(Double(r["bucket_start"] as Int64))))
            }
            return Array(set)
        }
        var done = 0
        while done < missing.count {
            let chunk = missing[done..<min(done + 200, missing.count)]
            try await backgroundWrite { db in
                for m in chunk { try Self.rebuild(db, .month, from: .day, nodeId: m.nodeId, start: m.start) }
            }
            done += chunk.count
        }
        return missing.count
    }

    /// Runs rollup passes until every stored sample is rolled up (bounded by `maxPasses`).
    /// Reports call this first so that they include samples that just arrived (and the current
    /// hours as of now: `pendingRefresh` 0, see `rollupPass`).
    ///
    /// `scope`: the pending hours the caller reads (the others are left to the service): a
    /// report reads the rows of whole hours only, so on a live fleet, whose every node has its
    /// hour under way pending, a report ending now recomputes none of them.
    @discardableResult
    public func rollupCatchUp(
        policy: ReportPolicy = .default, maxPasses: Int = 1000, now: Date = Date(), pendingRefresh: Double = 0,
        scope: PendingScope = .all
    ) async throws -> Int {
        var total = 0
        for _ in 0..<maxPasses {
            let r = try await rollupPass(policy: policy, now: now, pendingRefresh: pendingRefresh, scope: scope)
            total += r.samples
            if !r.more { break }
        }
        try await flushFleetHours()
        return total
    }

    /// The cut rollup retention takes for `keepDays` days before `now`: the start of the UTC month
    /// holding `now − keepDays`. Rollups go by whole months, so a month's hour, day and month rows
    /// go together: a cut inside a day would delete that day's row (and its month's) and keep its
    /// later hours, and a report, which reads whole days from day rows, would show a gap where
    /// the hours still hold data. Rollups are kept `keepDays` days at least, a month more at most.
    public static func rollupCut(now: Date, keepDays: Int) -> Date {
        Date(timeIntervalSince1970: ReportTime.monthStart(now.timeIntervalSince1970 - Double(keepDays) * ReportTime.day))
    }

    /// Deletes, in small batches (one short write transaction each), raw samples taken before
    /// `samplesBefore` that are already rolled up, and rollups before `rollupsBefore` (the server
    /// passes a month start: `rollupCut`). The newest sample row is always kept so that rowids
    /// never go back below the watermark.
    public func retentionPass(samplesBefore: Date, rollupsBefore: Date, batch: Int = 1000, maxBatches: Int = 1000) async throws
        -> RetentionResult
    {
        var result = RetentionResult(samples: 0, hours: 0, days: 0)
        let sampleCut = Time.ms(samplesBefore)
        let rollupCut = Int64(rollupsBefore.timeIntervalSince1970)
        let key = Self.watermarkKey
        for _ in 0..<maxBatches {
            let n = try await backgroundWrite { db -> Int in
                try db.execute(
                    sql: """
                        DELETE FROM samples WHERE rowid IN (
                          SELECT rowid FROM samples WHERE taken_at < ?
                            AND rowid <= COALESCE((SELECT value FROM rollup_state WHERE key = ?), 0)
                            AND rowid < (SELECT MAX(rowid) FROM samples)
                          LIMIT ?)
                        """,
                    arguments: [sampleCut, key, batch])
                let deleted = db.changesCount
                if deleted > 0 {
                    // The packs of the hours it cut into: they hold samples no longer kept.
                    try db.execute(
                        sql: "DELETE FROM raw_hour_pack WHERE bucket_start < ?",
                        arguments: [Int64((Double(sampleCut) / 1000).rounded(.up))])
                    try db.execute(
                        sql: "DELETE FROM raw_slice_pack WHERE slice_start < ?",
                        arguments: [Int64((Double(sampleCut) / 1000).rounded(.up))])
                    // Reports read raw samples only after this (exact group peaks).
                    try db.execute(
                        sql: """
                            INSERT INTO rollup_state (key, value) VALUES (?, ?)
                            ON CONFLICT (key) DO UPDATE SET value = \(db.greatest("rollup_state.value", "excluded.value"))
                            """, arguments: [Self.samplesCutKey, sampleCut])
                }
                return deleted
            }
            result.samples += n
            if n < batch { break }
            await Task.yield()
        }
        for level in RollupLevel.allCases {
            for _ in 0..<maxBatches {
                let n = try await backgroundWrite { db -> Int in
                    try db.execute(
                        sql: """
                            DELETE FROM \(level.table) WHERE (node_id, bucket_start) IN (
                              SELECT node_id, bucket_start FROM \(level.table) WHERE bucket_start < ? LIMIT ?)
                            """,
                        arguments: [rollupCut, batch])
                    return db.changesCount
                }
                switch level {
                case .hour: result.hours += n
                case .day: result.days += n
                case .month: result.months += n
                }
                if n < batch { break }
                await Task.yield()
            }
        }
        // Process rows, each deleting transaction recording the cut. A month row goes once
        // retention cuts any of its days (the report reads the remaining days of such a month
        // from the day table: ProcessSavingsPlan), so no month row keeps the figures of days no
        // longer stored past the next pass.
        for (table, start) in [("process_savings_day", "day_start"), ("process_savings_month", "month_start")] {
            for _ in 0..<maxBatches {
                let n = try await backgroundWrite { db -> Int in
                    try db.execute(
                        sql: """
                            DELETE FROM \(table) WHERE (node_id, \(start), kind, name) IN (
                              SELECT node_id, \(start), kind, name FROM \(table) WHERE \(start) < ? LIMIT ?)
                            """,
                        arguments: [rollupCut, batch])
                    let deleted = db.changesCount
                    if deleted > 0 { try Self.recordProcessCut(db, rollupCut) }
                    return deleted
                }
                if table == "process_savings_day" { result.processDays += n } else { result.processMonths += n }
                if n < batch { break }
                await Task.yield()
            }
        }
        return result
    }
}

extension FleetDatabase {
    /// Records that retention deleted process rows before `cut` (unix seconds), in the deleting
    /// transaction: the process report reads a month from its month row only from there on.
    static func recordProcessCut(_ db: StoreDB, _ cut: Int64) throws {
        try db.execute(
            sql: """
                INSERT INTO rollup_state (key, value) VALUES (?, ?)
                ON CONFLICT (key) DO UPDATE SET value = \(db.greatest("rollup_state.value", "excluded.value"))
                """, arguments: [processCutKey, cut])
    }
}

/// Which pending rollup hours (hours a pass cut at "now") a rollup pass recomputes besides
/// those its new samples touch (`rollupPass(scope:)`).
public enum PendingScope: Sendable, Equatable {
    /// Every one: the rollups as of now everywhere (the background service, tests).
    case all
    /// Those whose rows a reader of `period` reads: the hours wholly inside it. A day or month
    /// row is read only when wholly inside the period too, and then so is every hour it holds.
    /// Partial hours at a period's edges are read from raw samples, not rows: the hour under
    /// way of a period ending now is one of them.
    case wholeHoursIn(Interval)
    /// One node's, any hour (a node's history shows its hour under way from its row).
    case node(String)

    func includes(_ p: NodeBucket) -> Bool {
        switch self {
        case .all: return true
        case .wholeHoursIn(let period): return p.start >= period.from && p.start + ReportTime.hour <= period.to
        case .node(let id): return p.nodeId == id
        }
    }
}

struct NodeBucket: Hashable, Sendable, Comparable {
    var nodeId: String
    var start: Double

    static func < (a: NodeBucket, b: NodeBucket) -> Bool { (a.nodeId, a.start) < (b.nodeId, b.start) }
}

/// One rollup row's figures and gaps. Gaps are kept as they are stored (milliseconds), so that a
/// row merged from computed children equals one merged from the stored children.
struct RollupBucket: Sendable, Equatable {
    var stats: BucketStats
    var gaps: [Interval]

    init(_ stats: BucketStats, gaps: [Interval]) {
        self.stats = stats
        self.gaps = FleetDatabase.decodeGaps(FleetDatabase.encodeGaps(gaps))
    }
    init(stats: BucketStats, storedGaps: [Interval]) {
        self.stats = stats
        self.gaps = storedGaps
    }
}

/// `[[a,b],[c,d],…]` with each number `-?(0|[1-9][0-9]*)(\.[0-9]+)?` of at most 20 digits each
/// side of the point, as `encodeGaps` writes it: nil for anything else. A JSON number of that
/// form is read by `Double(_:)` to the same value as by the JSON decoder (both round the decimal
/// to the nearest double).
enum GapText {
    static func parse(_ text: String) -> [Interval]? {
        var text = text
        return text.withUTF8 { b -> [Interval]? in
            let n = b.count
            var i = 0
            func number() -> Double? {
                let start = i
                if i < n && b[i] == UInt8(ascii: "-") { i += 1 }
                let digits = i
                while i < n && b[i] >= UInt8(ascii: "0") && b[i] <= UInt8(ascii: "9") { i += 1 }
                // No leading zero but "0" itself; at least one digit. At most 20 digits each
                // side of the point (encodeGaps writes 16 and 3): beyond, the JSON decoder
                // refuses what overflows or underflows, where Double(_:) gives inf or 0.
                guard i > digits, i - digits <= 20, b[digits] != UInt8(ascii: "0") || i == digits + 1 else { return nil }
                if i < n && b[i] == UInt8(ascii: ".") {
                    i += 1
                    let fraction = i
                    while i < n && b[i] >= UInt8(ascii: "0") && b[i] <= UInt8(ascii: "9") { i += 1 }
                    guard i > fraction, i - fraction <= 20 else { return nil }
                }
                return Double(Substring(decoding: UnsafeBufferPointer(rebasing: b[start..<i]), as: UTF8.self))
            }
            func expect(_ c: Character) -> Bool {
                guard i < n, b[i] == c.asciiValue! else { return false }
                i += 1
                return true
            }
            guard expect("[") else { return nil }
            var out: [Interval] = []
            if expect("]") { return i == n ? out : nil }
            repeat {
                guard expect("["), let from = number(), expect(","), let to = number(), expect("]") else { return nil }
                out.append(Interval(from, to))
            } while expect(",")
            return expect("]") && i == n ? out : nil
        }
    }
}
