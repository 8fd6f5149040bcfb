#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import KSMNode
import Logging

/// The executable's entry for the server-connected agent: signals wired to the agent
/// (SIGUSR1 kick, SIGTERM/SIGINT stop), exit codes for systemd.
public enum ConnectedAgent {
    public static let exitFailure: Int32 = 1
    public static let exitInvalidOptions: Int32 = 2
    public static let exitNotEnrolled: Int32 = 3

    public static func run(_ options: AgentOptions, kernel: (any KSMKernel)? = nil, logger: Logger) async -> Int32 {
        let agent: FleetAgent
        do {
            agent = try FleetAgent(options: options, kernel: kernel, logger: logger)
        } catch {
            logger.critical("cannot start", metadata: ["error": "\(error)"])
            return code(for: error)
        }
        if options.once {
            do {
                try await agent.runOnce()
                logger.info("one cycle done")
                return 0
            } catch {
                logger.error("one cycle failed", metadata: ["error": "\(error)"])
                return code(for: error)
            }
        }
        let signals = Signals.stream([SIGUSR1, SIGTERM, SIGINT])
        let signalTask = Task {
            for await sig in signals {
                if sig == SIGUSR1 {
                    // Not awaited here: a kick waits its turn behind an apply under way (an
                    // unmerge can take minutes), and a SIGTERM after it must not wait too.
                    Task { await agent.kick(source: "SIGUSR1") }
                } else {
                    logger.info("stop requested", metadata: ["signal": "\(Signals.name(sig))"])
                    await agent.stop()
                }
            }
        }
        defer { signalTask.cancel() }
        do {
            try await agent.run()
            return 0
        } catch {
            logger.critical("agent stopped", metadata: ["error": "\(error)"])
            return code(for: error)
        }
    }

    static func code(for error: AgentError) -> Int32 {
        switch error {
        case .notEnrolled: return exitNotEnrolled
        case .invalidOptions: return exitInvalidOptions
        default: return exitFailure
        }
    }
}
