import FleetAPI
import FleetStore
import Foundation
import HTTPTypes
import Hummingbird
import KSMCore
import Logging

/// The web dashboard: server-rendered HTML with inline SVG charts. Login with the admin token
/// gives an HTTP-only, SameSite=Strict session cookie (random id, kept in server memory); every
/// form carries the session's CSRF token and every POST checks it. Config edits go through the
/// same store function, validation, generation bump and audit log as the API.
struct DashboardController<Context: RequestContext>: Sendable {
    let state: ServerState
    let sessions = DashboardSessions()

    func addRoutes(to router: Router<Context>) {
        router.get("/login", use: loginPage)
        router.post("/login", use: login)
        router.post("/logout", use: logout)
        router.get("/", use: overview)
        router.get("/nodes", use: nodesPage)
        router.get("/nodes/:id", use: nodePage)
        router.post("/nodes/:id/config", use: saveConfig)
        router.post("/nodes/:id/kick", use: kick)
        router.get("/reports", use: reportsPage)
        router.get("/reports/savings.csv", use: reportCSV)
    }

    // MARK: plumbing

    struct Page {
        var csrf: String
        var nonce: String
    }

    static func nonce() -> String { Secrets.randomHex(bytes: 16) }

    func html(_ body: String, nonce: String, status: HTTPResponse.Status = .ok) -> Response {
        var r = HTTP.text(body, contentType: "text/html; charset=utf-8", status: status)
        r.headers[.contentSecurityPolicy] =
            "default-src 'none'; style-src 'unsafe-inline'; script-src 'nonce-\(nonce)'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        r.headers[.cacheControl] = "no-store"
        for (name, value) in [("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", "no-referrer"), ("X-Frame-Options", "DENY")] {
            if let n = HTTPField.Name(name) { r.headers[n] = value }
        }
        return r
    }

    static func redirect(_ location: String) -> Response {
        var r = Response(status: .seeOther)
        r.headers[.location] = location
        r.headers[.cacheControl] = "no-store"
        return r
    }

    /// The logged-in page context, or nil (then the caller redirects to the login page).
    func session(_ request: Request) -> Page? {
        guard let csrf = sessions.csrf(for: request.cookies[DashboardSessions.cookie]?.value) else { return nil }
        return Page(csrf: csrf, nonce: Self.nonce())
    }

    func toLogin(_ request: Request) -> Response {
        Self.redirect("/login?next=" + HTML.q(request.uri.path))
    }

    static func form(_ data: Data) -> [String: String] {
        var out: [String: String] = [:]
        for pair in String(decoding: data, as: UTF8.self).split(separator: "&") {
            let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func dec(_ x: Substring) -> String {
                String(x).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? ""
            }
            if let k = kv.first { out[dec(k)] = kv.count > 1 ? dec(kv[1]) : "" }
        }
        return out
    }

    /// The posted form, after the CSRF check; nil when the token is missing or wrong.
    func checkedForm(_ request: Request, page: Page) async throws -> [String: String]? {
        let data = try await HTTP.body(request, limit: 64 * 1024)
        let f = Self.form(data)
        guard let token = f["csrf"], Secrets.constantTimeEqual(token, page.csrf) else {
            state.logger.warning("dashboard form refused: bad CSRF token", metadata: ["path": "\(request.uri.path)"])
            return nil
        }
        return f
    }

    func forbidden(_ page: Page?) -> Response {
        html(
            HTML.page(
                title: "Refused", active: "", csrf: page?.csrf, nonce: page?.nonce ?? Self.nonce(),
                body: "<div class=\"flash bad\">The form was refused: its security token is missing or stale. Reload the page and try again.</div>"),
            nonce: page?.nonce ?? "", status: .forbidden)
    }

    // MARK: login

    @Sendable func loginPage(_ request: Request, context: Context) async throws -> Response {
        try await renderLogin(request, error: nil)
    }

    func renderLogin(_ request: Request, error: String?) async throws -> Response {
        let nonce = Self.nonce()
        let loginToken = Secrets.randomHex(bytes: 16)
        let next = HTTP.query(request, "next") ?? "/"
        let body = """
            <div class="login"><h1>Sign in to ksmfleet</h1>
            <p class="muted">Use the server's admin token (from <code>KSMFLEET_ADMIN_TOKEN</code> or <code>&lt;data-dir&gt;/admin-token</code>).</p>
            \(error.map { "<div class=\"flash bad\" id=\"login-error\">\(HTML.esc($0))</div>" } ?? "")
            <form method="post" action="/login">
            <input type="hidden" name="csrf" value="\(loginToken)">
            <input type="hidden" name="next" value="\(HTML.esc(next))">
            <label for="token">Admin token</label>
            <input type="password" id="token" name="token" autocomplete="current-password" autofocus required>
            <button class="primary" type="submit" id="login-submit">Sign in</button>
            </form></div>
            """
        var r = html(HTML.page(title: "Sign in", active: "", csrf: nil, nonce: nonce, body: body), nonce: nonce,
                     status: error == nil ? .ok : .unauthorized)
        r.headers[values: .setCookie].append(
            "\(DashboardSessions.loginCookie)=\(loginToken); Path=/login; HttpOnly; SameSite=Strict; Max-Age=1800")
        return r
    }

