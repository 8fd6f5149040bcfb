import KSMCore

/// Reads the per-process KSM figures of every process (`/proc/PID/ksm_stat`, 6.1+; the single
/// `/proc/PID/ksm_merging_pages` on 5.19–6.0) and groups the processes KSM knows about.
///
/// Cost: one small read per process (the kernel formats six numbers from counters it keeps),
/// plus `comm`, `cmdline` and `cgroup` only for processes with mergeable memory (at most
/// `maxDetailed`), plus `smaps_rollup` (which walks page tables, the one expensive read) for
/// at most `maxRollups` of the largest. `maxProcesses` caps the whole scan.
public struct ProcessScanner: Sendable {
    public var proc: String
    /// The THP setting file (`/sys/kernel/mm/transparent_hugepage/enabled`).
    public var transparentHugePagePath: String
    /// Most processes looked at in one scan.
    public var maxProcesses: Int
    /// Most processes with mergeable memory whose command, arguments and cgroup are read.
    public var maxDetailed: Int
    /// Most `smaps_rollup` reads (for the huge-page finding), the largest mergeable processes first.
    public var maxRollups: Int
    /// Groups kept in the report.
    public var top: Int

    public init(
        proc: String = "/proc", transparentHugePagePath: String = "/sys/kernel/mm/transparent_hugepage/enabled",
        maxProcesses: Int = 20_000, maxDetailed: Int = 512, maxRollups: Int = 8, top: Int = 10
    ) {
        self.proc = proc
        self.transparentHugePagePath = transparentHugePagePath
        self.maxProcesses = maxProcesses
        self.maxDetailed = maxDetailed
        self.maxRollups = maxRollups
        self.top = top
    }

    /// What one scan found: the report sent with a sample and the per-process records behind it.
    public struct Scan: Sendable, Equatable {
        public var report: ProcessReport
        public var records: [ProcessKSMRecord]
    }

    /// One pass over `/proc`. Processes that vanish meanwhile are skipped.
    public func scan() -> Scan {
        let clock = ContinuousClock()
        let started = clock.now
        let names = (try? FileIO.list(proc)) ?? []
        var scanned = 0
        var anyStat = false
        var truncated = false
        var candidates: [(Int32, ProcessKSMStat)] = []
        var rmapItems: Int64 = 0
        var mergingPages: Int64 = 0
        var merging = 0
        let reader = SmallFileReader()
        for name in names {
            guard let pid = Int32(name) else { continue }
            guard scanned < maxProcesses else {
                truncated = true
                break
            }
            scanned += 1
            guard let stat = readStat(pid, reader) else { continue }
            anyStat = true
            rmapItems += stat.rmapItems
            mergingPages += stat.mergingPages
            if stat.mergingPages > 0 { merging += 1 }
            if stat.isMergeable { candidates.append((pid, stat)) }
        }
        // The largest first, so the caps keep what matters.
        candidates.sort { ($0.1.mergingPages, $0.1.rmapItems) > ($1.1.mergingPages, $1.1.rmapItems) }
        if candidates.count > maxDetailed { truncated = true }
        var records: [ProcessKSMRecord] = []
        records.reserveCapacity(min(candidates.count, maxDetailed))
        for (pid, stat) in candidates.prefix(maxDetailed) {
            let base = "\(proc)/\(pid)"
            let command = ((try? FileIO.read(base + "/comm")) ?? "").trimmed
            let args = ProcessGrouping.arguments((try? FileIO.read(base + "/cmdline")) ?? "")
            let cgroup = (try? FileIO.read(base + "/cgroup")).flatMap(ProcessGrouping.cgroupPath)
            let group = ProcessGrouping.group(arguments: args, cgroup: cgroup, command: command)
            records.append(ProcessKSMRecord(pid: pid, command: command, group: group, stat: stat))
        }
        var anonKB: Int64?
        var hugeKB: Int64?
        let byTracked = records.sorted { ($0.stat.rmapItems, $0.stat.mergingPages) > ($1.stat.rmapItems, $1.stat.mergingPages) }
        for r in byTracked.prefix(maxRollups) {
            guard let text = try? FileIO.read("\(proc)/\(r.pid)/smaps_rollup") else { continue }
            let (a, h) = ProcessGrouping.anonymousAndHuge(smapsRollup: text)
            anonKB = (anonKB ?? 0) + a
            hugeKB = (hugeKB ?? 0) + h
        }
        let thp = (try? FileIO.read(transparentHugePagePath)).flatMap(ProcParsing.selectedChoice)
        let elapsed = clock.now - started
        let millis =
            Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
        let report = ProcessReport(
            perProcessStats: anyStat, processesScanned: scanned, mergeableProcesses: candidates.count,
            mergingProcesses: merging, rmapItems: rmapItems, mergingPages: mergingPages, anonHugePagesKB: hugeKB,
            anonymousKB: anonKB, transparentHugePages: thp, truncated: truncated,
            scanMillis: (millis * 1000).rounded() / 1000, groups: ProcessReport.groups(records, top: top))
        return Scan(report: report, records: records)
    }

    /// `ksm_stat`, or on 5.19–6.0 kernels the lone `ksm_merging_pages`; nil when neither is there.
    func readStat(_ pid: Int32, _ reader: SmallFileReader) -> ProcessKSMStat? {
        if let stat = reader.withContents(proc + "/" + String(pid) + "/ksm_stat", ProcessGrouping.ksmStat(bytes:)) {
            return stat
        }
        if let text = try? FileIO.read("\(proc)/\(pid)/ksm_merging_pages"), let v = ProcParsing.integer(text) {
            return ProcessKSMStat(mergingPages: v)
        }
        return nil
    }
}
