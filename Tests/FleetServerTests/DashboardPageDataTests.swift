import FleetAPI
import FleetTestSupport
import Foundation
import KSMCore
import Mustache
import TestSupport
import Testing

@testable import FleetServer

/// The dashboard pages' data, built by pure functions from what the store returns: checked
/// without HTML and without a server.
@Suite struct DashboardPageDataTests {
    static let now = Date(timeIntervalSince1970: 1_790_000_000)

    static func node(
        _ name: String, labels: [String: String] = [:], online: Bool = true, drift: Bool = false,
        savedPages: Int64 = 1000,
        phase: KSMPhase? = .running, mode: TuningMode = .standard
    ) -> NodeInfo {
        var config = KSMConfig.standardDefault.normalized()
        config.mode = mode
        return NodeInfo(
            id: "n-" + name, name: name, machineId: "m-" + name, labels: labels, kernel: "6.8.0",
            memTotalBytes: 1 << 34,
            numaNodes: 1, ksmFeatures: [], agentVersion: "test", registeredAt: now,
            lastSeenAt: now.addingTimeInterval(-30),
            online: online, connection: online ? .online : .offline, config: NodeConfig(generation: 2, config: config),
            phase: phase, phaseReason: "because",
            appliedGeneration: drift ? 1 : 2, applyError: nil, drift: drift,
            driftReason: drift ? "not yet applied" : nil,
            lastSample: Fixtures.sample(1, pagesSharing: savedPages, phase: phase ?? .running, takenAt: now))
    }

    static let fleet = [
        node("bravo", labels: ["rack": "r1"], online: false, drift: true, savedPages: 3000, phase: .stopped),
        node("alpha", labels: ["rack": "r1"], savedPages: 1000),
        node("charlie", labels: ["rack": "r2"], savedPages: 2000, mode: .throttle),
    ]

    @Test func nodesTableFiltersAndSorts() {
        let all = NodesPage(nodes: Self.fleet, filters: .init(), now: Self.now)
        #expect(all.rows.map(\.name) == ["alpha", "bravo", "charlie"])
        #expect(all.count == "3 nodes")
        #expect(all.rows[0].labels == "rack=r1" && all.rows[1].online == Badge(text: "offline", kind: "bad"))
        #expect(all.rows[1].drift == Badge(text: "drift", kind: "warn"))

        let rack = NodesPage(nodes: Self.fleet, filters: .init(label: "rack=r1"), now: Self.now)
        #expect(rack.rows.map(\.name) == ["alpha", "bravo"])
        let online = NodesPage(nodes: Self.fleet, filters: .init(online: "true", drift: "false"), now: Self.now)
        #expect(online.rows.map(\.name) == ["alpha", "charlie"])
        #expect(online.onlineOptions.filter(\.selected).map(\.value) == ["true"])

        let bySaved = NodesPage(nodes: Self.fleet, filters: .init(sort: "saved", descending: true), now: Self.now)
        #expect(bySaved.rows.map(\.name) == ["bravo", "charlie", "alpha"])
        let saved = bySaved.columns.first { $0.title == "Saved now" }
        #expect(saved?.arrow == " ▼" && saved?.href == "/nodes?dir=asc&sort=saved")
        #expect(bySaved.columns.first { $0.title == "Labels" }?.href == nil)

        let bad = NodesPage(nodes: Self.fleet, filters: .init(label: "rack"), now: Self.now)
        #expect(bad.filterError != nil)
        #expect(NodesPage(nodes: [], filters: .init(), now: Self.now).count == "0 nodes")
    }

