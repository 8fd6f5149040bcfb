import KSMCore
import KSMNode
import Logging

/// When the agent scans /proc for the per-process KSM figures it sends with a sample: with the
/// first sample, then with the first sample at least `interval` seconds after the previous scan
/// (every 6th sample at the default 10 s sample interval and 60 s process interval).
struct ProcessReporting {
    let scanner: ProcessScanner?
    let interval: Double
    private var lastScan: Double?

    init(scanner: ProcessScanner?, interval: Double) {
        self.scanner = interval > 0 ? scanner : nil
        self.interval = interval
    }

    /// A report when one is due at monotonic time `now`, nil otherwise.
    mutating func reportIfDue(now: Double, logger: Logger) -> ProcessReport? {
        guard let scanner else { return nil }
        // A little slack so that a 60 s interval is not missed by a sample that comes 59.99 s later.
        if let last = lastScan, now - last < interval * 0.98 { return nil }
        lastScan = now
        let scan = scanner.scan()
        let r = scan.report
        logger.debug(
            "process scan",
            metadata: [
                "processes": "\(r.processesScanned)", "mergeable": "\(r.mergeableProcesses)",
                "groups": "\(r.groups.count)", "ms": "\(r.scanMillis)", "truncated": "\(r.truncated)",
            ])
        return r
    }
}
