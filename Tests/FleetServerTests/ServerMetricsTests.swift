import FleetAPI
import FleetTestSupport
import Foundation
import KSMCore
import Testing

@testable import FleetServer

/// The exposition on its own: every series from the one registry, counters named `…_total` and
/// typed as counters, per-node series that follow the nodes (deleted, renamed, hostile names).
@Suite struct ServerMetricsTests {
    let now = Date(timeIntervalSince1970: 1_790_000_100)

    func node(_ id: String, _ name: String, sample: StatusSample? = Fixtures.sample(1)) -> NodeInfo {
        NodeInfo(
            id: id, name: name, machineId: "m-\(id)", labels: [:], kernel: "6.8", memTotalBytes: 1 << 34, numaNodes: 1,
            ksmFeatures: [], agentVersion: "t", registeredAt: now.addingTimeInterval(-600),
            lastSeenAt: now.addingTimeInterval(-30), online: true, connection: .online,
            config: NodeConfig(generation: 1, config: .standardDefault), phase: sample?.phase,
            phaseReason: sample?.phaseReason, appliedGeneration: sample?.appliedGeneration, applyError: nil,
            drift: false, driftReason: nil, lastSample: sample)
    }

    @Test func countersEndInTotalAndEveryFamilyIsTypedOnce() {
        let metrics = ServerMetrics()
        metrics.record(route: "/healthz", method: "GET", status: 200, duration: .milliseconds(2))
        metrics.samplesStored(3, duplicates: 1)
        let text = metrics.render(nodes: [node("n1", "web-1")], waiting: 2, now: now)
        let m = MetricsText(text)
        #expect(!m.types.isEmpty)
        for (name, type) in m.types {
            #expect((type == "counter") == name.hasSuffix("_total"), "\(name) is a \(type)")
        }
        let typeLines = text.split(separator: "\n").filter { $0.hasPrefix("# TYPE ") }
        #expect(typeLines.count == Set(typeLines).count, "a family declared twice")
        #expect(m.types["ksmfleet_node_full_scans_total"] == "counter")
        #expect(m.types["ksmfleet_node_ksmd_cpu_seconds_total"] == "counter")
        #expect(m.types["ksmfleet_node_ksmd_cpu_percent"] == "gauge")
        #expect(m.types["ksmfleet_node_full_scans"] == nil)
        #expect(m.values["ksmfleet_nodes"] == 1)
        #expect(m.values["ksmfleet_config_waiters"] == 2)
        #expect(m.values["ksmfleet_samples_stored_total"] == 3)
        #expect(m.values["ksmfleet_samples_duplicate_total"] == 1)
        #expect(m.values["ksmfleet_http_requests_total{route=\"/healthz\",method=\"GET\",status=\"200\"}"] == 1)
        #expect(m.node("ksmfleet_node_seconds_since_last_seen", id: "n1", node: "web-1") == 30)
    }

    @Test func fleetFiguresAreTheFleetNowFiguresAndStoppedAgentsShowApart() {
        let metrics = ServerMetrics()
        var stopped = node("n2", "b")
        stopped.connection = .agentStopped
        stopped.online = false
        let nodes = [node("n1", "a"), stopped]
        let m = MetricsText(metrics.render(nodes: nodes, waiting: 0, now: now))
        let fleet = FleetNow.of(nodes)
        #expect(m.values["ksmfleet_fleet_saved_bytes"] == Double(fleet.savedBytes))
        #expect(m.values["ksmfleet_fleet_not_reporting_saved_bytes"] == Double(fleet.lastKnownSavedBytesNotReporting))
        #expect(fleet.lastKnownSavedBytesNotReporting > 0)
        #expect(m.values["ksmfleet_nodes_by_connection{connection=\"agentStopped\"}"] == 1)
        #expect(m.values["ksmfleet_nodes_by_connection{connection=\"online\"}"] == 1)
        #expect(m.node("ksmfleet_node_agent_stopped", id: "n2", node: "b") == 1)
        #expect(m.node("ksmfleet_node_online", id: "n2", node: "b") == 0)
    }

    @Test func theCountersCarryTheAgentsTotalsAndFollowAReboot() {
        let metrics = ServerMetrics()
        var sample = Fixtures.sample(7)  // ksmdCPUSeconds 3.5
        sample.status.fullScans = 42
        var m = MetricsText(metrics.render(nodes: [node("n1", "a", sample: sample)], waiting: 0, now: now))
        #expect(m.node("ksmfleet_node_full_scans_total", id: "n1", node: "a") == 42)
        #expect(m.node("ksmfleet_node_ksmd_cpu_seconds_total", id: "n1", node: "a") == 3.5)
        // The same scrape again does not add anything up.
        m = MetricsText(metrics.render(nodes: [node("n1", "a", sample: sample)], waiting: 0, now: now))
        #expect(m.node("ksmfleet_node_full_scans_total", id: "n1", node: "a") == 42)
        #expect(m.node("ksmfleet_node_ksmd_cpu_seconds_total", id: "n1", node: "a") == 3.5)
        // The node rebooted: its totals start again, and so do the counters (a reset for rate()).
        sample.status.fullScans = 2
        sample.ksmdCPUSeconds = 0.25
        m = MetricsText(metrics.render(nodes: [node("n1", "a", sample: sample)], waiting: 0, now: now))
        #expect(m.node("ksmfleet_node_full_scans_total", id: "n1", node: "a") == 2)
        #expect(m.node("ksmfleet_node_ksmd_cpu_seconds_total", id: "n1", node: "a") == 0.25)
    }

    @Test func seriesFollowDeletedRenamedAndSampleLessNodes() {
        let metrics = ServerMetrics()
        _ = metrics.render(nodes: [node("n1", "old-name"), node("n2", "gone")], waiting: 0, now: now)
        let text = metrics.render(nodes: [node("n1", "new-name"), node("n3", "fresh", sample: nil)], waiting: 0, now: now)
        let m = MetricsText(text)
        #expect(!text.contains("old-name"), "a renamed node kept its old series")
        #expect(!text.contains("\"gone\""), "a deleted node kept its series")
        #expect(m.node("ksmfleet_node_pages_sharing", id: "n1", node: "new-name") == 1000)
        #expect(m.node("ksmfleet_node_online", id: "n3", node: "fresh") == 1)
        #expect(m.node("ksmfleet_node_pages_sharing", id: "n3", node: "fresh") == nil)
        #expect(m.node("ksmfleet_node_full_scans_total", id: "n3", node: "fresh") == nil)
        #expect(m.values["ksmfleet_nodes"] == 2)
        // The last node deleted: no per-node series at all.
        let empty = MetricsText(metrics.render(nodes: [], waiting: 0, now: now))
        #expect(empty.values.keys.filter { $0.hasPrefix("ksmfleet_node_") }.isEmpty)
        #expect(empty.values["ksmfleet_nodes"] == 0)
    }

    @Test func aHostileNodeNameIsAnEscapedLabelValue() {
        let metrics = ServerMetrics()
        let text = metrics.render(nodes: [node("n1", "web\"1\\x\nevil 1")], waiting: 0, now: now)
        let m = MetricsText(text)
        #expect(m.values["ksmfleet_node_online{node_id=\"n1\",node=\"web\\\"1\\\\x\\nevil 1\"}"] == 1, "\(text)")
        #expect(!text.contains("\nevil"), "the name broke a line")
    }
}