    /// A fleet bigger than a page: the page asked for, links before and after it that keep the
    /// filters and the order, the last page for a number past the end.
    @Test func nodesTableComesInPages() {
        let fleet = (1...7).map { Self.node("node\($0)", labels: ["rack": $0 == 5 ? "r2" : "r1"]) }
        func page(_ n: Int, _ filters: NodesPage.Filters = .init()) -> NodesPage {
            var f = filters
            f.page = n
            return NodesPage(nodes: fleet, filters: f, now: Self.now, pageSize: 3)
        }
        let first = page(1)
        #expect(first.rows.map(\.name) == ["node1", "node2", "node3"])
        #expect(first.count == "nodes 1–3 of 7" && first.previousHref == nil)
        #expect(first.nextHref == "/nodes?dir=asc&page=2&sort=name")
        let second = page(2, .init(label: "rack=r1", sort: "name", descending: true))
        #expect(second.rows.map(\.name) == ["node3", "node2", "node1"], "rack r1 is six nodes, from the end")
        #expect(second.count == "nodes 4–6 of 6" && second.nextHref == nil)
        #expect(second.previousHref == "/nodes?dir=desc&label=rack%3Dr1&page=1&sort=name")
        let past = page(9)
        #expect(past.rows.map(\.name) == ["node7"] && past.count == "nodes 7–7 of 7")
        #expect(page(0).rows.map(\.name) == first.rows.map(\.name))
        // Sorting starts again at the first page.
        #expect(second.columns.allSatisfy { !($0.href ?? "").contains("page=") })
        // Ties (the same name, the same saving) in a strict order: every node on exactly one page,
        // whatever order the store gave them in for each page's request.
        let twins = (1...7).map { i in
            var n = Self.node("twin")
            n.id = "n-twin-\(i)"
            return n
        }
        var rng = SeededRandom(seed: 45)
        for sort in ["name", "saved", "phase"] {
            for descending in [false, true] {
                let ids = (1...3).flatMap { p in
                    NodesPage(
                        nodes: twins.shuffled(using: &rng), filters: .init(sort: sort, descending: descending, page: p),
                        now: Self.now, pageSize: 3
                    ).rows.map(\.id)
                }
                #expect(ids.sorted() == twins.map(\.id).sorted(), "\(sort), descending \(descending)")
            }
        }
        let one = NodesPage(nodes: Array(fleet.prefix(3)), filters: .init(), now: Self.now, pageSize: 3)
        #expect(one.count == "3 nodes" && one.previousHref == nil && one.nextHref == nil && !one.paged)
        #expect(first.paged && past.paged)
    }

    /// The nodes table by name is in `localizedStandardCompare`'s order (ties by id), however
    /// the names look and whatever order the store gave them in: the cheap presort
    /// (`NameOrder`) changes only the time. Names of letters of either case, digits with and
    /// without leading zeros, punctuation and a few non-ASCII letters, many sharing prefixes.
    @Test(arguments: 0..<8)
    func byNameIsFindersOrder(seed: UInt64) {
        var rng = SeededRandom(seed: seed &+ 77)
        let parts = ["web", "Web", "db", "DB", "-", "_", ".", "0", "00", "7", "9", "10", "010", "123", "é", "Ä", "x", "rack"]
        let fleet = (0..<300).map { i -> NodeInfo in
            let name = (0..<Int.random(in: 1...5, using: &rng)).map { _ in parts.randomElement(using: &rng)! }.joined()
            var n = Self.node(name)
            n.id = "n-\(i)"
            return n
        }
        func before(_ a: NodeInfo, _ b: NodeInfo) -> Bool {
            switch a.name.localizedStandardCompare(b.name) {
            case .orderedAscending: true
            case .orderedDescending: false
            case .orderedSame: a.id < b.id
            }
        }
        for descending in [false, true] {
            let rows = NodesPage(
                nodes: fleet.shuffled(using: &rng), filters: .init(sort: "name", descending: descending), now: Self.now,
                pageSize: 1000
            ).rows.map(\.id)
            let expected = fleet.sorted { descending ? before($1, $0) : before($0, $1) }.map(\.id)
            #expect(rows == expected, "seed \(seed), descending \(descending)")
        }
    }

    /// The presort's order: case ignored, numbers by value.
    @Test func theRoughNameOrder() {
        #expect(NameOrder.roughlyBefore("web-9", "web-10"))
        #expect(!NameOrder.roughlyBefore("web-10", "web-9"))
        #expect(NameOrder.roughlyBefore("Web-2", "web-10"))
        #expect(NameOrder.roughlyBefore("web-007", "web-10") && NameOrder.roughlyBefore("web", "web-1"))
        #expect(!NameOrder.roughlyBefore("WEB-1", "web-01") && !NameOrder.roughlyBefore("web-01", "WEB-1"))
        #expect(NameOrder.roughlyBefore("a99", "b1") && NameOrder.roughlyBefore("rack2-host9", "rack10-host1"))
    }

