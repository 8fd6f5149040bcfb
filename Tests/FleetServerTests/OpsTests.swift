import FleetAPI
import FleetClient
import FleetTestSupport
import Foundation
import Testing

@Suite struct OpsTests {
    @Test func healthReadinessMetricsAndTheSpec() async throws {
        let h = try await Harness.start()
        defer { Task { await h.finish() } }
        let anon = try Fixtures.client(h.server.baseURL, token: nil)
        #expect(try await anon.send(method: "GET", path: "/healthz").status == 200)
        #expect(try await anon.send(method: "GET", path: "/readyz").status == 200)
        let (reg, node) = try await h.register(hostname: "metered")
        _ = try await node.pushSamples(nodeId: reg.nodeId, Fixtures.batch([1]))
        // /metrics needs a viewer credential (issue 14: it lists node names and savings).
        let refused = try await anon.send(method: "GET", path: "/metrics")
        #expect(refused.status == 401, "anonymous scrape: \(refused.status)")
        #expect(errorBody(refused)?.error.code == "unauthorized")
        let metrics = try await h.admin.send(method: "GET", path: "/metrics")
        #expect(metrics.status == 200)
        let text = metrics.text
        let m = MetricsText(text)
        func value(_ name: String) -> Double? { m.node(name, id: reg.nodeId, node: "metered") }
        let sample = Fixtures.sample(1)
        for (name, expected) in [
            ("ksmfleet_node_saved_bytes", Double(sample.savedBytes)), ("ksmfleet_node_pages_sharing", 1000),
            ("ksmfleet_node_ksmd_cpu_percent", 2.5), ("ksmfleet_node_config_generation_desired", 1),
            ("ksmfleet_node_config_generation_applied", 1), ("ksmfleet_node_full_scans_total", 0),
            ("ksmfleet_node_ksmd_cpu_seconds_total", 0.5), ("ksmfleet_node_online", 1), ("ksmfleet_node_drift", 0),
        ] {
            #expect(value(name) == expected, "\(name): \(value(name).map(String.init(describing:)) ?? "missing")")
        }
        #expect(value("ksmfleet_node_seconds_since_last_seen") != nil)
        #expect(m.types["ksmfleet_node_full_scans_total"] == "counter")
        #expect(m.types["ksmfleet_node_ksmd_cpu_seconds_total"] == "counter")
        #expect(m.values["ksmfleet_nodes"] == 1)
        #expect(m.values["ksmfleet_http_requests_total{route=\"/api/v1/nodes/{id}/samples\",method=\"POST\",status=\"200\"}"] == 1)
        #expect(text.contains("ksmfleet_http_request_duration_seconds_bucket{"))
        // `?fleet=false`: this process's own series, no fleet or node series; the database
        // answers (a ping).
        let own = try await h.admin.send(method: "GET", path: "/metrics?fleet=false")
        #expect(own.status == 200)
        let o = MetricsText(own.text)
        #expect(o.values["ksmfleet_database_up"] == 1 && o.values["ksmfleet_config_waiters"] == 0, "\(own.text)")
        #expect(o.values["ksmfleet_samples_stored_total"] == 1)
        #expect(o.values["ksmfleet_nodes"] == nil && !own.text.contains("ksmfleet_node_"), "\(own.text)")
        #expect(o.values["ksmfleet_http_requests_total{route=\"/api/v1/nodes/{id}/samples\",method=\"POST\",status=\"200\"}"] == 1)
        #expect(try await h.admin.send(method: "GET", path: "/metrics?fleet=true").text.contains("ksmfleet_node_saved_bytes{"))
        // An empty value is none: the default, the fleet's series.
        #expect(try await h.admin.send(method: "GET", path: "/metrics?fleet=").text.contains("ksmfleet_node_saved_bytes{"))
        let odd = try await h.admin.send(method: "GET", path: "/metrics?fleet=maybe")
        #expect(odd.status == 422 && errorBody(odd)?.error.field == "fleet", "\(odd.status) \(odd.text)")
        #expect(try await anon.send(method: "GET", path: "/metrics?fleet=false").status == 401)
        let spec = try await anon.send(method: "GET", path: "/openapi.yaml")
        #expect(spec.status == 200 && spec.text.hasPrefix("openapi: 3"))
        #expect(spec.text.contains("/api/v1/nodes/{id}/config"))
    }
}