    @Sendable func login(_ request: Request, context: Context) async throws -> Response {
        let f = Self.form(try await HTTP.body(request, limit: 16 * 1024))
        guard let pre = request.cookies[DashboardSessions.loginCookie]?.value, let posted = f["csrf"],
            Secrets.constantTimeEqual(pre, posted)
        else {
            return try await renderLogin(request, error: "The sign-in form expired. Please try again.")
        }
        let token = (f["token"] ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        guard !token.isEmpty, Secrets.constantTimeEqual(Secrets.hash(token), state.auth.adminTokenHash) else {
            state.logger.notice("dashboard sign-in refused: wrong token")
            return try await renderLogin(request, error: "That is not the admin token.")
        }
        let (id, _) = sessions.create()
        state.logger.info("dashboard sign-in")
        var next = f["next"] ?? "/"
        if !next.hasPrefix("/") || next.hasPrefix("//") || next.hasPrefix("/\\") { next = "/" }
        var r = Self.redirect(next)
        r.headers[values: .setCookie].append(
            "\(DashboardSessions.cookie)=\(id); Path=/; HttpOnly; SameSite=Strict; Max-Age=\(Int(sessions.lifetime))")
        r.headers[values: .setCookie].append("\(DashboardSessions.loginCookie)=; Path=/login; HttpOnly; SameSite=Strict; Max-Age=0")
        return r
    }

    @Sendable func logout(_ request: Request, context: Context) async throws -> Response {
        guard let page = session(request) else { return Self.redirect("/login") }
        guard try await checkedForm(request, page: page) != nil else { return forbidden(page) }
        sessions.remove(request.cookies[DashboardSessions.cookie]?.value)
        var r = Self.redirect("/login")
        r.headers[values: .setCookie].append("\(DashboardSessions.cookie)=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
        return r
    }

    // MARK: overview

    @Sendable func overview(_ request: Request, context: Context) async throws -> Response {
        guard let page = session(request) else { return toLogin(request) }
        let now = Date()
        let nodes = try await state.database.nodes().map { state.nodeInfo($0, now: now) }
        let online = nodes.filter(\.online)
        let savedNow = online.compactMap { $0.lastSample?.savedBytes }.reduce(Int64(0), +)
        let cpuNow = online.compactMap { $0.lastSample?.ksmdCPUPercent }.reduce(0, +)
        let drift = nodes.filter(\.drift).count
        let r24 = try await state.database.savingsReport(
            since: now.addingTimeInterval(-86400), until: now, by: .node, label: nil, now: now)
        let r30 = try await state.database.savingsReport(
            since: now.addingTimeInterval(-30 * 86400), until: now, by: .node, label: nil, now: now)
        let from = now.addingTimeInterval(-7 * 86400)
        let series = try await state.database.fleetSeries(since: from, until: now, level: .hour)
        let savedChart = Charts.line(
            id: "chart-fleet-saved", title: "Fleet memory saved, last 7 days (hourly)",
            points: series.map { .init(t: $0.start.timeIntervalSince1970, v: $0.savedBytes) }, gaps: [],
            from: from.timeIntervalSince1970, to: now.timeIntervalSince1970, maxStep: 1.5 * 3600,
            unit: { HTML.bytes($0) }, binary: true)
        let top = r24.rows.filter { ($0.avgKsmdCPUCores ?? 0) > 0 }
            .sorted { ($0.avgKsmdCPUCores ?? 0) > ($1.avgKsmdCPUCores ?? 0) }.prefix(10)
        let topChart = Charts.bars(
            id: "chart-top-cpu", title: "Top 10 nodes by ksmd CPU, last 24 h",
            items: top.map { row in
                let pct = (row.avgKsmdCPUCores ?? 0) * 100
                return (row.name ?? row.key, pct, HTML.percent(pct))
            })
        func card(_ id: String, _ label: String, _ value: String, _ sub: String = "") -> String {
            "<div class=\"card\" id=\"\(id)\"><div class=\"label\">\(label)</div><div class=\"value\">\(value)</div><div class=\"sub\">\(sub)</div></div>"
        }
        let topRows = top.map { row in
            "<tr><td><a href=\"/nodes/\(HTML.q(row.key))\">\(HTML.esc(row.name ?? row.key))</a></td><td class=\"num\">\(HTML.percent((row.avgKsmdCPUCores ?? 0) * 100))</td><td class=\"num\">\(HTML.bytes(row.avgSavedBytes))</td><td class=\"num\">\(HTML.num(row.efficiencyGiBPerCore, places: 1))</td></tr>"
        }.joined()
        let body = """
            <h1>Fleet overview</h1>
            <div class="cards">
            \(card("card-saved-now", "Memory saved now", HTML.bytes(savedNow), "\(online.count) online node\(online.count == 1 ? "" : "s") reporting"))
            \(card("card-saved-24h", "Saved, last 24 h (avg)", HTML.bytes(r24.total.avgSavedBytes), "\(HTML.num(r24.total.savedGiBHours, places: 1)) GiB-hours · coverage \(HTML.percent(r24.total.coverage * 100, places: 0))"))
            \(card("card-saved-30d", "Saved, last 30 d (avg)", HTML.bytes(r30.total.avgSavedBytes), "\(HTML.num(r30.total.savedGiBHours, places: 0)) GiB-hours · coverage \(HTML.percent(r30.total.coverage * 100, places: 0))"))
            \(card("card-cpu-now", "ksmd CPU now", HTML.percent(cpuNow), "of one CPU, summed · 24 h: \(HTML.num(r24.total.ksmdCPUHours, places: 2)) CPU-h"))
            \(card("card-nodes", "Nodes online / offline", "<span id=\"nodes-online\">\(online.count)</span> / <span id=\"nodes-offline\">\(nodes.count - online.count)</span>", "\(nodes.count) registered"))
            \(card("card-drift", "Drift", "<span id=\"drift-count\">\(drift)</span>", drift == 0 ? "every node runs its config" : "<a href=\"/nodes?drift=true\">nodes not yet on their config</a>"))
            </div>
            <div class="grid2">
            <div class="panel"><h2>Memory saved over time</h2>\(savedChart)<div class="legend">Sum of the nodes' hourly averages. Hours without any data are left out, not drawn as zero.</div></div>
            <div class="panel"><h2>Top 10 nodes by ksmd CPU utilization (last 24 h)</h2>\(topChart)<div class="legend">Average ksmd CPU in % of one CPU while reporting.</div></div>
            </div>
            <div class="panel"><h2>Busiest ksmd, last 24 h</h2><table id="top-cpu-table"><thead><tr><th>Node</th><th class="num">ksmd CPU (avg)</th><th class="num">Saved (avg)</th><th class="num">GiB per core</th></tr></thead><tbody>\(topRows.isEmpty ? "<tr><td colspan=\"4\" class=\"muted\">No ksmd CPU data yet.</td></tr>" : topRows)</tbody></table></div>
            """
        return html(HTML.page(title: "Overview", active: "overview", csrf: page.csrf, nonce: page.nonce, body: body), nonce: page.nonce)
    }

    // MARK: nodes table

    @Sendable func nodesPage(_ request: Request, context: Context) async throws -> Response {
        guard let page = session(request) else { return toLogin(request) }
        let now = Date()
        let labelFilter = (HTTP.query(request, "label") ?? "").trimmingCharacters(in: .whitespaces)
        let phaseFilter = HTTP.query(request, "phase") ?? ""
        let onlineFilter = HTTP.query(request, "online") ?? ""
        let driftFilter = HTTP.query(request, "drift") ?? ""
        let sort = HTTP.query(request, "sort") ?? "name"
        let desc = HTTP.query(request, "dir") == "desc"
        var selector: [String: String] = [:]
        var filterError: String?
        if !labelFilter.isEmpty {
            do { selector = try parseSelector(labelFilter) } catch { filterError = error.message }
        }
        var nodes = try await state.database.nodes().map { state.nodeInfo($0, now: now) }.filter { n in
            if !selector.allSatisfy({ n.labels[$0.key] == $0.value }) { return false }
            if !phaseFilter.isEmpty && n.phase?.rawValue != phaseFilter { return false }
            if onlineFilter == "true" && !n.online || onlineFilter == "false" && n.online { return false }
            if driftFilter == "true" && !n.drift || driftFilter == "false" && n.drift { return false }
            return true
        }
        func key(_ n: NodeInfo) -> Double {
            switch sort {
            case "saved": return Double(n.lastSample?.savedBytes ?? -1)
            case "cpu": return n.lastSample?.ksmdCPUPercent ?? -1
            case "seen": return n.lastSeenAt?.timeIntervalSince1970 ?? 0
            default: return 0
            }
        }
        nodes.sort { a, b in
            let less: Bool
            switch sort {
            case "phase": less = (a.phase?.rawValue ?? "", a.name) < (b.phase?.rawValue ?? "", b.name)
            case "saved", "cpu", "seen": less = key(a) == key(b) ? a.name < b.name : key(a) < key(b)
            default: less = a.name.localizedStandardCompare(b.name) == .orderedAscending
            }
            return desc ? !less : less
        }
        func params(_ overrides: [String: String]) -> String {
            var p = ["label": labelFilter, "phase": phaseFilter, "online": onlineFilter, "drift": driftFilter, "sort": sort, "dir": desc ? "desc" : "asc"]
            for (k, v) in overrides { p[k] = v }
            return p.filter { !$0.value.isEmpty }.sorted { $0.key < $1.key }.map { "\($0.key)=\(HTML.q($0.value))" }.joined(separator: "&")
        }
        func th(_ title: String, _ k: String, num: Bool = false) -> String {
            let dir = sort == k && !desc ? "desc" : "asc"
            let arrow = sort == k ? (desc ? " ▼" : " ▲") : ""
            return "<th\(num ? " class=\"num\"" : "")><a href=\"/nodes?\(params(["sort": k, "dir": dir]))\">\(title)\(arrow)</a></th>"
        }
        func opt(_ value: String, _ label: String, _ current: String) -> String {
            "<option value=\"\(HTML.esc(value))\"\(value == current ? " selected" : "")>\(HTML.esc(label))</option>"
        }
        let rows = nodes.map { n -> String in
            let labels = n.labels.sorted { $0.key < $1.key }.map { HTML.esc("\($0.key)=\($0.value)") }.joined(separator: ", ")
            let drift = n.drift ? HTML.badge("drift", n.applyError != nil ? "bad" : "warn") : HTML.badge("in sync", "ok")
            return """
                <tr data-node="\(HTML.esc(n.name))"><td><a href="/nodes/\(HTML.q(n.id))">\(HTML.esc(n.name))</a><div class="muted">\(HTML.esc(n.id))</div></td>
                <td>\(labels.isEmpty ? "<span class=\"muted\">—</span>" : labels)</td>
                <td title="\(HTML.esc(n.phaseReason ?? ""))">\(HTML.phaseBadge(n.phase))</td>
                <td>\(n.online ? HTML.badge("online", "ok") : HTML.badge("offline", "bad"))</td>
                <td title="\(HTML.esc(n.driftReason ?? ""))">\(drift)</td>
                <td>\(HTML.esc(n.config.config.run.rawValue)) / \(HTML.esc(n.config.config.mode.rawValue))</td>
                <td class="num">\(HTML.bytes(n.lastSample?.savedBytes))</td>
                <td class="num">\(HTML.percent(n.lastSample?.ksmdCPUPercent))</td>
                <td>\(HTML.ago(n.lastSeenAt, now: now))</td></tr>
                """
        }.joined()
        let body = """
            <h1>Nodes</h1>
            <form class="filters" method="get" action="/nodes" id="node-filters">
            <label>Labels (k=v,k2=v2)<input name="label" id="filter-label" value="\(HTML.esc(labelFilter))" placeholder="rack=r1"></label>
            <label>Phase<select name="phase" id="filter-phase">\(opt("", "any", phaseFilter))\(KSMPhase.allCases.map { opt($0.rawValue, $0.rawValue, phaseFilter) }.joined())</select></label>
            <label>Online<select name="online" id="filter-online">\(opt("", "any", onlineFilter))\(opt("true", "online", onlineFilter))\(opt("false", "offline", onlineFilter))</select></label>
            <label>Drift<select name="drift" id="filter-drift">\(opt("", "any", driftFilter))\(opt("true", "drifting", driftFilter))\(opt("false", "in sync", driftFilter))</select></label>
            <input type="hidden" name="sort" value="\(HTML.esc(sort))"><input type="hidden" name="dir" value="\(desc ? "desc" : "asc")">
            <button class="primary" type="submit">Filter</button> <a href="/nodes">clear</a>
            </form>
            \(filterError.map { "<div class=\"flash bad\">\(HTML.esc($0))</div>" } ?? "")
            <div class="panel"><table id="nodes-table"><thead><tr>\(th("Node", "name"))<th>Labels</th>\(th("Phase", "phase"))<th>Online</th><th>Drift</th><th>Run / mode</th>\(th("Saved now", "saved", num: true))\(th("ksmd CPU", "cpu", num: true))\(th("Last seen", "seen"))</tr></thead>
            <tbody>\(rows.isEmpty ? "<tr><td colspan=\"9\" class=\"muted\">No nodes match.</td></tr>" : rows)</tbody></table>
            <div class="legend">\(nodes.count) node\(nodes.count == 1 ? "" : "s")</div></div>
            """
        return html(HTML.page(title: "Nodes", active: "nodes", csrf: page.csrf, nonce: page.nonce, body: body), nonce: page.nonce)
    }

    // MARK: node page

    struct ConfigForm {
        var run = ""
        var mode = ""
        var thresCoef = ""
        var mergeAcrossNodes = ""
        var boost = ""
        var decay = ""
        var minPages = ""
        var maxPages = ""
        var sleepMsec = ""
        var generation = ""

        init(_ c: NodeConfig) {
            let cfg = c.config
            let p = cfg.effectiveParameters
            run = cfg.run.rawValue
            mode = cfg.mode.rawValue
            thresCoef = String(cfg.thresCoef)
            mergeAcrossNodes = cfg.mergeAcrossNodes.map(String.init) ?? ""
            boost = String(p.boost)
            decay = String(p.decay)
            minPages = String(p.minPages)
            maxPages = String(p.maxPages)
            sleepMsec = String(p.sleepMsec)
            generation = String(c.generation)
        }

        init(_ f: [String: String]) {
            run = f["run"] ?? ""
            mode = f["mode"] ?? ""
            thresCoef = f["thresCoef"] ?? ""
            mergeAcrossNodes = f["mergeAcrossNodes"] ?? ""
            boost = f["boost"] ?? ""
            decay = f["decay"] ?? ""
            minPages = f["minPages"] ?? ""
            maxPages = f["maxPages"] ?? ""
            sleepMsec = f["sleepMsec"] ?? ""
            generation = f["generation"] ?? ""
        }
    }

    @Sendable func nodePage(_ request: Request, context: Context) async throws -> Response {
        guard let page = session(request) else { return toLogin(request) }
        let raw = try context.parameters.require("id")
        guard let node = try await state.database.node(idOrName: raw) else { return notFound(raw, page: page) }
        var flash: String?
        if let g = HTTP.query(request, "saved") { flash = "<div class=\"flash ok\" id=\"flash\">Saved: the config is now generation \(HTML.esc(g)).</div>" }
        if let k = HTTP.query(request, "kicked") { flash = "<div class=\"flash ok\" id=\"flash\">Kicked: kick counter \(HTML.esc(k)); the agent goes aggressive on its next poll.</div>" }
        if HTTP.query(request, "unchanged") != nil { flash = "<div class=\"flash ok\" id=\"flash\">Nothing changed.</div>" }
        let info = state.nodeInfo(node)
        return try await renderNode(
            request, info: info, page: page, form: ConfigForm(info.config), errors: [:], flash: flash, status: .ok)
    }

    func notFound(_ raw: String, page: Page) -> Response {
        html(
            HTML.page(
                title: "Not found", active: "nodes", csrf: page.csrf, nonce: page.nonce,
                body: "<h1>Node not found</h1><p>No live node is called '\(HTML.esc(raw))'. <a href=\"/nodes\">All nodes</a></p>"),
            nonce: page.nonce, status: .notFound)
    }

    func renderNode(
        _ request: Request, info n: NodeInfo, page: Page, form: ConfigForm, errors: [String: String], flash: String?,
        status: HTTPResponse.Status
    ) async throws -> Response {
        let now = Date()
        let range = HTTP.query(request, "range") ?? "24h"
        let span: Double = range == "30d" ? 30 * 86400 : (range == "7d" ? 7 * 86400 : 86400)
        let since = now.addingTimeInterval(-span)
        let hist = try await state.database.history(nodeId: n.id, since: since, until: now, resolution: .hour)
        let buckets = hist?.buckets ?? []
        let gaps = (hist?.gaps ?? []).map { Interval($0.from.timeIntervalSince1970, $0.to.timeIntervalSince1970) }
        let from = since.timeIntervalSince1970
        let to = now.timeIntervalSince1970
        let savedChart = Charts.line(
            id: "chart-node-saved", title: "Memory saved",
            points: buckets.map { .init(t: $0.start.timeIntervalSince1970, v: $0.avgSavedBytes) }, gaps: gaps, from: from,
            to: to, maxStep: 1.5 * 3600, color: "#2563eb", unit: { HTML.bytes($0) }, binary: true)
        let cpuChart = Charts.line(
            id: "chart-node-cpu", title: "ksmd CPU",
            points: buckets.map { .init(t: $0.start.timeIntervalSince1970, v: $0.avgKsmdCPUPercent) }, gaps: gaps,
            from: from, to: to, maxStep: 1.5 * 3600, color: "#d97706", unit: { HTML.percent($0, places: 1) })

        let s = n.lastSample
        let st = s?.status
        func kv(_ k: String, _ v: String, id: String = "") -> String {
            "<dt>\(k)</dt><dd\(id.isEmpty ? "" : " id=\"\(id)\"")>\(v)</dd>"
        }
        let counters = [
            kv("Memory saved", HTML.bytes(s?.savedBytes), id: "st-saved"),
            kv("pages_sharing", HTML.int(st?.pagesSharing), id: "st-sharing"),
            kv("pages_shared", HTML.int(st?.pagesShared), id: "st-shared"),
            kv("pages_unshared", HTML.int(st?.pagesUnshared)),
            kv("pages_volatile", HTML.int(st?.pagesVolatile)),
            kv("full_scans", HTML.int(st?.fullScans), id: "st-fullscans"),
            kv("stable_node_chains", HTML.int(st?.stableNodeChains)),
            kv("stable_node_dups", HTML.int(st?.stableNodeDups)),
            kv("general_profit", st?.generalProfit.map { HTML.bytes($0) } ?? "not reported (kernel < 6.7)"),
            kv("ksmd CPU", HTML.percent(s?.ksmdCPUPercent), id: "st-cpu"),
            kv("pages_to_scan / sleep", st.map { "\(HTML.int(Int64($0.pagesToScan))) / \($0.sleepMillisecs) ms" } ?? "—"),
            kv("MemAvailable", s.map { HTML.percent($0.memory.availablePercent) } ?? "—"),
        ].joined()
        let phaseLine =
            "\(HTML.phaseBadge(n.phase)) <span id=\"phase-reason\">\(HTML.esc(n.phaseReason ?? "no sample yet"))</span>"
        let driftLine =
            n.drift
            ? "\(HTML.badge("drift", n.applyError != nil ? "bad" : "warn")) <span id=\"drift-reason\">\(HTML.esc(n.driftReason ?? ""))</span>"
            : "\(HTML.badge("in sync", "ok")) <span class=\"muted\">generation \(n.config.generation) applied</span>"
        let identity = [
            kv("Node id", HTML.esc(n.id)), kv("Kernel", HTML.esc(n.kernel)), kv("Memory", HTML.bytes(n.memTotalBytes)),
            kv("NUMA nodes", String(n.numaNodes)), kv("Agent", HTML.esc(n.agentVersion)),
            kv("Labels", n.labels.isEmpty ? "—" : n.labels.sorted { $0.key < $1.key }.map { HTML.esc("\($0.key)=\($0.value)") }.joined(separator: ", ")),
            kv("Last seen", "\(n.online ? HTML.badge("online", "ok") : HTML.badge("offline", "bad")) \(HTML.ago(n.lastSeenAt, now: now))"),
            kv("Apply error", n.applyError.map { "<span class=\"field-error\" id=\"apply-error\">\(HTML.esc($0))</span>" } ?? "none"),
        ].joined()

        func err(_ field: String) -> String {
            errors[field].map { "<span class=\"field-error\" id=\"error-\(field.replacingOccurrences(of: ".", with: "-"))\">\(HTML.esc($0))</span>" } ?? ""
        }
        func cls(_ field: String) -> String { errors[field] != nil ? " class=\"has-error\"" : "" }
        func select(_ name: String, _ options: [(String, String)], _ current: String) -> String {
            "<select name=\"\(name)\" id=\"\(name)\">" + options.map {
                "<option value=\"\(HTML.esc($0.0))\"\($0.0 == current ? " selected" : "")>\(HTML.esc($0.1))</option>"
            }.joined() + "</select>"
        }
        let customized = form.mode == TuningMode.customized.rawValue
        func param(_ name: String, _ value: String) -> String {
            let field = "parameters.\(name)"
            return "<label\(cls(field)) class=\"param\">\(name)<input name=\"\(name)\" id=\"\(name)\" value=\"\(HTML.esc(value))\" inputmode=\"numeric\"\(customized ? "" : " readonly")>\(err(field))</label>"
        }
        let kickForm =
            n.config.config.mode == .throttle
            ? """
            <form method="post" action="/nodes/\(HTML.q(n.id))/kick" style="display:inline"><input type="hidden" name="csrf" value="\(HTML.esc(page.csrf))"><button class="secondary" type="submit" id="kick">Kick (go aggressive)</button></form>
            <span class="muted">kick counter \(n.config.kickCounter)</span>
            """ : ""
        let configForm = """
            <form method="post" action="/nodes/\(HTML.q(n.id))/config" id="config-form">
            <input type="hidden" name="csrf" value="\(HTML.esc(page.csrf))">
            <input type="hidden" name="generation" value="\(HTML.esc(form.generation))">
            \(errors["_form"].map { "<div class=\"flash bad\" id=\"form-error\">\(HTML.esc($0))</div>" } ?? "")
            <div class="form">
            <label\(cls("run"))>run\(select("run", RunMode.allCases.map { ($0.rawValue, $0.rawValue) }, form.run))\(err("run"))</label>
            <label\(cls("mode"))>mode\(select("mode", TuningMode.allCases.map { ($0.rawValue, $0.rawValue) }, form.mode))\(err("mode"))</label>
            <label\(cls("thresCoef"))>thresCoef (%)<input name="thresCoef" id="thresCoef" value="\(HTML.esc(form.thresCoef))" inputmode="numeric">\(err("thresCoef"))</label>
            <label\(cls("mergeAcrossNodes"))>mergeAcrossNodes\(select("mergeAcrossNodes", [("", "unset (keep kernel value)"), ("1", "1 (across NUMA nodes)"), ("0", "0 (per NUMA node)")], form.mergeAcrossNodes))\(err("mergeAcrossNodes"))</label>
            </div>
            <div class="muted" style="margin:4px 0 6px">Parameters: \(customized ? "your own (mode customized)" : "the preset's (switch mode to customized to edit)")\(err("parameters").isEmpty ? "" : " — " + err("parameters"))</div>
            <div class="form">\(param("boost", form.boost))\(param("decay", form.decay))\(param("minPages", form.minPages))\(param("maxPages", form.maxPages))\(param("sleepMsec", form.sleepMsec))</div>
            <button class="primary" type="submit" id="save-config">Save config</button> <span class="muted">generation \(HTML.esc(form.generation)); saved through the same validation and audit log as the API</span>
            </form>
            """
        let rangeLinks = [("24h", "24 h"), ("7d", "7 days"), ("30d", "30 days")].map {
            $0.0 == range ? "<strong>\($0.1)</strong>" : "<a href=\"/nodes/\(HTML.q(n.id))?range=\($0.0)\">\($0.1)</a>"
        }.joined(separator: " · ")
        let body = """
            <h1>\(HTML.esc(n.name)) <span class="muted" style="font-size:14px">KSM</span></h1>
            \(flash ?? "")
            <div class="grid2">
            <div class="panel"><h2>Status</h2>
            <p>Phase: \(phaseLine)</p><p>Config: \(driftLine)</p>
            <dl class="kv" id="status-counters">\(counters)</dl></div>
            <div class="panel"><h2>Node</h2><dl class="kv">\(identity)</dl></div>
            </div>
            <div class="panel"><h2>KSM config</h2>
            <div class="note">KSM is off (<code>run: stop</code>) on every new node on purpose: merging identical pages lets one
            process or VM learn another's memory contents by timing writes (KSM side channels). Turn it on only where the
            tenants on a host trust each other, or where the memory saved is worth that risk.</div>
            \(configForm)
            <div style="margin-top:12px">\(kickForm)</div>
            </div>
            <div class="panel"><h2>History</h2><div class="filters">Range: \(rangeLinks)</div>
            <div class="grid2"><div><h2>Memory saved</h2>\(savedChart)</div><div><h2>ksmd CPU (% of one CPU)</h2>\(cpuChart)</div></div>
            <div class="legend"><span class="swatch" style="background:#fde2e2"></span>no data (node offline or not reporting): shown as a gap, never as zero</div></div>
            """
        let script = """
            (function(){var presets={standard:[0,0,100,100,20],high:[200,50,100,10000,20]};var names=['boost','decay','minPages','maxPages','sleepMsec'];
            var m=document.getElementById('mode');if(!m)return;function upd(){var c=m.value==='customized';var p=presets[m.value];
            names.forEach(function(n,i){var e=document.getElementById(n);if(!e)return;e.readOnly=!c;if(p){e.value=p[i];}});}
            m.addEventListener('change',upd);})();
            """
        return html(
            HTML.page(title: n.name, active: "nodes", csrf: page.csrf, nonce: page.nonce, body: body, script: script),
            nonce: page.nonce, status: status)
    }

