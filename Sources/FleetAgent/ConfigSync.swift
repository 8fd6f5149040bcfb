import FleetAPI
import KSMCore
import Logging

/// The node's config from the server, on the agent: the last good (validated) config, kept in
/// the state directory and applied through the `NodeEngine`; the generation last received (the
/// long-poll's If-None-Match); why the last received config was refused; and whether the
/// server answers the long-poll, with the backoff between failed polls. Owned by the
/// `FleetAgent` actor, which runs the long-poll loop.
final class ConfigSync {
    let engine: NodeEngine
    let stateDir: AgentStateDir
    var logger: Logger
    /// The last good (validated) config, as persisted.
    private(set) var current: NodeConfig?
    /// The last generation received, valid or not (the long-poll's If-None-Match).
    private(set) var seenGeneration: Int64?
    /// Why the last received config was refused; reported as the apply error.
    private(set) var refusal: String?
    private(set) var serverReachable = false
    private var pollBackoff: Backoff
    private var pollFailuresLogged = 0

    init(engine: NodeEngine, stateDir: AgentStateDir, options: AgentOptions, logger: Logger) throws(AgentFileError) {
        self.engine = engine
        self.stateDir = stateDir
        self.logger = logger
        current = try stateDir.loadConfig()
        seenGeneration = current?.generation
        pollBackoff = Backoff(base: options.backoffBase, cap: options.backoffCap)
    }

    /// Applies the stored config (tuning goes on even when the server is away).
    nonisolated(nonsending) func applyStored() async {
        guard let stored = current else { return }
        do throws(ConfigValidationError) {
            let valid = try stored.config.validated()
            await engine.setConfig(valid, generation: stored.generation)
            logger.info("applied the last good config from the state directory", metadata: ["generation": "\(stored.generation)"])
        } catch {
            logger.error("the stored config is invalid; waiting for the server", metadata: ["error": "\(error)"])
        }
    }

    /// Validates and applies a config from the server; a refused config keeps the last good one.
    /// Returns true when the config changed or the node was kicked: the applied generation is
    /// worth reporting at once rather than at the next sample.
    nonisolated(nonsending) func handle(_ received: NodeConfig) async -> Bool {
        seenGeneration = received.generation
        let valid: KSMConfig
        do throws(ConfigValidationError) {
            valid = try received.config.validated()
        } catch {
            refusal = "config generation \(received.generation) refused by the agent: \(error)"
            logger.error(
                "config refused; keeping the last good one",
                metadata: ["generation": "\(received.generation)", "error": "\(error)"])
            return false
        }
        refusal = nil
        let previous = current
        let next = NodeConfig(generation: received.generation, kickCounter: received.kickCounter, config: valid)
        current = next
        do {
            try stateDir.saveConfig(next)
        } catch {
            logger.error("cannot store the config in the state directory", metadata: ["error": "\(error)"])
        }
        let changed = previous?.generation != next.generation || previous?.config != next.config
        // A kick is the counter going up: a lower one (the node registered anew, its counter
        // back at 0, or the server's database restored) is taken as the new base, not a kick.
        let kicked = previous.map { next.kickCounter > $0.kickCounter } ?? false
        if changed || previous == nil {
            let outcome = await engine.setConfig(valid, generation: next.generation)
            logger.info(
                "config received",
                metadata: [
                    "generation": "\(next.generation)", "phase": "\(outcome.decision.phase.rawValue)",
                    "apply_error": "\(outcome.applyError ?? "-")",
                ])
        }
        if kicked { await engine.kick(source: "server") }
        return changed || kicked
    }

    /// The server answered a poll. Returns true when it was unreachable until now (the spool is
    /// worth replaying at once rather than at the next sample).
    func serverAnswered(spooled: Int) -> Bool {
        pollBackoff.reset()
        guard !serverReachable else { return false }
        serverReachable = true
        if pollFailuresLogged > 0 { logger.info("server reachable again", metadata: ["spooled": "\(spooled)"]) }
        pollFailuresLogged = 0
        return true
    }

    /// A poll failed: logs it (the first failures, then every 20th, so a long outage does not
    /// flood the journal) and returns the seconds to wait before the next one (the backoff, or
    /// the server's `Retry-After` when that is longer). `backOff` false:
    /// the agent switched to another server (`AgentRegistration.serverFailed` logged it), which
    /// is asked at once.
    func serverIsAway(_ error: AgentError, backOff: Bool = true) -> Double {
        serverReachable = false
        guard backOff else { return 0 }
        pollFailuresLogged += 1
        var asked: Double? = nil
        if case .server(let clientError) = error { asked = clientError.retryAfter }
        let delay = pollBackoff.next(hint: asked)
        if pollFailuresLogged <= 3 || pollFailuresLogged % 20 == 0 {
            var metadata: Logger.Metadata = [
                "error": "\(error)", "failures": "\(pollFailuresLogged)",
                "generation": "\(current.map { String($0.generation) } ?? "-")",
                "retry_in_s": "\(Int(delay.rounded(.up)))",
            ]
            if let asked { metadata["retry_after_s"] = "\(Int(asked.rounded(.up)))" }
            logger.warning("server unavailable; keeping the last good config", metadata: metadata)
        }
        return delay
    }
}
