import FleetAPI
import FleetStore
import Foundation
import Hummingbird
import KSMCore
import Mustache

/// The nodes table (`nodes.mustache`): filters by labels, phase, online and drift; sortable columns.
struct NodesPage: Sendable {
    /// The table's filters and sort order, as in the page's query string.
    struct Filters: Sendable, Equatable {
        /// A label selector, k=v,k2=v2.
        var label = ""
        /// A phase name, or "" for any.
        var phase = ""
        /// "true", "false" or "" for any.
        var online = ""
        /// "true", "false" or "" for any.
        var drift = ""
        /// name, phase, saved, cpu or seen.
        var sort = "name"
        var descending = false
        /// Which page of the sorted table, from 1 (`pageSize` rows a page).
        var page = 1
    }

    /// Rows a page shows: a fleet of 10,000 nodes in one table was a 4.8 MB page.
    static let pageSize = 500

    /// A column header; `href` (sort by this column) nil for one that does not sort.
    struct Column: Sendable, Equatable {
        var title: String
        var href: String?
        var num: Bool
        /// " ▲" or " ▼" on the column the table is sorted by.
        var arrow: String
    }

    struct Row: Sendable, Equatable {
        var name: String
        var id: String
        var href: String
        /// "k=v, k2=v2"; nil for a node without labels.
        var labels: String?
        var phase: Badge
        var phaseReason: String
        var online: Badge
        /// Reporting now; otherwise the row's figures are the last ones it reported (shown muted).
        var live: Bool
        var drift: Badge
        var driftReason: String
        var runMode: String
        var saved: String
        var cpu: String
        var lastSeen: String
    }

    /// A pending registration: a host claimed a known or deleted node's machine id without proof.
    struct PendingRow: Sendable, Equatable {
        var id: String
        var status: String
        var explanation: String
        var newcomer: String
        var holder: String
        var attempts: String
        var accept: String
        var reject: String
        var undecided: Bool
    }

    /// Pending registrations, shown above the table with Accept/Reject buttons.
    var pending: [PendingRow] = [] {
        didSet { hasPending = !pending.isEmpty }
    }
    var hasPending = false

    static func pendingRows(_ list: [PendingRegistration], now: Date) -> [PendingRow] {
        func host(_ h: RegistrationHost) -> String {
            (h.nodeId.map { "\($0) " } ?? "") + "\(h.hostname) · kernel \(h.kernel) · agent \(h.agentVersion) · from "
                + (h.source ?? "?") + " · seen " + HTML.ago(h.lastSeenAt, now: now)
                + (h.deleted == true ? " · deleted" : "")
        }
        return list.map { p in
            PendingRow(
                id: p.id, status: p.status, explanation: p.explanation, newcomer: host(p.newcomer),
                holder: p.holder.map(host) ?? "—", attempts: "\(p.attempts), last " + HTML.ago(p.lastSeenAt, now: now),
                accept: "/registrations/" + HTML.q(p.id) + "/accept", reject: "/registrations/" + HTML.q(p.id) + "/reject",
                undecided: p.status == "pending")
        }
    }

    var label: String
    var sort: String
    var dir: String
    var phaseOptions: [SelectOption]
    var onlineOptions: [SelectOption]
    var driftOptions: [SelectOption]
    var filterError: String?
    var columns: [Column]
    var rows: [Row]
    /// "3 nodes", or "nodes 501–1000 of 10000" when they take more than one page.
    var count: String
    /// The pages before and after this one, with the same filters and order; nil at either end.
    var previousHref: String?
    var nextHref: String?
    /// More than one page: the count and the links are shown above the table too.
    var paged = false

