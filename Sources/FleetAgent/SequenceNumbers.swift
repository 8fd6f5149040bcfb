import Logging

/// Sample sequence numbers: unique and increasing across restarts, so the server can drop
/// replayed duplicates. They are reserved on disk in blocks (`AgentStateDir.reserveSequence`,
/// one synced write per `block` samples): a crash skips numbers, it never reuses one.
struct SequenceNumbers {
    static let block: Int64 = 256
    let stateDir: AgentStateDir
    var logger: Logger
    /// The number the next sample gets.
    private(set) var next: Int64
    private var reserved: Int64

    /// Continues after the block reserved by the last run and after the last spooled sample.
    init(stateDir: AgentStateDir, lastSpooled: Int64?, logger: Logger) throws(AgentFileError) {
        self.stateDir = stateDir
        self.logger = logger
        let start = try stateDir.loadSequenceStart()
        // Never reuse a number that may already be spooled or sent.
        next = max(start, (lastSpooled ?? 0) + 1)
        reserved = next
    }

    mutating func allocate() -> Int64 {
        let seq = next
        next += 1
        if next > reserved {
            reserved = next + Self.block
            do {
                try stateDir.reserveSequence(upTo: reserved)
            } catch {
                logger.error("cannot store the sequence number", metadata: ["error": "\(error)"])
            }
        }
        return seq
    }

    /// Records the exact next number (at exit: the next start wastes no block).
    mutating func persist() {
        do {
            try stateDir.reserveSequence(upTo: next)
            reserved = next
        } catch {
            logger.error("cannot store the sequence number", metadata: ["error": "\(error)"])
        }
    }

    /// The server holds numbers up to `highest` that this agent never issued (its state directory
    /// was reset while the server kept the node): continue above them.
    mutating func skip(past highest: Int64) {
        next = highest + 1
        persist()
    }
}
