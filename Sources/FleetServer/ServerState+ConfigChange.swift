import FleetAPI
import FleetStore
import Foundation
import KSMCore
import Logging

/// The one path of a config change, whoever asks for it (the API's PUT and PATCH, the dashboard's
/// config form): the store validates the new config, bumps the generation and writes the audit
/// record in one transaction; then the node's waiting long-poll wakes with the new config and the
/// change is logged. A kick (`kick(nodeId:actor:)`) and a fleet-wide apply (`fleetApplied`) are
/// the other config writes.
extension ServerState {
    /// Changes a node's config by `change` (from the stored config to the new one, or a
    /// `ConfigValidationError`). `ifMatch`: the generation the caller saw, or nil for any.
    /// Throws `StoreError.invalidConfig`, `.generationConflict` or `.nodeNotFound`.
    func changeConfig(
        node: StoredNode, ifMatch: Int64?, actor: String, action: String,
        _ change: @escaping @Sendable (KSMConfig) throws(ConfigValidationError) -> KSMConfig
    ) async throws -> ConfigChange {
        // What the node's kernel cannot do is refused here, before the agent would have to.
        let features = node.ksmFeatures
        let kernel = node.kernel
        let result = try await database.updateConfig(
            nodeId: node.id, ifMatch: ifMatch, actor: actor, action: action
        ) { base throws(ConfigValidationError) in
            let next = try change(base)
            let issues = next.issues(onKernelWith: features, kernel: kernel)
            if !issues.isEmpty && next.mode != base.mode { throw ConfigValidationError(issues) }
            return next
        }
        if result.changed {
            waiters.notify(result.nodeId, config: result.after)
            logger.info(
                "config changed",
                metadata: [
                    "node": "\(result.nodeId)", "name": "\(node.name)", "generation": "\(result.after.generation)",
                    "changes": "\(result.changes.joined(separator: "; "))", "by": "\(actor)",
                ])
        }
        return result
    }

    /// PATCH: the fields `patch` names replace the node's, the rest stay (audit action "patch").
    func patchConfig(node: StoredNode, _ patch: ConfigPatch, ifMatch: Int64?, actor: String) async throws
        -> ConfigChange
    {
        try await changeConfig(node: node, ifMatch: ifMatch, actor: actor, action: "patch") {
            base throws(ConfigValidationError) in try patch.applied(to: base)
        }
    }
}

extension ServerState {
    /// A fleet-wide apply has committed (`ApplyController`): its changed nodes' long-polls here
    /// learn of it and each change is logged.
    ///
    /// With the change feed live, this commit's notices wake this replica's long-polls as they
    /// wake every other replica's. Waking 20,000 nodes here too, on one of the machine's two
    /// cooperative threads, held this replica's answers back until the loop ended: its nodes got
    /// the change 0.6–0.8 s after the other replicas' did (docs/benchmarks.md, "The applying
    /// replica's answers"). A small apply still wakes them here at once
    /// (`ServerConfig.applyDirectWakeLimit`): cheap, and its polls do not wait for a LISTEN
    /// connection that may have stopped delivering unnoticed. A larger one checks after a grace
    /// period that its notices came back (`wakeUnheard`).
    func fleetApplied(_ items: [ApplyItem]) {
        let changed = items.compactMap { i in i.status == .changed ? i.config.map { (nodeId: i.nodeId, config: $0) } : nil }
        let wakeHere = changed.count <= config.applyDirectWakeLimit || !waiters.feedWakesOwnWrites
        if !wakeHere {
            let check = ContinuousClock.now + ServerConfig.duration(config.applyNoticeGraceSeconds, atMost: 3600, ifNotANumber: 2)
            let feedStarts = waiters.feedStarts
            let changes = changed.map { (nodeId: $0.nodeId, generation: $0.config.generation) }
            Task { await self.wakeUnheard(changes, at: check, feedStarts: feedStarts) }
        }
        for (nodeId, config) in changed {
            if wakeHere { waiters.notify(nodeId, config: config) }
            logger.info("config changed by fleet apply", metadata: ["node": "\(nodeId)", "generation": "\(config.generation)"])
        }
    }

    /// A fleet apply that left its wake-ups to its notices, at `deadline` (about
    /// `ServerConfig.applyNoticeGraceSeconds` after its commit): a node still waiting here that
    /// has not heard of its change is woken to read the store (`ConfigWaiters.wakeUnheard`), and
    /// the replica says so. The notices come back well within that (at 30,000 nodes on a
    /// saturated machine within 0.6 s of the apply's answer); one that has not means the LISTEN
    /// connection stalled without an error, which its next check
    /// (`ServerConfig.listenCheckSeconds`) replaces, and the polls here need not wait for that.
    /// The other replicas' polls do: they have nothing but their own LISTEN. If the feed started
    /// again meanwhile, its resync reads every waiting node's config and this check stands down.
    func wakeUnheard(
        _ changes: [(nodeId: String, generation: Int64)], at deadline: ContinuousClock.Instant, feedStarts: UInt64
    ) async {
        guard !changes.isEmpty else { return }
        try? await Task.sleep(until: deadline)
        var woken = 0
        var first: (nodeId: String, generation: Int64)?
        for change in changes where waiters.wakeUnheard(change.nodeId, generation: change.generation, feedStarts: feedStarts) {
            woken += 1
            if first == nil { first = change }
        }
        guard let first else { return }
        logger.warning(
            "notices of a fleet apply had not come back in time (LISTEN stalled, or this replica overloaded); woke the nodes waiting here to read their configs",
            metadata: [
                "nodes": "\(woken)", "changed": "\(changes.count)", "after_seconds": "\(config.applyNoticeGraceSeconds)",
                "node": "\(first.nodeId)", "generation": "\(first.generation)",
            ])
    }
}
