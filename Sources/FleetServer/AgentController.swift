import FleetAPI
import FleetStore
import Foundation
import Hummingbird
import KSMCore
import Logging
import HTTPTypes
import Synchronization

/// The agent's side of the API: register, long-poll its config, push samples.
struct AgentController<Context: RequestContext>: Sendable {
    let state: ServerState
    /// The bodies of the configs handed out last: a fleet-wide change hands one config to
    /// thousands of polls at once.
    let bodies = ConfigBodies()

    func addRoutes(to router: CheckedRouter<Context>) {
        router.on(.post, "/api/v1/register", use: register)
        router.on(.get, "/api/v1/nodes/:id/config", use: getConfig)
        router.on(.post, "/api/v1/nodes/:id/samples", use: pushSamples)
        router.on(.post, "/api/v1/nodes/:id/token", use: rotateToken)
        router.on(.put, "/api/v1/nodes/:id/facts", use: putFacts)
    }

    @Sendable func register(_ request: Request, context: Context) async throws -> Response {
        let source = state.clientAddress(request, context: context)
        if case .limited(let after) = state.registrationLimiter.hit(source) {
            throw APIError.rateLimited(
                "too many registrations from \(source) in the last \(Int(state.registrationLimiter.window)) s; try again in \(after) s",
                retryAfter: after)
        }
        guard let enrollment = Auth.bearer(request) else {
            throw APIError.unauthorized("missing enrollment token: send 'Authorization: Bearer <enrollment token>'")
        }
        let databaseLimit = try Self.databaseLimit(request)
        var body = try await HTTP.decode(RegisterRequest.self, request, limit: state.config.maxBodyBytes)
        if body.machineId.trimmingCharacters(in: .whitespaces).isEmpty {
            throw APIError.invalidValue("machineId", "must not be empty")
        }
        if body.machineId.utf8.count > 256 { throw APIError.invalidValue("machineId", "must be at most 256 bytes") }
        switch NodeName.normalize(body.hostname) {
        case .success(let name): body.hostname = name
        case .failure(let why): throw APIError.invalidValue("hostname", "hostname \(why.message)")
        }
        // The host's facts, by the same rules as `PUT /api/v1/nodes/{id}/facts`.
        if let bad = NodeFactsRequest(body).invalidField { throw APIError.invalidValue(bad.field, bad.message) }
        let nodeToken = Secrets.newToken(.node)
        let reg: Registration
        do {
            // Given up, and answered 503, before the agent gives up: a registration the agent no
            // longer waits for would otherwise commit after its retry did and replace the token
            // the retry got (one more 401 and registration).
            reg = try await DatabaseWork.$deadline.withValue(databaseLimit) {
                try await state.database.register(
                    body, enrollmentTokenHash: Secrets.hash(enrollment), nodeTokenHash: Secrets.hash(nodeToken),
                    source: source)
            }
        } catch let e as StoreError {
            switch e {
            case .registrationPending(let p), .registrationRejected(let p):
                state.logger.warning(
                    "registration kept pending: the machine id is known and no proof of identity came with it",
                    metadata: [
                        "pending": "\(p.id)", "status": "\(p.status)", "reason": "\(p.reason)",
                        "node": "\(p.holder?.nodeId ?? "-")", "hostname": "\(body.hostname)", "source": "\(source)",
                        "attempts": "\(p.attempts)",
                    ])
            default: break
            }
            throw e
        }
        // A new node's token was never remembered; a re-registration replaced the node's token.
        if reg.reregistered { state.auth.forgetNodeTokens(of: reg.node.id) }
        state.logger.info(
            reg.reregistered ? "node re-registered, token replaced" : "node registered with the standard config",
            metadata: [
                "node": "\(reg.node.id)", "name": "\(reg.node.name)", "generation": "\(reg.config.generation)",
                "source": "\(source)",
            ])
        return try HTTP.json(
            RegisterResponse(nodeId: reg.node.id, nodeToken: nodeToken, config: reg.config, reregistered: reg.reregistered),
            status: reg.reregistered ? .ok : .created, headers: HTTP.noStore)
    }

