import FleetAPI
import Foundation
import KSMCore
import TestSupport
import Testing

@testable import FleetStore

/// 2026-11-02T00:00:00Z.
private let t0: Double = 1_793_577_600
/// 2026-11-29T00:00:00Z: the fleets below cross the month's end.
private let lateNovember: Double = t0 + 27 * 86400

/// The rollup pass as it runs in the server: samples arriving a few at a time, passes with a
/// small batch between them, the background service's `pendingRefresh` skipping current hours it
/// computed a moment ago, readers' passes recomputing only the pending hours they read. Whatever the order, the stored hours, days and months must end the
/// same as one pass over everything.
@Suite struct RollupPassTests {
    /// Random nodes sampling every 1–10 minutes from 27 November to 2 December, with silences.
    static func fleet(seed: UInt64) -> [(name: String, samples: [ReportSample])] {
        var rng = SeededRandom(seed: seed)
        return (0..<Int.random(in: 2...4, using: &rng)).map { i in
            var t = lateNovember - 2 * 86400 + Double(Int.random(in: 0...7200, using: &rng))
            let end = lateNovember + 3 * 86400
            let step = Double(Int.random(in: 60...600, using: &rng))
            var saved = Int64.random(in: 0...(1 << 33), using: &rng)
            var samples: [ReportSample] = []
            while t < end {
                saved = max(0, saved + Int64.random(in: -(1 << 28)...(1 << 28), using: &rng)) / 4096 * 4096
                samples.append(
                    ReportSample(
                        at: t, savedBytes: saved, cpuSeconds: Double(samples.count) * 0.3, cpuPercent: 0.5,
                        fullScans: Int64(samples.count / 3), phase: .running))
                t += step
                if Int.random(in: 0..<30, using: &rng) == 0 { t += Double(Int.random(in: 400...30000, using: &rng)) }
            }
            return ("p\(seed)-\(i)", samples)
        }
    }

    /// Every rollup row and pending hour, by node name.
    static func dump(_ db: FleetDatabase) async throws -> [String: [[SQLValue]]] {
        try await db.read { db in
            var out: [String: [[SQLValue]]] = [:]
            for table in ["rollup_hour", "rollup_day", "rollup_month"] {
                out[table] = try StoreRow.fetchAll(
                    db,
                    sql: """
                        SELECT n.name, r.bucket_start, \(FleetDatabase.rollupColumns) FROM \(table) r
                        JOIN nodes n ON n.id = r.node_id ORDER BY n.name, r.bucket_start
                        """
                ).map(\.values)
            }
            out["rollup_pending"] = try StoreRow.fetchAll(
                db,
                sql: """
                    SELECT n.name, p.bucket_start FROM rollup_pending p JOIN nodes n ON n.id = p.node_id
                    ORDER BY n.name, p.bucket_start
                    """
            ).map(\.values)
            return out
        }
    }

    /// Three random fleets at once, each on databases of its own (`make test` runs tests one at a
    /// time; one after the other they took 13 s of the PostgreSQL pass, waiting on round trips).
    @Test func passesAsSamplesArriveEndAsOnePassOverAll() async throws {
        try await forEachSeedAtOnce([1, 2, 3], Self.passesAsSamplesArrive(seed:))
    }

