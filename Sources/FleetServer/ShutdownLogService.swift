import Logging
import ServiceLifecycle

/// Says when the server starts to shut down (SIGTERM/SIGINT): it stops accepting connections,
/// ends the long-polls and lets open requests finish. Operators saw nothing in the log before.
struct ShutdownLogService: Service {
    let logger: Logger

    func run() async throws {
        // Returns when a graceful shutdown begins; throws on plain cancellation (nothing to say).
        try await gracefulShutdown()
        logger.notice("ksmfleet-server shutting down: no new connections; open requests and long-polls are ending")
    }
}