    /// The node replaces its own token. The token it used stays valid until the new one is used
    /// (plus a short grace), so nothing in flight is lost.
    @Sendable func rotateToken(_ request: Request, context: Context) async throws -> Response {
        let id = try context.parameters.require("id")
        guard let presented = Auth.bearer(request) else { throw APIError.unauthorized("missing token") }
        let databaseLimit = try Self.databaseLimit(request)
        let newToken = Secrets.newToken(.node)
        let rotated = try await DatabaseWork.$deadline.withValue(databaseLimit) {
            try await state.database.rotateNodeToken(
                nodeId: id, presentedHash: Secrets.hash(presented), newHash: Secrets.hash(newToken))
        }
        state.auth.forgetNodeTokens(of: id)
        guard rotated else {
            state.logger.warning(
                "node token rotation refused: the token presented is no longer the node's to replace",
                metadata: ["node": "\(id)"])
            throw APIError.unauthorized(
                "this token can no longer be replaced: the node has used a newer one (or its token was replaced since)")
        }
        state.logger.info("node token rotated", metadata: ["node": "\(id)"])
        return try HTTP.json(TokenRotationResponse(nodeId: id, nodeToken: newToken), headers: HTTP.noStore)
    }

    /// The node tells what its host is now (its agent started, or found the server again): the
    /// kernel, KSM features, memory, NUMA nodes, agent version and page size are stored, so the
    /// node's page and the config checks (mode advisor needs the kernel's advisor) follow a kernel
    /// or agent upgrade or downgrade. A change (not every restart: most send the same facts) is
    /// logged and recorded in the audit trail (`host-facts`, the changed facts before and
    /// after). Nothing else changes: not the token, the name, nor the config (a config the
    /// kernel can no longer apply stays as the operator set it, and the node's findings say why
    /// it fails).
    @Sendable func putFacts(_ request: Request, context: Context) async throws -> Response {
        let id = try context.parameters.require("id")
        let databaseLimit = try Self.databaseLimit(request)
        let facts = try await HTTP.decode(NodeFactsRequest.self, request, limit: state.config.maxBodyBytes)
        if let bad = facts.invalidField { throw APIError.invalidValue(bad.field, bad.message) }
        let update = try await DatabaseWork.$deadline.withValue(databaseLimit) {
            try await state.database.updateNodeFacts(nodeId: id, facts)
        }
        if !update.changed.isEmpty {
            let before = update.before, after = update.after
            var metadata: Logger.Metadata = [
                "node": "\(id)", "name": "\(after.name)", "changed": "\(update.changed.joined(separator: ","))",
            ]
            if before.kernel != after.kernel {
                metadata["kernel_before"] = "\(before.kernel)"
                metadata["kernel"] = "\(after.kernel)"
            }
            if update.changed.contains("ksmFeatures") {
                let was = Set(before.ksmFeatures), now = Set(after.ksmFeatures)
                metadata["features_added"] = "\(now.subtracting(was).sorted().joined(separator: ","))"
                metadata["features_removed"] = "\(was.subtracting(now).sorted().joined(separator: ","))"
            }
            if before.agentVersion != after.agentVersion {
                metadata["agent_version_before"] = "\(before.agentVersion)"
                metadata["agent_version"] = "\(after.agentVersion)"
            }
            let hostChanged = before.kernel != after.kernel || update.changed.contains("ksmFeatures")
            state.logger.info(hostChanged ? "node's kernel or KSM features changed" : "node's host facts changed", metadata: metadata)
            // Left as the operator set it; said here and in the node's findings.
            if let config = after.config?.config {
                let issues = config.issues(onKernelWith: after.ksmFeatures, kernel: after.kernel)
                if !issues.isEmpty {
                    state.logger.warning(
                        "the node's config asks for what its kernel no longer has; it stays as set, and the agent cannot apply it",
                        metadata: [
                            "node": "\(id)", "name": "\(after.name)",
                            "issue": "\(issues.map { "\($0.field): \($0.message)" }.joined(separator: "; "))",
                        ])
                }
            }
        }
        return try HTTP.json(NodeFactsResponse(nodeId: id, changed: update.changed), headers: HTTP.noStore)
    }