    /// The page for all live `nodes`, filtered and sorted by `filters`, `pageSize` rows of it.
    init(nodes all: [NodeInfo], filters f: Filters, now: Date, pageSize: Int = NodesPage.pageSize) {
        var selector: [String: String] = [:]
        if !f.label.isEmpty {
            do { selector = try parseSelector(f.label) } catch { filterError = error.message }
        }
        var nodes = all.filter { n in
            if !selector.allSatisfy({ n.labels[$0.key] == $0.value }) { return false }
            if !f.phase.isEmpty && n.phase?.rawValue != f.phase { return false }
            if f.online == "true" && !n.online || f.online == "false" && n.online { return false }
            if f.drift == "true" && !n.drift || f.drift == "false" && n.drift { return false }
            return true
        }
        func key(_ n: NodeInfo) -> Double {
            switch f.sort {
            case "saved": return Double(n.lastSample?.savedBytes ?? -1)
            case "cpu": return n.lastSample?.ksmdCPUPercent ?? -1
            case "seen": return n.lastSeenAt?.timeIntervalSince1970 ?? 0
            default: return 0
            }
        }
        // Any other sort is by name.
        let byName = !["phase", "saved", "cpu", "seen"].contains(f.sort)
        // A strict order, ties broken by id: with pages, a node must not land on two of them.
        func less(_ a: NodeInfo, _ b: NodeInfo) -> Bool {
            if byName {
                switch a.name.localizedStandardCompare(b.name) {
                case .orderedAscending: return true
                case .orderedDescending: return false
                case .orderedSame: return a.id < b.id
                }
            }
            if f.sort == "phase" {
                return (a.phase?.rawValue ?? "", a.name, a.id) < (b.phase?.rawValue ?? "", b.name, b.id)
            }
            return key(a) == key(b) ? (a.name, a.id) < (b.name, b.id) : key(a) < key(b)
        }
        if byName {
            // By name as Finder orders names (`localizedStandardCompare`, about 2 µs a comparison).
            // The store gives the nodes in their names' bytes' order, far from it for names like
            // `web-12` (`web-10` before `web-9`): 107,000 comparisons at 10,000 nodes, about 0.3 s,
            // half of this page (docs/benchmarks.md). Put first in a cheap natural order of the
            // names' bytes, the exact sort below finds them already in order where the two orders
            // agree (Swift's sort takes runs already in order as they are): one comparison a node
            // for such names. The order is the exact sort's either way.
            nodes.sort { a, b in
                f.descending ? NameOrder.roughlyBefore(b.name, a.name) : NameOrder.roughlyBefore(a.name, b.name)
            }
        }
        nodes.sort { a, b in f.descending ? less(b, a) : less(a, b) }
        let direction = f.descending ? "desc" : "asc"
        label = f.label
        sort = f.sort
        dir = direction
        phaseOptions = SelectOption.list(
            [("", "any")] + KSMPhase.allCases.map { ($0.rawValue, $0.rawValue) }, current: f.phase)
        onlineOptions = SelectOption.list([("", "any"), ("true", "online"), ("false", "offline")], current: f.online)
        driftOptions = SelectOption.list([("", "any"), ("true", "drifting"), ("false", "in sync")], current: f.drift)
        func params(_ overrides: [String: String]) -> String {
            var p = [
                "label": f.label, "phase": f.phase, "online": f.online, "drift": f.drift, "sort": f.sort,
                "dir": direction,
            ]
            for (k, v) in overrides { p[k] = v }
            return p.filter { !$0.value.isEmpty }.sorted { $0.key < $1.key }.map { "\($0.key)=\(HTML.q($0.value))" }
                .joined(separator: "&")
        }
        func sortable(_ title: String, _ k: String, num: Bool = false) -> Column {
            let dir = f.sort == k && !f.descending ? "desc" : "asc"
            return Column(
                title: title, href: "/nodes?" + params(["sort": k, "dir": dir]), num: num,
                arrow: f.sort == k ? (f.descending ? " ▼" : " ▲") : "")
        }
        func plain(_ title: String) -> Column { Column(title: title, href: nil, num: false, arrow: "") }
        columns = [
            sortable("Node", "name"), plain("Labels"), sortable("Phase", "phase"), plain("State"), plain("Drift"),
            plain("Run / mode"), sortable("Saved now", "saved", num: true), sortable("ksmd CPU", "cpu", num: true),
            sortable("Last seen", "seen"),
        ]
        let paging = Paging(count: nodes.count, asked: f.page, perPage: pageSize)
        previousHref = paging.previous.map { "/nodes?" + params(["page": "\($0)"]) }
        nextHref = paging.next.map { "/nodes?" + params(["page": "\($0)"]) }
        paged = paging.pages > 1
        rows = nodes[paging.rows].map { n in
            let labels = n.labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", ")
            return Row(
                name: n.name, id: n.id, href: "/nodes/" + HTML.q(n.id), labels: labels.isEmpty ? nil : labels,
                phase: Badge.phase(n.phase, live: n.online), phaseReason: n.phaseReason ?? "",
                online: Badge.connection(n.connection), live: n.online,
                drift: Badge.drift(n), driftReason: n.driftReason ?? "",
                runMode: "\(n.config.config.run.rawValue) / \(n.config.config.mode.rawValue)",
                saved: HTML.bytes(n.lastSample?.savedBytes), cpu: HTML.percent(n.lastSample?.ksmdCPUPercent),
                lastSeen: HTML.lastSeen(n, now: now))
        }
        count = paged ? "nodes " + paging.span : "\(nodes.count) node\(nodes.count == 1 ? "" : "s")"
    }
}

