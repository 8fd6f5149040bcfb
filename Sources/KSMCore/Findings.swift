/// Why KSM saves little on a node: facts in, findings out, each with its evidence and advice in
/// an operator's words. Pure; the server computes them for a node's status from its newest sample,
/// its newest process report and its config.

public enum FindingSeverity: String, Codable, Sendable, CaseIterable, Comparable {
    case info, warning, error

    var rank: Int {
        switch self {
        case .info: 0
        case .warning: 1
        case .error: 2
        }
    }
    public static func < (a: Self, b: Self) -> Bool { a.rank < b.rank }
}

public struct Finding: Codable, Sendable, Equatable, Hashable {
    /// Stable identifier, e.g. `no_mergeable_memory`.
    public var code: String
    public var severity: FindingSeverity
    /// What is wrong, in one sentence.
    public var message: String
    /// The figures that show it.
    public var evidence: [String]
    /// What to do about it.
    public var advice: String

    public init(code: String, severity: FindingSeverity, message: String, evidence: [String], advice: String) {
        self.code = code
        self.severity = severity
        self.message = message
        self.evidence = evidence
        self.advice = advice
    }
}

/// What the findings look at.
public struct NodeFacts: Sendable, Equatable {
    /// The newest sample's counters; nil before the first sample.
    public var status: KSMStatus?
    public var pageSize: Int
    /// ksmd CPU in % of one core over the newest sample interval.
    public var ksmdCPUPercent: Double?
    /// The node's ksmd CPU budget (% of one core); nil = the default threshold.
    public var cpuBudgetPercent: Double?
    /// Why the newest config could not be applied; nil when it was.
    public var applyError: String?
    /// The newest scan of the node's processes; nil when the agent sent none.
    public var processes: ProcessReport?
    /// Why the server refused the node's newest sample batch (field: message), and when; nil when
    /// its newest batch was stored.
    public var sampleRefusal: (reason: String, at: String)?
    /// What the node's desired config asks of a kernel that this node's kernel (as its agent
    /// last told the server) does not have: `KSMConfig.issues(onKernelWith:kernel:)`'s messages,
    /// e.g. mode advisor after a boot into a kernel before 6.7. Empty when it has everything.
    public var configIssues: [String]

    public init(
        status: KSMStatus?, pageSize: Int = 4096, ksmdCPUPercent: Double? = nil, cpuBudgetPercent: Double? = nil,
        applyError: String? = nil, processes: ProcessReport? = nil, sampleRefusal: (reason: String, at: String)? = nil,
        configIssues: [String] = []
    ) {
        self.status = status
        self.pageSize = pageSize
        self.ksmdCPUPercent = ksmdCPUPercent
        self.cpuBudgetPercent = cpuBudgetPercent
        self.applyError = applyError
        self.processes = processes
        self.sampleRefusal = sampleRefusal
        self.configIssues = configIssues
    }

    public static func == (a: NodeFacts, b: NodeFacts) -> Bool {
        a.status == b.status && a.pageSize == b.pageSize && a.ksmdCPUPercent == b.ksmdCPUPercent
            && a.cpuBudgetPercent == b.cpuBudgetPercent && a.applyError == b.applyError && a.processes == b.processes
            && a.sampleRefusal?.reason == b.sampleRefusal?.reason && a.sampleRefusal?.at == b.sampleRefusal?.at
            && a.configIssues == b.configIssues
    }
}

public enum Findings {
    /// ksmd CPU (% of one core) above which a node without a configured budget gets a finding.
    public static let defaultCPUBudgetPercent = 25.0
    /// Share of the tracked anonymous memory in transparent huge pages that is worth a finding.
    public static let hugePageShare = 0.25
    /// Share of the scanned pages that are volatile that is worth a finding.
    public static let volatileShare = 0.5
    /// Fewer scanned pages than this say nothing about volatility or uniqueness.
    public static let minPagesForRatios: Int64 = 1024
    /// pages_unshared per pages_sharing above which KSM is said to scan mostly unique memory.
    public static let unsharedPerSharing: Int64 = 10

