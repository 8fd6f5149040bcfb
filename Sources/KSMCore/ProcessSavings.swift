/// Who benefits from KSM on a node: the per-process figures of `/proc/PID/ksm_stat` (6.1+),
/// grouped the way an operator thinks (a VM, a container, a pod, a systemd unit, a command).

/// What a group of processes is.
public enum ProcessGroupKind: String, Codable, Sendable, CaseIterable, Hashable {
    /// A QEMU guest, named by its `-name guest=NAME` (or libvirt's machine scope).
    case vm
    /// A container (docker, containerd, CRI-O, podman, LXC, nspawn), named by runtime and short id.
    case container
    /// A Kubernetes pod, named by its pod UID (the cgroup has no pod name).
    case pod
    /// A systemd service unit.
    case unit
    /// Anything else: the process's command (`comm`).
    case command
}

/// How one process is grouped.
public struct ProcessGroupKey: Codable, Sendable, Equatable, Hashable {
    public var kind: ProcessGroupKind
    public var name: String
    public init(kind: ProcessGroupKind, name: String) {
        self.kind = kind
        self.name = name
    }
    /// `vm:web-1`, `command:java`.
    public var label: String { "\(kind.rawValue):\(name)" }
}

/// One process's `/proc/PID/ksm_stat`.
public struct ProcessKSMStat: Sendable, Equatable {
    /// Pages of the process that KSM tracks (its scanned mergeable pages).
    public var rmapItems: Int64
    /// Pages merged with the zero page (`use_zero_pages`).
    public var zeroPages: Int64
    /// Pages of the process that are merged.
    public var mergingPages: Int64
    /// The kernel's net figure in bytes: merged pages minus the rmap items' metadata.
    public var profitBytes: Int64?
    /// `prctl(PR_SET_MEMORY_MERGE)`: the whole process is mergeable.
    public var mergeAny: Bool
    /// Some area of the process is mergeable (madvise or prctl).
    public var mergeable: Bool

    public init(
        rmapItems: Int64 = 0, zeroPages: Int64 = 0, mergingPages: Int64 = 0, profitBytes: Int64? = nil,
        mergeAny: Bool = false, mergeable: Bool = false
    ) {
        self.rmapItems = rmapItems
        self.zeroPages = zeroPages
        self.mergingPages = mergingPages
        self.profitBytes = profitBytes
        self.mergeAny = mergeAny
        self.mergeable = mergeable
    }

    /// KSM has something to do with this process: it marked memory mergeable or KSM tracks some.
    public var isMergeable: Bool { mergeable || mergeAny || rmapItems > 0 || mergingPages > 0 }
}

/// One process that KSM knows about, as the agent's scan found it.
public struct ProcessKSMRecord: Sendable, Equatable {
    public var pid: Int32
    /// `/proc/PID/comm`.
    public var command: String
    public var group: ProcessGroupKey
    public var stat: ProcessKSMStat
    public init(pid: Int32, command: String, group: ProcessGroupKey, stat: ProcessKSMStat) {
        self.pid = pid
        self.command = command
        self.group = group
        self.stat = stat
    }
}

/// A group's figures at one scan (sums over its processes).
public struct ProcessGroupSavings: Codable, Sendable, Equatable, Hashable {
    public var kind: ProcessGroupKind
    public var name: String
    /// Processes of the group that have mergeable memory.
    public var processes: Int
    /// Sum of `ksm_merging_pages`.
    public var mergingPages: Int64
    /// Sum of `ksm_zero_pages`.
    public var zeroPages: Int64
    /// Sum of `ksm_rmap_items` (pages KSM tracks).
    public var rmapItems: Int64
    /// Sum of `ksm_process_profit` (bytes; nil when the kernel does not give it).
    public var profitBytes: Int64?

    public init(
        kind: ProcessGroupKind, name: String, processes: Int, mergingPages: Int64, zeroPages: Int64,
        rmapItems: Int64, profitBytes: Int64?
    ) {
        self.kind = kind
        self.name = name
        self.processes = processes
        self.mergingPages = mergingPages
        self.zeroPages = zeroPages
        self.rmapItems = rmapItems
        self.profitBytes = profitBytes
    }

    public var key: ProcessGroupKey { ProcessGroupKey(kind: kind, name: name) }

    /// The group's merged memory in bytes: its pages that map a KSM page or the zero page. The
    /// sum over all groups exceeds the node's saving by the node's `pages_shared` (one copy of
    /// each merged page is kept).
    /// Saturates instead of trapping on counts no real host reaches (the server refuses such
    /// reports at ingest: `ProcessReport.invalidField(pageSize:)`).
    public func mergedBytes(pageSize: Int) -> Int64 {
        let (pages, o1) = mergingPages.addingReportingOverflow(zeroPages)
        if o1 { return mergingPages < 0 ? .min : .max }
        let (bytes, o2) = pages.multipliedReportingOverflow(by: Int64(pageSize))
        if o2 { return (pages < 0) != (pageSize < 0) ? .min : .max }
        return bytes
    }
}

