#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import FleetAPI
import FleetClient
import KSMCore
import Logging

/// A node's samples from the moment they are taken to the server's acknowledgement: sequence
/// numbers, the outbox in memory, the spool on disk while the server is away, pushes in batches
/// (the spool oldest first, then the outbox), acks, and the backoff between failed pushes.
/// Owned by the `FleetAgent` actor; its async methods run on the actor.
///
/// Stopping is `finish(to:deadline:)`: one last push, bounded by the deadline, and whatever does
/// not go stays in the spool for the next start. A final sample (say, one telling the server the
/// agent stopped) is `record`ed just before `finish`, so it leaves in that last push or with the
/// spool at the next start.
final class SamplePipeline {
    /// Where samples go: a client with the node token, and the node's id.
    typealias Destination = (client: FleetClient, nodeId: String)

    let batchSize: Int
    /// Samples per push now: `batchSize`, halved at each 413 a proxy in front of the server
    /// answers (its body limit below a full batch), down to 1; kept for the agent's life.
    private var pushLimit: Int
    var logger: Logger {
        didSet { sequence.logger = logger }
    }
    private var sequence: SequenceNumbers
    private var spool: SampleSpool
    /// Samples taken and not yet pushed or spooled.
    private(set) var outbox: [StatusSample] = []
    private(set) var samplesTaken = 0
    private(set) var lastAckedSeq: Int64?
    /// A sample reply said the node token is due for rotation.
    var rotationDue = false
    private var pushBackoff: Backoff
    /// Monotonic seconds before which a push is not tried again (unless forced).
    private var nextPushAttempt = 0.0
    /// The last failed push's `Retry-After`: the server that asked, and the monotonic second
    /// until which it asked not to be called again. A poll answered meanwhile by that server
    /// (`serverBack`) does not cut the wait short; one answered by another server does.
    private var askedToWait: (server: String, until: Double)?

    init(stateDir: AgentStateDir, options: AgentOptions, logger: Logger) throws(AgentFileError) {
        self.logger = logger
        batchSize = options.batchSize
        pushLimit = max(1, options.batchSize)
        spool = try SampleSpool(directory: stateDir.spoolDir, limits: options.spoolLimits)
        sequence = try SequenceNumbers(stateDir: stateDir, lastSpooled: spool.lastSeq, logger: logger)
        pushBackoff = Backoff(base: options.backoffBase, cap: options.backoffCap)
    }

    var nextSeq: Int64 { sequence.next }
    var spooled: Int { spool.count }
    var dropped: Int64 { spool.dropped }
    /// Nothing to push: no sample in memory, none in the spool.
    var isEmpty: Bool { outbox.isEmpty && spool.isEmpty }

    // MARK: - taking

