import FleetStore
import Foundation
import KSMCore
import Logging
import ServiceLifecycle

/// Background upkeep of history: rolls new samples up into hour/day rollups every few seconds,
/// and now and then deletes raw samples past the retention window and rollups past theirs (by
/// whole months: `FleetDatabase.rollupCut`), in small batches so that ingest is never blocked for
/// long. Stops on graceful shutdown.
struct RollupService: Service {
    let database: FleetDatabase
    let logger: Logger
    let rawRetentionDays: Int
    let rollupRetentionDays: Int
    let rollupInterval: Duration
    let retentionInterval: Duration
    /// How often the SQLite planner's statistics are refreshed (`refreshPlannerStatistics`),
    /// after a first refresh at start: the rollup tables grow by a day of rows a day.
    let statisticsInterval: Duration
    /// A current hour that no new sample touched is recomputed at most this often (seconds) by
    /// the service; a live node's next sample recomputes it anyway, and reports bring every hour
    /// up to now before they read.
    static let pendingRefresh = 60.0
    /// Hours whose label group sums a round computes at most (about 0.7 s of a year's 6 s on
    /// SQLite for 1,000 nodes): after a label change the rest waits for the next rounds.
    static let labelSumHoursPerRound = 1000

    init(
        state: ServerState, rollupInterval: Duration = .seconds(10),
        retentionInterval: Duration = .seconds(600), statisticsInterval: Duration = .seconds(3600)
    ) {
        database = state.database
        logger = state.logger
        rawRetentionDays = state.config.rawRetentionDays
        rollupRetentionDays = state.config.rollupRetentionDays
        self.rollupInterval = rollupInterval
        self.retentionInterval = retentionInterval
        self.statisticsInterval = statisticsInterval
    }

    /// Refreshes the planner's statistics (SQLite), logging how long it took.
    private func refreshStatistics() async {
        let clock = ContinuousClock()
        let start = clock.now
        do {
            if try await database.refreshPlannerStatistics() {
                let ms = (clock.now - start) / .milliseconds(1)
                logger.debug("refreshed the query planner's statistics", metadata: ["ms": "\(Int(ms))"])
            }
        } catch {
            logger.error("refreshing the query planner's statistics failed", metadata: ["error": "\(error)"])
        }
    }

    func run() async throws {
        // Not held to the request deadline: a pass over a large fleet may take longer.
        await DatabaseWork.$isBackground.withValue(true) { await work() }
        // Another replica takes the work over now rather than when this process is gone.
        await database.releaseBackgroundLock()
    }

    /// Runs one pass of the round, unless the service is stopping; logs its failure, except
    /// one that comes while it stops (the shutdown gives up work a database that stopped
    /// answering holds, and says so once itself).
    private func pass(_ what: String, _ body: () async throws -> Void) async {
        guard !Task.isCancelled else { return }
        do {
            try await body()
        } catch {
            let stopping = Task.isCancelled || database.workAbandoned
            logger.log(level: stopping ? .debug : .error, "\(what) failed", metadata: ["error": "\(error)"])
        }
    }

    /// How often the replica running the background work looks, between rounds, for tables
    /// that doubled since their planner statistics (PostgreSQL; `analyzeGrownTables`): a new
    /// database's enrolment registers hundreds of nodes a second, each read with the plans of an
    /// empty table until `nodes` is analyzed. The look is a catalog query.
    static let growthCheckInterval = Duration.seconds(1)

    /// Sleeps `rollupInterval`; on PostgreSQL gathers the statistics of grown tables every
    /// `growthCheckInterval` meanwhile, logging which. A failed check ends the checks until the
    /// next round, logged at debug level: it is upkeep the next round's sleep does again, and a
    /// database that stopped answering is logged once by the store, not every second here.
    private func sleepCheckingGrowth() async throws {
        guard database.isShared else { return try await Task.sleep(for: rollupInterval) }
        var left = rollupInterval
        var checking = true
        while left > .zero {
            let step = checking ? min(left, Self.growthCheckInterval) : left
            try await Task.sleep(for: step)
            left -= step
            guard checking, !Task.isCancelled else { continue }
            let clock = ContinuousClock()
            let start = clock.now
            do {
                let tables = try await database.analyzeGrownTables()
                guard !tables.isEmpty else { continue }
                logger.info(
                    "gathered the query planner's statistics of grown tables",
                    metadata: [
                        "tables": "\(tables.map { "\($0.name) (\($0.pagesKnown) → \($0.pages) pages)" }.joined(separator: ", "))",
                        "ms": "\(Int((clock.now - start) / .milliseconds(1)))",
                    ])
            } catch {
                checking = false
                logger.debug("looking for grown tables failed; again after the next round", metadata: ["error": "\(error)"])
            }
        }
    }

