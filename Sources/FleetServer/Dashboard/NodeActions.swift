import FleetAPI
import FleetStore
import Foundation
import Hummingbird

/// The node page's two forms: the config edit and the kick (throttle mode).
extension DashboardController {
    /// The config form, through `ServerState.patchConfig` like the API's PATCH; a refused form
    /// comes back with its values as typed and the errors beside their fields (422).
    @Sendable func saveConfig(_ request: Request, context: Context) async throws -> Response {
        guard let session = try await sessions.signedIn(request) else { return DashboardPages.toLogin(request) }
        guard let data = try await DashboardForm.checked(request, session: session, logger: state.logger) else {
            return try pages.refused(session)
        }
        let (raw, stored) = try await node(context)
        guard let stored else { return try notFound(raw, session: session) }
        let form = try DashboardForm.decode(ConfigForm.self, from: data)
        var errors: [String: String] = [:]
        do {
            let patch = try form.patch()
            let change: ConfigChange
            do {
                change = try await state.patchConfig(
                    node: stored, patch, ifMatch: form.expectedGeneration, actor: session.credential.name)
            } catch StoreError.generationConflict(_, let current) {
                // Only kicks since the form was filled (each one a generation, throttle and
                // adaptive nodes get them all day): the config is the one the form was made
                // from, so the form applies to it. Anything else is a real conflict.
                guard !form.base.isEmpty, let now = try await state.database.config(nodeId: stored.id),
                    now.generation == current, ConfigForm.digest(now.config) == form.base
                else { throw StoreError.generationConflict(expected: form.expectedGeneration ?? 0, current: current) }
                change = try await state.patchConfig(node: stored, patch, ifMatch: current, actor: session.credential.name)
            }
            let base = "/nodes/" + HTML.q(stored.id)
            guard change.changed else { return DashboardPages.redirect(base + "?unchanged=1") }
            return DashboardPages.redirect(base + "?saved=\(change.after.generation)")
        } catch let e as ConfigForm.FieldErrors {
            errors = e.fields
        } catch StoreError.invalidConfig(let e) {
            for issue in e.issues where errors[issue.field] == nil { errors[issue.field] = issue.message }
        } catch StoreError.generationConflict(_, let current) {
            errors["_form"] =
                "Someone changed this config meanwhile (now generation \(current)). Reload the page to see it, then edit again."
        }
        return try await renderNode(
            request, info: state.nodeInfo(stored), session: session, form: form, errors: errors, flash: nil,
            status: .unprocessableContent)
    }

    @Sendable func kick(_ request: Request, context: Context) async throws -> Response {
        guard let session = try await sessions.signedIn(request) else { return DashboardPages.toLogin(request) }
        guard try await DashboardForm.checked(request, session: session, logger: state.logger) != nil else {
            return try pages.refused(session)
        }
        let (raw, stored) = try await node(context)
        guard let stored else { return try notFound(raw, session: session) }
        let config = try await state.kick(nodeId: stored.id, actor: session.credential.name)
        return DashboardPages.redirect("/nodes/\(HTML.q(stored.id))?kicked=\(config.kickCounter)")
    }
}
