import KSMCore

/// How much memory processes have marked mergeable, for the adaptive mode's "new mergeable memory"
/// signal: the anonymous resident memory (RssAnon) of every process whose `/proc/PID/ksm_stat`
/// says `ksm_mergeable: yes` (it called madvise(MADV_MERGEABLE) or prctl(PR_SET_MEMORY_MERGE)).
/// Unlike AnonPages it does not move when a compiler or a database grows, and unlike KSM's own
/// counters it grows as soon as a new VM or container touches its memory, before ksmd has seen it.
extension ProcParsing {
    /// `ksm_mergeable: yes` in a ksm_stat text; nil when the line is missing (kernels before 6.10).
    public static func ksmMergeable(_ text: String) -> Bool? {
        for line in text.split(separator: "\n") where line.hasPrefix("ksm_mergeable") {
            return line.hasSuffix("yes")
        }
        return nil
    }

    /// `RssAnon:` of a /proc/PID/status text, in kB.
    public static func rssAnonKB(_ text: String) -> Int64? {
        for line in text.split(separator: "\n") where line.hasPrefix("RssAnon:") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            if fields.count >= 2 { return Int64(fields[1]) }
        }
        return nil
    }
}

extension LinuxKSMKernel {
    /// Pages of anonymous memory held by processes marked mergeable; nil where the kernel does not
    /// say which processes are (no ksm_stat or no ksm_mergeable line).
    public func mergeableAnonPages() -> Int64? {
        guard let names = try? FileIO.list(proc) else { return nil }
        var sawStat = false
        var totalKB: Int64 = 0
        for name in names where name.first?.isNumber == true {
            guard let stat = try? FileIO.read("\(proc)/\(name)/ksm_stat") else { continue }
            guard let mergeable = ProcParsing.ksmMergeable(stat) else { continue }
            sawStat = true
            guard mergeable, let status = try? FileIO.read("\(proc)/\(name)/status") else { continue }
            totalKB += ProcParsing.rssAnonKB(status) ?? 0
        }
        return sawStat ? totalKB * 1024 / Int64(max(pageSize, 1)) : nil
    }
}