    /// Adds a sample of `snapshot` to the outbox with the next sequence number. `applyError`
    /// replaces the engine's (a config the agent refused is reported as such).
    /// `agentStopped`: the goodbye on a clean stop (the server marks the node at once).
    /// `processes`: the process report due with this sample, if any.
    func record(
        _ snapshot: EngineSnapshot, applyError: String?, agentStopped: Bool = false, processes: ProcessReport? = nil
    ) {
        let sample = StatusSample(
            seq: sequence.allocate(), takenAt: Date(), status: snapshot.status, memory: snapshot.memory,
            pageSize: snapshot.pageSize, ksmdCPUPercent: snapshot.ksmdCPUPercent,
            ksmdCPUSeconds: snapshot.ksmdCPUSeconds, phase: snapshot.phase, phaseReason: snapshot.phaseReason,
            appliedGeneration: snapshot.appliedGeneration, applyError: applyError,
            agentStopped: agentStopped ? true : nil, processes: processes)
        samplesTaken += 1
        outbox.append(sample)
        if outbox.count >= batchSize * 2 { spoolOutbox() }
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

    /// Records the exact next sequence number (at exit).
    func persistSequence() {
        sequence.persist()
    }

    // MARK: - pushing

    /// `server` answered a poll after a failure: the next push goes at once, without waiting
    /// for the backoff, unless that server's last refusal asked for a wait still running
    /// (`Retry-After`: a long-poll held since before the refusal answers when its wait ends,
    /// which is not the server taking pushes again).
    func serverBack(_ server: String) {
        pushBackoff.reset()
        nextPushAttempt = askedToWait.flatMap { $0.server == server ? $0.until : nil } ?? 0
    }

    /// Pushes the spool (oldest first), then the samples in memory, to the registration's
    /// current server. A batch that fails in a way another server may not is pushed again at
    /// once, with the same sequence numbers, to the server `registration` switches to (the
    /// server stores each number once, so a batch whose reply was lost is not stored twice).
    /// On any other failure, or when every server has failed in turn, everything left goes to
    /// the spool and pushes wait for the backoff (or for the server to be back); `force` ignores
    /// the backoff. No new batch starts after `deadline` (a batch in flight ends within the
    /// client's request timeout); what is left then is spooled.
    /// Returns the error that stopped it, nil when everything was accepted.
    nonisolated(nonsending) func flush(
        via registration: AgentRegistration, force: Bool, deadline: ContinuousClock.Instant? = nil
    ) async -> ClientError? {
        guard var (client, nodeId) = registration.connected else {
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
            if let deadline, ContinuousClock.now >= deadline, !isEmpty {
                spoolOutbox()
                return .unreachable("no time left to push")
            }
            let fromSpool = !spool.isEmpty
            let batch: [StatusSample]
            if fromSpool {
                do { batch = try spool.oldest(pushLimit) } catch {
                    logger.error("cannot read the spool", metadata: ["error": "\(error)"])
                    spoolOutbox()
                    return .unreachable("spool unreadable")
                }
            } else {
                batch = Array(outbox.prefix(pushLimit))
            }
            guard let last = batch.last else { return nil }
            let (result, reported) = await push(batch, nodeId: nodeId, client: client)
            switch result {
            case .accepted(let ack):
                registration.serverAnswered(client.options.serverURL)
                logger.debug(
                    "samples accepted",
                    metadata: [
                        "server": "\(client.options.serverURL)", "count": "\(batch.count)", "stored": "\(ack.stored)",
                        "duplicates": "\(ack.duplicates)", "highest_seq": "\(ack.highestSeq)",
                    ])
                accepted(ack, batch: batch, reported: reported, fromSpool: fromSpool, last: last)
            case .refused(let error):
                logger.error(
                    "the server refused a batch of samples; dropping it",
                    metadata: ["count": "\(batch.count)", "first_seq": "\(batch[0].seq)", "error": "\(error)"])
                dropBatch(batch, fromSpool: fromSpool, last: last)
            case .failed(let error):
                // Stopping cancelled the transfer: not the server's failure (no failover, no
                // backoff); what is left is spooled.
                if Task.isCancelled {
                    spoolOutbox()
                    return error
                }
                // A proxy's body limit (413 not from the server): smaller batches, at once. A
                // single sample still too large for it is dropped and counted, or it would hold
                // back every sample behind it for ever.
                if error.status == 413 {
                    if batch.count > 1 {
                        pushLimit = max(1, batch.count / 2)
                        logger.warning(
                            "a proxy refused a batch as too large; pushing smaller ones",
                            metadata: ["error": "\(error)", "samples_per_push": "\(pushLimit)"])
                    } else {
                        logger.error(
                            "a proxy refused a single sample as too large; dropping it",
                            metadata: ["seq": "\(last.seq)", "error": "\(error)"])
                        dropBatch(batch, fromSpool: fromSpool, last: last)
                    }
                    continue
                }
                if registration.serverFailed(error, on: client.options.serverURL),
                    let next = registration.connected
                {
                    (client, nodeId) = next
                    continue
                }
                let delay = pushBackoff.next(hint: error.retryAfter)
                let now = monotonicSeconds()
                nextPushAttempt = now + delay
                // The hint as spread (a fleet whose polls are answered must not all push at the
                // same second either), without the backoff's own part.
                askedToWait = pushBackoff.lastHintWait.map { (client.options.serverURL, now + $0) }
                if pushBackoff.failures <= 3 || pushBackoff.failures % 20 == 0 {
                    var metadata: Logger.Metadata = [
                        "error": "\(error)", "server": "\(client.options.serverURL)",
                        "spooled": "\(spool.count + outbox.count)",
                        "retry_in_s": "\(Int(delay.rounded(.up)))",
                    ]
                    if let asked = error.retryAfter { metadata["retry_after_s"] = "\(Int(asked.rounded(.up)))" }
                    logger.warning("cannot push samples; spooling them", metadata: metadata)
                }
                spoolOutbox()
                return error
            }
        }
        return nil
    }

    /// At stop: one last push of everything (unless the task is cancelled), no new batch after
    /// `deadline`; whatever does not go is spooled for the next start, and the sequence number
    /// is stored.
    nonisolated(nonsending) func finish(
        via registration: AgentRegistration, deadline: ContinuousClock.Instant? = nil
    ) async {
        if !isEmpty {
            if Task.isCancelled {
                spoolOutbox()
            } else {
                _ = await flush(via: registration, force: true, deadline: deadline)
            }
        }
        spoolOutbox()
        persistSequence()
    }

    enum PushResult {
        case accepted(SampleBatchAck)
        /// The server refused the batch for good (`refusesTheBatch`): drop it, or it blocks forever.
        case refused(ClientError)
        case failed(ClientError)
    }

    /// One batch to the server; the count of dropped samples not yet reported rides on its last
    /// sample. Returns what happened and that count.
    nonisolated(nonsending) func push(
        _ samples: [StatusSample], nodeId: String, client: FleetClient
    ) async -> (PushResult, Int64) {
        var batch = samples
        let reported = spool.dropped
        if reported > 0, !batch.isEmpty { batch[batch.count - 1].droppedSamples = reported }
        do {
            let ack = try await client.pushSamples(nodeId: nodeId, SampleBatch(samples: batch))
            return (.accepted(ack), reported)
        } catch {
            return (Self.refusesTheBatch(error) ? .refused(error) : .failed(error), reported)
        }
    }

    /// Whether the server refused the batch itself, for good: 400, 413 or 422 with its own JSON
    /// error. Anything else is pushed again later: a timeout, a 5xx or 429, a refused token
    /// (registration handles it), and whatever a proxy, load balancer or captive portal in front
    /// of the server answers (its 404 or 405 page, a redirect, a 200 with HTML): dropping on
    /// those emptied the whole spool in one flush, batch after batch.
    static func refusesTheBatch(_ error: ClientError) -> Bool {
        guard error.isFromServer, let status = error.status else { return false }
        return status == 400 || status == 413 || status == 422
    }

    // MARK: - acknowledgements

    private func accepted(_ ack: SampleBatchAck, batch: [StatusSample], reported: Int64, fromSpool: Bool, last: StatusSample) {
        pushBackoff.reset()
        nextPushAttempt = 0
        askedToWait = nil
        lastAckedSeq = ack.highestSeq
        if ack.rotateToken == true { rotationDue = true }
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
        if ack.highestSeq >= sequence.next {
            // The server holds numbers this agent never issued (its state directory was reset
            // while the server kept the node): continue above them so new samples are not
            // taken for duplicates.
            logger.warning(
                "the server holds higher sequence numbers than this agent; continuing above them",
                metadata: ["server_highest": "\(ack.highestSeq)", "next_seq": "\(sequence.next)"])
            sequence.skip(past: ack.highestSeq)
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