    @Test func nodePageShowsTheFormAsTypedWithItsErrors() {
        var form = ConfigForm(Self.fleet[2].config)
        form.thresCoef = "x"
        let page = NodePage(
            info: Self.fleet[2], form: form,
            errors: ["thresCoef": "'x' is not a whole number", "parameters.boost": "too big"],
            flash: nil, range: "7d", history: nil, since: Self.now.addingTimeInterval(-7 * 86400), now: Self.now)
        #expect(page.throttle && !page.customized)
        #expect(page.thresCoef.value == "x" && page.thresCoef.error == "'x' is not a whole number")
        #expect(page.params.map(\.name) == ["boost", "decay", "minPages", "maxPages", "sleepMsec"])
        #expect(page.params[0].error == "too big" && page.params[0].errorId == "error-parameters-boost")
        #expect(page.mode.options.filter(\.selected).map(\.value) == ["throttle"])
        #expect(page.ranges.map(\.current) == [false, false, false, true, false])
        #expect(NodePage.resolution("6h") == .raw && NodePage.resolution("24h") == .raw)
        #expect(NodePage.resolution("7d") == .hour)
        #expect(page.base == "/nodes/n-charlie" && page.labels == "rack=r2")
        #expect(NodePage.span("7d") == 7 * 86400 && NodePage.span("junk") == 86400)
    }

    @Test func aNodeThatIsNotReportingShowsItsLastFiguresAsSuch() {
        var stopped = Self.fleet[1]
        stopped.online = false
        stopped.connection = .agentStopped
        stopped.lastSeenAt = Self.now.addingTimeInterval(-300)
        let page = NodePage(
            info: stopped, form: ConfigForm(stopped.config), errors: [:], flash: nil, range: "24h", history: nil,
            since: Self.now.addingTimeInterval(-86400), now: Self.now)
        #expect(page.onlineBadge.text == "agent stopped")
        #expect(page.phaseBadge.kind == "muted" && page.phaseBadge.text.contains("last reported"))
        #expect(page.staleNote?.contains("agent stopped") == true || page.staleNote?.contains("The agent stopped") == true)
        #expect(page.lastSeen.hasPrefix("last reported"))
        let rows = NodesPage(nodes: [stopped], filters: .init(), now: Self.now).rows
        #expect(rows.first?.live == false && rows.first?.online.text == "agent stopped")
        #expect(rows.first?.phase.kind == "muted")
        #expect(rows.first?.lastSeen.hasPrefix("last reported") == true)
        let live = NodePage(
            info: Self.fleet[1], form: ConfigForm(Self.fleet[1].config), errors: [:], flash: nil, range: "24h",
            history: nil, since: Self.now.addingTimeInterval(-86400), now: Self.now)
        #expect(live.staleNote == nil && live.phaseBadge.kind == "ok")
    }

    @Test func shortRangesDrawRawSamplesFromTheNodesRegistration() {
        let born = Self.now.addingTimeInterval(-600)
        let samples = (0..<60).map { i in
            HistorySample(
                seq: Int64(i), takenAt: born.addingTimeInterval(Double(i) * 10), phase: .running, phaseReason: "",
                run: 1, pagesToScan: 100, sleepMillisecs: 20, pagesShared: 0, pagesSharing: Int64(i) * 1000,
                pagesUnshared: 0, pagesVolatile: 0, fullScans: 0, savedBytes: Int64(i) * 4_096_000, generalProfit: nil,
                memTotalBytes: 1 << 34, memAvailableBytes: 1 << 33, ksmdCPUPercent: 5, ksmdCPUSeconds: nil,
                appliedGeneration: 1, applyError: nil)
        }
        let history = HistoryResponse(
            nodeId: "n-alpha", name: "alpha", since: Self.now.addingTimeInterval(-86400), until: Self.now,
            resolution: .raw, samples: samples, gaps: [], existence: TimeRange(from: born, to: Self.now))
        let page = NodePage(
            info: Self.fleet[1], form: ConfigForm(Self.fleet[1].config), errors: [:], flash: nil, range: "24h",
            history: history, since: Self.now.addingTimeInterval(-86400), now: Self.now)
        #expect(page.historyNote.hasPrefix("Raw samples"))
        #expect(page.historyNote.contains("since the node registered"))
        // One point per sample: the ramp is drawn, not one hourly dot.
        #expect(page.savedChart.components(separatedBy: ",").count > 50)
        // No "no data" shading before the node existed.
        #expect(!page.savedChart.contains("no data"))
        // Thinning keeps the highest value of each slice.
        let many = (0..<5000).map { Charts.Point(t: Double($0), v: $0 == 2500 ? 99 : 1) }
        let thinned = NodePage.rawPoints(
            many.map { p in
                HistorySample(
                    seq: Int64(p.t), takenAt: Date(timeIntervalSince1970: p.t), phase: .running, phaseReason: "", run: 1,
                    pagesToScan: 0, sleepMillisecs: 0, pagesShared: 0, pagesSharing: 0, pagesUnshared: 0,
                    pagesVolatile: 0, fullScans: 0, savedBytes: Int64(p.v), generalProfit: nil, memTotalBytes: 0,
                    memAvailableBytes: 0, ksmdCPUPercent: nil, ksmdCPUSeconds: nil, appliedGeneration: nil,
                    applyError: nil)
            }, from: 0, to: 5000
        ) { Double($0.savedBytes) }
        #expect(thinned.count <= NodePage.maxPoints)
        #expect(thinned.contains { $0.v == 99 })
    }

