/// What an agent says in its last sample on a clean stop: the kernel as it leaves it, in an
/// operator's words ("Agent stopped: left KSM running (run=1) with nobody tuning it; 147456
/// pages merged (576 MiB saved)").
public enum Goodbye {
    /// The phase the kernel is in when the agent leaves: its `run` value, nothing else decides.
    public static func phase(_ status: KSMStatus) -> KSMPhase { KSMPhase(kernelRun: status.run) }

    public static func reason(_ status: KSMStatus, pageSize: Int, restored: Bool) -> String {
        let saved = Display.bytes(Savings.savedBytes(status, pageSize: pageSize))
        let merged = status.pagesSharing + (status.ksmZeroPages ?? 0)
        let pages = merged == 0 ? "no pages merged" : "\(merged) pages still merged (\(saved) saved)"
        let settings = restored ? " after restoring the settings found at its start" : ""
        switch status.run {
        case 1:
            return "Agent stopped\(settings): left KSM running (run=1) with nobody tuning it; \(pages)"
        case 2:
            return "Agent stopped\(settings): left KSM unmerging (run=2); \(pages)"
        default:
            return "Agent stopped\(settings): left ksmd stopped (run=0); \(pages)"
                + (merged > 0 ? " (they stay merged until written to or unmerged)" : "")
        }
    }
}
