import FleetAPI
import FleetStore
import Foundation
import Hummingbird
import Prometheus
import Synchronization

/// Request counts and latencies (swift-prometheus registry, one per app so tests may run many
/// servers in one process) plus per-node gauges rendered from the database at scrape time, so
/// a deleted node's series disappear with it.
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
    private let duplicateCounter: Counter

    init() {
        storedCounter = registry.makeCounter(descriptor: Self.samples)
        duplicateCounter = registry.makeCounter(descriptor: Self.duplicates)
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

    /// The whole exposition: per-node gauges, then the registry.
    func render(nodes: [NodeInfo], waiting: Int, now: Date = Date()) -> String {
        var out = ""
        func family(_ name: String, _ help: String, _ value: (NodeInfo) -> Double?) {
            out += "# HELP ksmfleet_node_\(name) \(help)\n# TYPE ksmfleet_node_\(name) gauge\n"
            for n in nodes {
                guard let v = value(n) else { continue }
                out += "ksmfleet_node_\(name){node_id=\"\(Self.escape(n.id))\",node=\"\(Self.escape(n.name))\"} \(Self.number(v))\n"
            }
        }
        let s = { (n: NodeInfo) in n.lastSample }
        family("ksmd_cpu_percent", "ksmd CPU use in % of one CPU at the last sample") { s($0)?.ksmdCPUPercent }
        family("saved_bytes", "Memory KSM saves on the node, bytes") { s($0).map { Double($0.savedBytes) } }
        family("pages_sharing", "pages_sharing at the last sample") { s($0).map { Double($0.status.pagesSharing) } }
        family("pages_shared", "pages_shared at the last sample") { s($0).map { Double($0.status.pagesShared) } }
        family("pages_unshared", "pages_unshared at the last sample") { s($0).map { Double($0.status.pagesUnshared) } }
        family("pages_volatile", "pages_volatile at the last sample") { s($0).map { Double($0.status.pagesVolatile) } }
        family("full_scans", "full_scans at the last sample") { s($0).map { Double($0.status.fullScans) } }
        family("seconds_since_last_seen", "Seconds since the node was last heard from") {
            $0.lastSeenAt.map { max(0, now.timeIntervalSince($0)) }
        }
        family("online", "1 when the node was seen within the offline threshold") { $0.online ? 1 : 0 }
        family("config_generation_desired", "Desired config generation") { Double($0.config.generation) }
        family("config_generation_applied", "Config generation the agent reports as applied") {
            $0.appliedGeneration.map(Double.init)
        }
        family("drift", "1 when the applied generation differs from the desired one") { $0.drift ? 1 : 0 }
        out += "# HELP ksmfleet_nodes Live registered nodes\n# TYPE ksmfleet_nodes gauge\nksmfleet_nodes \(nodes.count)\n"
        out += "# HELP ksmfleet_config_waiters Config long-polls waiting now\n# TYPE ksmfleet_config_waiters gauge\n"
        out += "ksmfleet_config_waiters \(waiting)\n"
        out += registry.emitToString()
        return out
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n")
    }

    static func number(_ v: Double) -> String {
        if v.isNaN { return "NaN" }
        if v == v.rounded(), abs(v) < 1e15 { return String(Int64(v)) }
        return "\(v)"
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