    static func passesAsSamplesArrive(seed: UInt64) async throws {
        let nodes = Self.fleet(seed: seed)
        let end = lateNovember + 3 * 86400 + 600
        // All at once.
        let whole = try ReportFixture()
        for n in nodes { try await whole.pushSamples(try await whole.node(n.name, registeredAt: lateNovember - 3 * 86400), n.samples) }
        try await whole.db.rollupCatchUp(now: Date(timeIntervalSince1970: end))
        // As they arrive: in time order, a few at a time, passes in between at a "now" just after
        // the latest sample, with every kind of refresh.
        var rng = SeededRandom(seed: seed + 100)
        let live = try ReportFixture()
        var ids: [String: String] = [:]
        for n in nodes { ids[n.name] = try await live.node(n.name, registeredAt: lateNovember - 3 * 86400) }
        var arrivals = nodes.flatMap { n in n.samples.map { (n.name, $0) } }.sorted { $0.1.at < $1.1.at }
        var passes = 0
        var skipped = 0
        while !arrivals.isEmpty {
            let chunk = arrivals.prefix(Int.random(in: 5...120, using: &rng))
            arrivals.removeFirst(chunk.count)
            for name in Set(chunk.map(\.0)).sorted() {
                try await live.pushSamples(ids[name]!, chunk.filter { $0.0 == name }.map(\.1))
            }
            let now = chunk.last!.1.at + Double(Int.random(in: 0...90, using: &rng))
            let refresh = [0.0, 60, 600][Int.random(in: 0..<3, using: &rng)]
            // Readers' passes too: one node's pending hours, or the whole hours of a period.
            let around = now - Double(Int.random(in: 0...(3 * 86400), using: &rng))
            let scope: PendingScope = [
                .all, .node(ids[nodes[Int.random(in: 0..<nodes.count, using: &rng)].name]!),
                .wholeHoursIn(Interval(around - Double(Int.random(in: 0...86400, using: &rng)), around)),
            ][Int.random(in: 0..<3, using: &rng)]
            while true {
                let r = try await live.db.rollupPass(
                    batch: 37, now: Date(timeIntervalSince1970: now), pendingRefresh: refresh, scope: scope)
                passes += 1
                if !r.more { break }
            }
            // The service a second later: what is due now, then nothing (computed a moment ago).
            _ = try await live.db.rollupPass(now: Date(timeIntervalSince1970: now + 1), pendingRefresh: 60)
            let again = try await live.db.rollupPass(now: Date(timeIntervalSince1970: now + 2), pendingRefresh: 60)
            #expect(again.samples == 0 && again.hours == 0)
            if again.hours == 0 { skipped += 1 }
        }
        #expect(skipped > 10)
        try await live.db.rollupCatchUp(now: Date(timeIntervalSince1970: end))
        let expected = try await Self.dump(whole.db)
        let got = try await Self.dump(live.db)
        #expect(expected["rollup_month"]?.count ?? 0 >= nodes.count * 2, "the fleet crosses a month's end")
        for table in expected.keys.sorted() {
            #expect(got[table] == expected[table], "seed \(seed), \(table) after \(passes) passes")
        }
    }

    /// A pass reads its nodes' samples and rows a chunk of nodes at a time, nodes that need the
    /// same range in one query. Nodes with different hours touched (late samples), a deleted
    /// node, chunks that split the fleet anywhere: the rows stored are those of one node a
    /// query (`readChunk: 1`).
    /// Two seeds at once, and in each the four chunk sizes at once, each on a database of its own
    /// (one after the other: 31 s of the PostgreSQL pass).
    @Test func nodesReadTogetherRollUpAsNodesReadAlone() async throws {
        try await forEachSeedAtOnce([4, 5], Self.nodesReadTogether(seed:))
    }

