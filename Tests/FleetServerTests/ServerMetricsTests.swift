import FleetAPI
import FleetTestSupport
import Foundation
import KSMCore
import Prometheus
import Testing

@testable import FleetServer

/// The exposition on its own: counters named `…_total` and typed as counters, per-node series
/// that follow the nodes (deleted, renamed, hostile names), and the whole text line for line what
/// swift-prometheus's registry writes for the same series (the server wrote its request counters
/// and histograms through that registry until they joined the rest in `Exposition`).
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
        #expect(m.values["ksmfleet_config_feed_live"] == 1)
        #expect(MetricsText(metrics.render(nodes: [], waiting: 0, feedLive: false, now: now)).values["ksmfleet_config_feed_live"] == 0)
        #expect(m.values["ksmfleet_samples_stored_total"] == 3)
        #expect(m.values["ksmfleet_samples_duplicate_total"] == 1)
        #expect(m.values["ksmfleet_http_requests_total{route=\"/healthz\",method=\"GET\",status=\"200\"}"] == 1)
        #expect(m.node("ksmfleet_node_seconds_since_last_seen", id: "n1", node: "web-1") == 30)
    }

    /// The database unreadable for a scrape: what the server counted and knows itself, database
    /// up 0, and no fleet or node series at all (a saving of 0 would be a false figure); the
    /// nodes read but a request refused moments ago: database up 0, the fleet's series as read.
    @Test func aScrapeWithoutTheDatabaseSaysSoAndShowsNoFleetFigures() {
        let metrics = ServerMetrics()
        metrics.record(route: "/api/v1/nodes", method: "GET", status: 503, duration: .milliseconds(3))
        metrics.samplesStored(5, duplicates: 0)
        let down = metrics.render(nodes: nil, waiting: 4, feedLive: false, now: now)
        expectWellFormed(down)
        let m = MetricsText(down)
        #expect(m.values["ksmfleet_database_up"] == 0)
        #expect(m.values["ksmfleet_config_waiters"] == 4)
        #expect(m.values["ksmfleet_config_feed_live"] == 0)
        #expect(m.values["ksmfleet_samples_stored_total"] == 5)
        #expect(m.values["ksmfleet_http_requests_total{route=\"/api/v1/nodes\",method=\"GET\",status=\"503\"}"] == 1)
        for absent in ["ksmfleet_nodes ", "ksmfleet_fleet_", "ksmfleet_nodes_by_connection", "ksmfleet_node_"] {
            #expect(!down.contains(absent), "\(absent) with the database unread")
        }

        let refused = MetricsText(metrics.render(nodes: [node("n1", "a")], waiting: 0, databaseUp: false, now: now))
        #expect(refused.values["ksmfleet_database_up"] == 0)
        #expect(refused.values["ksmfleet_nodes"] == 1)
        #expect(refused.node("ksmfleet_node_online", id: "n1", node: "a") == 1)
        #expect(MetricsText(metrics.render(nodes: [], waiting: 0, now: now)).values["ksmfleet_database_up"] == 1)
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

    /// Nodes whose series test the edges: a hostile name, no sample, a counter with a fraction,
    /// one too large for the registry's integer part, a negative one and not-a-number (no
    /// series), a stopped agent, a node never heard from.
    func edgeNodes() -> [NodeInfo] {
        var fraction = Fixtures.sample(7)  // ksmdCPUSeconds 3.5
        fraction.status.fullScans = 42
        var huge = Fixtures.sample(2)
        huge.status.fullScans = 9_007_199_254_740_993
        huge.ksmdCPUSeconds = 1e16
        var broken = Fixtures.sample(3)
        broken.ksmdCPUSeconds = -1
        broken.ksmdCPUPercent = .nan
        var stopped = node("n5", "stopped.example", sample: Fixtures.sample(4, pagesSharing: 0))
        stopped.connection = .agentStopped
        stopped.online = false
        stopped.drift = true
        var never = node("n6", "never", sample: nil)
        never.lastSeenAt = nil
        never.connection = .never
        never.online = false
        never.appliedGeneration = nil
        return [
            node("n1", "web\"1\\x\nevil 1", sample: fraction), node("n2", "big", sample: huge),
            node("n3", "broken", sample: broken), node("n4", "fresh", sample: nil), stopped, never,
        ]
    }

    /// What the server wrote while every series lived in its registry: the fleet's gauges and a
    /// labelled gauge or counter per node per family, set as `ServerMetrics` set them.
    func registryText(nodes: [NodeInfo], waiting: Int, feedLive: Bool = true) -> String {
        let registry = PrometheusCollectorRegistry()
        func gauge(_ family: ExpositionFamily, _ value: Double, _ labels: [(String, String)] = []) {
            let descriptor = MetricNameDescriptor(metricName: family.name, unitName: "", helpText: family.help)
            registry.makeGauge(descriptor: descriptor, labels: labels).set(to: value)
        }
        let fleet = FleetNow.of(nodes)
        gauge(FleetFamilies.nodes, Double(nodes.count))
        gauge(FleetFamilies.waiters, Double(waiting))
        gauge(FleetFamilies.feedLive, feedLive ? 1 : 0)
        gauge(FleetFamilies.databaseUp, 1)
        gauge(FleetFamilies.saved, Double(fleet.savedBytes))
        gauge(FleetFamilies.notReportingSaved, Double(fleet.lastKnownSavedBytesNotReporting))
        gauge(FleetFamilies.cpu, fleet.ksmdCPUPercent)
        let counts: [NodeConnection: Int] = [
            .online: fleet.online, .agentStopped: fleet.agentStopped, .offline: fleet.offline, .never: fleet.neverReported,
        ]
        for c in NodeConnection.allCases { gauge(FleetFamilies.byConnection, Double(counts[c]!), [("connection", c.rawValue)]) }
        for node in nodes {
            let labels = [("node_id", node.id), ("node", node.name)]
            for family in NodeFamily.all {
                guard let value = family.measurement(node, now: now) else { continue }
                switch family.family.kind {
                case .gauge: gauge(family.family, value, labels)
                case .histogram: Issue.record("\(family.family.name): a node family is a histogram")
                case .counter:
                    let descriptor = MetricNameDescriptor(
                        metricName: family.family.name, unitName: "", helpText: family.family.help)
                    let counter = registry.makeCounter(descriptor: descriptor, labels: labels)
                    if value == value.rounded(.towardZero), value < 9e15 {
                        counter.increment(by: Int64(value))
                    } else {
                        counter.increment(by: value)
                    }
                }
            }
        }
        return registry.emitToString()
    }

    /// Each family is declared once, `# HELP` then `# TYPE`, and its series follow it unbroken.
    func expectWellFormed(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) {
        var declared = Set<String>()
        var current: String?
        for line in text.split(separator: "\n", omittingEmptySubsequences: false).dropLast() {
            let words = line.split(separator: " ")
            if line.hasPrefix("# HELP ") {
                #expect(!declared.contains(String(words[2])), "\(words[2]) has a second HELP", sourceLocation: sourceLocation)
                current = nil
            } else if line.hasPrefix("# TYPE ") {
                let name = String(words[2])
                #expect(declared.insert(name).inserted, "\(name) is declared twice", sourceLocation: sourceLocation)
                current = name
            } else {
                #expect(current.map { line.hasPrefix($0) } == true, "\(line) is outside its family", sourceLocation: sourceLocation)
            }
        }
        #expect(text.hasSuffix("\n"), sourceLocation: sourceLocation)
    }

    func lines(_ text: String) -> [Substring] { text.split(separator: "\n").sorted() }

    /// What the server counts as it happens, done alike to a `ServerMetrics` and to a
    /// swift-prometheus registry (`registryText`).
    struct Counted {
        var requests: [(route: String, method: String, status: Int, duration: Duration)] = []
        var refused: [String] = []
        var stored = 0
        var duplicates = 0

        func apply(to metrics: ServerMetrics) {
            for r in requests { metrics.record(route: r.route, method: r.method, status: r.status, duration: r.duration) }
            for field in refused { metrics.sampleBatchRefused(field: field) }
            metrics.samplesStored(stored, duplicates: duplicates)
        }

        func registryText() -> String {
            let registry = PrometheusCollectorRegistry()
            func descriptor(_ f: ExpositionFamily) -> MetricNameDescriptor {
                MetricNameDescriptor(metricName: f.name, unitName: "", helpText: f.help)
            }
            registry.makeCounter(descriptor: descriptor(ServerMetrics.stored)).increment(by: Int64(stored))
            registry.makeCounter(descriptor: descriptor(ServerMetrics.duplicates)).increment(by: Int64(duplicates))
            for r in requests {
                let labels = [("route", r.route), ("method", r.method), ("status", "\(r.status)")]
                registry.makeCounter(descriptor: descriptor(ServerMetrics.requests), labels: labels).increment()
                registry.makeDurationHistogram(
                    descriptor: descriptor(ServerMetrics.latency), labels: labels, buckets: ServerMetrics.buckets
                ).record(r.duration)
            }
            for field in refused {
                registry.makeCounter(descriptor: descriptor(ServerMetrics.refused), labels: [("field", field)]).increment()
            }
            return registry.emitToString()
        }
    }

    /// Latencies on the bucket bounds, between them, zero and past the last; routes, methods and
    /// statuses apart; refusals by two fields.
    static let counted = Counted(
        requests: [
            ("/healthz", "GET", 200, .milliseconds(2)), ("/healthz", "GET", 200, .milliseconds(1)),
            ("/healthz", "GET", 200, .zero), ("/healthz", "GET", 503, .nanoseconds(1)),
            ("/v1/agent/nodes/:id/samples", "POST", 200, .microseconds(1_234)),
            ("/v1/agent/nodes/:id/samples", "POST", 200, .seconds(2.5)),
            ("/v1/agent/nodes/:id/config", "GET", 200, .seconds(55)),
            ("/v1/agent/nodes/:id/config", "GET", 200, .seconds(61)),
            ("/v1/agent/nodes/:id/config", "GET", 200, .milliseconds(60_000)),
            ("/v1/nodes", "PATCH", 412, Duration(secondsComponent: 0, attosecondsComponent: 123_456_789_012_345_678)),
        ],
        refused: ["takenAt", "status.pagesUnshared", "takenAt"], stored: 1_234, duplicates: 5)

    @Test func countedSeriesAreWhatTheRegistryWrites() {
        let metrics = ServerMetrics()
        let empty = metrics.render(nodes: [], waiting: 0, now: now)
        expectWellFormed(empty)
        #expect(lines(empty) == lines(Counted().registryText() + registryText(nodes: [], waiting: 0)))
        #expect(!empty.contains("ksmfleet_http_"), "a request family before the first request")

        Self.counted.apply(to: metrics)
        let text = metrics.render(nodes: [], waiting: 0, now: now)
        expectWellFormed(text)
        #expect(lines(text) == lines(Self.counted.registryText() + registryText(nodes: [], waiting: 0)))
        let m = MetricsText(text)
        let config = #"{route="/v1/agent/nodes/:id/config",method="GET",status="200""#
        #expect(m.values["ksmfleet_http_requests_total\(config)}"] == 3)
        #expect(m.values["ksmfleet_http_request_duration_seconds_bucket\(config),le=\"30.0\"}"] == 0)
        #expect(m.values["ksmfleet_http_request_duration_seconds_bucket\(config),le=\"60.0\"}"] == 2)
        #expect(m.values["ksmfleet_http_request_duration_seconds_bucket\(config),le=\"+Inf\"}"] == 3)
        #expect(text.contains("ksmfleet_http_request_duration_seconds_sum\(config)} 176.0\n"))
        #expect(m.values["ksmfleet_samples_refused_batches_total{field=\"takenAt\"}"] == 2)
        #expect(m.values["ksmfleet_samples_stored_total"] == 1_234)
    }

    /// Each histogram's lines in the order the text format wants: its buckets by rising bound,
    /// `+Inf` last among them, then `_sum` and `_count`; counts never falling.
    @Test func histogramLinesComeInOrder() {
        let metrics = ServerMetrics()
        Self.counted.apply(to: metrics)
        let lines = metrics.render(nodes: [], waiting: 0, now: now).split(separator: "\n")
        let latency = ServerMetrics.latency.name
        var bySeries: [String: [Substring]] = [:]
        for line in lines where line.hasPrefix(latency) {
            let labels = line.firstIndex(of: "{").map { line[$0...].prefix { $0 != "}" } } ?? ""
            let series = labels.replacing(/,?le="[^"]*"/, with: "")
            bySeries[String(series), default: []].append(line)
        }
        #expect(bySeries.count == 5)
        for (series, group) in bySeries {
            let kinds = group.map { line -> String in
                if line.hasPrefix(latency + "_bucket") { return "bucket" }
                return line.hasPrefix(latency + "_sum") ? "sum" : "count"
            }
            #expect(kinds == Array(repeating: "bucket", count: ServerMetrics.buckets.count + 1) + ["sum", "count"], "\(series)")
            let bounds = group.prefix(ServerMetrics.buckets.count + 1).map { line -> Double in
                let le = line.split(separator: "le=\"")[1].prefix { $0 != "\"" }
                return le == "+Inf" ? .infinity : Double(le)!
            }
            #expect(bounds == bounds.sorted() && bounds.last == .infinity, "\(series)")
            let counts = group.prefix(ServerMetrics.buckets.count + 1).map { Double($0.split(separator: " ").last!)! }
            #expect(counts == counts.sorted(), "\(series)")
        }
    }

    /// A histogram without labels (the writer takes one; every request histogram has labels) is
    /// what swift-prometheus writes for it.
    @Test func anUnlabelledHistogramIsWhatTheRegistryWrites() {
        var h = LatencyHistogram(buckets: ServerMetrics.buckets.count)
        let registry = PrometheusCollectorRegistry()
        let family = ExpositionFamily("test", "wait", "seconds", "A test histogram", .histogram)
        let theirs = registry.makeDurationHistogram(
            descriptor: MetricNameDescriptor(metricName: family.name, unitName: "", helpText: family.help),
            buckets: ServerMetrics.buckets)
        for d: Duration in [.zero, .milliseconds(5), .seconds(0.75), .seconds(61)] {
            h.record(d, buckets: ServerMetrics.buckets)
            theirs.record(d)
        }
        var out = Exposition()
        out.declare(family)
        out.histogram(family, labels: [], h, buckets: ServerMetrics.buckets)
        #expect(String(decoding: out.bytes, as: UTF8.self) == registry.emitToString())
    }

    /// A method the server does not serve is counted, under "OTHER", so clients cannot add series.
    @Test func unknownMethodsShareOneSeries() {
        let metrics = ServerMetrics()
        for m in ["BREW", "PROPFIND", "get", "GET"] {
            metrics.record(route: "unknown", method: m, status: 405, duration: .milliseconds(1))
        }
        let m = MetricsText(metrics.render(nodes: [], waiting: 0, now: now))
        #expect(m.values[#"ksmfleet_http_requests_total{route="unknown",method="OTHER",status="405"}"#] == 3)
        #expect(m.values[#"ksmfleet_http_requests_total{route="unknown",method="GET",status="405"}"#] == 1)
        #expect(m.values.keys.filter { $0.hasPrefix("ksmfleet_http_requests_total{") }.count == 2)
    }

    @Test func requestsCountedFromManyTasksAtOnceAreAllThere() async {
        let metrics = ServerMetrics()
        await withTaskGroup(of: Void.self) { group in
            for task in 0..<8 {
                group.addTask {
                    for i in 0..<500 {
                        metrics.record(
                            route: "/r\(i % 3)", method: "GET", status: 200 + task % 2, duration: .microseconds(task * 500 + i))
                        metrics.samplesStored(1, duplicates: task % 2)
                    }
                }
            }
        }
        let m = MetricsText(metrics.render(nodes: [], waiting: 0, now: now))
        let requests = m.values.filter { $0.key.hasPrefix("ksmfleet_http_requests_total{") }
        #expect(requests.count == 6)
        #expect(requests.values.reduce(0, +) == 4_000)
        let counts = m.values.filter { $0.key.hasPrefix("ksmfleet_http_request_duration_seconds_count{") }
        #expect(counts.values.reduce(0, +) == 4_000)
        #expect(m.values["ksmfleet_samples_stored_total"] == 4_000)
        #expect(m.values["ksmfleet_samples_duplicate_total"] == 2_000)
    }

    @Test func theScrapeWritesWhatTheRegistryWroteAndForgetsRemovedNodes() {
        let metrics = ServerMetrics()
        Self.counted.apply(to: metrics)
        let own = Self.counted.registryText()
        let nodes = edgeNodes()
        let first = metrics.render(nodes: nodes, waiting: 3, now: now)
        expectWellFormed(first)
        #expect(lines(first) == lines(own + registryText(nodes: nodes, waiting: 3)))
        #expect(first.contains(#"node="web\"1\\x\nevil 1"}"#))
        #expect(first.contains("ksmfleet_node_ksmd_cpu_seconds_total{node_id=\"n1\",node=\"web\\\"1\\\\x\\nevil 1\"} 3.5\n"))
        #expect(first.contains("ksmfleet_node_full_scans_total{node_id=\"n2\",node=\"big\"} 9007199254740992.0\n"))
        #expect(!first.contains("ksmfleet_node_ksmd_cpu_seconds_total{node_id=\"n3\""), "a negative counter")
        #expect(!first.contains("ksmfleet_node_ksmd_cpu_percent{node_id=\"n3\""), "not a number")
        // Each per-node family: one series per node with a value, all of them under one HELP/TYPE.
        let m = MetricsText(first)
        for family in NodeFamily.all {
            let expected = nodes.filter { family.measurement($0, now: now) != nil }.count
            let series = m.values.keys.filter { $0.hasPrefix(family.family.name + "{") }.count
            #expect(series == expected, "\(family.family.name)")
        }

        // The hostile node deleted, another renamed, every sample gone: their series go, and so do
        // the families no node has a value for any more.
        var renamed = nodes[5]
        renamed.name = "renamed"
        let rest = [nodes[3], renamed]
        let second = metrics.render(nodes: rest, waiting: 0, now: now)
        expectWellFormed(second)
        #expect(lines(second) == lines(own + registryText(nodes: rest, waiting: 0)))
        #expect(!second.contains("evil"))
        #expect(!second.contains("\"n1\""))
        #expect(!second.contains("node=\"never\""))
        #expect(!second.contains("ksmfleet_node_pages_sharing"), "a family without a series kept its HELP and TYPE")
        #expect(MetricsText(second).node("ksmfleet_node_online", id: "n6", node: "renamed") == 0)

        // No node at all: the fleet's series only.
        let empty = metrics.render(nodes: [], waiting: 0, now: now)
        expectWellFormed(empty)
        #expect(lines(empty) == lines(own + registryText(nodes: [], waiting: 0)))
        #expect(!empty.contains("ksmfleet_node_"))
    }
}
