import FleetAPI
import FleetClient
import KSMCore
import KSMNode
import Logging

/// The node's identity with the server: the node id and token from the state directory, or a
/// registration with the enrollment token when there is none (or the server refused the node
/// token), and the client that carries the node token to the current server. With several
/// servers (replicas of one fleet) it holds the `ServerRotation` that says which one is current:
/// registration, long-poll and pushes all go there. Owned by the `FleetAgent` actor.
final class AgentRegistration {
    /// A client with the node token. `firstConfig` is the config a registration answered with
    /// (nil when the node was registered already).
    struct Connection {
        var client: FleetClient
        var nodeId: String
        var firstConfig: NodeConfig?
    }

    let options: AgentOptions
    let stateDir: AgentStateDir
    let kernel: any KSMKernel
    var logger: Logger
    private(set) var identity: NodeIdentity?
    /// The client with the node token, for the current server.
    private var client: FleetClient?
    private(set) var rotation: ServerRotation
    /// The server calls go to now.
    var currentServer: String { rotation.current }
    /// The server refused the node token: register again, proving the identity with the token
    /// held (the identity file is kept, so a restart still has the proof).
    private(set) var mustRegister = false
    /// Why the server keeps this host waiting (a pending or rejected registration), in words;
    /// nil when registered.
    private(set) var waitingReason: String?
    /// The host's facts (kernel, KSM features, memory, agent version: `NodeFactsRequest`) are to be
    /// told to the server at the next `connect()`: at start (the host may have booted another
    /// kernel, or the agent been upgraded, since it registered), and again after the server was
    /// lost. A registration carries them itself.
    private(set) var factsDue = true

    init(options: AgentOptions, stateDir: AgentStateDir, kernel: any KSMKernel, logger: Logger) throws(AgentFileError) {
        self.options = options
        self.stateDir = stateDir
        self.kernel = kernel
        self.logger = logger
        rotation = ServerRotation(options.serverURLs)
        identity = try stateDir.loadIdentity()
        // The identity stays valid while the server that issued it is one of the configured
        // replicas (they share one fleet), however spelled (a trailing slash, the host's case):
        // a cosmetic change of the URL must not send a fleet's agents to pending registrations.
        let configured = Set(options.serverURLs.map { FleetClient.comparableBase($0) ?? $0 })
        if let identity, !configured.contains(FleetClient.comparableBase(identity.serverURL) ?? identity.serverURL) {
            logger.warning(
                "the state directory belongs to another server; registering again",
                metadata: [
                    "stored_server": "\(identity.serverURL)", "server": "\(options.serverURLs.joined(separator: ","))",
                ])
            self.identity = nil
        }
    }

    /// The client and node id when connected already (no request is made).
    var connected: SamplePipeline.Destination? {
        guard !mustRegister, let client, let nodeId = identity?.nodeId else { return nil }
        return (client, nodeId)
    }

    /// A client for the current server.
    func makeClient(token: String?) throws(AgentError) -> FleetClient {
        var o = ClientOptions(
            serverURL: currentServer, token: token, caFile: options.caFile,
            connectTimeout: options.connectTimeout, requestTimeout: options.requestTimeout)
        o.userAgent = "ksmfleet-agent/\(FleetVersion.current)"
        do {
            return try FleetClient(o)
        } catch {
            throw .invalidOptions("\(error)")
        }
    }

    /// The client with the node token, registering first when there is no identity.
    nonisolated(nonsending) func connect() async throws(AgentError) -> Connection {
        if let identity, !mustRegister {
            let c: FleetClient
            if let client {
                c = client
            } else {
                c = try makeClient(token: identity.nodeToken)
                client = c
            }
            if factsDue { try await reportFacts(c, nodeId: identity.nodeId) }
            return Connection(client: c, nodeId: identity.nodeId)
        }
        guard let token = options.enrollToken else {
            throw .notEnrolled(
                "this node is not registered (no node identity in \(options.stateDir)) and no enrollment token is configured: give --enroll-token, --enroll-token-file or KSMFLEET_ENROLL_TOKEN"
            )
        }
        var request = try registerRequest()
        // Proof of identity: the node's current token, when this agent has one.
        request.nodeToken = identity?.nodeToken
        do { request.registrationKey = try stateDir.registrationKey() } catch { throw .state(error) }
        let response: RegisterResponse
        let anonymous = try makeClient(token: nil)
        do {
            response = try await anonymous.register(request, enrollmentToken: token)
        } catch {
            if case .api(_, let body, _) = error,
                body.error.code == APIErrorCode.registrationPending || body.error.code == APIErrorCode.registrationRejected
            {
                let rejected = body.error.code == APIErrorCode.registrationRejected
                let reason =
                    rejected
                    ? "waiting: an admin rejected this host's registration; \(body.error.message)"
                    : "waiting for an admin: \(body.error.message)"
                waitingReason = reason
                // The server's hint (60 s, an hour after a rejection), never more than an hour.
                throw .pending(reason, retryAfter: min(error.retryAfter ?? (rejected ? 3600 : 60), 3600))
            }
            if error.isFromServer, error.status == 401 || error.status == 403 {
                // Retrying cannot help: the token is wrong, expired or revoked. (A proxy's 401 or
                // 403 page in front of the server is not the server's word: retried.)
                throw .notEnrolled(
                    "the server refused the enrollment token (\(error)); create a new one (ksmfleet tokens create) and configure it"
                )
            }
            throw .server(error)
        }
        let id = NodeIdentity(
            nodeId: response.nodeId, nodeToken: response.nodeToken, serverURL: anonymous.options.serverURL)
        do { try stateDir.saveIdentity(id) } catch { throw .state(error) }
        identity = id
        mustRegister = false
        waitingReason = nil
        factsDue = false
        logger[metadataKey: "node"] = "\(id.nodeId)"
        logger.info(
            response.reregistered ? "registered again (identity proven or accepted by an admin, new token)" : "registered",
            metadata: [
                "hostname": "\(request.hostname)", "generation": "\(response.config.generation)",
                "server": "\(anonymous.options.serverURL)",
            ])
        let c = try makeClient(token: id.nodeToken)
        client = c
        return Connection(client: c, nodeId: id.nodeId, firstConfig: response.config)
    }

