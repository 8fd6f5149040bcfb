import Foundation
import KSMCore

/// The hour under way packed as it goes: ten minutes of every node's raw samples in one row
/// (`raw_slice_pack`, migrations/0048_raw_slice_pack.sql; the format of `RawHourPack`). An hour's
/// own pack is made only once it is over, so a live report read the hour under way one row per
/// sample: on SQLite about 0.2 s of a 24 h report over 1,000 nodes with 46 minutes of it
/// (docs/benchmarks.md). Every rollup pass gives the slices its samples were taken in a new
/// version; the rollup service packs a slice once it has been over for `sliceSettleSeconds`, from
/// one read, and stores the pack only if the version has not moved since. Reports read a slice's
/// pack while it is current (`FleetDatabase.packPieces`).
extension FleetDatabase {
    /// The length of a slice (seconds); an hour holds six.
    static let sliceSeconds: Int64 = 600
    /// How long a slice is left after its end before it is packed: a live agent's sample reaches
    /// the server within its push interval (60 s by default). One that comes later still is
    /// right (its rollup pass moves the slice's version, and the slice is packed again), only
    /// wasted work.
    static let sliceSettleSeconds = 120.0
    /// Slices older than this (seconds) are not packed, and their rows are dropped: by then
    /// their hour has its own pack.
    static let sliceKeepSeconds = 6 * 3600.0

    /// The start of the slice holding `t` (unix seconds).
    static func sliceStart(_ t: Double) -> Int64 {
        Int64((t / Double(sliceSeconds)).rounded(.down)) * sliceSeconds
    }

    /// Packs up to `limit` slices (newest first) that are over by `sliceSettleSeconds`, whose
    /// pack is not current, and that no sample not rolled up yet reaches; drops the rows of
    /// slices older than `sliceKeepSeconds`. Returns how many packs it stored.
    @discardableResult
    public func slicePackPass(now: Date = Date(), limit: Int = 12) async throws -> Int {
        let (computed, old) = try await computeSlicePacks(now: now, limit: limit)
        // A write transaction only when there is something to write.
        guard !computed.isEmpty || old else { return 0 }
        return try await storeSlicePacks(computed, now: now)
    }

    /// A slice's pack as `slicePackPass` made it, for the version it read.
    struct SlicePack: Sendable {
        var start: Int64
        var version: Int64
        var pack: [UInt8]
    }

    /// The read half of `slicePackPass`: the packs of up to `limit` slices, on one snapshot, and
    /// whether there are rows older than `sliceKeepSeconds` to drop.
    func computeSlicePacks(now: Date, limit: Int) async throws -> (packs: [SlicePack], old: Bool) {
        let t = now.timeIntervalSince1970
        let keep = Int64(t - Self.sliceKeepSeconds)
        return try await read { db in
            let old = try Int64.fetchOne(db, sql: "SELECT MIN(slice_start) FROM raw_slice_pack").map { $0 < keep - Self.sliceSeconds } ?? false
            // Not from the slice a sample not rolled up yet was taken in: it would be packed
            // without that sample, and its pass moves the version anyway.
            let unrolled = try Self.firstUnrolledSampleMs(db) ?? .max
            let last = min(Int64(t - Self.sliceSettleSeconds), unrolled == .max ? .max : unrolled / 1000) - Self.sliceSeconds
            let slices = try StoreRow.fetchAll(
                db,
                sql: """
                    SELECT slice_start, version FROM raw_slice_pack
                    WHERE (pack_version IS NULL OR pack_version <> version) AND slice_start >= ? AND slice_start <= ?
                    ORDER BY slice_start DESC LIMIT ?
                    """,
                arguments: [keep, last, limit]
            ).map { r -> (Int64, Int64) in (r[0], r[1]) }
            guard !slices.isEmpty else { return ([], old) }
            // On PostgreSQL the read groups the slice's rows by node (`rawRows`).
            try db.reportWorkMemory()
            var out: [SlicePack] = []
            // Oldest first, the order rollup passes write slice rows in.
            for (start, version) in slices.reversed() where (start + Self.sliceSeconds) * 1000 <= unrolled {
                let (fromMs, toMs) = (start * 1000, (start + Self.sliceSeconds) * 1000)
                let read = try Self.rawSamples(db, from: fromMs, to: toMs, full: true, packs: false, wanted: { _ in true })
                out.append(SlicePack(start: start, version: version, pack: RawHourPack.encode(read.sorted, fromMs: fromMs, toMs: toMs)))
            }
            return (out, old)
        }
    }

    /// The write half of `slicePackPass`: stores each pack whose slice's version is still the one
    /// it was made for; returns how many it stored. (On PostgreSQL a rollup pass that moved the
    /// version after this transaction's snapshot makes the update a serialization failure; the
    /// retried write sees the new version and stores nothing for the slice.)
    func storeSlicePacks(_ computed: [SlicePack], now: Date) async throws -> Int {
        try await backgroundWrite { db -> Int in
            try db.execute(
                sql: "DELETE FROM raw_slice_pack WHERE slice_start < ?",
                arguments: [Int64(now.timeIntervalSince1970 - Self.sliceKeepSeconds) - Self.sliceSeconds])
            let put = try db.cachedStatement(
                sql: "UPDATE raw_slice_pack SET data = ?, pack_version = version WHERE slice_start = ? AND version = ?")
            var stored = 0
            for p in computed {
                try put.execute(arguments: [Data(p.pack), p.start, p.version])
                stored += db.changesCount
            }
            return stored
        }
    }

    /// Gives every slice a new version and drops its pack: for a purge, which removes samples
    /// without a rollup pass. The pass counter, moved by the purge already, is the version (a
    /// later pass writes the counter's next value).
    static func invalidateSlicePacks(_ db: StoreDB) throws {
        try db.execute(
            sql: """
                UPDATE raw_slice_pack SET version = (SELECT value FROM rollup_state WHERE key = ?),
                  pack_version = NULL, data = NULL
                """, arguments: [passKey])
    }
}
