import FleetAPI
import FleetStore
import Foundation
import Hummingbird
import KSMCore
import Prometheus
import Synchronization

/// `/metrics`: what is counted as it happens (request counts and latencies, samples stored,
/// duplicated, refused) lives in a swift-prometheus registry (one per app, so tests may run many
/// servers in one process); the figures of the fleet and of each node are read from the database
/// at every scrape and written straight into the text after the registry's. Nothing per node is
/// kept between scrapes: a deleted or renamed node's series are gone from the next one, and a
/// scrape costs time linear in the fleet (registering tens of thousands of labelled series in
/// the registry copied its dictionary at each one, a first scrape of 10,000 nodes took 51 s).
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

    func sampleBatchRefused(field: String) {
        let counter = refusedSeries.withLock { series in
            if let known = series[field] { return known }
            let made = registry.makeCounter(descriptor: Self.refused, labels: [("field", field)])
            series[field] = made
            return made
        }
        counter.increment()
    }

    /// The whole exposition: the registry's text, then the fleet's and the nodes' series as of
    /// `nodes`, in a buffer for the response. Holds no lock of its own: concurrent scrapes
    /// share nothing but the registry.
    func page(nodes: [NodeInfo], waiting: Int, now: Date = Date()) -> ByteBuffer {
        var out = Exposition()
        // ~1.2 kB a node (14 families, two labels), so a large fleet's page is not regrown 20 times.
        out.bytes.reserveCapacity(16_384 + nodes.count * 1_280)
        registry.emit(into: &out.bytes)
        FleetFamilies.write(nodes, waiting: waiting, into: &out)
        NodeFamily.write(nodes, now: now, into: &out)
        return ByteBuffer(bytes: out.bytes)
    }

    /// `page` as text.
    func render(nodes: [NodeInfo], waiting: Int, now: Date = Date()) -> String {
        String(buffer: page(nodes: nodes, waiting: waiting, now: now))
    }
}

/// One family written at scrape time: its name, help text and type, and its values formatted
/// as swift-prometheus's `Gauge` and `Counter` do (`/metrics` reads the same either way).
struct ExpositionFamily: Sendable {
    enum Kind: String, Sendable { case gauge, counter }
    let name: String
    let help: String
    let kind: Kind

    init(_ descriptor: MetricNameDescriptor, _ kind: Kind) {
        name = descriptor.name
        help = descriptor.helpText ?? ""
        self.kind = kind
    }

    /// A gauge's value as `Double.description`; a counter's whole values below 9e15 as integers
    /// (the registry's counter held those in its integer part), others as `Double.description`.
    func text(_ value: Double) -> String {
        if kind == .counter, value == value.rounded(.towardZero), value < 9e15 { return "\(Int64(value))" }
        return "\(value)"
    }
}

/// The Prometheus text format (0.0.4), appended to by hand for the series of a scrape.
struct Exposition {
    var bytes: [UInt8] = []

    /// `# HELP` (backslash and line feed escaped) and `# TYPE`, once per family, before its series.
    mutating func declare(_ family: ExpositionFamily) {
        if !family.help.isEmpty {
            bytes.append(contentsOf: "# HELP \(family.name) ".utf8)
            Self.escape(family.help, quotes: false, into: &bytes)
            bytes.append(UInt8(ascii: "\n"))
        }
        bytes.append(contentsOf: "# TYPE \(family.name) \(family.kind.rawValue)\n".utf8)
    }

    /// `name{labels} value`; `labels` from `Exposition.labels`.
    mutating func series(_ family: ExpositionFamily, labels: [UInt8], value: Double) {
        bytes.append(contentsOf: family.name.utf8)
        bytes.append(contentsOf: labels)
        bytes.append(UInt8(ascii: " "))
        bytes.append(contentsOf: family.text(value).utf8)
        bytes.append(UInt8(ascii: "\n"))
    }

    /// `{name="value",…}` with each value's backslashes, double quotes and line feeds escaped,
    /// as the text format requires (names are ours and valid). Nothing for no labels.
    static func labels(_ pairs: KeyValuePairs<String, String>) -> [UInt8] {
        guard !pairs.isEmpty else { return [] }
        var out: [UInt8] = [UInt8(ascii: "{")]
        for (i, (name, value)) in pairs.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            out.append(contentsOf: name.utf8)
            out.append(contentsOf: #"=""#.utf8)
            escape(value, quotes: true, into: &out)
            out.append(UInt8(ascii: "\""))
        }
        out.append(UInt8(ascii: "}"))
        return out
    }

