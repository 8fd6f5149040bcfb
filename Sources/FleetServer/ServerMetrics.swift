import FleetAPI
import FleetStore
import Foundation
import Hummingbird
import KSMCore
import Prometheus
import Synchronization

/// Every series of `/metrics` lives in one swift-prometheus registry (one per app, so tests may
/// run many servers in one process): request counts and latencies as they happen, and per-node
/// series mirrored from the database at scrape time, so a deleted node's series disappear with it.
final class ServerMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()
    private static var requests: MetricNameDescriptor {
        MetricNameDescriptor(
            namespace: "ksmfleet", subsystem: "http", metricName: "requests", unitName: "total",
            helpText: "HTTP requests by route, method and status")
    }
    private static var latency: MetricNameDescriptor {
        MetricNameDescriptor(
            namespace: "ksmfleet", subsystem: "http", metricName: "request_duration", unitName: "seconds",
            helpText: "HTTP request latency by route, method and status (long-polls included)")
    }
    private static var samples: MetricNameDescriptor {
        MetricNameDescriptor(
            namespace: "ksmfleet", subsystem: "samples", metricName: "stored", unitName: "total",
            helpText: "Status samples stored")
    }
    private static var duplicates: MetricNameDescriptor {
        MetricNameDescriptor(
            namespace: "ksmfleet", subsystem: "samples", metricName: "duplicate", unitName: "total",
            helpText: "Status samples received again and ignored")
    }
    private static var refused: MetricNameDescriptor {
        MetricNameDescriptor(
            namespace: "ksmfleet", subsystem: "samples", metricName: "refused_batches", unitName: "total",
            helpText: "Sample batches refused because a sample held what no agent could send, by field (the server log names the node)")
    }
    static let buckets: [Duration] = [
        .milliseconds(1), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
        .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(5),
        .seconds(10), .seconds(30), .seconds(60),
    ]

    /// The registry builds each metric's name and looks it up under a lock on every `make…`
    /// call; the series are created once and kept here instead (a few dozen routes × statuses).
    private struct RequestKey: Hashable {
        let route: String, method: String, status: Int
    }
    private let requestSeries = Mutex([RequestKey: (Counter, DurationHistogram)]())
    private let storedCounter: Counter
    /// By field without its index (`takenAt`, `status.pagesUnshared`): a bounded set.
    private let refusedSeries = Mutex([String: Counter]())
    private let duplicateCounter: Counter
    private let nodesGauge: Gauge
    private let waitersGauge: Gauge
    /// The fleet "now" (`FleetNow`), the same figures as the API, CLI and dashboard show.
    private let fleetSaved: Gauge
    private let fleetNotReportingSaved: Gauge
    private let fleetCPU: Gauge
    private let nodesByConnection: [NodeConnection: Gauge]
    /// The per-node series as of the last scrape, by node id. Held for the whole scrape (update
    /// and emit), so one scrape never sees another's half-updated values.
    private let nodeSeries = Mutex([String: NodeSeries]())

    init() {
        storedCounter = registry.makeCounter(descriptor: Self.samples)
        duplicateCounter = registry.makeCounter(descriptor: Self.duplicates)
        nodesGauge = registry.makeGauge(
            descriptor: MetricNameDescriptor(
                namespace: "ksmfleet", metricName: "nodes", unitName: "", helpText: "Live registered nodes"))
        waitersGauge = registry.makeGauge(
            descriptor: MetricNameDescriptor(
                namespace: "ksmfleet", subsystem: "config", metricName: "waiters", unitName: "",
                helpText: "Config long-polls waiting now"))
        fleetSaved = registry.makeGauge(
            descriptor: MetricNameDescriptor(
                namespace: "ksmfleet", subsystem: "fleet", metricName: "saved", unitName: "bytes",
                helpText: "Memory KSM saves now on the nodes that are reporting (sum of their last samples)"))
        fleetNotReportingSaved = registry.makeGauge(
            descriptor: MetricNameDescriptor(
                namespace: "ksmfleet", subsystem: "fleet", metricName: "not_reporting_saved", unitName: "bytes",
                helpText: "Last reported saving of the nodes that are not reporting (agent stopped or offline)"))
        fleetCPU = registry.makeGauge(
            descriptor: MetricNameDescriptor(
                namespace: "ksmfleet", subsystem: "fleet", metricName: "ksmd_cpu", unitName: "percent",
                helpText: "ksmd CPU now on the nodes that are reporting, % of one CPU, summed"))
        var byConnection: [NodeConnection: Gauge] = [:]
        for c in NodeConnection.allCases {
            byConnection[c] = registry.makeGauge(
                descriptor: MetricNameDescriptor(
                    namespace: "ksmfleet", metricName: "nodes_by_connection", unitName: "",
                    helpText: "Nodes by connection: online, agentStopped, offline, never"),
                labels: [("connection", c.rawValue)])
        }
        nodesByConnection = byConnection
    }

    func record(route: String, method: String, status: Int, duration: Duration) {
        let key = RequestKey(route: route, method: method, status: status)
        let (counter, histogram) = requestSeries.withLock { series in
            if let known = series[key] { return known }
            let labels = [("route", route), ("method", method), ("status", "\(status)")]
            let made = (
                registry.makeCounter(descriptor: Self.requests, labels: labels),
                registry.makeDurationHistogram(descriptor: Self.latency, labels: labels, buckets: Self.buckets)
            )
            series[key] = made
            return made
        }
        counter.increment()
        histogram.record(duration)
    }

    func samplesStored(_ stored: Int, duplicates dup: Int) {
        storedCounter.increment(by: Int64(stored))
        duplicateCounter.increment(by: Int64(dup))
    }

    func sampleBatchRefused(field: String) {
        let counter = refusedSeries.withLock { series in
            if let known = series[field] { return known }
            let made = registry.makeCounter(descriptor: Self.refused, labels: [("field", field)])
            series[field] = made
            return made
        }
        counter.increment()
    }

    /// The whole exposition: the per-node series brought up to date with `nodes`, then the
    /// registry's text.
    func render(nodes: [NodeInfo], waiting: Int, now: Date = Date()) -> String {
        nodeSeries.withLock { known in
            var seen = Set<String>()
            for node in nodes {
                seen.insert(node.id)
                var series = known[node.id] ?? NodeSeries(name: node.name)
                if series.name != node.name {
                    // A renamed node: its label set changes, so its old series go.
                    series.unregister(from: registry)
                    series = NodeSeries(name: node.name)
                }
                series.update(node, now: now, in: registry)
                known[node.id] = series
            }
            for (id, series) in known where !seen.contains(id) {
                series.unregister(from: registry)
                known[id] = nil
            }
            nodesGauge.set(to: Double(nodes.count))
            waitersGauge.set(to: Double(waiting))
            let fleet = FleetNow.of(nodes)
            fleetSaved.set(to: Double(fleet.savedBytes))
            fleetNotReportingSaved.set(to: Double(fleet.lastKnownSavedBytesNotReporting))
            fleetCPU.set(to: fleet.ksmdCPUPercent)
            let counts: [NodeConnection: Int] = [
                .online: fleet.online, .agentStopped: fleet.agentStopped, .offline: fleet.offline,
                .never: fleet.neverReported,
            ]
            for (c, gauge) in nodesByConnection { gauge.set(to: Double(counts[c] ?? 0)) }
            return registry.emitToString()
        }
    }
}

