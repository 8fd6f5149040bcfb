import FleetAPI
import Foundation
import HTTPTypes
import Hummingbird
import KSMCore

/// One node (`node.mustache`): status and counters, identity, the config form with its field
/// errors, the kick button (throttle mode) and the history charts.
struct NodePage: Sendable {
    /// A counter of the status panel; `domId` for the ones tests and scripts look up.
    struct Counter: Sendable, Equatable {
        var label: String
        var value: String
        var domId: String?
    }

    /// One input or select of the config form.
    struct FormField: Sendable, Equatable {
        var name: String
        var value: String
        /// For a select; empty for a text input.
        var options: [SelectOption]
        var error: String?
        /// The id of the error message's element: "error-run", "error-parameters-boost".
        var errorId: String
    }

    /// A history range link; `current` for the range shown.
    struct RangeLink: Sendable, Equatable {
        var label: String
        var href: String
        var current: Bool
    }

    /// The history ranges the page offers: (query value, label, seconds, resolution). Up to a day
    /// the charts draw the raw samples (a merge ramp or a prune shows as it happened); longer
    /// ranges draw hourly rollups.
    static let ranges: [(value: String, label: String, span: TimeInterval, resolution: HistoryResolution)] = [
        ("1h", "1 h", 3600, .raw), ("6h", "6 h", 6 * 3600, .raw), ("24h", "24 h", 86400, .raw),
        ("7d", "7 days", 7 * 86400, .hour), ("30d", "30 days", 30 * 86400, .hour),
    ]

    /// The span of a `range` query value (24 hours for an unknown one).
    static func span(_ range: String) -> TimeInterval {
        ranges.first { $0.value == range }?.span ?? 86400
    }

    /// The resolution a `range` is drawn at.
    static func resolution(_ range: String) -> HistoryResolution {
        ranges.first { $0.value == range }?.resolution ?? .raw
    }

    /// At most this many points per chart: more raw samples are thinned to the highest value
    /// per equal slice of time (a peak is never thinned away).
    static let maxPoints = 1500

    /// Raw samples as chart points, thinned to `maxPoints` by the highest value per slice.
    static func rawPoints(_ samples: [HistorySample], from: Double, to: Double, value: (HistorySample) -> Double?)
        -> [Charts.Point]
    {
        let points = samples.compactMap { s in value(s).map { Charts.Point(t: s.takenAt.timeIntervalSince1970, v: $0) } }
        guard points.count > maxPoints, to > from else { return points }
        let slice = (to - from) / Double(maxPoints)
        var out: [Charts.Point] = []
        for p in points {
            let k = ((p.t - from) / slice).rounded(.down)
            if let last = out.last, ((last.t - from) / slice).rounded(.down) == k {
                if p.v > last.v { out[out.count - 1].v = p.v }
            } else {
                out.append(p)
            }
        }
        return out
    }

    var name: String
    var nodeId: String
    /// "/nodes/<id>", the base of the page's form actions and links.
    var base: String
    /// A success message after a save or kick.
    var flash: String?
    var phaseBadge: Badge
    var phaseReason: String
    var driftBadge: Badge
    var drifting: Bool
    var driftReason: String
    var generation: Int64
    var counters: [Counter]
    var kernel: String
    var memory: String
    var numaNodes: String
    var agentVersion: String
    var labels: String
    var onlineBadge: Badge
    var lastSeen: String
    /// Set when the node is not reporting: the counters are the last ones it sent.
    var staleNote: String?
    /// The node's config says run: the side-channel note warns that KSM is on, not that it is off.
    var ksmOn: Bool
    /// What the history charts show: "raw samples" or "hourly averages", and from when.
    var historyNote: String
    var applyError: String?
    var formGeneration: String
    var formBase: String
    /// The error of the form as a whole (a conflicting edit).
    var formError: String?
    var run: FormField
    var mode: FormField
    var thresCoef: FormField
    var mergeAcrossNodes: FormField
    var maxCpuPercent: FormField
    var parametersError: String?
    /// Mode customized: the parameters are editable; otherwise they show the preset's, read-only.
    var customized: Bool
    var params: [FormField]
    var throttle: Bool
    var kickCounter: Int64
    var ranges: [RangeLink]
    /// SVG, built and escaped by `Charts`.
    var savedChart: String
    /// SVG, built and escaped by `Charts`.
    var cpuChart: String
    /// The node's latest audit records (filled by the handler; empty in page-data tests).
    var audit = AuditTable(tableId: "node-audit", rows: [])
    /// The fleet-wide audit page filtered to this node (a stored property: templates read
    /// stored properties only).
    var auditHref = ""
    /// Why KSM saves little, and who benefits.
    var benefits: NodeBenefits

