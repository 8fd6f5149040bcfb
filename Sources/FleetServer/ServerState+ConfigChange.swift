import FleetAPI
import FleetStore
import Foundation
import KSMCore
import Logging

/// The one path of a config change, whoever asks for it (the API's PUT and PATCH, the dashboard's
/// config form): the store validates the new config, bumps the generation and writes the audit
/// record in one transaction; then the node's waiting long-poll wakes with the new config and the
/// change is logged. A kick (`kick(nodeId:actor:)`) is the other config write.
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