    static func nodesReadTogether(seed: UInt64) async throws {
        let nodes = Self.fleet(seed: seed) + Self.fleet(seed: seed + 10)
        let end = lateNovember + 3 * 86400 + 600
        var rng = SeededRandom(seed: seed + 200)
        // Arrivals in time order, except a few samples held back and sent late (their hours are
        // then touched again, apart from the other nodes').
        var arrivals = nodes.flatMap { n in n.samples.map { (n.name, $0) } }.sorted { $0.1.at < $1.1.at }
        var late: [(String, ReportSample)] = []
        for _ in 0..<12 { late.append(arrivals.remove(at: Int.random(in: 0..<arrivals.count, using: &rng))) }
        let deleted = nodes[1].name
        var rounds: [[(String, ReportSample)]] = []
        while !arrivals.isEmpty {
            let chunk = Array(arrivals.prefix(Int.random(in: 40...300, using: &rng)))
            arrivals.removeFirst(chunk.count)
            rounds.append(chunk + (late.isEmpty || Bool.random(using: &rng) ? [] : [late.removeLast()]))
        }
        rounds[rounds.count - 1] += late
        let fixed = rounds
        let dumps = try await withThrowingTaskGroup(of: (Int, [String: [[SQLValue]]]).self) { group in
            for readChunk in [1, 2, 3, FleetDatabase.rollupReadChunk] {
                group.addTask {
                    let f = try ReportFixture()
                    var ids: [String: String] = [:]
                    for n in nodes { ids[n.name] = try await f.node(n.name, registeredAt: lateNovember - 3 * 86400) }
                    for (i, round) in fixed.enumerated() {
                        for name in Set(round.map(\.0)).sorted() where !(name == deleted && i > fixed.count / 2) {
                            try await f.pushSamples(ids[name]!, round.filter { $0.0 == name }.map(\.1).sorted { $0.at < $1.at })
                        }
                        if i == fixed.count / 2 {
                            let at = Date(timeIntervalSince1970: round.last!.1.at - 1800)
                            try await f.db.deleteNode(nodeId: ids[deleted]!, purgeHistory: false, now: at)
                        }
                        let now = Date(timeIntervalSince1970: round.map(\.1.at).max()! + 30)
                        while try await f.db.rollupPass(batch: 97, now: now, readChunk: readChunk).more {}
                    }
                    try await f.db.rollupCatchUp(now: Date(timeIntervalSince1970: end))
                    return (readChunk, try await Self.dump(f.db))
                }
            }
            var dumps: [Int: [String: [[SQLValue]]]] = [:]
            for try await (readChunk, dump) in group { dumps[readChunk] = dump }
            return dumps
        }
        let alone = try #require(dumps[1])
        #expect((alone["rollup_hour"]?.count ?? 0) > 100 && (alone["rollup_month"]?.count ?? 0) >= nodes.count)
        for (readChunk, got) in dumps.sorted(by: { $0.key < $1.key }) where readChunk != 1 {
            for table in alone.keys.sorted() {
                #expect(got[table] == alone[table], "seed \(seed), readChunk \(readChunk), \(table)")
            }
        }
    }

    /// The service's passes recompute a current hour that no new sample touched only when this
    /// process computed it at least `pendingRefresh` seconds ago; reports (0) always do.
    @Test func aCurrentHourIsRefreshedWhenDue() async throws {
        let f = try ReportFixture()
        let id = try await f.node("refresh", registeredAt: t0)
        try await f.push(id, start: t0 + 3600, step: 60, count: 21)  // the last at t0 + 4800
        func pass(_ now: Double, refresh: Double) async throws -> RollupPassResult {
            try await f.db.rollupPass(now: Date(timeIntervalSince1970: t0 + now), pendingRefresh: refresh)
        }
        func dataSeconds() async throws -> Double? {
            try await f.db.read { db in
                try Double.fetchOne(
                    db, sql: "SELECT data_seconds FROM rollup_hour WHERE node_id = ? AND bucket_start = ?",
                    arguments: [id, Int64(t0 + 3600)])
            }
        }
        func pending() async throws -> Int {
            try await f.db.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM rollup_pending") ?? 0 }
        }
        #expect(try await pass(4810, refresh: 60).samples == 21)
        #expect(try await dataSeconds() == 1210, "cut at now: 10 s of the last sample's 60 s tail")
        #expect(try await pending() > 0)
        #expect(try await pass(4830, refresh: 60).hours == 0, "computed 20 s ago")
        #expect(try await dataSeconds() == 1210)
        #expect(try await pass(4830, refresh: 0).hours > 0, "a report brings it up to now")
        #expect(try await dataSeconds() == 1230)
        #expect(try await pass(4845, refresh: 60).hours == 0, "computed 15 s ago")
        #expect(try await pass(4895, refresh: 60).hours > 0, "65 s ago: due")
        #expect(try await dataSeconds() == 1260, "the tail is whole")
        #expect(try await pending() == 0, "nothing is cut any more")
        // A new sample touches its hour whatever the refresh.
        try await f.push(id, start: t0 + 4860, step: 60, count: 1)
        #expect(try await pass(4870, refresh: 600).samples == 1)
        #expect(try await dataSeconds() == 1270)
    }
    /// Readers recompute only the pending hours they read (`PendingScope`): a report ending now
    /// leaves every node's hour under way as the service cut it, and gives what it gives after
    /// a refresh of everything. Reports ending mid-hour and just after an hour ended (whose
    /// last sample's tail the service cut), by node, by label, by day over 30 days, ending on the
    /// whole hour; a node's history.
    @Test func readersRefreshWhatTheyReadAndGiveWhatAFullRefreshGives() async throws {
        try await forEachSeedAtOnce([7, 8], Self.readersRefreshWhatTheyRead(seed:))
    }