    /// `text` with `\` and line feeds escaped (help text), and `"` too (label values).
    private static func escape(_ text: String, quotes: Bool, into out: inout [UInt8]) {
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\\"): out.append(contentsOf: #"\\"#.utf8)
            case UInt8(ascii: "\n"): out.append(contentsOf: #"\n"#.utf8)
            case UInt8(ascii: "\"") where quotes: out.append(contentsOf: #"\""#.utf8)
            default: out.append(byte)
            }
        }
    }
}

/// The fleet "now" (`FleetNow`), the same figures as the API, CLI and dashboard show, and the
/// server's own counts, as of each scrape.
enum FleetFamilies {
    static let nodes = gauge(nil, "nodes", "", "Live registered nodes")
    static let waiters = gauge("config", "waiters", "", "Config long-polls waiting now")
    static let saved = gauge(
        "fleet", "saved", "bytes", "Memory KSM saves now on the nodes that are reporting (sum of their last samples)")
    static let notReportingSaved = gauge(
        "fleet", "not_reporting_saved", "bytes",
        "Last reported saving of the nodes that are not reporting (agent stopped or offline)")
    static let cpu = gauge(
        "fleet", "ksmd_cpu", "percent", "ksmd CPU now on the nodes that are reporting, % of one CPU, summed")
    static let byConnection = gauge(
        nil, "nodes_by_connection", "", "Nodes by connection: online, agentStopped, offline, never")

    private static func gauge(_ subsystem: String?, _ metricName: String, _ unit: String, _ help: String)
        -> ExpositionFamily
    {
        ExpositionFamily(
            MetricNameDescriptor(
                namespace: "ksmfleet", subsystem: subsystem, metricName: metricName, unitName: unit, helpText: help),
            .gauge)
    }

    static func write(_ nodes: [NodeInfo], waiting: Int, into out: inout Exposition) {
        let fleet = FleetNow.of(nodes)
        for (family, value) in [
            (Self.nodes, Double(nodes.count)), (waiters, Double(waiting)), (saved, Double(fleet.savedBytes)),
            (notReportingSaved, Double(fleet.lastKnownSavedBytesNotReporting)), (cpu, fleet.ksmdCPUPercent),
        ] {
            out.declare(family)
            out.series(family, labels: [], value: value)
        }
        out.declare(byConnection)
        for connection in NodeConnection.allCases {
            let count =
                switch connection {
                case .online: fleet.online
                case .agentStopped: fleet.agentStopped
                case .offline: fleet.offline
                case .never: fleet.neverReported
                }
            out.series(byConnection, labels: Exposition.labels(["connection": connection.rawValue]), value: Double(count))
        }
    }
}

/// One per-node family: a gauge of the last sample's (or the node's) state, or a counter that
/// carries a cumulative value the agent reports (Prometheus's `rate()` handles its resets when a
/// node reboots).
struct NodeFamily: Sendable {
    let family: ExpositionFamily
    let value: @Sendable (NodeInfo, Date) -> Double?

    static func gauge(
        _ metricName: String, unit: String = "", _ help: String, _ value: @escaping @Sendable (NodeInfo, Date) -> Double?
    ) -> Self {
        NodeFamily(family: ExpositionFamily(descriptor(metricName, unit, help), .gauge), value: value)
    }
    /// Counters' names end in `_total`.
    static func counter(
        _ metricName: String, _ help: String, _ value: @escaping @Sendable (NodeInfo, Date) -> Double?
    ) -> Self {
        NodeFamily(family: ExpositionFamily(descriptor(metricName, "total", help), .counter), value: value)
    }

    private static func descriptor(_ metricName: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "ksmfleet", subsystem: "node", metricName: metricName, unitName: unit, helpText: help)
    }

    /// The node's value, if it is one: not-a-number and infinities are no measurement, and a
    /// counter never goes below zero.
    func measurement(_ node: NodeInfo, now: Date) -> Double? {
        value(node, now).flatMap { v in v.isFinite && (family.kind == .gauge || v >= 0) ? v : nil }
    }

    /// Every family with a series for each node that has a value for it (a family no node has a
    /// value for, say before any sample, is left out, `# HELP` and `# TYPE` too), labelled
    /// `node_id` and `node`, the nodes in the order given.
    static func write(_ nodes: [NodeInfo], now: Date, into out: inout Exposition) {
        let labels = nodes.map { Exposition.labels(["node_id": $0.id, "node": $0.name]) }
        for family in all {
            var declared = false
            for (node, labels) in zip(nodes, labels) {
                guard let value = family.measurement(node, now: now) else { continue }
                if !declared {
                    out.declare(family.family)
                    declared = true
                }
                out.series(family.family, labels: labels, value: value)
            }
        }
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