    @Test func anEmptyChartHasNoScale() {
        let empty = Charts.line(
            id: "c", title: "saved", points: [], gaps: [], from: 0, to: 3600, maxStep: 60, unit: { HTML.bytes($0) },
            binary: true)
        #expect(empty.contains("no data in this period"))
        // No labels of values nobody measured (the axis read 0 B to 4 B).
        #expect(!empty.contains("text-anchor=\"end\""))
        // A chart of zeros is a measurement: its scale is drawn.
        let zeros = Charts.line(
            id: "c", title: "saved", points: [.init(t: 10, v: 0), .init(t: 70, v: 0)], gaps: [], from: 0, to: 3600,
            maxStep: 60, unit: { HTML.bytes($0) }, binary: true)
        #expect(zeros.components(separatedBy: "text-anchor=\"end\"").count - 1 == 5)
    }

    /// Hour buckets of a node registered mid-hour: the first begins before the chart's start.
    /// It was left out of the line but counted as the second's neighbour, so neither a segment
    /// nor a dot was drawn (a path of a lone "M").
    @Test func aBucketThatBeganBeforeTheChartIsDrawnAtItsStart() {
        let from = 1_790_000_000.0
        let chart = Charts.line(
            id: "c", title: "saved", points: [.init(t: from - 2400, v: 5), .init(t: from + 1200, v: 7)], gaps: [],
            from: from, to: from + 7200, maxStep: 5400, unit: { HTML.bytes($0) }, binary: true)
        let d = chart.components(separatedBy: "<path d=\"").dropFirst().first?.prefix(while: { $0 != "\"" }) ?? ""
        #expect(d.contains("L") || chart.contains("<circle"), "nothing visible drawn: \(d)")
        #expect(d.hasPrefix("M74,"), "the first bucket is drawn at the chart's start: \(d)")
    }

    @Test func reportQueryFallsBackToTheLastWeekWithAReason() {
        let bad = ReportQuery(since: "yesterday", until: nil, by: "node", label: nil, now: Self.now)
        #expect(bad.error?.contains("'yesterday' is not a time") == true)
        #expect(bad.since == Self.now.addingTimeInterval(-7 * 86400) && bad.until == Self.now)
        let noKey = ReportQuery(since: "-24h", until: "now", by: "label", label: " ", now: Self.now)
        #expect(noKey.by == .node && noKey.error == "choose the label key to group by")
        let ok = ReportQuery(since: "-24h", until: "now", by: "label", label: "rack", now: Self.now)
        #expect(ok.error == nil && ok.by == .label && ok.query == "since=-24h&until=now&by=label&label=rack")
    }

