#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import KSMCore

extension StatusSample {
    /// How far ahead of the server's clock a sample's `takenAt` may be: clock skew between a node
    /// and the server, not a sample from the future (no bucket may hold time that has not passed).
    public static let maxClockAheadSeconds: TimeInterval = 600
    /// No KSM sample predates 2000-01-01: an earlier `takenAt` is a node whose clock was never set.
    public static let earliestTakenAt = Date(timeIntervalSince1970: 946_684_800)
    /// ksmd is one kernel thread: at most one core, with room for the tick rounding of a CPU-time
    /// delta over a short interval.
    public static let maxKsmdCPUPercent: Double = 200
    /// Linux base page sizes (4 KiB on x86-64, up to 64 KiB on arm64 and ppc64).
    public static let pageSizes: ClosedRange<Int> = 4096...65536

    /// The first field (relative to the sample) that no real agent could send, with a message that
    /// says why; nil when the sample is plausible. The server refuses a batch that holds one, so a
    /// broken clock or a forged counter never reaches reports, rollups or the node's status.
    public func invalidField(now: Date) -> (field: String, message: String)? {
        if seq < 0 { return ("seq", "seq must not be negative") }
        if takenAt < Self.earliestTakenAt {
            return ("takenAt", "takenAt \(Self.iso(takenAt)) is before 2000: the node's clock is not set")
        }
        let ahead = takenAt.timeIntervalSince(now)
        if ahead > Self.maxClockAheadSeconds {
            let skew =
                ahead >= 86400
                ? Display.number(ahead / 86400) + " days"
                : ahead >= 3600 ? Display.hours(ahead / 3600) : Display.number(ahead / 60) + " min"
            return (
                "takenAt",
                "takenAt \(Self.iso(takenAt)) is \(skew) ahead of the server's clock (at most "
                    + "\(Int(Self.maxClockAheadSeconds / 60)) min): check the node's clock (NTP)"
            )
        }
        if !Self.pageSizes.contains(pageSize) || pageSize & (pageSize - 1) != 0 {
            return ("pageSize", "pageSize must be a power of two from 4096 to 65536, not \(pageSize)")
        }
        if let bad = status.invalidField() { return ("status.\(bad.field)", bad.message) }
        if let bad = memory.invalidField() { return ("memory.\(bad.field)", bad.message) }
        // Saved bytes ((pagesSharing + ksmZeroPages) × pageSize) must fit in 64 bits.
        let (pages, o1) = status.pagesSharing.addingReportingOverflow(status.ksmZeroPages ?? 0)
        if o1 || pages.multipliedReportingOverflow(by: Int64(pageSize)).overflow {
            return ("status.pagesSharing", "(pagesSharing + ksmZeroPages) × pageSize does not fit in 64 bits")
        }
        if let p = ksmdCPUPercent, !(p.isFinite && p >= 0 && p <= Self.maxKsmdCPUPercent) {
            return (
                "ksmdCPUPercent",
                "ksmdCPUPercent must be from 0 to \(Int(Self.maxKsmdCPUPercent)) (ksmd is one thread), not \(p)"
            )
        }
        if let s = ksmdCPUSeconds, !(s.isFinite && s >= 0) {
            return ("ksmdCPUSeconds", "ksmdCPUSeconds must be a CPU time (finite, not negative), not \(s)")
        }
        if let g = appliedGeneration, g < 0 { return ("appliedGeneration", "appliedGeneration must not be negative") }
        if let d = droppedSamples, d < 0 { return ("droppedSamples", "droppedSamples must not be negative") }
        if let bad = processes?.invalidField(pageSize: pageSize) { return ("processes.\(bad.field)", bad.message) }
        return nil
    }

    private static func iso(_ date: Date) -> String {
        ReportTime.iso(date.timeIntervalSince1970)
    }
}

extension KSMStatus {
    /// Every counter the kernel reports as a count of pages, scans or milliseconds, never negative.
    /// `general_profit` alone may be (the rmap overhead can exceed what merging saves), so it is
    /// not here. Built once: the check runs on every ingested sample.
    static let nonNegative: [(String, @Sendable (KSMStatus) -> Int64?)] = [
        ("run", { Int64($0.run) }), ("pagesToScan", { Int64($0.pagesToScan) }),
        ("sleepMillisecs", { Int64($0.sleepMillisecs) }), ("pagesShared", \.pagesShared),
        ("pagesSharing", \.pagesSharing), ("pagesUnshared", \.pagesUnshared), ("pagesVolatile", \.pagesVolatile),
        ("fullScans", \.fullScans), ("mergeAcrossNodes", { $0.mergeAcrossNodes.map(Int64.init) }),
        ("maxPageSharing", { $0.maxPageSharing.map(Int64.init) }), ("stableNodeChains", \.stableNodeChains),
        ("stableNodeDups", \.stableNodeDups), ("useZeroPages", { $0.useZeroPages.map(Int64.init) }),
        ("ksmZeroPages", \.ksmZeroPages), ("pagesScanned", \.pagesScanned), ("pagesSkipped", \.pagesSkipped),
        ("smartScan", { $0.smartScan.map(Int64.init) }), ("advisorTargetScanTime", \.advisorTargetScanTime),
        ("advisorMinPagesToScan", \.advisorMinPagesToScan), ("advisorMaxPagesToScan", \.advisorMaxPagesToScan),
        ("advisorMaxCPU", \.advisorMaxCPU),
    ]

    /// The first counter the kernel could not report (a negative one); nil when all are plausible.
    public func invalidField() -> (field: String, message: String)? {
        for (name, value) in Self.nonNegative where (value(self) ?? 0) < 0 { return (name, "\(name) must not be negative") }
        return nil
    }
}

extension MemorySnapshot {
    /// /proc/meminfo figures, kilobyte counts that are never negative. Built once (see above).
    static let nonNegative: [(String, @Sendable (MemorySnapshot) -> Int64)] = [
        ("memTotalKB", \.memTotalKB), ("memAvailableKB", \.memAvailableKB), ("memFreeKB", \.memFreeKB),
        ("buffersKB", \.buffersKB), ("cachedKB", \.cachedKB), ("anonPagesKB", \.anonPagesKB),
    ]

    /// The first /proc/meminfo figure no kernel reports (a negative one); nil when all are plausible.
    public func invalidField() -> (field: String, message: String)? {
        for (name, value) in Self.nonNegative where value(self) < 0 { return (name, "\(name) must not be negative") }
        return nil
    }
}
