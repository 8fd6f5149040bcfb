import FleetAPI
import FleetStore
import KSMCore
import Foundation
import Hummingbird
import Logging

/// What every controller shares: the database, auth, long-poll waiters, metrics and options.
/// Controllers added by other features (reports, dashboard) take this in their initializer.
final class ServerState: Sendable {
    let config: ServerConfig
    let database: FleetDatabase
    let auth: Auth
    let waiters: ConfigWaiters
    let metrics: ServerMetrics
    let logger: Logger
    /// Per source address: registrations and failed token checks (failed dashboard sign-ins: `loginThrottle`).
    let registrationLimiter: RateLimiter
    let failedAuthLimiter: RateLimiter
    /// Whether a request came over HTTPS, and the client's address (trusted proxies).
    let transport: TransportSecurity
    /// Failed dashboard sign-ins per address.
    let loginThrottle: LoginThrottle
    /// Requests refused because the database could not serve them: one outage in the log.
    let outage: DatabaseOutage

    init(config: ServerConfig, database: FleetDatabase, adminTokenHash: String, logger: Logger) {
        self.config = config
        self.database = database
        self.auth = Auth(
            database: database, adminTokenHash: adminTokenHash, metricsPublic: config.metricsPublic,
            rotationSeconds: config.tokenRotationDays > 0 ? config.tokenRotationDays * 86400 : nil)
        self.registrationLimiter = RateLimiter(limit: config.registrationRateLimit, window: 60)
        self.failedAuthLimiter = RateLimiter(limit: config.failedAuthRateLimit, window: 60)
        // Replicas hear of each other's changes only while LISTEN is in place
        // (ConfigNotificationService); a lone server makes every change itself.
        self.waiters = ConfigWaiters(changeFeedLive: !database.isShared)
        self.metrics = ServerMetrics()
        self.logger = logger
        self.outage = DatabaseOutage(logger: logger)
        self.transport = TransportSecurity(
            servesTLS: config.tls != nil, trustedProxies: Set(config.trustedProxies))
        self.loginThrottle = LoginThrottle(maxFailures: config.loginMaxFailures, window: config.loginThrottleSeconds)
    }

    /// The client's address, for rate limits, login throttling and the audit trail: the peer's,
    /// or through a trusted proxy the client's (`TransportSecurity.clientAddress`).
    func clientAddress(_ request: Request, context: some RequestContext) -> String {
        transport.clientAddress(request, peer: (context as? any RemoteAddressRequestContext)?.remoteAddress)
    }

    /// The API view of a stored node: online state and drift worked out at `now`.
    /// A kick (throttle mode) for one node: bumps its kick counter and generation, wakes its
    /// waiting long-poll with the new config, and logs it. The API and the dashboard both call this.
    func kick(nodeId: String, actor: String) async throws -> NodeConfig {
        let config = try await database.kick(nodeId: nodeId, actor: actor)
        waiters.notify(nodeId, config: config)
        logger.info(
            "node kicked",
            metadata: [
                "node": "\(nodeId)", "generation": "\(config.generation)", "kickCounter": "\(config.kickCounter)",
                "by": "\(actor)",
            ])
        return config
    }

    /// An admin's decision on a pending registration, from the API or the dashboard: stored,
    /// logged, and on acceptance the holder's token forgotten here (the store voids it; other
    /// replicas hear of it through the token notification).
    func decideRegistration(id: String, accept: Bool, by actor: String) async throws -> PendingRegistration {
        let decided = try await database.decideRegistration(id: id, accept: accept)
        if accept, let holder = decided.holder?.nodeId { auth.forgetNodeTokens(of: holder) }
        logger.notice(
            accept ? "pending registration accepted" : "pending registration rejected",
            metadata: [
                "pending": "\(id)", "node": "\(decided.holder?.nodeId ?? "-")", "hostname": "\(decided.newcomer.hostname)",
                "reason": "\(decided.reason)", "by": "\(actor)",
            ])
        return decided
    }

    func nodeInfo(_ n: StoredNode, now: Date = Date()) -> NodeInfo {
        let config = n.config ?? NodeConfig(generation: 0, config: .standardDefault.normalized())
        // A registration is news from the agent (lastSeenAt) but no figure: until its first
        // sample the node has never reported, not been online with nothing to show.
        let connection = NodeConnection.of(
            lastSeenAt: n.lastSample == nil ? nil : n.lastSeenAt?.timeIntervalSince1970,
            agentStopped: n.lastSample?.agentStopped == true,
            now: now.timeIntervalSince1970, offlineAfter: self.config.offlineAfterSeconds)
        let online = connection == .online
        let drift = n.appliedGeneration != config.generation
        var reason: String?
        if drift {
            if let e = n.applyError {
                reason = "apply failed: \(e)"
            } else if connection == .never {
                reason = "not yet applied (the agent has sent no sample yet"
                    + (n.lastSeenAt.map { "; registered \($0.formatted(.iso8601))" } ?? "") + ")"
            } else if !online {
                let since =
                    n.lastSeenAt.map {
                        "\(connection == .agentStopped ? "stopped" : "offline") since \($0.formatted(.iso8601))"
                    } ?? "never seen"
                reason = "not yet applied (agent \(since))"
            } else if let applied = n.appliedGeneration {
                reason = "applied generation \(applied), desired \(config.generation)"
            } else {
                reason = "not yet applied (desired generation \(config.generation))"
            }
        }
        return NodeInfo(
            id: n.id, name: n.name, machineId: n.machineId, labels: n.labels, kernel: n.kernel,
            memTotalBytes: n.memTotalBytes, numaNodes: n.numaNodes, ksmFeatures: n.ksmFeatures,
            agentVersion: n.agentVersion, registeredAt: n.registeredAt, lastSeenAt: n.lastSeenAt, online: online,
            connection: connection, config: config, phase: n.phase, phaseReason: n.phaseReason, appliedGeneration: n.appliedGeneration,
            applyError: n.applyError, drift: drift, driftReason: reason, lastSample: n.lastSample,
            processes: n.processes, processesAt: n.processesAt,
            findings: Self.findings(n))
    }

    /// Why KSM saves little on the node, from its newest sample and process report. The ksmd CPU
    /// finding measures against the node's budget (`maxCpuPercent`) when its config sets one,
    /// `Findings.defaultCPUBudgetPercent` otherwise.
    static func findings(_ n: StoredNode) -> [Finding] {
        guard n.deletedAt == nil else { return [] }
        let s = n.lastSample
        return Findings.evaluate(
            NodeFacts(
                status: s?.agentStopped == true ? nil : s?.status, pageSize: s?.pageSize ?? n.pageSize ?? 4096,
                ksmdCPUPercent: s?.ksmdCPUPercent, cpuBudgetPercent: n.config?.config.maxCpuPercent,
                applyError: n.applyError,
                processes: n.processes,
                sampleRefusal: n.sampleRefusal.map { ($0.reason, ReportTime.iso($0.at.timeIntervalSince1970)) },
                // The config as the operator set it, against the kernel the agent last told of.
                configIssues: n.config?.config.issues(onKernelWith: n.ksmFeatures, kernel: n.kernel).map(\.message) ?? []))
    }
}
