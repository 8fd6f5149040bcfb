import FleetStore
import Logging
import ServiceLifecycle

/// Replicas on one PostgreSQL database: wakes this replica's long-polls when another replica
/// changes a config (the store's LISTEN/NOTIFY, `FleetDatabase.followConfigChanges`), and
/// forgets the node tokens it remembered when another replica replaces them (`Auth`,
/// `NodeTokenCache`). A change made here wakes its waiters directly and comes back as a notice
/// too, which is then known (`ConfigWaiters.hear`) and ignored; but a fleet apply of more than
/// `ServerConfig.applyDirectWakeLimit` nodes made here is woken by its notices while they come
/// (`ConfigWaiters.feedWakesOwnWrites`; a node whose notice has not come back after
/// `ServerConfig.applyNoticeGraceSeconds` is woken by the apply). On SQLite (one server) it does
/// nothing.
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
                { notices in
                    // The nodes of one notification share their config: it is decoded once.
                    var decoding = ConfigDecoding()
                    for notice in notices { Self.hear(notice, state, &decoding) }
                },
                resync: { first in
                    // Changes committed before listening began (at start, or while the listening
                    // connection was down) were not heard: nothing heard of before is trusted
                    // (a poll reads the store again), and every waiting node gets its config
                    // read again.
                    state.waiters.changeFeedStarted()
                    // Token changes made meanwhile were not heard either.
                    state.auth.nodeTokenChangesHeard()
                    let nodes = state.waiters.waitingNodeIds
                    if first {
                        logger.info("listening for config changes of other replicas", metadata: ["waiting": "\(nodes.count)"])
                    } else {
                        logger.warning(
                            "config notifications resumed; re-reading the configs of waiting nodes",
                            metadata: ["nodes": "\(nodes.count)"])
                    }
                    if nodes.isEmpty { return }
                    Task { await Self.reread(nodes, state) }
                },
                interrupted: {
                    state.waiters.changeFeedStopped()
                    state.auth.nodeTokenChangesUnheard()
                },
                check: ServerConfig.duration(state.config.listenCheckSeconds, atMost: 3600, ifNotANumber: 10))
        }
    }

    /// One node's change committed by any replica, this one's included. Its config is decoded
    /// only for a node waiting here: a replica hears the whole fleet's changes. A node's token
    /// change, or its deletion (a purge sends no token change: its row is deleted, not updated),
    /// makes this replica forget the node's tokens.
    static func hear(_ notice: ConfigChangeNotice, _ state: ServerState, _ decoding: inout ConfigDecoding) {
        if notice.tokenChanged {
            state.auth.forgetNodeTokens(of: notice.nodeId)
            return
        }
        if notice.deleted {
            state.auth.forgetNodeTokens(of: notice.nodeId)
            state.waiters.notify(notice.nodeId, config: nil)
            return
        }
        guard let generation = notice.generation else {
            Task { await readAndWake(state, nodeId: notice.nodeId) }
            return
        }
        switch state.waiters.hear(notice.nodeId, generation: generation) {
        case .known: return
        case .waiting:
            if let config = notice.config(decoding: &decoding) {
                state.waiters.notify(notice.nodeId, config: config, fromFeed: true)
                return
            }
            // Without its config (too long for the notification): as for an idle node, the
            // generation is recorded; the waiters, woken without a config, read the store
            // themselves (a failed read is their request's error, not a wait until the timeout).
            state.waiters.notify(notice.nodeId, generation: generation)
        case .idle: state.waiters.notify(notice.nodeId, generation: generation)
        }
    }

    /// Reads the config of each of `nodes` and wakes its waiters (after LISTEN resumed). While
    /// the database cannot serve (a PostgreSQL still starting up after a restart: LISTEN may
    /// connect before reads do) it waits a second and goes on with the same node, up to a minute,
    /// saying so once rather than once per waiting node.
    static func reread(_ nodes: [String], _ state: ServerState) async {
        var pending = nodes[...]
        var waited = 0
        while let nodeId = pending.first {
            do {
                try await wakeWithStoredConfig(state, nodeId: nodeId)
            } catch {
                if let unavailable = DatabaseUnavailable.of(error), waited < 60 {
                    if waited == 0 {
                        state.logger.warning(
                            "cannot re-read the configs of waiting nodes yet; retrying every second",
                            metadata: ["nodes": "\(pending.count)", "reason": "\(unavailable.detail)"])
                    }
                    waited += 1
                    try? await Task.sleep(for: .seconds(1))
                    continue
                }
                logReadFailure(state, nodeId: nodeId, error)
            }
            pending.removeFirst()
        }
    }

    static func readAndWake(_ state: ServerState, nodeId: String) async {
        do {
            try await wakeWithStoredConfig(state, nodeId: nodeId)
        } catch {
            logReadFailure(state, nodeId: nodeId, error)
        }
    }

    /// Reads the node's config from the store and hands it to the node's waiters.
    private static func wakeWithStoredConfig(_ state: ServerState, nodeId: String) async throws {
        let config = try await state.database.config(nodeId: nodeId)
        state.waiters.notify(nodeId, config: config)
    }

    private static func logReadFailure(_ state: ServerState, nodeId: String, _ error: any Error) {
        state.logger.error("could not read a changed config", metadata: ["node": "\(nodeId)", "error": "\(error)"])
    }
}
