import FleetAPI
import FleetStore
import Foundation
import Hummingbird

/// `/healthz`, `/readyz`, `/metrics`, `/openapi.yaml`.
struct OpsController<Context: RequestContext>: Sendable {
    let state: ServerState

    /// How long a scrape's read of the nodes may take on PostgreSQL before the page answers
    /// without them: with the credential's lookup (`Scrapers.lookupDeadline`), within
    /// Prometheus's default scrape timeout of 10 s.
    static var metricsReadDeadline: Duration { .seconds(7) }

    func addRoutes(to router: CheckedRouter<Context>) {
        router.on(.get, "/healthz") { _, _ in try HTTP.json(["status": "ok"]) }
        router.on(.get, "/readyz") { _, _ in
            guard await state.database.ping() else {
                throw APIError(.serviceUnavailable, code: "not_ready", message: "the database does not answer")
            }
            // It answers a query, but requests were refused in the last seconds (a full disk, a
            // read-only database: reads work, writes fail).
            if let refused = state.outage.refused(within: .seconds(5)) {
                throw APIError(
                    .serviceUnavailable, code: "not_ready", message: "the database refuses requests: \(refused.summary)")
            }
            return try HTTP.json(["status": "ready"])
        }
        router.on(.get, "/metrics") { request, _ in
            // While the database cannot be read (within `metricsReadDeadline`) the page still
            // answers, with what this server knows itself and `ksmfleet_database_up` 0: a scrape
            // that fails would only say the target is down. The refusal counts in the outage like
            // any other request's. A credential taken from memory (the database could not be
            // asked about it) gets no fleet data, whatever a read would give now.
            //
            // `?fleet=false`: this process's own series only (requests, samples stored, waiting
            // polls, the change feed, whether the database answers), without reading the nodes.
            // Replicas on one database each serve the same fleet and node series: Prometheus
            // scrapes every replica with it and takes the fleet's from one job (README).
            let fleet = try HTTP.boolQuery(request, "fleet") ?? true
            var nodes: [NodeInfo]?
            var answers = true
            if !fleet {
                answers = await DatabaseWork.$deadline.withValue(Self.metricsReadDeadline) { await state.database.ping() }
            } else if case .credential(_, remembered: true) = Caller.current {
                nodes = nil
            } else {
                do {
                    nodes = try await DatabaseWork.$deadline.withValue(Self.metricsReadDeadline) {
                        try await state.database.nodes().map { state.nodeInfo($0) }
                    }
                } catch {
                    guard let unavailable = DatabaseUnavailable.of(error) else { throw error }
                    if !unavailable.atShutdown { state.outage.refused(unavailable, path: request.uri.path, write: false) }
                }
            }
            return HTTP.text(
                state.metrics.page(
                    nodes: nodes, waiting: state.waiters.waitingCount, feedLive: state.waiters.changeFeedLive,
                    databaseUp: answers && state.outage.refused(within: .seconds(5)) == nil, fleet: fleet),
                contentType: "text/plain; version=0.0.4; charset=utf-8")
        }
        router.on(.get, "/openapi.yaml") { _, _ in
            HTTP.text(OpenAPISpec.yaml, contentType: "application/yaml; charset=utf-8")
        }
    }
}

/// The API description, embedded in the binary at build time (the server never reads the
/// source tree).
enum OpenAPISpec {
    static let yaml = String(decoding: PackageResources.openapi_yaml, as: UTF8.self)
}
