import FleetAPI
import FleetStore
import Foundation
import Hummingbird
import KSMCore
import Synchronization

/// `/metrics`, written one way: every family goes through `Exposition`, the text format by hand.
/// What is counted as it happens (request counts and latencies, samples stored, duplicated,
/// refused) lives here between scrapes (one per app, so tests may run many servers in one
/// process); the figures of the fleet and of each node are read from the database at every
/// scrape. Nothing per node is kept between scrapes: a deleted or renamed node's series are gone
/// from the next one, and a scrape costs time linear in the fleet.
///
/// Not swift-prometheus: its registry copies a family's whole label dictionary for each new
/// series, so holding a series per node and family made a first scrape of 10,000 nodes take 51 s
/// (1.1 s written here), and writing the per-node families beside the registry was two ways of
/// exporting. ServerMetricsTests checks this text line for line against what swift-prometheus's
/// registry writes for the same series, and `make test` runs `promtool check metrics` on a live
/// server's.
final class ServerMetrics: Sendable {
    static let requests = ExpositionFamily(
        "http", "requests", "total", "HTTP requests by route, method and status", .counter)
    static let latency = ExpositionFamily(
        "http", "request_duration", "seconds", "HTTP request latency by route, method and status (long-polls included)",
        .histogram)
    static let stored = ExpositionFamily("samples", "stored", "total", "Status samples stored", .counter)
    static let duplicates = ExpositionFamily(
        "samples", "duplicate", "total", "Status samples received again and ignored", .counter)
    static let refused = ExpositionFamily(
        "samples", "refused_batches", "total",
        "Sample batches refused because a sample held what no agent could send, by field (the server log names the node)",
        .counter)
    static let buckets: [Duration] = [
        .milliseconds(1), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
        .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(5),
        .seconds(10), .seconds(30), .seconds(60),
    ]

    private struct RequestKey: Hashable, Comparable {
        let route: String, method: String, status: Int
        static func < (a: Self, b: Self) -> Bool { (a.route, a.method, a.status) < (b.route, b.method, b.status) }
    }
    /// One route, method and status: its count and latency histogram under one lock, its labels
    /// written once. The series are made on the first request and kept (a few dozen).
    private final class RequestSeries: Sendable {
        let labels: [UInt8]
        let histogram = Mutex(LatencyHistogram(buckets: ServerMetrics.buckets.count))
        init(_ key: RequestKey) {
            labels = Exposition.labels(["route": key.route, "method": key.method, "status": "\(key.status)"])
        }
    }
    private let requestSeries = Mutex([RequestKey: RequestSeries]())
    private let storedCount = Atomic<Int>(0)
    private let duplicateCount = Atomic<Int>(0)
    /// By field without its index (`takenAt`, `status.pagesUnshared`): a bounded set.
    private let refusedCounts = Mutex([String: Int]())

    /// The methods a request series is labelled with; any other is counted as "OTHER", so that
    /// clients cannot grow the label set (routes are the router's patterns, statuses are few).
    static let methods: Set<String> = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

    func record(route: String, method: String, status: Int, duration: Duration) {
        let key = RequestKey(route: route, method: Self.methods.contains(method) ? method : "OTHER", status: status)
        let series = requestSeries.withLock { series in
            if let known = series[key] { return known }
            let made = RequestSeries(key)
            series[key] = made
            return made
        }
        series.histogram.withLock { $0.record(duration, buckets: Self.buckets) }
    }

    func samplesStored(_ stored: Int, duplicates dup: Int) {
        storedCount.add(stored, ordering: .relaxed)
        duplicateCount.add(dup, ordering: .relaxed)
    }

    func sampleBatchRefused(field: String) {
        refusedCounts.withLock { $0[field, default: 0] += 1 }
    }