extension DashboardController {
    @Sendable func nodesPage(_ request: Request, context: Context) async throws -> Response {
        guard let session = try await sessions.signedIn(request) else { return DashboardPages.toLogin(request) }
        let now = Date()
        let filters = NodesPage.Filters(
            label: (HTTP.formQuery(request, "label") ?? "").trimmingCharacters(in: .whitespaces),
            phase: HTTP.formQuery(request, "phase") ?? "", online: HTTP.formQuery(request, "online") ?? "",
            drift: HTTP.formQuery(request, "drift") ?? "", sort: HTTP.query(request, "sort") ?? "name",
            descending: HTTP.query(request, "dir") == "desc", page: HTTP.query(request, "page").flatMap { Int($0) } ?? 1)
        let nodes = try await state.database.nodes().map { state.nodeInfo($0, now: now) }
        var page = NodesPage(nodes: nodes, filters: filters, now: now)
        page.pending = NodesPage.pendingRows(try await state.database.pendingRegistrations(), now: now)
        return try pages.render("nodes", title: "Nodes", section: .nodes, session: session, page: page)
    }

    /// Accept or reject a pending registration (the nodes page's buttons), like the API.
    @Sendable func decideRegistration(_ request: Request, context: Context) async throws -> Response {
        guard let session = try await sessions.signedIn(request) else { return DashboardPages.toLogin(request) }
        guard try await DashboardForm.checked(request, session: session, logger: state.logger) != nil else {
            return try pages.refused(session)
        }
        let id = try context.parameters.require("id")
        let accept = request.uri.path.hasSuffix("/accept")
        do {
            _ = try await state.decideRegistration(id: id, accept: accept, by: session.credential.name)
        } catch StoreError.registrationNotFound {
            return try notFound(id, session: session)
        }
        return DashboardPages.redirect("/nodes")
    }
}

/// The table's rows by name, not by `Mirror`: a row's dozen fields were reflected for each of
/// the twenty names the row's template looks up (10,000 nodes: 3 s a page, 92 % rendering, 72 %
/// `Mirror` look-ups).
/// `DashboardPageDataTests.rowsByNameGiveWhatMirrorGives` holds every field to what `Mirror` gives.
extension NodesPage.Row: MustacheParent {
    func child(named name: String) -> Any? {
        switch name {
        case "name": return self.name
        case "id": return id
        case "href": return href
        case "labels": return labels  // nil as Mustache's Mirror gives it: not found here
        case "phase": return phase
        case "phaseReason": return phaseReason
        case "online": return online
        case "live": return live
        case "drift": return drift
        case "driftReason": return driftReason
        case "runMode": return runMode
        case "saved": return saved
        case "cpu": return cpu
        case "lastSeen": return lastSeen
        default: return nil
        }
    }
}

/// A cheap approximation of `localizedStandardCompare`'s order of node names, to put names
/// nearly in order before the exact sort: bytes compared with ASCII letters' case ignored and
/// runs of digits by their value (leading zeros ignored), so `web-9` comes before `web-10`.
/// Only the time of the exact sort depends on it, never the order.
enum NameOrder {
    static func roughlyBefore(_ a: String, _ b: String) -> Bool {
        var a = a
        var b = b
        return a.withUTF8 { x in b.withUTF8 { y in before(x, y) } }
    }

    static func before(_ x: UnsafeBufferPointer<UInt8>, _ y: UnsafeBufferPointer<UInt8>) -> Bool {
        func isDigit(_ c: UInt8) -> Bool { c >= 0x30 && c <= 0x39 }
        func lower(_ c: UInt8) -> UInt8 { c >= 0x41 && c <= 0x5A ? c + 0x20 : c }
        var i = 0
        var j = 0
        while i < x.count && j < y.count {
            if isDigit(x[i]) && isDigit(y[j]) {
                // Each run without its leading zeros: the longer is the larger, then digit by digit.
                while i < x.count && x[i] == 0x30 { i += 1 }
                while j < y.count && y[j] == 0x30 { j += 1 }
                var ei = i
                while ei < x.count && isDigit(x[ei]) { ei += 1 }
                var ej = j
                while ej < y.count && isDigit(y[ej]) { ej += 1 }
                if ei - i != ej - j { return ei - i < ej - j }
                while i < ei {
                    if x[i] != y[j] { return x[i] < y[j] }
                    i += 1
                    j += 1
                }
                continue
            }
            let c = lower(x[i])
            let d = lower(y[j])
            if c != d { return c < d }
            i += 1
            j += 1
        }
        return x.count - i < y.count - j
    }
}