    /// The page for node `n` with the config `form` (its stored config, or what was posted) and
    /// its field `errors`, and its hourly `history` over [since, now) for `range`.
    init(
        info n: NodeInfo, form: ConfigForm, errors: [String: String], flash: String?, range: String,
        history: HistoryResponse?, since: Date, now: Date
    ) {
        name = n.name
        nodeId = n.id
        base = "/nodes/" + HTML.q(n.id)
        self.flash = flash
        phaseBadge = Badge.phase(n.phase, live: n.online)
        phaseReason = n.phaseReason ?? "no sample yet"
        driftBadge = Badge.drift(n)
        drifting = n.drift
        driftReason = n.driftReason ?? ""
        generation = n.config.generation

        let s = n.lastSample
        let st = s?.status
        counters = [
            Counter(label: "Memory saved", value: HTML.bytes(s?.savedBytes), domId: "st-saved"),
            Counter(label: "pages_sharing", value: HTML.int(st?.pagesSharing), domId: "st-sharing"),
            Counter(label: "pages_shared", value: HTML.int(st?.pagesShared), domId: "st-shared"),
            Counter(label: "pages_unshared", value: HTML.int(st?.pagesUnshared)),
            Counter(label: "pages_volatile", value: HTML.int(st?.pagesVolatile)),
            Counter(label: "full_scans", value: HTML.int(st?.fullScans), domId: "st-fullscans"),
            Counter(label: "stable_node_chains", value: HTML.int(st?.stableNodeChains)),
            Counter(label: "stable_node_dups", value: HTML.int(st?.stableNodeDups)),
            Counter(
                label: "general_profit",
                value: st?.generalProfit.map { HTML.bytes($0) } ?? "not reported (kernel < 6.7)"),
            Counter(label: "ksmd CPU", value: HTML.percent(s?.ksmdCPUPercent), domId: "st-cpu"),
            Counter(
                label: "pages_to_scan / sleep",
                value: st.map { "\(HTML.int(Int64($0.pagesToScan))) / \($0.sleepMillisecs) ms" } ?? "—"),
            Counter(
                label: "MemAvailable",
                value: s.map { Display.memAvailable($0.memory, thresCoef: n.config.config.thresCoef) } ?? "—"),
        ]
        kernel = n.kernel
        memory = HTML.bytes(n.memTotalBytes)
        numaNodes = String(n.numaNodes)
        agentVersion = n.agentVersion
        labels =
            n.labels.isEmpty
            ? "—" : n.labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", ")
        onlineBadge = Badge.connection(n.connection)
        lastSeen = HTML.lastSeen(n, now: now)
        switch n.connection {
        case .online, .never: staleNote = nil
        case .agentStopped:
            staleNote =
                "The agent stopped \(HTML.ago(n.lastSeenAt, now: now)); these are the figures it reported last. "
                + "The kernel keeps what it left (see the phase): nobody is watching it now."
        case .offline:
            staleNote =
                "Not reporting since \(HTML.ago(n.lastSeenAt, now: now)) (no goodbye from the agent: crash, host down "
                + "or network); these are the figures it reported last."
        }
        ksmOn = n.config.config.run == .run
        applyError = n.applyError
        benefits = NodeBenefits(n, now: now)

        formGeneration = form.generation
        formBase = form.base
        formError = errors["_form"]
        func field(_ name: String, _ value: String, options: [(String, String)] = [], error key: String? = nil)
            -> FormField
        {
            let key = key ?? name
            return FormField(
                name: name, value: value, options: SelectOption.list(options, current: value), error: errors[key],
                errorId: "error-" + key.replacingOccurrences(of: ".", with: "-"))
        }
        run = field("run", form.run, options: RunMode.allCases.map { ($0.rawValue, $0.rawValue) })
        mode = field("mode", form.mode, options: TuningMode.allCases.map { ($0.rawValue, $0.rawValue) })
        thresCoef = field("thresCoef", form.thresCoef)
        mergeAcrossNodes = field(
            "mergeAcrossNodes", form.mergeAcrossNodes,
            options: [("", "unset (keep kernel value)"), ("1", "1 (across NUMA nodes)"), ("0", "0 (per NUMA node)")])
        maxCpuPercent = field("maxCpuPercent", form.maxCpuPercent)
        parametersError = errors["parameters"]
        customized = form.mode == TuningMode.customized.rawValue
        params = [
            ("boost", form.boost), ("decay", form.decay), ("minPages", form.minPages), ("maxPages", form.maxPages),
            ("sleepMsec", form.sleepMsec),
        ].map { field($0.0, $0.1, error: "parameters." + $0.0) }
        throttle = n.config.config.mode == .throttle || n.config.config.mode == .adaptive
        kickCounter = n.config.kickCounter