    /// The whole exposition: what was counted, then the fleet's and the nodes' series as of
    /// `nodes`, in a buffer for the response. Concurrent scrapes share only the counts' locks,
    /// each taken for a copy.
    /// `feedLive`: whether this server hears of every config change committed (`ConfigWaiters`).
    /// `nodes` nil: the database could not be read for this scrape; the page then has what this
    /// server counted and knows itself, `ksmfleet_database_up` 0, and no fleet or node series
    /// (absent, not zero: a saving of 0 would be a false figure). `databaseUp` false: the nodes
    /// were read, but the database refused a request moments ago (`/readyz` says the same).
    /// `fleet` false: the fleet was not asked for (`/metrics?fleet=false`, this process's own
    /// series): `nodes` is nil and `databaseUp` says all there is to say of the database.
    func page(
        nodes: [NodeInfo]?, waiting: Int, feedLive: Bool = true, databaseUp: Bool = true, fleet: Bool = true,
        now: Date = Date()
    ) -> ByteBuffer {
        var out = Exposition()
        // ~1.2 kB a node (14 families, two labels), so a large fleet's page is not regrown 20 times.
        out.bytes.reserveCapacity(16_384 + (nodes?.count ?? 0) * 1_280)
        writeCounted(into: &out)
        FleetFamilies.write(
            nodes, waiting: waiting, feedLive: feedLive, databaseUp: databaseUp && (nodes != nil || !fleet), into: &out)
        if let nodes { NodeFamily.write(nodes, now: now, into: &out) }
        return ByteBuffer(bytes: out.bytes)
    }

    /// `page` as text.
    func render(
        nodes: [NodeInfo]?, waiting: Int, feedLive: Bool = true, databaseUp: Bool = true, now: Date = Date()
    ) -> String {
        String(buffer: page(nodes: nodes, waiting: waiting, feedLive: feedLive, databaseUp: databaseUp, now: now))
    }

    /// The request families (routes in order, none before the first request), the samples'
    /// counters (always), the refusals by field (none before the first).
    private func writeCounted(into out: inout Exposition) {
        let requests = requestSeries.withLock { $0.sorted { $0.key < $1.key } }
            .map { ($0.value.labels, $0.value.histogram.withLock { $0 }) }
        if !requests.isEmpty {
            out.declare(Self.requests)
            for (labels, histogram) in requests {
                out.series(Self.requests, labels: labels, value: Double(histogram.count))
            }
            out.declare(Self.latency)
            for (labels, histogram) in requests {
                out.histogram(Self.latency, labels: labels, histogram, buckets: Self.buckets)
            }
        }
        out.declare(Self.stored)
        out.series(Self.stored, labels: [], value: Double(storedCount.load(ordering: .relaxed)))
        out.declare(Self.duplicates)
        out.series(Self.duplicates, labels: [], value: Double(duplicateCount.load(ordering: .relaxed)))
        let refused = refusedCounts.withLock { $0 }.sorted { $0.key < $1.key }
        if !refused.isEmpty {
            out.declare(Self.refused)
            for (field, count) in refused {
                out.series(Self.refused, labels: Exposition.labels(["field": field]), value: Double(count))
            }
        }
    }
}

/// A latency histogram's state: how many observations fell at or below each bucket's bound
/// (not yet cumulative), their count and their exact sum.
struct LatencyHistogram: Sendable {
    var perBucket: [Int]
    var count = 0
    var sum = Duration.zero

    init(buckets: Int) { perBucket = Array(repeating: 0, count: buckets) }

    /// Counted in the first bucket whose bound is at least `value` (none past the last bound:
    /// only `+Inf` and the count hold it).
    mutating func record(_ value: Duration, buckets: [Duration]) {
        if let i = buckets.firstIndex(where: { value <= $0 }) { perBucket[i] += 1 }
        count += 1
        sum += value
    }
}

/// One family: its name (`ksmfleet_<subsystem>_<name>_<unit>`), help text and type. Values are
/// formatted as swift-prometheus formats its gauges and counters (ServerMetricsTests compares).
struct ExpositionFamily: Sendable {
    enum Kind: String, Sendable { case gauge, counter, histogram }
    let name: String
    let help: String
    let kind: Kind

    init(_ subsystem: String?, _ metricName: String, _ unit: String, _ help: String, _ kind: Kind) {
        name = ["ksmfleet", subsystem, metricName, unit].compactMap { $0?.isEmpty == false ? $0 : nil }
            .joined(separator: "_")
        self.help = help
        self.kind = kind
    }

    /// A gauge's value as `Double.description`; a counter's whole values below 9e15 as integers,
    /// others as `Double.description`.
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

