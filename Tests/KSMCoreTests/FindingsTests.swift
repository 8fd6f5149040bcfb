import KSMCore
import Testing

/// Why KSM saves little: each finding from the facts that show it, and none where they do not.
@Suite("Findings")
struct FindingsTests {
    static func status(
        run: Int = 1, shared: Int64 = 0, sharing: Int64 = 0, unshared: Int64 = 0, volatile: Int64 = 0,
        fullScans: Int64 = 5
    ) -> KSMStatus {
        var s = KSMStatus()
        s.run = run
        s.pagesToScan = 100
        s.sleepMillisecs = 20
        s.pagesShared = shared
        s.pagesSharing = sharing
        s.pagesUnshared = unshared
        s.pagesVolatile = volatile
        s.fullScans = fullScans
        return s
    }

    static let healthy = status(shared: 10_000, sharing: 90_000, unshared: 20_000, volatile: 1_000)

    static func codes(_ f: NodeFacts) -> [String] { Findings.evaluate(f).map(\.code) }

    @Test func aHealthyNodeHasNoFinding() {
        #expect(Findings.evaluate(NodeFacts(status: Self.healthy, ksmdCPUPercent: 3)).isEmpty)
        #expect(Findings.evaluate(NodeFacts(status: nil)).isEmpty)
    }

    @Test func noProcessWithMergeableMemory() throws {
        let report = ProcessReport(perProcessStats: true, processesScanned: 312)
        let f = try #require(Findings.evaluate(NodeFacts(status: Self.status(), processes: report)).first)
        #expect(f.code == "no_mergeable_memory")
        #expect(f.severity == .warning)
        #expect(f.evidence.first?.contains("0 of 312 processes") == true)
        #expect(f.advice.contains("MemoryKSM=yes"))
        #expect(f.advice.contains("mem-merge"))
        // Not while KSM is stopped, and not when one process is mergeable.
        #expect(Self.codes(NodeFacts(status: Self.status(run: 0), processes: report)).isEmpty)
        var one = report
        one.mergeableProcesses = 1
        #expect(Self.codes(NodeFacts(status: Self.status(), processes: one)).isEmpty)
        // A truncated scan proves nothing.
        var cut = report
        cut.truncated = true
        #expect(Self.codes(NodeFacts(status: Self.status(), processes: cut)).isEmpty)
        // Nor does a report older than the counters: pages KSM tracks now are some process's
        // mergeable memory (a workload started after the last scan).
        #expect(Self.codes(NodeFacts(status: Self.status(sharing: 2_088_960), processes: report)).isEmpty)
        #expect(Self.codes(NodeFacts(status: Self.status(unshared: 1), processes: report)).isEmpty)
    }

    @Test func noMergeableMemoryWithoutPerProcessFiguresFromTheCounters() {
        #expect(Self.codes(NodeFacts(status: Self.status(fullScans: 3))) == ["no_mergeable_memory"])
        #expect(Self.codes(NodeFacts(status: Self.status(fullScans: 1))).isEmpty)
        #expect(Self.codes(NodeFacts(status: Self.status(unshared: 5, fullScans: 3))).isEmpty)
    }

    @Test func transparentHugePagesOnTheMergeableMemory() throws {
        var report = ProcessReport(perProcessStats: true, processesScanned: 10, mergeableProcesses: 2)
        report.anonymousKB = 4_000_000
        report.anonHugePagesKB = 3_000_000
        report.transparentHugePages = "always"
        let f = try #require(Findings.evaluate(NodeFacts(status: Self.healthy, processes: report)).first)
        #expect(f.code == "transparent_huge_pages")
        #expect(f.evidence.joined().contains("75 %"))
        #expect(f.evidence.joined().contains("[always]"))
        report.anonHugePagesKB = 100_000
        #expect(Self.codes(NodeFacts(status: Self.healthy, processes: report)).isEmpty)
    }

    @Test func mostlyVolatile() {
        #expect(Self.codes(NodeFacts(status: Self.status(sharing: 100, unshared: 400, volatile: 600))) == ["mostly_volatile"])
        // Too few pages to say.
        #expect(Self.codes(NodeFacts(status: Self.status(sharing: 1, volatile: 10))).isEmpty)
    }