    @Sendable func saveConfig(_ request: Request, context: Context) async throws -> Response {
        guard let page = session(request) else { return toLogin(request) }
        guard let f = try await checkedForm(request, page: page) else { return forbidden(page) }
        let raw = try context.parameters.require("id")
        guard let node = try await state.database.node(idOrName: raw) else { return notFound(raw, page: page) }
        let info = state.nodeInfo(node)
        let form = ConfigForm(f)
        var errors: [String: String] = [:]
        func int(_ field: String, _ text: String) -> Int? {
            let t = text.trimmingCharacters(in: .whitespaces)
            guard let v = Int(t) else {
                errors[field] = t.isEmpty ? "required" : "'\(t)' is not a whole number"
                return nil
            }
            return v
        }
        let run = RunMode(rawValue: form.run)
        if run == nil { errors["run"] = "choose stop, run, prune or unmanaged" }
        let mode = TuningMode(rawValue: form.mode)
        if mode == nil { errors["mode"] = "choose standard, high, customized or throttle" }
        let thres = int("thresCoef", form.thresCoef)
        var merge: Int?
        switch form.mergeAcrossNodes {
        case "": merge = nil
        case "0", "1": merge = Int(form.mergeAcrossNodes)
        default: errors["mergeAcrossNodes"] = "choose unset, 0 or 1"
        }
        var params: ConfigPatch.PartialParameters?
        if mode == .customized {
            params = ConfigPatch.PartialParameters(
                boost: int("parameters.boost", form.boost), decay: int("parameters.decay", form.decay),
                minPages: int("parameters.minPages", form.minPages), maxPages: int("parameters.maxPages", form.maxPages),
                sleepMsec: int("parameters.sleepMsec", form.sleepMsec))
        }
        let expected = Int64(form.generation)
        if errors.isEmpty {
            let patch = ConfigPatch(
                run: run, mode: mode, thresCoef: thres, mergeAcrossNodes: merge, parameters: params,
                clear: form.mergeAcrossNodes.isEmpty ? ["mergeAcrossNodes"] : nil)
            do {
                let change = try await state.patchConfig(node: node, patch, ifMatch: expected, actor: "dashboard")
                guard change.changed else { return Self.redirect("/nodes/\(HTML.q(node.id))?unchanged=1") }
                return Self.redirect("/nodes/\(HTML.q(node.id))?saved=\(change.after.generation)")
            } catch StoreError.invalidConfig(let e) {
                for issue in e.issues where errors[issue.field] == nil { errors[issue.field] = issue.message }
            } catch StoreError.generationConflict(_, let current) {
                errors["_form"] =
                    "Someone changed this config meanwhile (now generation \(current)). Reload the page to see it, then edit again."
            }
        }
        return try await renderNode(
            request, info: info, page: page, form: form, errors: errors, flash: nil, status: .unprocessableContent)
    }