    /// Long-poll: with `If-None-Match: "<generation>"` and `?wait=<s>` (up to 60), answers 200 as
    /// soon as the generation differs, or 304 at the deadline.
    @Sendable func getConfig(_ request: Request, context: Context) async throws -> Response {
        let raw = try context.parameters.require("id")
        var id = raw
        // A node asks by its own id (checked by the route table); a credential may use a name.
        if case .credential = Caller.current, let n = try await state.database.node(idOrName: raw) { id = n.id }
        let tag = HTTP.generationTag(request.headers[.ifNoneMatch])
        if tag.invalid {
            throw APIError(.badRequest, code: APIErrorCode.invalidValue, message: "If-None-Match must be a generation such as \"7\"", field: "If-None-Match")
        }
        var wait = 0
        if let w = HTTP.param(request, "wait") {
            guard let v = Int(w), v >= 0 else {
                throw APIError.invalidValue("wait", "wait must be a whole number of seconds (0–\(APIPaths.maxWaitSeconds))")
            }
            wait = min(v, APIPaths.maxWaitSeconds)
        }
        let start = state.waiters.pollStart(id, agentHas: tag.generation)
        var epoch = start.epoch
        let known: Int64
        if start.current, wait >= ConfigWaiters.trustMinimumWait, let generation = tag.generation {
            // The agent has the newest generation heard of, and every change since will be:
            // after a fleet-wide change each agent asks again at once, and none reads the store.
            known = generation
        } else {
            // Most polls find the generation their agent already has: the config is not decoded.
            switch try await state.database.config(nodeId: id, unlessGeneration: tag.generation) {
            case nil: throw APIError.notFound("node '\(raw)' not found")
            case .config(let config)?: return try configResponse(config)
            case .unchanged(let generation)?: known = generation
            }
        }
        let deadline = ContinuousClock.now + .seconds(wait)
        while ContinuousClock.now < deadline {
            switch await state.waiters.wait(id, since: epoch, timeout: deadline - ContinuousClock.now) {
            case .timedOut:
                return notModified(generation: known)
            case .changed(let config, let newEpoch):
                epoch = newEpoch
                let current: NodeConfig
                if let config {
                    current = config
                } else {
                    guard let fresh = try await state.database.config(nodeId: id) else {
                        throw APIError.notFound("node '\(raw)' was deleted")
                    }
                    current = fresh
                }
                // Generations only grow: a wake-up with an older one than the store gave (a
                // notification still queued behind the read) is not news for this agent.
                if current.generation > known { return try configResponse(current) }
            }
        }
        return notModified(generation: known)
    }

    func configResponse(_ config: NodeConfig) throws -> Response {
        var headers = HTTP.noStore
        headers[.eTag] = HTTP.etag(config.generation)
        return HTTP.json(bytes: try bodies.body(of: config), headers: headers)
    }

    func notModified(generation: Int64) -> Response {
        var headers = HTTPFields()
        headers[.eTag] = HTTP.etag(generation)
        return Response(status: .notModified, headers: headers)
    }

    /// The limit of an agent's write's database work (a push, a registration, a token rotation)
    /// from the client's `KSMFleet-Timeout`: nil without the header (the server's request deadline
    /// alone); a value that is not seconds is refused.
    static func databaseLimit(_ request: Request) throws -> Duration? {
        guard let text = request.headers[clientTimeoutField] else { return nil }
        guard let seconds = ClientTimeout.parse(text) else {
            throw APIError.invalidValue(
                ClientTimeout.header,
                "must be the seconds the client waits for the answer, over 0 and at most \(Int(ClientTimeout.maxSeconds)); got \"\(text.prefix(40))\"")
        }
        return .milliseconds(Int64(ClientTimeout.serverLimit(seconds) * 1000))
    }

