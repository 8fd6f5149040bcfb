import FleetStore
import Logging
import ServiceLifecycle

/// Replicas on one PostgreSQL database: wakes this replica's long-polls when another replica
/// changes a config (the store's LISTEN/NOTIFY, `FleetDatabase.followConfigChanges`). A change
/// made here wakes its waiters directly and comes back as a notice too; the second wake-up
/// carries the same generation, which a long-poll ignores. On SQLite (one server) it does nothing.
struct ConfigNotificationService: Service {
    let state: ServerState

    func run() async throws {
        // A service that returns ends the whole server: on SQLite it just waits for shutdown.
        guard state.database.isShared else {
            try? await gracefulShutdown()
            return
        }
        let state = self.state
        let logger = state.logger
        await cancelWhenGracefulShutdown {
            await state.database.followConfigChanges(
                { notice in
                    if notice.needsRead {
                        Task { await Self.readAndWake(state, nodeId: notice.nodeId) }
                    } else {
                        state.waiters.notify(notice.nodeId, config: notice.config)
                    }
                },
                resync: { first in
                    // Changes committed before listening began (at start, or while the listening
                    // connection was down) were not heard: every waiting node gets its config
                    // read again.
                    let nodes = state.waiters.waitingNodeIds
                    if first {
                        logger.info("listening for config changes of other replicas", metadata: ["waiting": "\(nodes.count)"])
                    } else {
                        logger.warning(
                            "config notifications resumed; re-reading the configs of waiting nodes",
                            metadata: ["nodes": "\(nodes.count)"])
                    }
                    if nodes.isEmpty { return }
                    Task { for id in nodes { await Self.readAndWake(state, nodeId: id) } }
                })
        }
    }

    static func readAndWake(_ state: ServerState, nodeId: String) async {
        do {
            let config = try await state.database.config(nodeId: nodeId)
            state.waiters.notify(nodeId, config: config)
        } catch {
            state.logger.error(
                "could not read a changed config", metadata: ["node": "\(nodeId)", "error": "\(error)"])
        }
    }
}