    @Sendable func kick(_ request: Request, context: Context) async throws -> Response {
        guard let page = session(request) else { return toLogin(request) }
        guard try await checkedForm(request, page: page) != nil else { return forbidden(page) }
        let raw = try context.parameters.require("id")
        guard let node = try await state.database.node(idOrName: raw) else { return notFound(raw, page: page) }
        let config = try await state.kick(nodeId: node.id, actor: "dashboard")
        return Self.redirect("/nodes/\(HTML.q(node.id))?kicked=\(config.kickCounter)")
    }

    // MARK: savings report

    struct ReportQuery {
        var since: Date
        var until: Date
        var sinceText: String
        var untilText: String
        var by: ReportGrouping
        var label: String
        var error: String?

        var query: String {
            "since=\(HTML.q(sinceText))&until=\(HTML.q(untilText))&by=\(by.rawValue)" + (label.isEmpty ? "" : "&label=\(HTML.q(label))")
        }
    }

    func reportQuery(_ request: Request, now: Date) -> ReportQuery {
        let sinceText = HTTP.query(request, "since").flatMap { $0.isEmpty ? nil : $0 } ?? "-7d"
        let untilText = HTTP.query(request, "until").flatMap { $0.isEmpty ? nil : $0 } ?? "now"
        var by = ReportGrouping(rawValue: HTTP.query(request, "by") ?? "node") ?? .node
        let label = (HTTP.query(request, "label") ?? "").trimmingCharacters(in: .whitespaces)
        var error: String?
        var since = ReportTime.parseDate(sinceText, now: now)
        var until = ReportTime.parseDate(untilText, now: now)
        if since == nil { error = "'\(sinceText)' is not a time (use 2026-11-01, 2026-11-01T12:00:00Z or -7d)" }
        if until == nil { error = "'\(untilText)' is not a time (use 2026-11-01, 2026-11-01T12:00:00Z or now)" }
        if let s = since, let u = until, s >= u { error = "the start must be before the end" }
        if let s = since, let u = until, u.timeIntervalSince(s) > 3 * 366 * 86400 { error = "the period may be at most 3 years" }
        if by == .label && label.isEmpty {
            error = "choose the label key to group by"
            by = .node
        }
        if error != nil {
            since = now.addingTimeInterval(-7 * 86400)
            until = now
        }
        return ReportQuery(
            since: since ?? now, until: until ?? now, sinceText: sinceText, untilText: untilText, by: by, label: label,
            error: error)
    }