    /// A histogram's `_bucket` series (cumulative, `le` each bound in seconds, then `+Inf`), its
    /// `_sum` in seconds and its `_count`.
    mutating func histogram(_ family: ExpositionFamily, labels: [UInt8], _ h: LatencyHistogram, buckets: [Duration]) {
        // `labels` is `{…}` or empty: `le` goes inside the braces, after the others.
        let inner = labels.isEmpty ? [] : Array(labels.dropFirst().dropLast()) + [UInt8(ascii: ",")]
        var cumulative = 0
        for (bound, n) in zip(buckets.map(Self.seconds) + ["+Inf"], h.perBucket + [h.count - h.perBucket.reduce(0, +)]) {
            cumulative += n
            bytes.append(contentsOf: family.name.utf8)
            bytes.append(contentsOf: "_bucket{".utf8)
            bytes.append(contentsOf: inner)
            bytes.append(contentsOf: "le=\"\(bound)\"} \(cumulative)\n".utf8)
        }
        bytes.append(contentsOf: family.name.utf8)
        bytes.append(contentsOf: "_sum".utf8)
        bytes.append(contentsOf: labels)
        bytes.append(contentsOf: " \(Self.seconds(h.sum))\n".utf8)
        bytes.append(contentsOf: family.name.utf8)
        bytes.append(contentsOf: "_count".utf8)
        bytes.append(contentsOf: labels)
        bytes.append(contentsOf: " \(h.count)\n".utf8)
    }

    /// A duration in seconds, exact: whole seconds, a point, the fraction's digits without
    /// trailing zeros (at least one): `0.001`, `2.5`, `60.0`.
    static func seconds(_ d: Duration) -> String {
        let (whole, attos) = d.components
        var fraction = String(attos)
        fraction = String(repeating: "0", count: 18 - fraction.count) + fraction
        while fraction.count > 1, fraction.last == "0" { fraction.removeLast() }
        return "\(whole).\(fraction)"
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
    static let feedLive = gauge(
        "config", "feed_live", "",
        "1 while this server hears of every config change committed (SQLite: always; PostgreSQL: while its LISTEN connection is in place and answers its checks)"
    )
    static let databaseUp = gauge(
        "database", "up", "",
        "1 when this scrape read the nodes from the database and no request was refused for the database's sake in the last 5 s; 0 otherwise (the fleet and node series are then absent if the read failed)"
    )
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
        ExpositionFamily(subsystem, metricName, unit, help, .gauge)
    }

    /// The server's own gauges, then, when `nodes` were read, the fleet's (`databaseUp` false
    /// whenever they were asked for and could not be read: `ServerMetrics.page`).
    static func write(_ nodes: [NodeInfo]?, waiting: Int, feedLive: Bool, databaseUp: Bool, into out: inout Exposition) {
        func gauges(_ values: [(ExpositionFamily, Double)]) {
            for (family, value) in values {
                out.declare(family)
                out.series(family, labels: [], value: value)
            }
        }
        guard let nodes else {
            gauges([(waiters, Double(waiting)), (Self.feedLive, feedLive ? 1 : 0), (Self.databaseUp, databaseUp ? 1 : 0)])
            return
        }
        let fleet = FleetNow.of(nodes)
        gauges([
            (Self.nodes, Double(nodes.count)), (waiters, Double(waiting)), (Self.feedLive, feedLive ? 1 : 0),
            (Self.databaseUp, databaseUp ? 1 : 0), (saved, Double(fleet.savedBytes)),
            (notReportingSaved, Double(fleet.lastKnownSavedBytesNotReporting)), (cpu, fleet.ksmdCPUPercent),
        ])
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
        NodeFamily(family: ExpositionFamily("node", metricName, unit, help, .gauge), value: value)
    }
    /// Counters' names end in `_total`.
    static func counter(
        _ metricName: String, _ help: String, _ value: @escaping @Sendable (NodeInfo, Date) -> Double?
    ) -> Self {
        NodeFamily(family: ExpositionFamily("node", metricName, "total", help, .counter), value: value)
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
        .gauge("saved", unit: "bytes", "Memory KSM saved on the node at its last sample, bytes (kept for nodes not reporting: ksmfleet_node_online says which; ksmfleet_fleet_saved_bytes sums the online ones)") { n, _ in n.lastSample.map { Double($0.savedBytes) } },
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