/// One per-node family: a gauge of the last sample's (or the node's) state, or a counter that
/// carries a cumulative value the agent reports (Prometheus's `rate()` handles its resets when a
/// node reboots).
struct NodeFamily: Sendable {
    enum Kind: Sendable { case gauge, counter }
    let metricName: String
    let unit: String
    let kind: Kind
    let help: String
    let value: @Sendable (NodeInfo, Date) -> Double?
    /// `ksmfleet_node_<metricName>[_<unit>]`, worked out once (the scrape looks series up by it).
    let name: String

    init(
        metricName: String, unit: String, kind: Kind, help: String, value: @escaping @Sendable (NodeInfo, Date) -> Double?
    ) {
        self.metricName = metricName
        self.unit = unit
        self.kind = kind
        self.help = help
        self.value = value
        name = MetricNameDescriptor(
            namespace: "ksmfleet", subsystem: "node", metricName: metricName, unitName: unit, helpText: help
        ).name
    }

    var descriptor: MetricNameDescriptor {
        MetricNameDescriptor(namespace: "ksmfleet", subsystem: "node", metricName: metricName, unitName: unit, helpText: help)
    }

    static func gauge(
        _ metricName: String, unit: String = "", _ help: String, _ value: @escaping @Sendable (NodeInfo, Date) -> Double?
    ) -> Self {
        NodeFamily(metricName: metricName, unit: unit, kind: .gauge, help: help, value: value)
    }
    /// Counters' names end in `_total`.
    static func counter(
        _ metricName: String, _ help: String, _ value: @escaping @Sendable (NodeInfo, Date) -> Double?
    ) -> Self {
        NodeFamily(metricName: metricName, unit: "total", kind: .counter, help: help, value: value)
    }