    @Sendable func pushSamples(_ request: Request, context: Context) async throws -> Response {
        let id = try context.parameters.require("id")
        let databaseLimit = try Self.databaseLimit(request)
        // Room for a full batch: about 1.5 KiB of JSON per sample.
        let limit = max(state.config.maxBodyBytes, SampleBatch.maxSamples * 2048)
        let data = try await HTTP.body(request, limit: limit)
        let decoded: SampleBatchDecoder.Decoded
        do { decoded = try SampleBatchDecoder.decode(data) } catch { throw HTTP.inputError(error) }
        let batch = decoded.batch
        if batch.samples.count > SampleBatch.maxSamples {
            throw APIError(
                .contentTooLarge, code: APIErrorCode.bodyTooLarge,
                message: "a batch may carry at most \(SampleBatch.maxSamples) samples, this one has \(batch.samples.count)",
                field: "samples")
        }
        let now = Date()
        for (i, s) in batch.samples.enumerated() {
            if let bad = s.invalidField(now: now) {
                state.logger.warning(
                    "sample batch refused",
                    metadata: ["node": "\(id)", "field": "samples[\(i)].\(bad.field)", "reason": "\(bad.message)"])
                state.metrics.sampleBatchRefused(field: bad.field)
                // In the store, so the node's finding shows through every replica. The agent
                // gets its 422 whether or not this could be written.
                do {
                    try await DatabaseWork.$deadline.withValue(databaseLimit) {
                        try await state.database.recordSampleRefusal(
                            nodeId: id, reason: "samples[\(i)].\(bad.field): \(bad.message)", at: now)
                    }
                } catch {
                    state.logger.warning(
                        "could not record the refusal for the node's findings",
                        metadata: ["node": "\(id)", "error": "\(error)"])
                }
                throw APIError.invalidValue("samples[\(i)].\(bad.field)", bad.message)
            }
        }
        let json = decoded.sampleRanges.map { SampleBatchDecoder.sampleJSON(data, $0) }
            ?? FastJSON.sampleSlices(data).flatMap { $0.count == batch.samples.count ? $0 : nil }
        // Answered before the agent gives up (`ClientTimeout`), a 503 with the reason rather
        // than its timeout, and no work kept up for a push nobody waits for.
        var ack = try await DatabaseWork.$deadline.withValue(databaseLimit) {
            try await state.database.insertSamples(nodeId: id, batch.samples, json: json)
        }
        // The token check (CheckedRouter) found whether this node's token is due for rotation.
        if case .node(_, rotationDue: true) = Caller.current { ack.rotateToken = true }
        state.metrics.samplesStored(ack.stored, duplicates: ack.duplicates)
        state.logger.debug(
            "samples stored",
            metadata: ["node": "\(id)", "stored": "\(ack.stored)", "duplicates": "\(ack.duplicates)", "highestSeq": "\(ack.highestSeq)"])
        return HTTP.jsonText(ack.json)
    }
}

/// The last few configs' JSON (`HTTP.json`'s bytes), so that a config handed to many polls is
/// encoded once: after a fleet-wide change every node gets the same config, and mostly the same
/// generation.
final class ConfigBodies: Sendable {
    private static let kept = 8
    private let recent = Mutex<[(config: NodeConfig, body: ByteBuffer)]>([])

    func body(of config: NodeConfig) throws -> ByteBuffer {
        if let hit = recent.withLock({ r in r.first(where: { $0.config == config })?.body }) { return hit }
        let body = ByteBuffer(bytes: try SortedJSONEncoder().encode(config))
        recent.withLock { r in
            if !r.contains(where: { $0.config == config }) {
                if r.count == Self.kept { r.removeFirst() }
                r.append((config, body))
            }
        }
        return body
    }
}

/// The header an agent's write states its client's timeout in (`ClientTimeout`).
private let clientTimeoutField = HTTPField.Name(ClientTimeout.header)!