    /// The findings for these facts, most severe first.
    public static func evaluate(_ f: NodeFacts) -> [Finding] {
        var out: [Finding] = []
        if let r = f.sampleRefusal {
            out.append(
                Finding(
                    code: "samples_refused", severity: .error,
                    message: "The server refuses this node's samples, so its history has a gap: \(r.reason)",
                    evidence: ["last refused batch at \(r.at)"],
                    advice:
                        "Fix what the message names; most often the node's clock (run chrony or systemd-timesyncd). "
                        + "The agent drops each refused batch, and the gap ends with the first batch the server stores."))
        }
        if !f.configIssues.isEmpty {
            out.append(
                Finding(
                    code: "config_unsupported", severity: .error,
                    message: "This node's config asks for what its kernel does not have, so the agent cannot apply it",
                    evidence: f.configIssues + (f.applyError.map { ["the agent reports: \($0)"] } ?? []),
                    advice:
                        "The server keeps the config as it was set (the kernel changed under it, e.g. a boot into an "
                        + "older kernel). Set what this kernel can do (for mode advisor: ksmfleet config set NODE "
                        + "--mode adaptive), or boot a kernel that has the feature (the KSM advisor: Linux 6.7+)."))
        }
        if let e = f.applyError { out.append(configNotApplied(e, status: f.status)) }
        if let s = f.status, s.run == 1 {
            if let n = noMergeableMemory(s, f.processes) { out.append(n) }
            if let h = hugePages(f.processes) { out.append(h) }
            if let v = volatile(s) { out.append(v) }
            else if let u = mostlyUnique(s) { out.append(u) }
            if let c = chains(s) { out.append(c) }
        }
        if let s = f.status, s.run != 0 || (f.ksmdCPUPercent ?? 0) > 0, let cpu = cpu(f) { out.append(cpu) }
        return out.enumerated().sorted {
            $0.element.severity != $1.element.severity ? $0.element.severity > $1.element.severity : $0.offset < $1.offset
        }.map(\.element)
    }

    static func percent(_ x: Double) -> String {
        x >= 10 ? "\(Int(x.rounded())) %" : "\((x * 10).rounded() / 10) %"
    }

    /// `x` as `percent` writes it, with the decimals that tell it from `limit` when both would
    /// read the same (25.4 over a 25 % budget is "25.4 %", not "25 %" over "25 %").
    static func percent(_ x: Double, beside limit: Double) -> String {
        let plain = percent(x)
        guard x != limit, plain == percent(limit) else { return plain }
        var scale = 10.0
        while scale <= 1e6 {
            let a = (x * scale).rounded() / scale
            if a != (limit * scale).rounded() / scale { return "\(a) %" }
            scale *= 10
        }
        return "\(x) %"
    }

    static func noMergeableMemory(_ s: KSMStatus, _ p: ProcessReport?) -> Finding? {
        let advice =
            "KSM scans only memory a process marked mergeable. QEMU marks guest RAM unless started with "
            + "-machine mem-merge=off (libvirt: drop <nosharepages/> from <memoryBacking>); guest RAM on "
            + "hugetlbfs or a share=on memory backend never merges. For a systemd service set MemoryKSM=yes "
            + "(systemd 254+, prctl PR_SET_MEMORY_MERGE on the whole process); other programs call "
            + "madvise(MADV_MERGEABLE) on their buffers."
        // Pages KSM tracks now belong to a process that has mergeable memory now: the process
        // report (scanned about every minute) is older than the counters, e.g. a VM started
        // since (seen: "0 processes" beside pages_sharing 2,088,960).
        let tracked = s.pagesShared + s.pagesSharing + s.pagesUnshared + s.pagesVolatile
        if let p, p.perProcessStats {
            guard p.mergeableProcesses == 0, !p.truncated, tracked == 0 else { return nil }
            return Finding(
                code: "no_mergeable_memory", severity: .warning,
                message: "KSM is running but no process has mergeable memory, so it cannot merge anything",
                evidence: [
                    "0 of \(p.processesScanned) processes have ksm_mergeable or ksm_merge_any, or pages KSM tracks (ksm_rmap_items)",
                    "pages_sharing \(s.pagesSharing), pages_unshared \(s.pagesUnshared)",
                ], advice: advice)
        }
        // Without per-process figures (kernels before 6.1): ksmd completed passes over nothing.
        guard tracked == 0, s.fullScans >= 2 else { return nil }
        return Finding(
            code: "no_mergeable_memory", severity: .warning,
            message: "KSM is running but tracks no page: nothing on the node is marked mergeable",
            evidence: [
                "full_scans \(s.fullScans) with pages_shared, pages_sharing, pages_unshared and pages_volatile all 0"
            ], advice: advice)
    }

