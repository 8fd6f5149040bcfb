#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import FleetAPI
import FleetClient
import KSMCore
import KSMNode
import Logging

/// Why the agent cannot go on.
public enum AgentError: Error, Sendable, CustomStringConvertible {
    /// No node identity and no enrollment token, or the node token was refused without one.
    case notEnrolled(String)
    /// The state directory or the spool cannot be used.
    case state(AgentFileError)
    /// KSM cannot be read on this host.
    case kernel(String)
    /// `--once`: a call to the server failed.
    case server(ClientError)
    case invalidOptions(String)

    public var description: String {
        switch self {
        case .notEnrolled(let s): return s
        case .state(let e): return "state directory: \(e)"
        case .kernel(let s): return "KSM: \(s)"
        case .server(let e): return "\(e)"
        case .invalidOptions(let s): return s
        }
    }
}

/// What the agent is doing, for tests and logs.
public struct AgentStatus: Sendable {
    public var nodeId: String?
    public var configGeneration: Int64?
    public var appliedGeneration: Int64?
    public var nextSeq: Int64
    public var samplesTaken: Int
    public var spooled: Int
    public var outbox: Int
    public var dropped: Int64
    public var lastAckedSeq: Int64?
    public var serverReachable: Bool
}

/// The server-connected node agent: registers, long-polls its config and applies it through the
/// `NodeEngine`, tunes every tuning interval, samples every sample interval and pushes samples in
/// batches, spooling them on disk while the server is away and replaying them in order when it is
/// back. `run()` runs until `stop()` (SIGTERM in the executable) or cancellation.
public actor FleetAgent {
    public let options: AgentOptions
    public let engine: NodeEngine
    let kernel: any KSMKernel
    var logger: Logger
    let stateDir: AgentStateDir
    var spool: SampleSpool

    var identity: NodeIdentity?
    var client: FleetClient?
    /// The last good (validated) config, as persisted.
    var currentConfig: NodeConfig?
    /// The last generation received, valid or not (the long-poll's If-None-Match).
    var seenGeneration: Int64?
    /// Why the last received config was refused; reported as the apply error.
    var configError: String?

    var nextSeq: Int64
    var reservedSeq: Int64
    static let seqBlock: Int64 = 256
    var outbox: [StatusSample] = []
    var samplesTaken = 0
    var lastAckedSeq: Int64?

    var pollBackoff: Backoff
    var pushBackoff: Backoff
    var nextPushAttempt = 0.0
    var serverReachable = false
    var pollFailuresLogged = 0

    private let pushSignal: AsyncStream<Void>.Continuation
    private let pushSignals: AsyncStream<Void>
    private let stopSignal: AsyncStream<Void>.Continuation
    private let stopSignals: AsyncStream<Void>
    private var stopping = false

    public init(options: AgentOptions, kernel: (any KSMKernel)? = nil, logger: Logger) throws(AgentError) {
        self.options = options
        let kernel = kernel ?? LinuxKSMKernel(root: options.sysfsRoot, proc: options.procRoot)
        self.kernel = kernel
        self.logger = logger
        do {
            engine = try NodeEngine(
                kernel: kernel, logger: logger,
                unmergeTimeout: .milliseconds(Int64(max(options.unmergeTimeout, 0.001) * 1000)))
        } catch {
            throw .kernel("cannot read \(options.sysfsRoot): \(error)")
        }
        do {
            stateDir = try AgentStateDir(options.stateDir)
            spool = try SampleSpool(directory: stateDir.spoolDir, limits: options.spoolLimits)
            identity = try stateDir.loadIdentity()
            currentConfig = try stateDir.loadConfig()
            let start = try stateDir.loadSequenceStart()
            // Never reuse a number that may already be spooled or sent.
            nextSeq = max(start, (spool.lastSeq ?? 0) + 1)
            reservedSeq = nextSeq
        } catch {
            throw .state(error)
        }
        seenGeneration = currentConfig?.generation
        pollBackoff = Backoff(base: options.backoffBase, cap: options.backoffCap)
        pushBackoff = Backoff(base: options.backoffBase, cap: options.backoffCap)
        (pushSignals, pushSignal) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        (stopSignals, stopSignal) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        if let identity, identity.serverURL != options.serverURL {
            logger.warning(
                "the state directory belongs to another server; registering again",
                metadata: ["stored_server": "\(identity.serverURL)", "server": "\(options.serverURL)"])
            self.identity = nil
        }
        if let identity { self.logger[metadataKey: "node"] = "\(identity.nodeId)" }
    }

    // MARK: - public controls

    /// Asks `run()` to stop: loops end, pending samples are pushed or spooled, settings restored
    /// with `restoreOnExit`.
    public func stop() {
        stopping = true
        stopSignal.yield()
    }

    /// A local kick (SIGUSR1, a watched directory).
    public func kick(source: String) async {
        await engine.kick(source: source)
    }

    public func status() async -> AgentStatus {
        AgentStatus(
            nodeId: identity?.nodeId, configGeneration: currentConfig?.generation,
            appliedGeneration: await engine.appliedGeneration, nextSeq: nextSeq, samplesTaken: samplesTaken,
            spooled: spool.count, outbox: outbox.count, dropped: spool.dropped, lastAckedSeq: lastAckedSeq,
            serverReachable: serverReachable)
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
        for attempt in 1...2 {
            failure = nil
            do throws(AgentError) {
                let client = try await ensureRegistered()
                guard let nodeId = identity?.nodeId else { throw AgentError.notEnrolled("not registered") }
                do {
                    if let config = try await client.config(nodeId: nodeId, ifNoneMatch: nil, waitSeconds: nil) {
                        await handleConfig(config)
                    }
                } catch {
                    throw AgentError.server(error)
                }
                break
            } catch {
                failure = error
                guard attempt == 1, case .server(let clientError) = error, Self.isRefusedToken(clientError) else { break }
                do throws(AgentError) { try handleRefusedToken(clientError) } catch {
                    failure = error
                    break
                }
            }
        }
        await takeSample()
        if failure == nil {
            if let error = await flush(force: true) { failure = .server(error) }
        } else {
            spoolOutbox()
        }
        persistSequence()
        if options.restoreOnExit { await restore() }
        if let failure { throw failure }
    }

    /// Applies the stored config (tuning goes on even when the server is away).
    func startLocally() async {
        logger.info(
            "agent started",
            metadata: [
                "server": "\(options.serverURL)", "state_dir": "\(options.stateDir)",
                "sample_interval_s": "\(options.sampleInterval)", "tune_interval_s": "\(options.tuneInterval)",
                "watch": "\(options.watchPaths.joined(separator: ","))", "spooled": "\(spool.count)",
                "version": "\(FleetVersion.current)",
            ])
        if let stored = currentConfig {
            do throws(ConfigValidationError) {
                let valid = try stored.config.validated()
                await engine.setConfig(valid, generation: stored.generation)
                logger.info("applied the last good config from the state directory", metadata: ["generation": "\(stored.generation)"])
            } catch {
                logger.error("the stored config is invalid; waiting for the server", metadata: ["error": "\(error)"])
            }
        }
    }

    func shutdown() async {
        logger.info("stopping", metadata: ["outbox": "\(outbox.count)", "spooled": "\(spool.count)"])
        // One last push attempt; whatever does not go is spooled for the next start.
        if !outbox.isEmpty || !spool.isEmpty {
            if Task.isCancelled {
                spoolOutbox()
            } else {
                _ = await flush(force: true)
            }
        }
        spoolOutbox()
        persistSequence()
        if options.restoreOnExit { await restore() }
        logger.info("stopped", metadata: ["spooled": "\(spool.count)"])
    }

    func restore() async {
        do {
            try await engine.restoreInitial()
        } catch {
            logger.error("could not restore the KSM settings captured at start", metadata: ["error": "\(error)"])
        }
    }

    // MARK: - registration

    func makeClient(token: String?) throws(AgentError) -> FleetClient {
        var o = ClientOptions(
            serverURL: options.serverURL, token: token, caFile: options.caFile,
            connectTimeout: options.connectTimeout, requestTimeout: options.requestTimeout)
        o.userAgent = "ksmfleet-agent/\(FleetVersion.current)"
        do {
            return try FleetClient(o)
        } catch {
            throw .invalidOptions("\(error)")
        }
    }

    /// The client with the node token, registering first when there is no identity.
    func ensureRegistered() async throws(AgentError) -> FleetClient {
        if let client { return client }
        if let identity {
            let c = try makeClient(token: identity.nodeToken)
            client = c
            return c
        }
        guard let token = options.enrollToken else {
            throw .notEnrolled(
                "this node is not registered (no node identity in \(options.stateDir)) and no enrollment token is configured: give --enroll-token, --enroll-token-file or KSMFLEET_ENROLL_TOKEN"
            )
        }
        let request = try registerRequest()
        let response: RegisterResponse
        let anonymous = try makeClient(token: nil)
        do {
            response = try await anonymous.register(request, enrollmentToken: token)
        } catch {
            if error.status == 401 || error.status == 403 {
                // Retrying cannot help: the token is wrong, expired or revoked.
                throw .notEnrolled(
                    "the server refused the enrollment token (\(error)); create a new one (ksmfleet tokens create) and configure it"
                )
            }
            throw .server(error)
        }
        let id = NodeIdentity(nodeId: response.nodeId, nodeToken: response.nodeToken, serverURL: options.serverURL)
        do { try stateDir.saveIdentity(id) } catch { throw .state(error) }
        identity = id
        logger[metadataKey: "node"] = "\(id.nodeId)"
        logger.info(
            response.reregistered ? "registered again (same machine id, new token)" : "registered",
            metadata: ["hostname": "\(request.hostname)", "generation": "\(response.config.generation)"])
        let c = try makeClient(token: id.nodeToken)
        client = c
        await handleConfig(response.config)
        return c
    }

    func registerRequest() throws(AgentError) -> RegisterRequest {
        let facts = HostInfo.current()
        let memory: MemorySnapshot
        let features: [String]
        do {
            memory = try kernel.readMemory()
            features = try kernel.features()
        } catch {
            throw .kernel("\(error)")
        }
        let machineId = options.machineId ?? facts.machineId
        return RegisterRequest(
            hostname: options.nodeName ?? facts.hostname, machineId: machineId.isEmpty ? facts.hostname : machineId,
            kernel: facts.kernelRelease, memTotalBytes: memory.memTotalKB * 1024, numaNodes: facts.numaNodes,
            ksmFeatures: features, agentVersion: FleetVersion.current, pageSize: kernel.pageSize)
    }

    /// The server refused the node token (revoked, or the node was deleted).
    func handleRefusedToken(_ error: ClientError) throws(AgentError) {
        guard options.enrollToken != nil else {
            throw .notEnrolled(
                "the server refused this node's token (\(error)); the node was revoked or deleted. Configure an enrollment token to register again, or remove \(stateDir.nodeFile)"
            )
        }
        logger.warning("the server refused the node token; registering again", metadata: ["error": "\(error)"])
        identity = nil
        client = nil
        stateDir.forgetIdentity()
    }

    static func isRefusedToken(_ error: ClientError) -> Bool {
        error.status == 401 || error.status == 403 || (error.status == 404 && error.code == APIErrorCode.notFound)
    }

    static func isTransient(_ error: ClientError) -> Bool {
        switch error {
        case .unreachable: return true
        case .api(let status, _): return status >= 500 || status == 408 || status == 429
        case .invalidURL, .decoding: return false
        }
    }

    // MARK: - config

    func configLoop() async -> AgentError? {
        while !Task.isCancelled {
            do throws(AgentError) {
                let client = try await ensureRegistered()
                guard let nodeId = identity?.nodeId else { continue }
                let generation = seenGeneration
                let wait = generation == nil ? nil : Int.random(in: options.longPollWait)
                let config: NodeConfig?
                do {
                    config = try await client.config(nodeId: nodeId, ifNoneMatch: generation, waitSeconds: wait)
                } catch {
                    throw AgentError.server(error)
                }
                serverIsBack()
                if let config { await handleConfig(config) }
            } catch {
                if Task.isCancelled { return nil }
                if case .server(let clientError) = error, Self.isRefusedToken(clientError) {
                    do throws(AgentError) { try handleRefusedToken(clientError) } catch { return error }
                }
                if case .notEnrolled = error { return error }
                if case .invalidOptions = error { return error }
                serverIsAway(error)
                let delay = pollBackoff.next()
                do { try await Task.sleep(for: .milliseconds(Int64(delay * 1000))) } catch { return nil }
            }
        }
        return nil
    }

    func serverIsBack() {
        pollBackoff.reset()
        if !serverReachable {
            serverReachable = true
            if pollFailuresLogged > 0 { logger.info("server reachable again", metadata: ["spooled": "\(spool.count)"]) }
            pollFailuresLogged = 0
            // Replay the spool now rather than at the next sample.
            pushBackoff.reset()
            nextPushAttempt = 0
            pushSignal.yield()
        }
    }

    func serverIsAway(_ error: AgentError) {
        serverReachable = false
        pollFailuresLogged += 1
        // Log the first failures, then every 20th, so a long outage does not flood the journal.
        if pollFailuresLogged <= 3 || pollFailuresLogged % 20 == 0 {
            logger.warning(
                "server unavailable; keeping the last good config",
                metadata: [
                    "error": "\(error)", "failures": "\(pollFailuresLogged)",
                    "generation": "\(currentConfig.map { String($0.generation) } ?? "-")",
                ])
        }
    }

    /// Validates and applies a config from the server; a refused config keeps the last good one.
    func handleConfig(_ received: NodeConfig) async {
        seenGeneration = received.generation
        let valid: KSMConfig
        do throws(ConfigValidationError) {
            valid = try received.config.validated()
        } catch {
            configError = "config generation \(received.generation) refused by the agent: \(error)"
            logger.error(
                "config refused; keeping the last good one",
                metadata: ["generation": "\(received.generation)", "error": "\(error)"])
            return
        }
        configError = nil
        let previous = currentConfig
        let next = NodeConfig(generation: received.generation, kickCounter: received.kickCounter, config: valid)
        currentConfig = next
        do {
            try stateDir.saveConfig(next)
        } catch {
            logger.error("cannot store the config in the state directory", metadata: ["error": "\(error)"])
        }
        let changed = previous?.generation != next.generation || previous?.config != next.config
        let kicked = previous.map { $0.kickCounter != next.kickCounter } ?? false
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
        if changed || kicked {
            // Report the applied generation at once rather than at the next sample.
            await takeSample()
            pushSignal.yield()
        }
    }

    // MARK: - tuning

    func tuneLoop() async {
        let every = Duration.milliseconds(Int64(options.tuneInterval * 1000))
        while !Task.isCancelled {
            do { try await Task.sleep(for: every) } catch { return }
            await engine.tune()
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

    func allocateSeq() -> Int64 {
        let seq = nextSeq
        nextSeq += 1
        if nextSeq > reservedSeq {
            reservedSeq = nextSeq + Self.seqBlock
            do {
                try stateDir.reserveSequence(upTo: reservedSeq)
            } catch {
                logger.error("cannot store the sequence number", metadata: ["error": "\(error)"])
            }
        }
        return seq
    }

    func persistSequence() {
        do {
            try stateDir.reserveSequence(upTo: nextSeq)
            reservedSeq = nextSeq
        } catch {
            logger.error("cannot store the sequence number", metadata: ["error": "\(error)"])
        }
    }

    func takeSample() async {
        let snap: EngineSnapshot
        do {
            snap = try await engine.snapshot()
        } catch {
            logger.error("cannot read the KSM status", metadata: ["error": "\(error)"])
            return
        }
        let sample = StatusSample(
            seq: allocateSeq(), takenAt: Date(), status: snap.status, memory: snap.memory, pageSize: snap.pageSize,
            ksmdCPUPercent: snap.ksmdCPUPercent, ksmdCPUSeconds: snap.ksmdCPUSeconds, phase: snap.phase,
            phaseReason: snap.phaseReason, appliedGeneration: snap.appliedGeneration,
            applyError: configError ?? snap.applyError)
        samplesTaken += 1
        outbox.append(sample)
        if outbox.count >= options.batchSize * 2 { spoolOutbox() }
    }

    func pushLoop() async {
        for await _ in pushSignals {
            if Task.isCancelled { return }
            _ = await flush(force: false)
        }
    }

    /// Moves the samples in memory to the spool.
    func spoolOutbox() {
        guard !outbox.isEmpty else { return }
        let moving = outbox
        outbox = []
        do {
            try spool.append(moving)
        } catch {
            logger.error("cannot spool samples; they are lost", metadata: ["count": "\(moving.count)", "error": "\(error)"])
            try? spool.countDropped(moving.count)
        }
    }

    enum PushResult {
        case accepted(SampleBatchAck)
        /// The server refused the batch for good (400/413/422): drop it, or it blocks forever.
        case refused(ClientError)
        case failed(ClientError)
    }

    func push(_ samples: [StatusSample], nodeId: String, client: FleetClient) async -> (PushResult, Int64) {
        var batch = samples
        let reported = spool.dropped
        if reported > 0, !batch.isEmpty { batch[batch.count - 1].droppedSamples = reported }
        do {
            let ack = try await client.pushSamples(nodeId: nodeId, SampleBatch(samples: batch))
            return (.accepted(ack), reported)
        } catch {
            if Self.isTransient(error) || Self.isRefusedToken(error) { return (.failed(error), reported) }
            return (.refused(error), reported)
        }
    }

    /// Pushes the spool (oldest first), then the samples in memory. On failure everything left
    /// goes to the spool and pushes wait for the backoff (or for the server to be back).
    /// Returns the error that stopped it, nil when everything was accepted.
    func flush(force: Bool) async -> ClientError? {
        guard let client, let nodeId = identity?.nodeId else {
            spoolOutbox()
            return .unreachable("not registered yet")
        }
        if !force && monotonicSeconds() < nextPushAttempt {
            spoolOutbox()
            return .unreachable("waiting to retry")
        }
        var rounds = 0
        while rounds < 10_000 {
            rounds += 1
            let fromSpool = !spool.isEmpty
            let batch: [StatusSample]
            if fromSpool {
                do { batch = try spool.oldest(options.batchSize) } catch {
                    logger.error("cannot read the spool", metadata: ["error": "\(error)"])
                    spoolOutbox()
                    return .unreachable("spool unreadable")
                }
            } else {
                batch = Array(outbox.prefix(options.batchSize))
            }
            guard let last = batch.last else { return nil }
            let (result, reported) = await push(batch, nodeId: nodeId, client: client)
            switch result {
            case .accepted(let ack):
                accepted(ack, batch: batch, reported: reported, fromSpool: fromSpool, last: last)
            case .refused(let error):
                logger.error(
                    "the server refused a batch of samples; dropping it",
                    metadata: ["count": "\(batch.count)", "first_seq": "\(batch[0].seq)", "error": "\(error)"])
                dropBatch(batch, fromSpool: fromSpool, last: last)
            case .failed(let error):
                let delay = pushBackoff.next()
                nextPushAttempt = monotonicSeconds() + delay
                if pushBackoff.failures <= 3 || pushBackoff.failures % 20 == 0 {
                    logger.warning(
                        "cannot push samples; spooling them",
                        metadata: [
                            "error": "\(error)", "spooled": "\(spool.count + outbox.count)",
                            "retry_in_s": "\(Int(delay.rounded(.up)))",
                        ])
                }
                spoolOutbox()
                return error
            }
        }
        return nil
    }

    private func accepted(_ ack: SampleBatchAck, batch: [StatusSample], reported: Int64, fromSpool: Bool, last: StatusSample) {
        pushBackoff.reset()
        nextPushAttempt = 0
        lastAckedSeq = ack.highestSeq
        do {
            try spool.clearDropped(reported)
        } catch {
            logger.error("cannot update the spool", metadata: ["error": "\(error)"])
        }
        if fromSpool {
            do {
                try spool.acknowledge(upTo: max(ack.highestSeq, last.seq))
            } catch {
                logger.error("cannot update the spool", metadata: ["error": "\(error)"])
            }
            if !batch.isEmpty {
                logger.info(
                    "replayed spooled samples",
                    metadata: ["count": "\(batch.count)", "stored": "\(ack.stored)", "duplicates": "\(ack.duplicates)", "left": "\(spool.count)"])
            }
        } else {
            outbox.removeFirst(min(batch.count, outbox.count))
        }
        if ack.highestSeq >= nextSeq {
            // The server holds numbers this agent never issued (its state directory was reset
            // while the server kept the node): continue above them so new samples are not
            // taken for duplicates.
            logger.warning(
                "the server holds higher sequence numbers than this agent; continuing above them",
                metadata: ["server_highest": "\(ack.highestSeq)", "next_seq": "\(nextSeq)"])
            nextSeq = ack.highestSeq + 1
            persistSequence()
            outbox = outbox.filter { $0.seq > ack.highestSeq }
        }
    }

    private func dropBatch(_ batch: [StatusSample], fromSpool: Bool, last: StatusSample) {
        do {
            if fromSpool {
                try spool.acknowledge(upTo: last.seq)
            } else {
                outbox.removeFirst(min(batch.count, outbox.count))
            }
            try spool.countDropped(batch.count)
        } catch {
            logger.error("cannot update the spool", metadata: ["error": "\(error)"])
        }
    }
}
