import FleetAPI
import FleetStore
import Foundation
import Hummingbird
import Logging
import ServiceLifecycle

/// Builds the server: opens (and migrates) the database in `config.dataDir`, settles the admin
/// token, and wires the routes. The executable and the tests start it the same way.
public func buildApplication(_ config: ServerConfig) async throws -> some ApplicationProtocol {
    var logger = Logger(label: "ksmfleet.server")
    logger.logLevel = config.logLevel
    try FileManager.default.createDirectory(
        at: config.dataDir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
    let database = try FleetDatabase(path: config.databasePath.path, logger: logger)
    let adminHash = try await AdminToken.settle(config, database: database, logger: logger)
    let state = ServerState(config: config, database: database, adminTokenHash: adminHash, logger: logger)

    let router = Router(context: BasicRequestContext.self)
    // Middleware first: routes capture the middleware added before them.
    router.add(middleware: MetricsMiddleware(metrics: state.metrics))
    router.add(middleware: ErrorMiddleware())
    router.add(middleware: LogRequestsMiddleware(.debug))

    OpsController(state: state).addRoutes(to: router)
    AgentController(state: state).addRoutes(to: router)
    NodesController(state: state).addRoutes(to: router)
    ApplyController(state: state).addRoutes(to: router)
    EnrollmentTokensController(state: state).addRoutes(to: router)
    // ---- Other features register their controllers here (one line each): ----
    ReportsController(state: state).addRoutes(to: router)
    try DashboardController(state: state).addRoutes(to: router)
    // ---- end of controller registrations ----
    let services: [any Service] = [
        // ---- Background services (rollups, retention) register here, one line each: ----
        RollupService(state: state),
        ShutdownLogService(logger: logger),
    ]

    let onRunning = config.onServerRunning
    let runningLogger = logger
    let app = Application(
        router: router,
        server: .http1(),
        configuration: .init(
            address: .hostname(config.host, port: config.port), serverName: "ksmfleet", backlog: 4096),
        services: services,
        onServerRunning: { channel in
            let port = channel.localAddress?.port ?? 0
            runningLogger.info("ksmfleet-server listening", metadata: ["host": "\(config.host)", "port": "\(port)"])
            await onRunning?(port)
        },
        logger: logger)
    return app
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
        let file = config.adminTokenFile
        try? FileManager.default.removeItem(at: file)
        guard
            FileManager.default.createFile(
                atPath: file.path, contents: Data((token + "\n").utf8), attributes: [.posixPermissions: 0o600])
        else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: file.path])
        }
        let hash = Secrets.hash(token)
        try await database.setAdminTokenHash(hash)
        logger.notice("generated an admin token", metadata: ["file": "\(file.path)"])
        config.onAdminTokenGenerated?(token, file)
        return hash
    }
}