    static func hugePages(_ p: ProcessReport?) -> Finding? {
        guard let p, let huge = p.anonHugePagesKB, let anon = p.anonymousKB, anon > 0, huge > 0 else { return nil }
        let share = Double(huge) / Double(anon)
        guard share >= hugePageShare else { return nil }
        var evidence = [
            "\(percent(share * 100)) of the anonymous memory of the largest mergeable processes is in transparent huge pages (AnonHugePages \(huge) kB of \(anon) kB)"
        ]
        if let thp = p.transparentHugePages { evidence.append("transparent_hugepage/enabled is [\(thp)]") }
        return Finding(
            code: "transparent_huge_pages", severity: .info,
            message: "Much of the mergeable memory is in transparent huge pages, which KSM must split before it can merge them",
            evidence: evidence,
            advice:
                "Where merging matters more than huge pages, set transparent_hugepage/enabled to madvise (or never) "
                + "so mergeable memory stays in small pages, or disable THP for the guests (QEMU/libvirt) you want "
                + "merged; where huge pages matter more, expect little from KSM on this memory.")
    }

    static func volatile(_ s: KSMStatus) -> Finding? {
        let scanned = s.pagesShared + s.pagesSharing + s.pagesUnshared + s.pagesVolatile
        guard scanned >= minPagesForRatios, s.pagesVolatile > 0 else { return nil }
        let share = Double(s.pagesVolatile) / Double(scanned)
        guard share >= volatileShare else { return nil }
        return Finding(
            code: "mostly_volatile", severity: .info,
            message: "Most pages KSM tracks change too fast to merge",
            evidence: [
                "pages_volatile \(s.pagesVolatile) of \(scanned) tracked pages (\(percent(share * 100)))",
                "pages_sharing \(s.pagesSharing)",
            ],
            advice:
                "Volatile pages changed between two scans; merging them would be undone at once. Scanning them "
                + "costs CPU for nothing: slow KSM down (fewer pages_to_scan, longer sleep_millisecs) or leave "
                + "this workload's memory unmarked (caches, JIT heaps, guest page cache churn).")
    }

    static func mostlyUnique(_ s: KSMStatus) -> Finding? {
        let scanned = s.pagesShared + s.pagesSharing + s.pagesUnshared + s.pagesVolatile
        guard scanned >= minPagesForRatios, s.fullScans >= 2,
            s.pagesUnshared > unsharedPerSharing * max(s.pagesSharing, 1)
        else { return nil }
        return Finding(
            code: "mostly_unique", severity: .info,
            message: "Almost every page KSM scans is unique: it spends CPU and saves little",
            evidence: [
                "pages_unshared \(s.pagesUnshared) against pages_sharing \(s.pagesSharing) after \(s.fullScans) full scans"
            ],
            advice:
                "The mergeable memory has few duplicates. Unless new guests or containers are expected, slow KSM "
                + "down (standard mode, or fewer pages_to_scan) or stop it on this node.")
    }