        let base = self.base
        ranges = Self.ranges.map {
            RangeLink(label: $0.label, href: "\(base)?range=\($0.value)", current: $0.value == range)
        }
        let gaps = (history?.gaps ?? []).map { Interval($0.from.timeIntervalSince1970, $0.to.timeIntervalSince1970) }
        // The axis starts when the node came to exist if that is inside the range: time before
        // its registration is neither data nor a gap.
        let born = history?.existence?.from.timeIntervalSince1970
        let from = max(since.timeIntervalSince1970, born ?? since.timeIntervalSince1970)
        let to = now.timeIntervalSince1970
        let savedPoints: [Charts.Point]
        let cpuPoints: [Charts.Point]
        let maxStep: Double
        if let samples = history?.samples {
            savedPoints = Self.rawPoints(samples, from: from, to: to) { Double($0.savedBytes) }
            cpuPoints = Self.rawPoints(samples, from: from, to: to) { $0.ksmdCPUPercent }
            maxStep = ReportPolicy.default.maxGapSeconds
            historyNote =
                "Raw samples" + (samples.count > Self.maxPoints ? " (the highest per \(Self.maxPoints)th of the range)" : "")
        } else {
            let buckets = history?.buckets ?? []
            savedPoints = buckets.map { .init(t: $0.start.timeIntervalSince1970, v: $0.avgSavedBytes) }
            cpuPoints = buckets.map { .init(t: $0.start.timeIntervalSince1970, v: $0.avgKsmdCPUPercent) }
            maxStep = 1.5 * 3600
            historyNote = "Hourly averages"
        }
        if let born, born > since.timeIntervalSince1970 {
            historyNote += ", since the node registered (\(HTML.time(Date(timeIntervalSince1970: born))))"
        }
        savedChart = Charts.line(
            id: "chart-node-saved", title: "Memory saved", points: savedPoints, gaps: gaps, from: from, to: to,
            maxStep: maxStep, color: "#2563eb", unit: { HTML.bytes($0) }, binary: true)
        cpuChart = Charts.line(
            id: "chart-node-cpu", title: "ksmd CPU", points: cpuPoints, gaps: gaps, from: from, to: to,
            maxStep: maxStep, color: "#d97706", unit: { HTML.percent($0) })
    }
}

extension DashboardController {
    @Sendable func nodePage(_ request: Request, context: Context) async throws -> Response {
        guard let session = try await sessions.signedIn(request) else { return DashboardPages.toLogin(request) }
        let (raw, stored) = try await node(context)
        guard let stored else { return try notFound(raw, session: session) }
        var flash: String?
        // Numbers only: the banner is the server's word, not any text a link carries.
        if let g = HTTP.query(request, "saved").flatMap(Int64.init) { flash = "Saved: the config is now generation \(g)." }
        if let k = HTTP.query(request, "kicked").flatMap(Int64.init) {
            flash = "Kicked: kick counter \(k); the agent goes aggressive on its next poll."
        }
        if HTTP.query(request, "unchanged") != nil { flash = "Nothing changed." }
        let info = state.nodeInfo(stored)
        return try await renderNode(
            request, info: info, session: session, form: ConfigForm(info.config), errors: [:], flash: flash, status: .ok
        )
    }

    func renderNode(
        _ request: Request, info: NodeInfo, session: DashboardSession, form: ConfigForm, errors: [String: String],
        flash: String?, status: HTTPResponse.Status
    ) async throws -> Response {
        let now = Date()
        let range = HTTP.query(request, "range") ?? "24h"
        let since = now.addingTimeInterval(-NodePage.span(range))
        let history = try await state.database.history(
            nodeId: info.id, since: since, until: now, resolution: NodePage.resolution(range), maxSamples: 100_000,
            now: now)
        var page = NodePage(
            info: info, form: form, errors: errors, flash: flash, range: range, history: history, since: since, now: now
        )
        page.auditHref = "/audit?node=" + HTML.q(info.id)
        page.audit = AuditTable(
            tableId: "node-audit", rows: try await state.database.auditLog(nodeId: info.id, limit: 20).map(AuditTable.row))
        return try pages.render("node", title: info.name, section: .nodes, session: session, page: page, status: status)
    }
}