    static func readersRefreshWhatTheyRead(seed: UInt64) async throws {
        let nodes = Self.fleet(seed: seed)
        var rng = SeededRandom(seed: seed + 300)
        let midHour = lateNovember + 86400 + 1200 + Double(Int.random(in: 0...1800, using: &rng))
        let justAfterAnHour = ReportTime.hourStart(lateNovember + 86400 + 7200) + 20
        for now in [midHour, justAfterAnHour] {
            let f = try ReportFixture()
            var ids: [String] = []
            for (i, n) in nodes.enumerated() {
                let id = try await f.node(n.name, labels: ["rack": "r\(i % 2)"], registeredAt: lateNovember - 3 * 86400)
                // The last sample 55 s before now: its 60 s tail runs past the service's "now".
                var samples = n.samples.filter { $0.at < now - 55 }
                if var last = samples.last {
                    last.at = now - 55
                    samples.append(last)
                }
                try await f.pushSamples(id, samples)
                ids.append(id)
            }
            // The service a while ago: every sample rolled up, the hours under way cut then.
            try await f.db.rollupCatchUp(now: Date(timeIntervalSince1970: now - 50))
            let cut = try await Self.dump(f.db)
            // The hour the service's "now" was in: the hour under way, or the one that just ended.
            let underWay = ReportTime.hourStart(now - 50)
            #expect(cut["rollup_pending"]?.contains { $0[1] == .int(Int64(underWay)) } == true, "seed \(seed): a pending hour under way")
            let at = Date(timeIntervalSince1970: now)
            func reports() async throws -> [SavingsReport] {
                let day = Date(timeIntervalSince1970: now - 86400)
                let hourEnded = Date(timeIntervalSince1970: ReportTime.hourStart(now))
                // Ending on the whole hour first: on its own, the reports after it would refresh
                // the hour that just ended for it.
                return [
                    try await f.db.savingsReport(since: day, until: hourEnded, by: .node, label: nil, now: at),
                    try await f.db.savingsReport(since: day, until: at, by: .node, label: nil, now: at),
                    try await f.db.savingsReport(since: day, until: at, by: .label, label: "rack", now: at),
                    try await f.db.savingsReport(
                        since: Date(timeIntervalSince1970: now - 30 * 86400), until: at, by: .day, label: nil, now: at),
                ]
            }
            let scoped = try await reports()
            let history = try await f.db.history(
                nodeId: ids[0], since: Date(timeIntervalSince1970: now - 86400), until: at, resolution: .hour, now: at)
            // What the readers left: the hours under way of the nodes but the one whose history
            // was read, as cut 50 s ago; an hour that ended since is read whole, so recomputed.
            let left = try await Self.dump(f.db)
            func underWayRows(_ d: [String: [[SQLValue]]], but name: String) -> [[SQLValue]] {
                (d["rollup_hour"] ?? []).filter { $0[1] == .int(Int64(underWay)) && $0[0] != .text(name) }
            }
            #expect(!underWayRows(cut, but: nodes[0].name).isEmpty)
            if underWay == ReportTime.hourStart(now) {
                #expect(underWayRows(left, but: nodes[0].name) == underWayRows(cut, but: nodes[0].name), "seed \(seed)")
            } else {
                #expect(underWayRows(left, but: nodes[0].name) != underWayRows(cut, but: nodes[0].name), "seed \(seed)")
            }
            // Every pending hour recomputed as of now: the same figures.
            try await f.db.rollupCatchUp(now: at)
            let full = try await reports()
            for (a, b) in zip(scoped, full) {
                #expect(a == b, "seed \(seed), now \(now), by \(a.by.rawValue) until \(a.until)")
            }
            let fullHistory = try await f.db.history(
                nodeId: ids[0], since: Date(timeIntervalSince1970: now - 86400), until: at, resolution: .hour, now: at)
            #expect(history == fullHistory, "seed \(seed)")
        }
    }

