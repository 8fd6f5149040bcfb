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
    /// The first counter the kernel could not report (a negative one); nil when all are plausible.
    /// Every counter the kernel reports as a count of pages, scans or milliseconds is never
    /// negative; `general_profit` alone may be (the rmap overhead can exceed what merging saves),
    /// so it is not checked. Plain comparisons in field order: this runs on every ingested
    /// sample, and a table of key paths over the struct cost more than the rest of the push's
    /// validation (a copy of the struct and a key-path projection per field: docs/benchmarks.md).
    public func invalidField() -> (field: String, message: String)? {
        func negative(_ v: Int64?) -> Bool { (v ?? 0) < 0 }
        func negative(_ v: Int?) -> Bool { (v ?? 0) < 0 }
        let name: String? =
            if run < 0 { "run" } else if pagesToScan < 0 { "pagesToScan" }
            else if sleepMillisecs < 0 { "sleepMillisecs" } else if pagesShared < 0 { "pagesShared" }
            else if pagesSharing < 0 { "pagesSharing" } else if pagesUnshared < 0 { "pagesUnshared" }
            else if pagesVolatile < 0 { "pagesVolatile" } else if fullScans < 0 { "fullScans" }
            else if negative(mergeAcrossNodes) { "mergeAcrossNodes" }
            else if negative(maxPageSharing) { "maxPageSharing" }
            else if negative(stableNodeChains) { "stableNodeChains" }
            else if negative(stableNodeDups) { "stableNodeDups" }
            else if negative(useZeroPages) { "useZeroPages" } else if negative(ksmZeroPages) { "ksmZeroPages" }
            else if negative(pagesScanned) { "pagesScanned" } else if negative(pagesSkipped) { "pagesSkipped" }
            else if negative(smartScan) { "smartScan" }
            else if negative(advisorTargetScanTime) { "advisorTargetScanTime" }
            else if negative(advisorMinPagesToScan) { "advisorMinPagesToScan" }
            else if negative(advisorMaxPagesToScan) { "advisorMaxPagesToScan" }
            else if negative(advisorMaxCPU) { "advisorMaxCPU" } else { nil }
        return name.map { ($0, "\($0) must not be negative") }
    }
}

extension MemorySnapshot {
    /// The first /proc/meminfo figure no kernel reports (a negative one); nil when all are
    /// plausible. Kilobyte counts, never negative; plain comparisons as above.
    public func invalidField() -> (field: String, message: String)? {
        let name: String? =
            if memTotalKB < 0 { "memTotalKB" } else if memAvailableKB < 0 { "memAvailableKB" }
            else if memFreeKB < 0 { "memFreeKB" } else if buffersKB < 0 { "buffersKB" }
            else if cachedKB < 0 { "cachedKB" } else if anonPagesKB < 0 { "anonPagesKB" } else { nil }
        return name.map { ($0, "\($0) must not be negative") }
    }
}
