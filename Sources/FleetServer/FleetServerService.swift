import FleetStore
import Hummingbird
import Logging
import ServiceLifecycle

/// The server as one service: Hummingbird's application, plus what must happen as a graceful
/// shutdown (SIGTERM/SIGINT) begins (`ShutdownStart`). Not a service inside the application:
/// its service group shuts its services down in reverse order, the HTTP server first, so they
/// hear of the shutdown only once every request under way has ended — and a request held by a
/// database that stopped answering ends only at its deadline.
public struct FleetServerService: Service {
    let app: any Service
    let shutdown: ShutdownStart

    public func run() async throws {
        // The application's own service group hears of the shutdown from this task as before.
        try await withGracefulShutdownHandler {
            try await app.run()
        } onGracefulShutdown: {
            shutdown.began()
        }
    }

    /// Runs the server until SIGTERM or SIGINT, then shuts it down gracefully.
    public func runService() async throws {
        try await ServiceGroup(
            configuration: .init(services: [self], gracefulShutdownSignals: [.sigterm, .sigint], logger: shutdown.logger)
        ).run()
    }
}

/// What a graceful shutdown does besides the HTTP server's own part: says that it began
/// (operators saw nothing in the log before), and after `databaseGrace` gives up the database
/// work still under way. Requests and passes normally end within milliseconds of the signal; a
/// PostgreSQL that stopped answering (a partition, a hung host) would hold them until their
/// deadlines — a minute for requests, ten for a rollup pass — and the process with them, past
/// systemd's `TimeoutStopSec` (30 s in the shipped unit) to a SIGKILL.
struct ShutdownStart: Sendable {
    let logger: Logger
    let database: FleetDatabase
    let databaseGrace: Duration

    func began() {
        logger.notice("ksmfleet-server shutting down: no new connections; open requests and long-polls are ending")
        // Not waited for: a shutdown that ends sooner is not held by the timer (the process
        // exits with it).
        let (logger, database, grace) = (logger, database, databaseGrace)
        Task.detached {
            try? await Task.sleep(for: grace)
            let given = database.abandonWorkUnderWay()
            if !given.isEmpty {
                logger.warning(
                    "database work still under way at the end of the shutdown grace was given up (its transactions roll back)",
                    metadata: [
                        "transactions": "\(given.transactions)", "connecting": "\(given.connecting)", "queued": "\(given.queued)",
                        "grace_s": "\(grace / .seconds(1))",
                    ])
            }
        }
    }
}