    @Test func reportRowsNameTheirGroup() {
        func row(_ key: String, name: String? = nil, deleted: Bool? = nil) -> SavingsRow {
            SavingsRow(
                key: key, name: name, deleted: deleted, nodes: 1, avgSavedBytes: 1024, peakSavedBytes: 2048,
                savedGiBHours: 1, ksmdCPUHours: 0.5, avgKsmdCPUCores: 0.02, efficiencyGiBPerCore: 3,
                avgNetProfitBytes: nil,
                phaseHours: ["Running": 2], dataHours: 2, periodHours: 2, coverage: 1, gaps: [])
        }
        let byNode = ReportQuery(since: "-24h", until: "now", by: "node", label: nil, now: Self.now)
        let live = ReportsPage.row(row("n-a", name: "alpha"), query: byNode, total: false)
        #expect(live.name == "alpha" && live.nameHref == "/nodes/n-a" && !live.deleted)
        let gone = ReportsPage.row(row("n-b", name: "bravo", deleted: true), query: byNode, total: false)
        #expect(gone.nameHref == nil && gone.deleted)
        #expect(live.net == nil && live.gaps == nil && live.phases == "Running 2 h")
        let byLabel = ReportQuery(since: "-24h", until: "now", by: "label", label: "rack", now: Self.now)
        #expect(ReportsPage.row(row("r1"), query: byLabel, total: false).name == "rack=r1")
        let none = ReportsPage.row(row(""), query: byLabel, total: false)
        #expect(none.name == "(no rack label)" && none.nameMuted)
        #expect(ReportsPage.row(row("fleet"), query: byLabel, total: true).name == "Fleet total")
        // By name as by Mirror, with every optional set and unset.
        var full = row("n-c", name: "charlie")
        full.avgNetProfitBytes = 4096
        full.gaps = [TimeRange(from: Self.now, to: Self.now.addingTimeInterval(600))]
        let rich = ReportsPage.row(full, query: byNode, total: false)
        #expect(rich.net != nil && rich.gaps != nil)
        for r in [live, gone, none, rich] {
            #expect(Self.namesAgreeWithMirror(r) == [], "\(r.name)")
        }
    }

    /// The overview's busiest ksmd of the last 24 h may hold a node deleted since: no link to a
    /// page it no longer has (a 404), marked deleted as on the reports page.
    @Test func busiestKsmdMarksADeletedNode() throws {
        func row(_ key: String, _ name: String, deleted: Bool?) -> SavingsRow {
            SavingsRow(
                key: key, name: name, deleted: deleted, nodes: 1, avgSavedBytes: 1024, peakSavedBytes: 2048,
                savedGiBHours: 1, ksmdCPUHours: 0.5, avgKsmdCPUCores: 0.02, efficiencyGiBPerCore: 3,
                avgNetProfitBytes: nil, phaseHours: ["Running": 2], dataHours: 2, periodHours: 2, coverage: 1, gaps: [])
        }
        let report = SavingsReport(
            since: Self.now, until: Self.now, by: .node, label: nil, generatedAt: Self.now,
            rows: [row("n-a", "alpha", deleted: nil), row("n-gone", "gone", deleted: true)],
            total: row("fleet", "fleet", deleted: nil), maxGapSeconds: 0)
        let page = OverviewPage(
            nodes: Self.fleet, last24h: report, last30d: report, series: [], seriesFrom: Self.now, now: Self.now)
        let gone = try #require(page.top.first { $0.name == "gone" })
        #expect(gone.href == nil && gone.deleted)
        let alpha = try #require(page.top.first { $0.name == "alpha" })
        #expect(alpha.href == "/nodes/n-a" && !alpha.deleted)
    }

    /// A report with more rows than a page: the rows of the page asked for, the total on every
    /// page, links that keep the report's query.
    @Test func reportRowsComeInPages() {
        let rows = (1...7).map { i in
            SavingsRow(
                key: "n-\(i)", name: "node\(i)", nodes: 1, avgSavedBytes: 1024, peakSavedBytes: 2048, savedGiBHours: 1,
                ksmdCPUHours: 0.5, avgKsmdCPUCores: 0.02, efficiencyGiBPerCore: 3, avgNetProfitBytes: nil, phaseHours: [:],
                dataHours: 2, periodHours: 2, coverage: 1, gaps: [])
        }
        let report = SavingsReport(
            since: Self.now, until: Self.now, by: .node, label: nil, generatedAt: Self.now, rows: rows, total: rows[0],
            maxGapSeconds: 300)
        let q = ReportQuery(since: "-24h", until: "now", by: "node", label: nil, now: Self.now)
        let second = ReportsPage(query: q, report: report, page: 2, rowsPerPage: 3)
        #expect(second.rows.map(\.name) == ["node4", "node5", "node6"] && second.total.name == "Fleet total")
        #expect(second.rowsShown == "rows 4–6 of 7")
        #expect(second.previousHref == "/reports?since=-24h&until=now&by=node&page=1")
        #expect(second.nextHref == "/reports?since=-24h&until=now&by=node&page=3")
        let last = ReportsPage(query: q, report: report, page: 40, rowsPerPage: 3)
        #expect(last.rows.map(\.name) == ["node7"] && last.nextHref == nil && last.rowsShown == "rows 7–7 of 7")
        #expect(second.csvHref == "/reports/savings.csv?since=-24h&until=now&by=node", "the CSV has every row")
        let one = ReportsPage(query: q, report: report, rowsPerPage: 7)
        #expect(one.rows.count == 7 && one.rowsShown == nil && one.previousHref == nil && one.nextHref == nil)
    }