    @Test func mostlyUnique() {
        #expect(Self.codes(NodeFacts(status: Self.status(sharing: 100, unshared: 50_000))) == ["mostly_unique"])
        #expect(Self.codes(NodeFacts(status: Self.status(sharing: 10_000, unshared: 50_000))).isEmpty)
    }

    @Test func pageSharingChains() throws {
        var s = Self.healthy
        s.stableNodeChains = 12
        s.stableNodeDups = 4_000
        s.maxPageSharing = 256
        let f = try #require(Findings.evaluate(NodeFacts(status: s)).first)
        #expect(f.code == "page_sharing_chains")
        #expect(f.evidence.contains("max_page_sharing 256"))
        s.stableNodeDups = 50
        #expect(Self.codes(NodeFacts(status: s)).isEmpty)
    }

    @Test func ksmdCPUAboveTheBudgetOrTheDefault() throws {
        let over = try #require(Findings.evaluate(NodeFacts(status: Self.healthy, ksmdCPUPercent: 60)).first)
        #expect(over.code == "ksmd_cpu_over_budget")
        #expect(over.message.contains("default"))
        #expect(Self.codes(NodeFacts(status: Self.healthy, ksmdCPUPercent: 20)).isEmpty)
        #expect(Self.codes(NodeFacts(status: Self.healthy, ksmdCPUPercent: 20, cpuBudgetPercent: 10)) == ["ksmd_cpu_over_budget"])
        // Just over the budget: the evidence tells the two apart (not "25 %" over "25 %").
        for (used, shown) in [(25.4, "25.4 %"), (25.04, "25.04 %"), (60.0, "60 %")] {
            let f = try #require(Findings.evaluate(NodeFacts(status: Self.healthy, ksmdCPUPercent: used)).first)
            #expect(f.evidence == ["ksmd used \(shown) of one core over the last sample interval; the default threshold is 25 %"])
        }
    }

    @Test func aConfigThatCannotApplyComesFirstWithAdviceForItsError() throws {
        var s = Self.status()
        s.advisorMode = "scan-time"
        let e = "write of 100 to /sys/kernel/mm/ksm/pages_to_scan failed: EINVAL (Invalid argument)"
        let all = Findings.evaluate(NodeFacts(status: s, ksmdCPUPercent: 90, applyError: e))
        #expect(all.map(\.code) == ["config_not_applied", "no_mergeable_memory", "ksmd_cpu_over_budget"])
        #expect(all[0].severity == .error)
        #expect(all[0].evidence == [e])
        #expect(all[0].advice.contains("advisor_mode none"))
        let missing = Findings.evaluate(NodeFacts(status: nil, applyError: "smart_scan: ENOENT (No such file or directory)"))
        #expect(missing.first?.advice.contains("newer kernel") == true)
        let unmerge = Findings.evaluate(
            NodeFacts(
                status: nil,
                applyError:
                    "unmerging every KSM page (run=2, for prune) would need ~8 GiB, MemAvailable is 1 GiB of 16 GiB"))
        #expect(unmerge.first?.message.contains("unmerged") == true)
        #expect(unmerge.first?.advice.contains("Free memory") == true)
    }

    /// A config the node's kernel (as last told) cannot do: an error finding that quotes why,
    /// with the agent's own report when it has one; none when the kernel can.
    @Test func aConfigTheKernelCannotDoIsAnError() throws {
        let advisor = KSMConfig(run: .run, mode: .advisor)
        let issues = advisor.issues(onKernelWith: ["run", "pages_to_scan"], kernel: "6.1.0-old").map(\.message)
        #expect(advisor.issues(onKernelWith: ["run", "advisor_mode"], kernel: "6.8.0").isEmpty)
        #expect(Self.codes(NodeFacts(status: nil, configIssues: [])).isEmpty)
        let applyError = "mode advisor needs the kernel's KSM advisor (advisor_mode, Linux 6.7+); this kernel has none, so nothing was written"
        let all = Findings.evaluate(NodeFacts(status: Self.healthy, applyError: applyError, configIssues: issues))
        #expect(all.map(\.code) == ["config_unsupported", "config_not_applied"])
        let f = try #require(all.first)
        #expect(f.severity == .error)
        #expect(f.evidence.first?.contains("6.1.0-old") == true && f.evidence.last?.contains(applyError) == true)
        #expect(f.advice.contains("--mode adaptive"))
    }
}