/// What the agent's scan of `/proc` found, sent with a sample.
public struct ProcessReport: Codable, Sendable, Equatable {
    /// The kernel gives `/proc/PID/ksm_stat` (6.1+); false means no per-process figures.
    public var perProcessStats: Bool
    /// Processes looked at.
    public var processesScanned: Int
    /// Processes with mergeable memory (madvise, prctl, or pages KSM tracks).
    public var mergeableProcesses: Int
    /// Processes with at least one merged page.
    public var mergingProcesses: Int
    /// Sums over every process scanned.
    public var rmapItems: Int64
    public var mergingPages: Int64
    /// AnonHugePages (kB) of the largest mergeable processes (`smaps_rollup`); nil when not read.
    public var anonHugePagesKB: Int64?
    /// AnonPages / Anonymous (kB) of those same processes, the base for the THP share.
    public var anonymousKB: Int64?
    /// The selected value of `/sys/kernel/mm/transparent_hugepage/enabled`.
    public var transparentHugePages: String?
    /// The scan stopped at its cap (processes beyond it were not looked at).
    public var truncated: Bool
    /// Wall time of the scan in milliseconds.
    public var scanMillis: Double
    /// The top groups by merged pages, largest first.
    public var groups: [ProcessGroupSavings]

    public init(
        perProcessStats: Bool, processesScanned: Int = 0, mergeableProcesses: Int = 0, mergingProcesses: Int = 0,
        rmapItems: Int64 = 0, mergingPages: Int64 = 0, anonHugePagesKB: Int64? = nil, anonymousKB: Int64? = nil,
        transparentHugePages: String? = nil, truncated: Bool = false, scanMillis: Double = 0,
        groups: [ProcessGroupSavings] = []
    ) {
        self.perProcessStats = perProcessStats
        self.processesScanned = processesScanned
        self.mergeableProcesses = mergeableProcesses
        self.mergingProcesses = mergingProcesses
        self.rmapItems = rmapItems
        self.mergingPages = mergingPages
        self.anonHugePagesKB = anonHugePagesKB
        self.anonymousKB = anonymousKB
        self.transparentHugePages = transparentHugePages
        self.truncated = truncated
        self.scanMillis = scanMillis
        self.groups = groups
    }
}

extension ProcessReport {
    /// The first field (relative to the report) that no real scan could produce: a negative
    /// count, or page counts whose bytes do not fit in 64 bits. nil when the report is plausible.
    public func invalidField(pageSize: Int) -> (field: String, message: String)? {
        let counts: [(String, Int64)] = [
            ("processesScanned", Int64(processesScanned)), ("mergeableProcesses", Int64(mergeableProcesses)),
            ("mergingProcesses", Int64(mergingProcesses)), ("rmapItems", rmapItems), ("mergingPages", mergingPages),
            ("anonHugePagesKB", anonHugePagesKB ?? 0), ("anonymousKB", anonymousKB ?? 0),
        ]
        for (name, v) in counts where v < 0 { return (name, "\(name) must not be negative") }
        if !scanMillis.isFinite || scanMillis < 0 { return ("scanMillis", "scanMillis must be a time, not \(scanMillis)") }
        func fits(_ pages: Int64) -> Bool { !pages.multipliedReportingOverflow(by: Int64(pageSize)).overflow }
        if !fits(rmapItems) || !fits(mergingPages) {
            return ("mergingPages", "page counts × pageSize must fit in 64 bits")
        }
        for (j, g) in groups.enumerated() {
            let values: [(String, Int64)] = [
                ("processes", Int64(g.processes)), ("mergingPages", g.mergingPages), ("zeroPages", g.zeroPages),
                ("rmapItems", g.rmapItems),
            ]
            for (name, v) in values where v < 0 { return ("groups[\(j)].\(name)", "\(name) must not be negative") }
            let (pages, o) = g.mergingPages.addingReportingOverflow(g.zeroPages)
            if o || !fits(pages) || !fits(g.rmapItems) {
                return ("groups[\(j)].mergingPages", "page counts × pageSize must fit in 64 bits")
            }
        }
        return nil
    }

    /// Groups the scanned records and keeps the `top` groups with the most merged pages (then
    /// the most tracked pages, then by name, so the order is stable).
    public static func groups(_ records: [ProcessKSMRecord], top: Int) -> [ProcessGroupSavings] {
        var byKey: [ProcessGroupKey: ProcessGroupSavings] = [:]
        for r in records where r.stat.isMergeable {
            var g =
                byKey[r.group]
                ?? ProcessGroupSavings(
                    kind: r.group.kind, name: r.group.name, processes: 0, mergingPages: 0, zeroPages: 0,
                    rmapItems: 0, profitBytes: nil)
            g.processes += 1
            g.mergingPages += r.stat.mergingPages
            g.zeroPages += r.stat.zeroPages
            g.rmapItems += r.stat.rmapItems
            if let p = r.stat.profitBytes { g.profitBytes = (g.profitBytes ?? 0) + p }
            byKey[r.group] = g
        }
        let sorted = byKey.values.sorted {
            let a = $0.mergingPages + $0.zeroPages
            let b = $1.mergingPages + $1.zeroPages
            if a != b { return a > b }
            if $0.rmapItems != $1.rmapItems { return $0.rmapItems > $1.rmapItems }
            return $0.key.label < $1.key.label
        }
        return Array(sorted.prefix(max(top, 0)))
    }
}