    /// Every per-node family, labelled `node_id` and `node`. A family without a value for a node
    /// (no sample yet, say) has no series for it.
    static let all: [NodeFamily] = [
        .gauge("ksmd_cpu", unit: "percent", "ksmd CPU use in % of one CPU at the last sample") { n, _ in n.lastSample?.ksmdCPUPercent },
        .counter("ksmd_cpu_seconds", "CPU time ksmd has used since the node booted (utime+stime), seconds") { n, _ in
            n.lastSample?.ksmdCPUSeconds
        },
        .gauge("saved", unit: "bytes", "Memory KSM saves on the node, bytes") { n, _ in n.lastSample.map { Double($0.savedBytes) } },
        .gauge("pages_sharing", "pages_sharing at the last sample") { n, _ in n.lastSample.map { Double($0.status.pagesSharing) } },
        .gauge("pages_shared", "pages_shared at the last sample") { n, _ in n.lastSample.map { Double($0.status.pagesShared) } },
        .gauge("pages_unshared", "pages_unshared at the last sample") { n, _ in
            n.lastSample.map { Double($0.status.pagesUnshared) }
        },
        .gauge("pages_volatile", "pages_volatile at the last sample") { n, _ in
            n.lastSample.map { Double($0.status.pagesVolatile) }
        },
        .counter("full_scans", "Full scans ksmd has completed since the node booted (full_scans)") { n, _ in
            n.lastSample.map { Double($0.status.fullScans) }
        },
        .gauge("seconds_since_last_seen", "Seconds since the node was last heard from") { n, now in
            n.lastSeenAt.map { max(0, now.timeIntervalSince($0)) }
        },
        .gauge("online", "1 when the node was seen within the offline threshold and its agent did not stop") { n, _ in
            n.online ? 1 : 0
        },
        .gauge("agent_stopped", "1 when the node's agent said goodbye on a clean stop (its figures are the last ones)") {
            n, _ in n.connection == .agentStopped ? 1 : 0
        },
        .gauge("config_generation_desired", "Desired config generation") { n, _ in Double(n.config.generation) },
        .gauge("config_generation_applied", "Config generation the agent reports as applied") { n, _ in
            n.appliedGeneration.map(Double.init)
        },
        .gauge("drift", "1 when the applied generation differs from the desired one") { n, _ in n.drift ? 1 : 0 },
    ]
}

/// One node's series in the registry. Only `ServerMetrics.render` touches it, under its lock.
struct NodeSeries {
    let name: String
    var gauges: [String: Gauge] = [:]
    var counters: [String: Counter] = [:]

    init(name: String) { self.name = name }

    mutating func update(_ node: NodeInfo, now: Date, in registry: PrometheusCollectorRegistry) {
        let labels = [("node_id", node.id), ("node", node.name)]
        for family in NodeFamily.all {
            // Not-a-number and infinities are no measurement; a counter never goes below zero.
            let value = family.value(node, now).flatMap { v in
                v.isFinite && (family.kind == .gauge || v >= 0) ? v : nil
            }
            switch family.kind {
            case .gauge:
                guard let value else {
                    if let gone = gauges.removeValue(forKey: family.name) { registry.unregisterGauge(gone) }
                    continue
                }
                let gauge = gauges[family.name] ?? registry.makeGauge(descriptor: family.descriptor, labels: labels)
                gauges[family.name] = gauge
                gauge.set(to: value)
            case .counter:
                guard let value else {
                    if let gone = counters.removeValue(forKey: family.name) { registry.unregisterCounter(gone) }
                    continue
                }
                let counter =
                    counters[family.name] ?? registry.makeCounter(descriptor: family.descriptor, labels: labels)
                counters[family.name] = counter
                // The value is the agent's own total: set it (the scrape lock hides the reset).
                counter.reset()
                if value == value.rounded(.towardZero), value < 9e15 {
                    counter.increment(by: Int64(value))
                } else {
                    counter.increment(by: value)
                }
            }
        }
    }

    func unregister(from registry: PrometheusCollectorRegistry) {
        for gauge in gauges.values { registry.unregisterGauge(gauge) }
        for counter in counters.values { registry.unregisterCounter(counter) }
    }
}

/// Counts every request and its latency by route pattern (not the raw path: node ids would
/// explode the label set), method and final status.
struct MetricsMiddleware<Context: RequestContext>: RouterMiddleware {
    let metrics: ServerMetrics

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response)
        async throws -> Response
    {
        let start = ContinuousClock.now
        do {
            let response = try await next(request, context)
            metrics.record(
                route: context.endpointPath ?? "unknown", method: request.method.rawValue, status: response.status.code,
                duration: ContinuousClock.now - start)
            return response
        } catch {
            let status = (error as? any HTTPResponseError)?.status.code ?? 500
            metrics.record(
                route: context.endpointPath ?? "unknown", method: request.method.rawValue, status: status,
                duration: ContinuousClock.now - start)
            throw error
        }
    }
}