    /// A sample older than the raw retention's cut (a spool replayed after an outage longer than
    /// the raw retention, a clock far behind): the stored hours around it lost their raw
    /// samples, and recomputing them from what is left rewrote the 10:00 hour with the late
    /// sample alone and deleted the 9:00 one. Stored hours there are kept; an hour without a
    /// row (the node sent nothing then) is computed from the late samples.
    @Test func aLateSampleBeforeTheRetentionCutKeepsTheStoredHours() async throws {
        let f = try ReportFixture()
        let id = try await f.node("late", registeredAt: t0)
        try await f.push(id, start: t0 + 9 * 3600, step: 60, count: 62)  // 9:00 … 10:01
        _ = try await f.db.rollupCatchUp(now: Date(timeIntervalSince1970: t0 + 11 * 3600))
        func hour(_ h: Double) async throws -> Double? {
            try await f.db.read { db in
                try Double.fetchOne(
                    db, sql: "SELECT data_seconds FROM rollup_hour WHERE node_id = ? AND bucket_start = ?",
                    arguments: [id, Int64(t0 + h * 3600)])
            }
        }
        let nine = try #require(try await hour(9))
        let ten = try #require(try await hour(10))
        #expect(nine == 3600)
        // A newer sample, so that retention may take every one of the node's first ones.
        try await f.push(id, start: t0 + 14 * 3600, step: 60, count: 1)
        _ = try await f.db.rollupCatchUp(now: Date(timeIntervalSince1970: t0 + 14 * 3600 + 60))
        _ = try await f.db.retentionPass(
            samplesBefore: Date(timeIntervalSince1970: t0 + 12 * 3600), rollupsBefore: Date(timeIntervalSince1970: 0))
        // Late: one at 10:02:30, and an hour the node had sent nothing for (11:00-11:05).
        try await f.pushSamples(id, [ReportSample(at: t0 + 10 * 3600 + 150, savedBytes: 1 << 30, phase: .running)])
        try await f.push(id, start: t0 + 11 * 3600 + 600, step: 60, count: 6)
        _ = try await f.db.rollupCatchUp(now: Date(timeIntervalSince1970: t0 + 15 * 3600))
        #expect(try await hour(9) == nine, "the 9:00 hour was rewritten or deleted")
        #expect(try await hour(10) == ten, "the 10:00 hour was rewritten from the late sample alone")
        let eleven = try #require(try await hour(11), "the hour without a row was not computed from its late samples")
        #expect(eleven >= 300)
        // More of the replay in a later pass: the hour an earlier pass computed from the first
        // late samples takes them too (it is not frozen as a stored hour would be).
        try await f.push(id, start: t0 + 11 * 3600 + 960, step: 60, count: 15)  // 11:16 … 11:30
        _ = try await f.db.rollupCatchUp(now: Date(timeIntervalSince1970: t0 + 15 * 3600 + 60))
        #expect((try await hour(11) ?? 0) >= eleven + 14 * 60, "the second part of the replay went uncounted")
        let (nineAfter, tenAfter) = (try await hour(9), try await hour(10))
        #expect(nineAfter == nine && tenAfter == ten)
        // The day holds the kept hours and the new one.
        let day = try await f.db.read { db in
            try Double.fetchOne(
                db, sql: "SELECT data_seconds FROM rollup_day WHERE node_id = ? AND bucket_start = ?",
                arguments: [id, Int64(t0)])
        }
        #expect((day ?? 0) >= nine + ten + 300)
    }

    /// Samples dated ahead of the server (a node's clock a few minutes fast, accepted up to 10
    /// minutes) that fall in the next hour: that hour is computed with no time yet (after
    /// "now") and must stay pending, or a node that stops then never gets its time counted.
    @Test func anHourAheadOfTheServersClockIsRecomputedLater() async throws {
        let f = try ReportFixture()
        let id = try await f.node("fast-clock", registeredAt: t0)
        try await f.push(id, start: t0 + 10 * 3600 - 240, step: 10, count: 49)  // 9:56 … 10:04
        _ = try await f.db.rollupCatchUp(now: Date(timeIntervalSince1970: t0 + 10 * 3600 - 230))
        _ = try await f.db.rollupCatchUp(now: Date(timeIntervalSince1970: t0 + 12 * 3600))
        let ten = try await f.db.read { db in
            try Double.fetchOne(
                db, sql: "SELECT data_seconds FROM rollup_hour WHERE node_id = ? AND bucket_start = ?",
                arguments: [id, Int64(t0 + 10 * 3600)])
        }
        #expect(ten == 300, "10:00-10:04 and the last sample's 60 s tail")
    }
}
