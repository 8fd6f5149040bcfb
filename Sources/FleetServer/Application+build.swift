import FleetAPI
import FleetStore
import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Logging
import ServiceLifecycle

/// Builds the server: opens (and migrates) the database in `config.dataDir`, settles the admin
/// token, and wires the routes. The executable and the tests start it the same way.
public func buildApplication(_ config: ServerConfig) async throws -> FleetServerService {
    var logger = Logger(label: "ksmfleet.server")
    logger.logLevel = config.logLevel
    try FileManager.default.createDirectory(
        at: config.dataDir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
    let database = try FleetDatabase.open(config.database ?? config.databasePath.path, logger: logger)
    logger.info("store opened", metadata: ["engine": "\(database.engine)", "database": "\(database.path)"])
    database.setRequestDeadline(ServerConfig.duration(config.databaseRequestDeadlineSeconds, ifNotANumber: 60))
    let adminHash = try await AdminToken.settle(config, database: database, logger: logger)
    let state = ServerState(config: config, database: database, adminTokenHash: adminHash, logger: logger)

    // The server's own TLS, loaded (and checked) before anything listens.
    let tls = try config.tls.map { try ServerTLS(files: $0) }

    let router = Router(context: FleetRequestContext.self)
    // Middleware first: routes capture the middleware added before them.
    router.add(middleware: MetricsMiddleware(metrics: state.metrics))
    // Secure cookies and HSTS over HTTPS (own TLS or a trusted proxy's X-Forwarded-Proto).
    router.add(middleware: TransportSecurityMiddleware(security: state.transport))
    router.add(middleware: ErrorMiddleware(outage: state.outage))
    router.add(
        middleware: FailedAuthLimitMiddleware(limiter: state.failedAuthLimiter) { request, context in
            state.clientAddress(request, context: context)
        })
    router.add(middleware: LogRequestsMiddleware(.debug))

    // Every route is registered through the route table (RouteTable.swift: who may do what).
    let routes = CheckedRouter(router: router, state: state)
    OpsController(state: state).addRoutes(to: routes)
    AgentController(state: state).addRoutes(to: routes)
    NodesController(state: state).addRoutes(to: routes)
    ApplyController(state: state).addRoutes(to: routes)
    EnrollmentTokensController(state: state).addRoutes(to: routes)
    IdentityController(state: state).addRoutes(to: routes)
    // ---- Other features register their controllers here (one line each): ----
    ReportsController(state: state).addRoutes(to: routes)
    CredentialsController(state: state).addRoutes(to: routes)
    AuditController(state: state).addRoutes(to: routes)
    try DashboardController(state: state).addRoutes(to: routes)
    // ---- end of controller registrations ----
    try routes.verify()
    let services: [any Service] = [
        // ---- Background services (rollups, retention) register here, one line each: ----
        RollupService(state: state, rollupInterval: ServerConfig.duration(config.rollupIntervalSeconds, ifNotANumber: 10)),
        ConfigNotificationService(state: state),
        ReloadService(tls: tls, database: database, logger: logger),
        DatabaseOutageService(outage: state.outage, database: database),
    ]

    let connections = ConnectionLimit(limit: config.maxConnections ?? ConnectionLimit.fromFileLimit(), logger: logger)
    logger.info("connection limit", metadata: ["max_connections": "\(connections.limit)"])
    // Bytes NIO's HTTP parser refuses get the API's JSON error (HTTPParseErrorHandler).
    let parseLogger = logger
    let http1 = HTTPServerBuilder.http1(
        configuration: .init(additionalChannelHandlers: [connections.handler(), HTTPParseErrorHandler(logger: parseLogger)]))
    let onRunning = config.onServerRunning
    let runningLogger = logger
    let app = Application(
        router: router,
        server: try tls.map { try HTTPServerBuilder.tls(http1, tlsConfiguration: $0.configuration) } ?? http1,
        configuration: .init(
            address: .hostname(config.host, port: config.port), serverName: "ksmfleet", backlog: 4096),
        services: services,
        onServerRunning: { channel in
            let port = channel.localAddress?.port ?? 0
            runningLogger.info(
                "ksmfleet-server listening",
                metadata: ["host": "\(config.host)", "port": "\(port)", "scheme": "\(tls == nil ? "http" : "https")"])
            await onRunning?(port)
        },
        logger: logger)
    return FleetServerService(
        app: app,
        shutdown: ShutdownStart(
            logger: logger, database: database,
            databaseGrace: ServerConfig.duration(config.shutdownDatabaseGraceSeconds, atLeast: 0, ifNotANumber: 5)))
}

/// The admin token: from the environment/flag (overrides), else the stored hash, else a new
/// random one written to `<dataDir>/admin-token` (0600) and handed once to the caller.
enum AdminToken {
    static func settle(_ config: ServerConfig, database: FleetDatabase, logger: Logger) async throws -> String {
        if let token = config.adminToken, !token.isEmpty {
            let hash = Secrets.hash(token)
            if try await database.adminTokenHash() != hash {
                try await database.setAdminTokenHash(hash)
                logger.info("admin token set from the environment")
            }
            return hash
        }
        if let stored = try await database.adminTokenHash() { return stored }
        let token = Secrets.newToken(.admin)
        let hash = Secrets.hash(token)
        let file = config.adminTokenFile
        try? FileManager.default.removeItem(at: file)
        try writeSecret(Data((token + "\n").utf8), to: file.path)
        // A replica that started at the same moment on the same database may have stored its
        // own token first: then that one is the fleet's, and this one is thrown away.
        let stored = try await database.claimAdminTokenHash(hash)
        guard stored == hash else {
            try? FileManager.default.removeItem(at: file)
            logger.notice("another replica generated the admin token first; it is in that replica's data directory")
            return stored
        }
        logger.notice("generated an admin token", metadata: ["file": "\(file.path)"])
        config.onAdminTokenGenerated?(token, file)
        return hash
    }

    /// Writes a secret readable by its owner only from the first byte: created 0600 (whatever
    /// the umask) under a temporary name, synced, then renamed into place. Foundation's
    /// `createFile(attributes:)` wrote the token at the umask's mode (0644) and chmodded it after
    /// the rename: a reader could open it meanwhile and keep the descriptor.
    static func writeSecret(_ data: Data, to path: String) throws {
        let tmp = path + ".tmp-\(getpid())"
        unlink(tmp)
        let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw CocoaError(.fileWriteNoPermission, userInfo: [NSFilePathErrorKey: tmp]) }
        var ok = fchmod(fd, 0o600) == 0
        data.withUnsafeBytes { buf in
            var offset = 0
            while ok, offset < buf.count {
                let n = write(fd, buf.baseAddress! + offset, buf.count - offset)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { ok = false } else { offset += n }
            }
        }
        ok = ok && fsync(fd) == 0
        close(fd)
        guard ok, rename(tmp, path) == 0 else {
            unlink(tmp)
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: path])
        }
    }
}