    private func work() async {
        try? await cancelWhenGracefulShutdown {
            var sinceRetention = Duration.zero
            var sinceStatistics = Duration.zero
            // First retention pass shortly after start, then every retentionInterval.
            var retentionDue = Duration.seconds(30)
            do {
                let n = try await database.backfillMonthRollups()
                if n > 0 { logger.info("merged day rollups into months", metadata: ["months": "\(n)"]) }
            } catch {
                logger.error("month rollup backfill failed", metadata: ["error": "\(error)"])
            }
            // Before the first reports: a database that never had statistics (every one before
            // this) gets plans that sort every rollup row of a report.
            await refreshStatistics()
            var leading: Bool? = nil
            while !Task.isCancelled {
                // Replicas on one PostgreSQL database: one of them does this work at a time.
                let asked = await database.holdsBackgroundLock()
                if asked != leading {
                    // Nil: the database did not answer (the store logged it); the next answer
                    // says who runs the work after the outage.
                    leading = asked
                    if let asked, database.isShared {
                        logger.info(asked ? "this replica runs rollups and retention" : "another replica runs rollups and retention")
                    }
                }
                if asked != true {
                    try await Task.sleep(for: rollupInterval)
                    continue
                }
                await pass("rollup pass") {
                    let n = try await database.rollupCatchUp(pendingRefresh: Self.pendingRefresh)
                    if n > 0 { logger.debug("rolled up samples", metadata: ["samples": "\(n)"]) }
                }
                await pass("fleet day fold") {
                    // The fleet's day rows the by-day report reads, for days that are over.
                    let n = try await database.flushFleetDays()
                    if n > 1 { logger.info("folded the fleet's day rows", metadata: ["days": "\(n)"]) }
                }
                await pass("label sums pass") {
                    // The label groups' hourly sums of the hours that changed, and after a label
                    // change (or, once, for the hours stored before they were kept) of every
                    // hour: newest first, a bounded number a round.
                    let n = try await database.flushLabelSums(maxHours: Self.labelSumHoursPerRound)
                    if n >= Self.labelSumHoursPerRound {
                        let left = try await database.labelSumsLeft()
                        logger.info("computing label groups' hourly sums", metadata: ["hours": "\(n)", "left": "\(left)"])
                    } else if n > 0 {
                        logger.debug("computed label groups' hourly sums", metadata: ["hours": "\(n)"])
                    }
                }
                await pass("fleet peak pass") {
                    // Exact fleet peaks of the hours that ended (a day's worth at most a round).
                    let n = try await database.fleetPeakPass()
                    if n > 0 {
                        logger.log(
                            level: n >= 24 ? .info : .debug, "computed exact fleet peaks", metadata: ["hours": "\(n)"])
                    }
                }
                await pass("slice pack pass") {
                    // The hour under way's ten-minute slices that are over, packed for reports.
                    let n = try await database.slicePackPass()
                    if n > 0 { logger.debug("packed raw sample slices", metadata: ["slices": "\(n)"]) }
                }
                if sinceRetention >= retentionDue {
                    sinceRetention = .zero
                    retentionDue = retentionInterval
                    await pass("retention pass") {
                        let now = Date()
                        let cut = FleetDatabase.rollupCut(now: now, keepDays: rollupRetentionDays)
                        let r = try await database.retentionPass(
                            samplesBefore: now.addingTimeInterval(-Double(rawRetentionDays) * 86400), rollupsBefore: cut)
                        if r.samples + r.hours + r.days + r.months + r.processDays + r.processMonths > 0 {
                            logger.info(
                                "retention removed old history",
                                metadata: [
                                    "samples": "\(r.samples)", "hourRollups": "\(r.hours)", "dayRollups": "\(r.days)",
                                    "monthRollups": "\(r.months)", "processDays": "\(r.processDays)",
                                    "processMonths": "\(r.processMonths)", "rollupsBefore": "\(cut.formatted(.iso8601))",
                                ])
                        }
                    }
                }
                if sinceStatistics >= statisticsInterval {
                    sinceStatistics = .zero
                    await refreshStatistics()
                }
                try await sleepCheckingGrowth()
                sinceRetention += rollupInterval
                sinceStatistics += rollupInterval
            }
        }
    }
}