    static func chains(_ s: KSMStatus) -> Finding? {
        guard let chains = s.stableNodeChains, let dups = s.stableNodeDups, chains > 0,
            dups >= max(100, s.pagesShared / 10)
        else { return nil }
        var evidence = ["stable_node_chains \(chains), stable_node_dups \(dups), pages_shared \(s.pagesShared)"]
        if let m = s.maxPageSharing { evidence.append("max_page_sharing \(m)") }
        if let z = s.useZeroPages { evidence.append("use_zero_pages \(z)") }
        return Finding(
            code: "page_sharing_chains", severity: .info,
            message: "Some content has more sharers than max_page_sharing allows, so KSM keeps extra copies of it",
            evidence: evidence,
            advice:
                "Each duplicate stable node is another copy of the same page. When the content is empty pages, "
                + "use_zero_pages=1 merges them with the zero page without a limit; otherwise a larger "
                + "max_page_sharing saves those copies at the cost of longer reverse-map walks (changing it needs "
                + "an unmerge).")
    }

    static func cpu(_ f: NodeFacts) -> Finding? {
        guard let used = f.ksmdCPUPercent else { return nil }
        let budget = f.cpuBudgetPercent ?? defaultCPUBudgetPercent
        guard used > budget else { return nil }
        let source = f.cpuBudgetPercent == nil ? "the default threshold" : "the node's budget (maxCpuPercent)"
        return Finding(
            code: "ksmd_cpu_over_budget", severity: .warning,
            message: "ksmd uses more CPU than \(source) allows",
            evidence: ["ksmd used \(percent(used, beside: budget)) of one core over the last sample interval; \(source) is \(percent(budget))"],
            advice:
                "Scan fewer pages per wake-up (pages_to_scan, maxPages) or sleep longer (sleepMsec), or use a mode "
                + "that slows down once passes stop paying; a new guest or container can speed it up again with a kick.")
    }

    static func configNotApplied(_ error: String, status: KSMStatus?) -> Finding {
        let lower = error.lowercased()
        var advice = "Fix the config value the error names, or remove it so the kernel's value is kept."
        var message = "The node's config cannot be applied on this kernel"
        if lower.contains("pages_to_scan"), lower.contains("einval") || lower.contains("invalid argument"),
            status?.advisorMode == "scan-time"
        {
            advice =
                "The kernel's advisor (advisor_mode scan-time) owns pages_to_scan and refuses writes to it: "
                + "switch the advisor off (advisor_mode none) or use a policy that leaves pages_to_scan alone."
        } else if lower.contains("enoent") || lower.contains("no such file") {
            advice =
                "This kernel lacks the KSM file the config writes (a newer kernel's feature): remove that setting "
                + "from the node's config or upgrade the kernel."
        } else if lower.contains("ebusy") || lower.contains("busy") {
            advice =
                "merge_across_nodes and max_page_sharing change only while no page is merged: the agent unmerges "
                + "first; if that timed out, raise the unmerge timeout or apply the change when the node is quiet."
        } else if lower.contains("eacces") || lower.contains("eperm") || lower.contains("permission") {
            advice = "The agent may not write to /sys/kernel/mm/ksm: run it as root (see agent/README)."
        } else if lower.contains("unmerging every ksm page") {
            message = "The node's config needs every KSM page unmerged, and that was not done"
            advice =
                "Unmerging gives every merged page its own copy again, and the process that starts it is the OOM "
                + "killer's first victim: the agent unmerges only when at least 10 % of MemTotal stays available. "
                + "Free memory on the node (move guests away) and the agent tries again within 5 minutes, on a config "
                + "change or a kick; or unmerge by hand (echo 2 > /sys/kernel/mm/ksm/run) if you accept the risk."
        }
        return Finding(
            code: "config_not_applied", severity: .error,
            message: message, evidence: [error], advice: advice)
    }
}
