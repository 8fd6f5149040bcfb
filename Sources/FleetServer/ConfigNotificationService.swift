import FleetStore
import Logging
import ServiceLifecycle

/// Replicas on one PostgreSQL database: wakes this replica's long-polls when another replica
/// changes a config (the store's LISTEN/NOTIFY, `FleetDatabase.followConfigChanges`). A change
/// made here wakes its waiters directly and comes back as a notice too, which is then known
/// (`ConfigWaiters.hear`) and ignored. On SQLite (one server) it does nothing.
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
                { notices in Self.hear(notices, state) },
                resync: { first in
                    // Changes committed before listening began (at start, or while the listening
                    // connection was down) were not heard: nothing heard of before is trusted
                    // (a poll reads the store again), and every waiting node gets its config
                    // read again.
                    state.waiters.changeFeedStarted()
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
                },
                interrupted: { state.waiters.changeFeedStopped() },
                check: Self.checkInterval(state.config.listenCheckSeconds))
        }
    }

    /// `ServerConfig.listenCheckSeconds` as a duration: 0.1 s to an hour (10 s if not a number).
    static func checkInterval(_ seconds: Double) -> Duration {
        guard seconds.isFinite else { return .seconds(10) }
        return .milliseconds(Int64(min(max(seconds, 0.1), 3600) * 1000))
    }

    /// The nodes' changes of one notification, committed by any replica, this one's included:
    /// what each means here is worked out at once (`ConfigWaiters.hear`), and the changes this
    /// replica has not notified itself are recorded at once, waking their waiters. A config is
    /// decoded only for a node waiting here (a replica hears the whole fleet's changes), and once
    /// for the nodes of a notification, which share it.
    static func hear(_ notices: [ConfigChangeNotice], _ state: ServerState) {
        var heard: [(nodeId: String, generation: Int64)] = []
        for notice in notices where !notice.deleted {
            if let generation = notice.generation { heard.append((notice.nodeId, generation)) }
        }
        var interests = state.waiters.hear(heard).makeIterator()
        var changes: [(nodeId: String, change: ConfigWaiters.Change)] = []
        var decoding = ConfigDecoding()
        for notice in notices {
            if notice.deleted {
                changes.append((notice.nodeId, .deleted))
                continue
            }
            guard let generation = notice.generation else {
                Task { await readAndWake(state, nodeId: notice.nodeId) }
                continue
            }
            switch interests.next() {
            case .known, nil: continue
            case .waiting:
                if let config = notice.config(decoding: &decoding) {
                    changes.append((notice.nodeId, .config(config, fromFeed: true)))
                    continue
                }
                // Without its config (too long for the notification): as for an idle node, the
                // generation is recorded; the waiters, woken without a config, read the store
                // themselves (a failed read is their request's error, not a wait until the timeout).
                changes.append((notice.nodeId, .generation(generation)))
            case .idle: changes.append((notice.nodeId, .generation(generation)))
            }
        }
        if !changes.isEmpty { state.waiters.notify(changes) }
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