    /// Tells the server what the host is now (`PUT /api/v1/nodes/{id}/facts`). Throws when the
    /// server cannot be reached, fails (5xx: another replica may answer) or refuses the node
    /// token (the caller registers again, which carries the facts); any other refusal (an older
    /// server without the route, a value it will not take) is logged and the agent goes on, as
    /// it does when the kernel cannot be read.
    nonisolated(nonsending) func reportFacts(_ client: FleetClient, nodeId: String) async throws(AgentError) {
        let facts: NodeFactsRequest
        do throws(AgentError) {
            facts = NodeFactsRequest(try registerRequest())
        } catch {
            factsDue = false
            logger.warning(
                "cannot read this host's facts for the server; it keeps the ones it has", metadata: ["error": "\(error)"])
            return
        }
        do throws(ClientError) {
            let reply = try await client.putNodeFacts(nodeId: nodeId, facts)
            factsDue = false
            if !reply.changed.isEmpty {
                logger.info(
                    "told the server of this host's changes",
                    metadata: [
                        "changed": "\(reply.changed.joined(separator: ","))", "kernel": "\(facts.kernel)",
                        "version": "\(facts.agentVersion)", "server": "\(client.options.serverURL)",
                    ])
            }
        } catch {
            if ServerRotation.failsOver(error) || error.status == 401 { throw .server(error) }
            factsDue = false
            logger.warning(
                "the server did not take this host's facts (kernel, KSM features, agent version); it keeps the ones it has",
                metadata: ["error": "\(error)", "server": "\(client.options.serverURL)"])
        }
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

    // MARK: - failover

    /// A call to `server` failed with `error`. When it is worth another replica
    /// (`ServerRotation.failsOver`), the rotation moves on and the switch is logged with its
    /// reason. Returns true when the next attempt should go at once (to the next server, or to
    /// the current one when `server` was left already); false when the caller backs off: the
    /// error does not fail over, or every server has failed in turn.
    func serverFailed(_ error: ClientError, on server: String) -> Bool {
        guard ServerRotation.failsOver(error) else { return false }
        // Told again once a server answers (this one back, or another replica): one small call
        // per reconnection.
        factsDue = true
        switch rotation.failed(server) {
        case .alreadyLeft:
            return true
        case .switchTo(let next):
            logger.warning(
                "switching server", metadata: ["from": "\(server)", "to": "\(next)", "reason": "\(error)"])
            clientForCurrentServer()
            return true
        case .backOff(let next):
            if rotation.servers.count > 1 {
                logger.warning(
                    "every server failed in turn; backing off, then switching server",
                    metadata: ["from": "\(server)", "to": "\(next)", "reason": "\(error)"])
            }
            clientForCurrentServer()
            return false
        }
    }

    /// `server` answered a call: the agent stays on it.
    func serverAnswered(_ server: String) {
        rotation.answered(server)
    }

    /// Points the node-token client at the current server (after a switch).
    private func clientForCurrentServer() {
        guard let current = client, current.options.serverURL != currentServer else { return }
        client = try? makeClient(token: current.options.token)
    }

    /// The server refused the node token (revoked, or the node was deleted): forget the identity
    /// so that the next `connect()` registers again, or throw when there is no enrollment token.
    func handleRefusedToken(_ error: ClientError) throws(AgentError) {
        guard options.enrollToken != nil else {
            throw .notEnrolled(
                "the server refused this node's token (\(error)); the node was deleted, or another host took it over through an accepted registration. Configure an enrollment token to register again (an admin then accepts or rejects it: ksmfleet nodes pending)"
            )
        }
        logger.warning(
            "the server refused the node token; registering again with it as proof of identity",
            metadata: ["error": "\(error)"])
        mustRegister = true
        client = nil
    }

    /// Replaces the node token (the server said it is due). The new token is stored before it
    /// is used; the old one stays valid on the server until the new one is used, so a sample
    /// push or long-poll in flight is not lost. On failure the old token goes on working and
    /// the next sample reply asks again.
    nonisolated(nonsending) func rotateToken() async {
        guard !mustRegister, let identity, let client else { return }
        do {
            let reply = try await client.rotateNodeToken(nodeId: identity.nodeId)
            let next = NodeIdentity(nodeId: identity.nodeId, nodeToken: reply.nodeToken, serverURL: identity.serverURL)
            try stateDir.saveIdentity(next)
            let c = try makeClient(token: next.nodeToken)
            self.identity = next
            self.client = c
            logger.info("node token rotated")
        } catch {
            logger.warning("could not rotate the node token; the current one goes on working", metadata: ["error": "\(error)"])
        }
    }

    /// The server refused the node token. Only its own JSON answer counts: a proxy or WAF in
    /// front of it answering 401/403 for a while (an allow list being changed) must not make
    /// every agent behind it forget its identity and, without an enrollment token, exit.
    static func isRefusedToken(_ error: ClientError) -> Bool {
        guard error.isFromServer else { return false }
        return error.status == 401 || error.status == 403 || (error.status == 404 && error.code == APIErrorCode.notFound)
    }
}
