/// ksmd's CPU time at one moment: utime + stime in clock ticks, and monotonic seconds.
public struct CPUTimeSample: Codable, Sendable, Equatable, Hashable {
    public var ticks: UInt64
    public var at: Double
    public init(ticks: UInt64, at: Double) {
        self.ticks = ticks
        self.at = at
    }
}

/// Memory saved and what it cost.
public enum Savings {
    /// Bytes saved: (pages_sharing + ksm_zero_pages) × page size. pages_shared is not a saving.
    /// Saturates at Int64.max instead of trapping on counters no real host reaches.
    public static func savedBytes(_ status: KSMStatus, pageSize: Int) -> Int64 {
        let (pages, o1) = status.pagesSharing.addingReportingOverflow(status.ksmZeroPages ?? 0)
        if o1 { return status.pagesSharing < 0 ? .min : .max }
        let (bytes, o2) = pages.multipliedReportingOverflow(by: Int64(pageSize))
        if o2 { return (pages < 0) != (pageSize < 0) ? .min : .max }
        return bytes
    }

    /// Net saving in bytes after rmap metadata, where the kernel reports general_profit (6.7+).
    public static func netProfitBytes(_ status: KSMStatus) -> Int64? {
        status.generalProfit
    }

    /// ksmd CPU use in % of one CPU between two samples; nil when time did not advance or the
    /// counter went backwards (ksmd restarted, e.g. after a reboot).
    public static func cpuPercent(from a: CPUTimeSample, to b: CPUTimeSample, ticksPerSecond: Int) -> Double? {
        let wall = b.at - a.at
        guard wall > 0, b.ticks >= a.ticks, ticksPerSecond > 0 else { return nil }
        return Double(b.ticks - a.ticks) / Double(ticksPerSecond) / wall * 100
    }

    /// "Wasted effort" ratio: pages scanned but unique, per page saved. High means ksmd burns CPU
    /// for little return.
    public static func unsharedPerSharing(_ status: KSMStatus) -> Double? {
        status.pagesSharing > 0 ? Double(status.pagesUnshared) / Double(status.pagesSharing) : nil
    }
}
