import FleetAPI
import FleetClient
import KSMCore
import KSMNode
import Logging

/// The node's identity with the server: the node id and token from the state directory, or a
/// registration with the enrollment token when there is none (or the server refused the node
/// token), and the client that carries the node token. Owned by the `FleetAgent` actor.
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
    private var client: FleetClient?

    init(options: AgentOptions, stateDir: AgentStateDir, kernel: any KSMKernel, logger: Logger) throws(AgentFileError) {
        self.options = options
        self.stateDir = stateDir
        self.kernel = kernel
        self.logger = logger
        identity = try stateDir.loadIdentity()
        if let identity, identity.serverURL != options.serverURL {
            logger.warning(
                "the state directory belongs to another server; registering again",
                metadata: ["stored_server": "\(identity.serverURL)", "server": "\(options.serverURL)"])
            self.identity = nil
        }
    }

    /// The client and node id when connected already (no request is made).
    var connected: SamplePipeline.Destination? {
        guard let client, let nodeId = identity?.nodeId else { return nil }
        return (client, nodeId)
    }

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
    nonisolated(nonsending) func connect() async throws(AgentError) -> Connection {
        if let identity {
            if let client { return Connection(client: client, nodeId: identity.nodeId) }
            let c = try makeClient(token: identity.nodeToken)
            client = c
            return Connection(client: c, nodeId: identity.nodeId)
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
        return Connection(client: c, nodeId: id.nodeId, firstConfig: response.config)
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

    /// The server refused the node token (revoked, or the node was deleted): forget the identity
    /// so that the next `connect()` registers again, or throw when there is no enrollment token.
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
}