    @Sendable func reportsPage(_ request: Request, context: Context) async throws -> Response {
        guard let page = session(request) else { return toLogin(request) }
        let now = Date()
        let q = reportQuery(request, now: now)
        let report = try await state.database.savingsReport(
            since: q.since, until: q.until, by: q.by, label: q.by == .label ? q.label : nil, now: now)
        func row(_ r: SavingsRow, total: Bool = false) -> String {
            let name: String
            switch q.by {
            case .node where !total:
                let deleted = r.deleted == true ? " " + HTML.badge("deleted", "muted") : ""
                name = r.deleted == true
                    ? HTML.esc(r.name ?? r.key) + deleted
                    : "<a href=\"/nodes/\(HTML.q(r.key))\">\(HTML.esc(r.name ?? r.key))</a>"
            case .label where !total:
                name = r.key.isEmpty ? "<span class=\"muted\">(no \(HTML.esc(q.label)) label)</span>" : "\(HTML.esc(q.label))=\(HTML.esc(r.key))"
            default:
                name = total ? "Fleet total" : HTML.esc(r.key)
            }
            let gapText =
                r.gaps.isEmpty
                ? "<span class=\"muted\">none</span>"
                : "\(r.gaps.count): " + r.gaps.prefix(2).map { "\(HTML.time($0.from))–\(HTML.time($0.to))" }.joined(separator: ", ")
                    + (r.gaps.count > 2 ? " …" : "")
            let phases = r.phaseHours.sorted { $0.key < $1.key }.map { "\(HTML.esc($0.key)) \(HTML.num($0.value, places: 1)) h" }
                .joined(separator: ", ")
            return """
                <tr\(total ? " class=\"total\"" : "") data-key="\(HTML.esc(r.key))"><td>\(name)</td><td class="num">\(r.nodes)</td>
                <td class="num">\(HTML.bytes(r.avgSavedBytes))</td><td class="num">\(HTML.bytes(r.peakSavedBytes))</td>
                <td class="num">\(HTML.num(r.savedGiBHours, places: 1))</td><td class="num">\(HTML.num(r.ksmdCPUHours, places: 2))</td>
                <td class="num">\(HTML.num(r.avgKsmdCPUCores, places: 3))</td><td class="num">\(HTML.num(r.efficiencyGiBPerCore, places: 1))</td>
                <td class="num">\(r.avgNetProfitBytes.map { HTML.bytes($0) } ?? "<span class=\"muted\">n/a</span>")</td>
                <td class="wrap">\(phases.isEmpty ? "—" : phases)</td><td class="num">\(HTML.percent(r.coverage * 100, places: 0))</td><td class="wrap">\(gapText)</td></tr>
                """
        }
        func opt(_ g: ReportGrouping, _ label: String) -> String {
            "<option value=\"\(g.rawValue)\"\(g == q.by ? " selected" : "")>\(label)</option>"
        }
        let quick = [("-24h", "24 h"), ("-7d", "7 days"), ("-30d", "30 days"), ("-90d", "90 days"), ("-365d", "1 year")].map {
            "<a href=\"/reports?since=\(HTML.q($0.0))&until=now&by=\(q.by.rawValue)\(q.label.isEmpty ? "" : "&label=\(HTML.q(q.label))")\">\($0.1)</a>"
        }.joined(separator: " · ")
        let body = """
            <h1>Savings report</h1>
            <form class="filters" method="get" action="/reports" id="report-form">
            <label>From<input name="since" id="since" value="\(HTML.esc(q.sinceText))" placeholder="2026-11-01 or -7d"></label>
            <label>To<input name="until" id="until" value="\(HTML.esc(q.untilText))" placeholder="now"></label>
            <label>Group by<select name="by" id="by">\(opt(.node, "node"))\(opt(.label, "label"))\(opt(.day, "day"))</select></label>
            <label>Label key (for label)<input name="label" id="label" value="\(HTML.esc(q.label))" placeholder="rack"></label>
            <button class="primary" type="submit">Show</button>
            <a class="button" id="csv-download" href="/reports/savings.csv?\(q.query)">Download CSV</a>
            </form>
            <div class="filters">Quick: \(quick)</div>
            \(q.error.map { "<div class=\"flash bad\" id=\"report-error\">\(HTML.esc($0)); showing the last 7 days.</div>" } ?? "")
            <p class="muted">\(HTML.time(q.since)) – \(HTML.time(q.until)) · averages are over the time each node reported (gaps are listed, never counted as zero) · efficiency = GiB saved per ksmd CPU core</p>
            <div class="panel"><table id="report-table"><thead><tr><th>\(q.by == .day ? "Day (UTC)" : (q.by == .label ? "Label" : "Node"))</th><th class="num">Nodes</th><th class="num">Avg saved</th><th class="num">Peak saved</th><th class="num">GiB-hours</th><th class="num">ksmd CPU-h</th><th class="num">Avg cores</th><th class="num">GiB / core</th><th class="num">Net (profit)</th><th>Time in phase</th><th class="num">Coverage</th><th>Gaps</th></tr></thead>
            <tbody>\(report.rows.map { row($0) }.joined())\(row(report.total, total: true))</tbody></table></div>
            """
        return html(HTML.page(title: "Savings report", active: "reports", csrf: page.csrf, nonce: page.nonce, body: body), nonce: page.nonce)
    }

    @Sendable func reportCSV(_ request: Request, context: Context) async throws -> Response {
        guard session(request) != nil else { return toLogin(request) }
        let now = Date()
        let q = reportQuery(request, now: now)
        if let e = q.error { throw APIError.invalidValue(nil, e) }
        let report = try await state.database.savingsReport(
            since: q.since, until: q.until, by: q.by, label: q.by == .label ? q.label : nil, now: now)
        var r = HTTP.text(report.csv(), contentType: "text/csv; charset=utf-8")
        r.headers[.contentDisposition] =
            "attachment; filename=\"ksm-savings-\(ReportTime.dayKey(q.since.timeIntervalSince1970))-\(ReportTime.dayKey(q.until.timeIntervalSince1970))-by-\(q.by.rawValue).csv\""
        return r
    }
}
