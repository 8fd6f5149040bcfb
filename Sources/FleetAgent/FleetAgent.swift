import FleetAPI
import FleetClient
import KSMCore
import KSMNode
import Logging

/// The server-connected node agent: registers (`AgentRegistration`), long-polls its config and
/// applies it through the `NodeEngine` (`ConfigSync`), tunes every tuning interval, samples
/// every sample interval and pushes samples in batches, spooling them on disk while the server
/// is away and replaying them in order when it is back (`SamplePipeline`). This actor runs the
/// loops and owns the three; `run()` runs until `stop()` (SIGTERM in the executable) or
/// cancellation.
public actor FleetAgent {
    public let options: AgentOptions
    public let engine: NodeEngine
    var logger: Logger
    let registration: AgentRegistration
    let configSync: ConfigSync
    let samples: SamplePipeline
    /// When the next sample carries a process report (who benefits).
    var processReporting: ProcessReporting

    /// The current wait between registration attempts while pending (nil when not pending).
    var pendingBackoff: Double?
    private let pushSignal: AsyncStream<Void>.Continuation
    private let pushSignals: AsyncStream<Void>
    private let stopSignal: AsyncStream<Void>.Continuation
    private let stopSignals: AsyncStream<Void>

    public init(options: AgentOptions, kernel: (any KSMKernel)? = nil, logger: Logger) throws(AgentError) {
        self.options = options
        let kernel = kernel ?? LinuxKSMKernel(root: options.sysfsRoot, proc: options.procRoot)
        self.logger = logger
        let stateDir: AgentStateDir
        do {
            stateDir = try AgentStateDir(options.stateDir)
        } catch {
            throw .state(error)
        }
        let engine: NodeEngine
        do {
            engine = try NodeEngine(
                kernel: kernel, logger: logger,
                unmergeTimeout: .milliseconds(Int64(max(options.unmergeTimeout, 0.001) * 1000)),
                unmergeReservePercent: options.unmergeReservePercent, stateDir: stateDir)
        } catch {
            throw .kernel("cannot read \(options.sysfsRoot): \(error)")
        }
        self.engine = engine
        // The real /proc, or a fake tree a test points the agent at; not a test's fake kernel alone.
        processReporting = ProcessReporting(
            scanner: kernel is LinuxKSMKernel || options.procRoot != "/proc" ? ProcessScanner(proc: options.procRoot) : nil,
            interval: options.processInterval)
        do {
            samples = try SamplePipeline(stateDir: stateDir, options: options, logger: logger)
            registration = try AgentRegistration(options: options, stateDir: stateDir, kernel: kernel, logger: logger)
            configSync = try ConfigSync(engine: engine, stateDir: stateDir, options: options, logger: logger)
        } catch {
            throw .state(error)
        }
        (pushSignals, pushSignal) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        (stopSignals, stopSignal) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        if let nodeId = registration.identity?.nodeId {
            self.logger[metadataKey: "node"] = "\(nodeId)"
            samples.logger[metadataKey: "node"] = "\(nodeId)"
            registration.logger[metadataKey: "node"] = "\(nodeId)"
            configSync.logger[metadataKey: "node"] = "\(nodeId)"
        }
    }

    // MARK: - public controls

    /// Asks `run()` to stop: loops end, pending samples are pushed or spooled, settings restored
    /// with `restoreOnExit`.
    public func stop() {
        // An unmerge under way (a prune has no time limit) is interrupted at once: the loops end
        // only when their steps do.
        engine.stopApplying()
        stopSignal.yield()
    }

    /// A local kick (SIGUSR1, a watched directory).
    public func kick(source: String) async {
        await engine.kick(source: source)
    }

    public func status() async -> AgentStatus {
        AgentStatus(
            nodeId: registration.identity?.nodeId, configGeneration: configSync.current?.generation,
            appliedGeneration: await engine.appliedGeneration, nextSeq: samples.nextSeq,
            samplesTaken: samples.samplesTaken, spooled: samples.spooled, outbox: samples.outbox.count,
            dropped: samples.dropped, lastAckedSeq: samples.lastAckedSeq, serverReachable: configSync.serverReachable,
            registrationWaiting: registration.waitingReason, server: registration.currentServer)
    }

    // MARK: - run

    /// Runs until `stop()` or cancellation; throws only when the agent cannot go on (e.g. its
    /// token was revoked and no enrollment token is configured).
    public func run() async throws(AgentError) {
        await startLocally()
        let watcher = options.watchPaths.isEmpty ? nil : DirectoryWatcher(paths: options.watchPaths)
        if let watcher, !watcher.start() {
            logger.warning("cannot watch directories (inotify unavailable); kicks come from the server and SIGUSR1 only")
        }
        let failure: AgentError? = await withTaskGroup(of: AgentError?.self) { group in
            group.addTask { await self.configLoop() }
            group.addTask { await self.tuneLoop(); return nil }
            group.addTask { await self.sampleLoop(); return nil }
            group.addTask { await self.pushLoop(); return nil }
            if let watcher {
                group.addTask {
                    for await event in watcher.events {
                        await self.kick(source: "watch:\(event.directory)/\(event.name)")
                    }
                    return nil
                }
            }
            let stops = stopSignals
            group.addTask {
                for await _ in stops { break }
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            watcher?.stop()
            return first
        }
        await shutdown()
        if let failure { throw failure }
    }

    /// `--once`: register if needed, fetch and apply the config, take one sample and push it
    /// (with anything spooled). Throws when any of it fails; the sample is spooled then.
    public func runOnce() async throws(AgentError) {
        await startLocally()
        var failure: AgentError?
        var registeredAgain = false
        // Every server once (failing over), and once more after registering again.
        for _ in 0..<(options.serverURLs.count + 1) {
            failure = nil
            var server = registration.currentServer
            do throws(AgentError) {
                let connection = try await connect()
                server = connection.client.options.serverURL
                do {
                    if let config = try await connection.client.config(
                        nodeId: connection.nodeId, ifNoneMatch: nil, waitSeconds: nil)
                    {
                        await handleConfig(config)
                    }
                } catch {
                    throw AgentError.server(error)
                }
                registration.serverAnswered(server)
                break
            } catch {
                failure = error
                guard case .server(let clientError) = error else { break }
                if registration.serverFailed(clientError, on: server) { continue }
                guard !registeredAgain, AgentRegistration.isRefusedToken(clientError) else { break }
                registeredAgain = true
                do throws(AgentError) { try registration.handleRefusedToken(clientError) } catch {
                    failure = error
                    break
                }
            }
        }
        await takeSample()
        if failure == nil {
            if let error = await samples.flush(via: registration, force: true) { failure = .server(error) }
        } else {
            samples.spoolOutbox()
        }
        samples.persistSequence()
        if options.restoreOnExit { await restore() }
        if let failure { throw failure }
    }

    /// Applies the stored config (tuning goes on even when the server is away).
    func startLocally() async {
        logger.info(
            "agent started",
            metadata: [
                "server": "\(options.serverURLs.joined(separator: ","))", "state_dir": "\(options.stateDir)",
                "sample_interval_s": "\(options.sampleInterval)", "tune_interval_s": "\(options.tuneInterval)",
                "watch": "\(options.watchPaths.joined(separator: ","))", "spooled": "\(samples.spooled)",
                "version": "\(FleetVersion.current)",
            ])
        await configSync.applyStored()
    }

    func shutdown() async {
        logger.info("stopping", metadata: ["outbox": "\(samples.outbox.count)", "spooled": "\(samples.spooled)"])
        if options.restoreOnExit { await restore() }
        await sayGoodbye()
        // One last push attempt, bounded; whatever does not go is spooled for the next start.
        await samples.finish(via: registration, deadline: .now + .seconds(5))
        logger.info("stopped", metadata: ["spooled": "\(samples.spooled)"])
    }

    /// The last sample: the kernel as the agent leaves it (run state, pages still merged), so
    /// the server marks the node "agent stopped" at once instead of "online" for another minute.
    func sayGoodbye() async {
        guard var snapshot = try? await engine.snapshot() else {
            logger.warning("cannot read the KSM status for the goodbye sample")
            return
        }
        snapshot.phase = Goodbye.phase(snapshot.status)
        snapshot.phaseReason = Goodbye.reason(
            snapshot.status, pageSize: snapshot.pageSize, restored: options.restoreOnExit)
        samples.record(snapshot, applyError: configSync.refusal ?? snapshot.applyError, agentStopped: true)
        logger.notice(
            "agent stopping", metadata: ["run": "\(snapshot.status.run)", "reason": "\(snapshot.phaseReason)"])
    }

    func restore() async {
        do {
            try await engine.restoreInitial()
        } catch {
            logger.error("could not restore the KSM settings captured at start", metadata: ["error": "\(error)"])
        }
    }

    // MARK: - registration

    /// The client with the node token, registering first when there is no identity (then the
    /// registration's config is applied at once).
    func connect() async throws(AgentError) -> AgentRegistration.Connection {
        let connection = try await registration.connect()
        if let first = connection.firstConfig {
            logger[metadataKey: "node"] = "\(connection.nodeId)"
            samples.logger[metadataKey: "node"] = "\(connection.nodeId)"
            configSync.logger[metadataKey: "node"] = "\(connection.nodeId)"
            await handleConfig(first)
        }
        return connection
    }

    // MARK: - config

    func configLoop() async -> AgentError? {
        while !Task.isCancelled {
            // The server this round's calls go to (registration, then the long-poll).
            var server = registration.currentServer
            do throws(AgentError) {
                let connection = try await connect()
                server = connection.client.options.serverURL
                pendingBackoff = nil
                let generation = configSync.seenGeneration
                let wait = generation == nil ? nil : Int.random(in: options.longPollWait)
                let config: NodeConfig?
                do {
                    config = try await connection.client.config(
                        nodeId: connection.nodeId, ifNoneMatch: generation, waitSeconds: wait)
                } catch {
                    throw AgentError.server(error)
                }
                registration.serverAnswered(server)
                // At debug: a poll's answer every minute or so (which server, whether the config
                // changed), for an operator following a failover or a refused push's wait.
                logger.debug(
                    "config poll answered",
                    metadata: [
                        "server": "\(server)", "changed": "\(config != nil)",
                        "generation": "\((config?.generation ?? generation).map(String.init) ?? "-")",
                    ])
                if configSync.serverAnswered(spooled: samples.spooled) {
                    // Replay the spool now rather than at the next sample (or when a refused
                    // push's Retry-After from this server ends).
                    samples.serverBack(server)
                    pushSignal.yield()
                }
                if let config { await handleConfig(config) }
            } catch {
                if Task.isCancelled { return nil }
                if case .server(let clientError) = error, AgentRegistration.isRefusedToken(clientError) {
                    do throws(AgentError) { try registration.handleRefusedToken(clientError) } catch { return error }
                }
                if case .notEnrolled = error { return error }
                if case .invalidOptions = error { return error }
                let delay: Double
                if case .pending(let reason, let retryAfter) = error {
                    delay = pendingDelay(reason, retryAfter: retryAfter)
                } else {
                    pendingBackoff = nil
                    // Another server is asked at once; the backoff waits for a full round.
                    var switched = false
                    if case .server(let clientError) = error {
                        switched = registration.serverFailed(clientError, on: server)
                    }
                    delay = configSync.serverIsAway(error, backOff: !switched)
                }
                do { try await Task.sleep(for: .milliseconds(Int64(delay * 1000))) } catch { return nil }
            }
        }
        return nil
    }

    /// The wait before asking again about a pending registration: the server's hint, doubled on
    /// every further pending answer up to 15 minutes, with ±10 % jitter; logged in words.
    func pendingDelay(_ reason: String, retryAfter: Double) -> Double {
        let previous = pendingBackoff ?? 0
        let next = previous == 0 ? max(retryAfter, 1) : min(max(previous * 2, retryAfter), max(900, retryAfter))
        pendingBackoff = next
        let delay = next * Double.random(in: 0.9...1.1)
        logger.warning(
            "this host is not connected to the server: \(reason)",
            metadata: ["retry_in_s": "\(Int(delay))"])
        return delay
    }

    /// Applies a config from the server; a change or a kick is reported at once.
    func handleConfig(_ received: NodeConfig) async {
        if await configSync.handle(received) {
            // Report the applied generation at once rather than at the next sample.
            await takeSample()
            pushSignal.yield()
        }
    }

    // MARK: - tuning

    /// One tuning step every tuning interval, or every second while the mode feeds back from the
    /// kernel (adaptive; advisor until it has taken over): the engine says which.
    func tuneLoop() async {
        while !Task.isCancelled {
            let seconds = await engine.tuneInterval(default: options.tuneInterval)
            let woken: Bool
            do { woken = try await engine.wakeup.sleep(seconds: seconds) } catch { return }
            // Woken by a kick or a config (each tuned already): only the wait is worked out again.
            if !woken { await engine.tune() }
        }
    }

    // MARK: - samples

    func sampleLoop() async {
        let every = Duration.milliseconds(Int64(options.sampleInterval * 1000))
        while !Task.isCancelled {
            do { try await Task.sleep(for: every) } catch { return }
            await takeSample()
            pushSignal.yield()
        }
    }

    func takeSample() async {
        let snapshot: EngineSnapshot
        do {
            snapshot = try await engine.snapshot()
        } catch {
            logger.error("cannot read the KSM status", metadata: ["error": "\(error)"])
            return
        }
        let processes = processReporting.reportIfDue(now: monotonicSeconds(), logger: logger)
        samples.record(snapshot, applyError: configSync.refusal ?? snapshot.applyError, processes: processes)
    }

    func pushLoop() async {
        for await _ in pushSignals {
            if Task.isCancelled { return }
            _ = await samples.flush(via: registration, force: false)
            if samples.rotationDue {
                samples.rotationDue = false
                await registration.rotateToken()
            }
        }
    }
}