    @Test func everyTemplateParsesAndTheLayoutFramesThePage() throws {
        let templates = try DashboardTemplates()
        let frame = PageFrame(title: "Nodes", section: .nodes, csrf: "c0ffee", nonce: "n0nce")
        let html = try templates.render(
            "nodes", frame: frame, page: NodesPage(nodes: Self.fleet, filters: .init(), now: Self.now))
        #expect(html.hasPrefix("<!doctype html>") && html.hasSuffix("</main></body></html>"))
        #expect(html.contains("<a href=\"/nodes\" class=\"active\">Nodes</a>"))
        #expect(html.contains("<input type=\"hidden\" name=\"csrf\" value=\"c0ffee\">"))
        #expect(html.contains("<tr data-node=\"charlie\">"))
        let login = try templates.render(
            "login", frame: PageFrame(title: "Sign in", section: .none, csrf: nil, nonce: "n"),
            page: LoginPage(error: nil, loginToken: "t", next: "/"))
        #expect(!login.contains("<nav>") && !login.contains("Log out"))
        #expect(throws: DashboardTemplates.TemplateError.self) {
            try templates.render("no-such-page", frame: frame, page: NoPageData())
        }
    }

    /// The optional fields, in `value` and below, that share their name with a field of a value
    /// around them: Mustache would show the outer one's value when the inner one is nil.
    static func shadowingOptionals(_ value: Any, path: String = "page", enclosing: Set<String> = ["frame", "page"])
        -> [String]
    {
        let mirror = Mirror(reflecting: value)
        if mirror.displayStyle == .collection {
            return mirror.children.flatMap { shadowingOptionals($0.value, path: path + "[]", enclosing: enclosing) }
        }
        guard mirror.displayStyle == .struct else { return [] }
        let labels = Set(mirror.children.compactMap(\.label))
        var found: [String] = []
        for child in mirror.children {
            guard let label = child.label else { continue }
            let inner = Mirror(reflecting: child.value)
            if inner.displayStyle == .optional {
                if enclosing.contains(label) { found.append("\(path).\(label)") }
                if let wrapped = inner.children.first?.value {
                    found += shadowingOptionals(wrapped, path: "\(path).\(label)", enclosing: enclosing.union(labels))
                }
            } else {
                found += shadowingOptionals(child.value, path: "\(path).\(label)", enclosing: enclosing.union(labels))
            }
        }
        return found
    }

    @Test func noOptionalFieldIsShadowedByAnEnclosingOne() {
        let row = SavingsRow(
            key: "n-a", name: "alpha", nodes: 1, avgSavedBytes: nil, peakSavedBytes: nil, savedGiBHours: 0,
            ksmdCPUHours: 0, avgKsmdCPUCores: 0.1, efficiencyGiBPerCore: nil, avgNetProfitBytes: nil, phaseHours: [:],
            dataHours: 0, periodHours: 1, coverage: 0, gaps: [])
        let report = SavingsReport(
            since: Self.now, until: Self.now, by: .node, label: nil, generatedAt: Self.now, rows: [row], total: row,
            maxGapSeconds: 0)
        let query = ReportQuery(since: "-24h", until: "now", by: "node", label: nil, now: Self.now)
        let pages: [Any] = [
            OverviewPage(
                nodes: Self.fleet, last24h: report, last30d: report, series: [], seriesFrom: Self.now, now: Self.now),
            NodesPage(nodes: Self.fleet, filters: .init(), now: Self.now),
            NodePage(
                info: Self.fleet[0], form: ConfigForm(Self.fleet[0].config), errors: [:], flash: nil, range: "24h",
                history: nil, since: Self.now, now: Self.now),
            ReportsPage(query: query, report: report),
            LoginPage(error: nil, loginToken: "t", next: "/"),
            NotFoundPage(name: "x"),
        ]
        struct Inner { var name: String? }
        struct Outer {
            var name: String
            var rows: [Inner]
        }
        #expect(Self.shadowingOptionals(Outer(name: "a", rows: [Inner(name: nil)])) == ["page.rows[].name"])
        for page in pages {
            #expect(Self.shadowingOptionals(page) == [], "\(type(of: page))")
        }
    }
    /// Values that give Mustache their fields by name (`MustacheParent`, for speed) give every
    /// stored field, as `Mirror` would: a field added without its name would render empty.
    static func namesAgreeWithMirror(_ value: some MustacheParent) -> [String] {
        var wrong: [String] = []
        for child in Mirror(reflecting: value).children {
            guard let label = child.label else { continue }
            // What Mustache's Mirror lookup gives: an optional's value, nil for none (the name
            // is then looked up in the values around it, as if the field were not there).
            let field = Mirror(reflecting: child.value)
            let expected: Any? = field.displayStyle == .optional ? field.children.first?.value : child.value
            let named = value.child(named: label)
            switch (expected, named) {
            case (nil, nil): continue
            case (nil, let n?): wrong.append("\(label): \(n) where Mirror gives nil")
            case (_?, nil): wrong.append("\(label): missing")
            case (let e?, let n?):
                if String(describing: n) != String(describing: e) || type(of: n) != type(of: e) {
                    wrong.append("\(label): \(n) where Mirror gives \(e)")
                }
            }
        }
        if value.child(named: "noSuchField") != nil { wrong.append("an unknown name answered") }
        return wrong
    }

    @Test func auditRowsByNameGiveWhatMirrorGives() {
        let at = Date(timeIntervalSince1970: 1_790_000_000)
        let records = [
            AuditRecord(
                id: 1, at: at, credential: "ops", credentialId: "c-1", source: "10.0.0.1", nodeId: "n-1", action: "patch",
                target: "n-1", generation: 3, before: #"{"run":"stop"}"#, after: #"{"run":"run"}"#),
            // A change to many nodes listed as one record: no node link, a link to its nodes.
            AuditRecord(
                id: 2, at: at, credential: "bootstrap", credentialId: nil, source: nil, nodeId: nil, action: "apply",
                target: "all", generation: nil, before: nil, after: String(repeating: "x", count: 400), nodeCount: 12),
            AuditRecord(
                id: 3, at: at, credential: "ops", credentialId: nil, source: nil, nodeId: nil, action: "login", target: nil,
                generation: nil, before: nil, after: nil),
        ]
        let rows = records.map(AuditTable.row)
        #expect(rows.contains { $0.nodeHref == nil } && rows.contains { $0.nodesHref != nil })
        for r in rows {
            #expect(Self.namesAgreeWithMirror(r) == [], "\(r.action)")
        }
    }

    @Test func rowsByNameGiveWhatMirrorGives() {
        var nolabels = Self.node("delta", online: false, drift: true)
        nolabels.labels = [:]
        let rows = NodesPage(nodes: Self.fleet + [nolabels], filters: .init(), now: Self.now).rows
        #expect(rows.contains { $0.labels == nil } && rows.contains { $0.labels != nil })
        for row in rows {
            #expect(Self.namesAgreeWithMirror(row) == [], "\(row.name)")
            #expect(Self.namesAgreeWithMirror(row.phase) == [])
        }
    }
}

/// The generated admin token's file is the owner's from its first byte: it was written at the
/// umask's mode (0644 under the usual 022) and chmodded after. (The umask is the process's, so
/// the test leaves it as it is: under 022 a file created 0666 would be 0644.)
@Suite struct SecretFileTests {
    @Test func aSecretIsWrittenOwnerOnlyWhateverTheUmask() throws {
        let dir = makeTemporaryDirectory(prefix: "ksmfleet-secret")
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appending(path: "admin-token").path
        try AdminToken.writeSecret(Data("ka_secret\n".utf8), to: path)
        var st = stat()
        #expect(stat(path, &st) == 0)
        #expect(st.st_mode & 0o777 == 0o600, "mode \(String(st.st_mode & 0o777, radix: 8))")
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "ka_secret\n")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["admin-token"], "a temporary file was left")
        // Replacing one keeps the rule.
        try AdminToken.writeSecret(Data("ka_other\n".utf8), to: path)
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "ka_other\n")
    }
}
