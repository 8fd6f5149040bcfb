import FleetAPI
import FleetClient
import FleetTestSupport
import Foundation
import KSMCore
import Testing

@testable import FleetServer

/// `GET /api/v1/nodes?limit=&after=`: one page at a time instead of the whole fleet in one
/// answer (about 1.1 kB a node: 11 MB at 10,000 nodes).
@Suite("the nodes listing in pages")
struct NodeListPagesTests {
    /// Names whose byte order is not the order of a collation that looks past punctuation
    /// (en_US: `web1` before `web-2`, `db1` before `db-1`).
    static let names = ["web1", "web-2", "web-10", "web.3", "a", "b-b", "db-1", "db1", "z9", "m", "gone"]

    /// Byte order, the listing's.
    static func byteOrdered(_ names: [String]) -> [String] {
        names.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
    }

    @Test("pages of every size hold every matching node once, by name in byte order, next only when more follow, for each filter")
    func pagesAreTheWholeList() async throws {
        let h = try await Harness.start()
        defer { Task { await h.finish() } }
        var ids: [String: String] = [:]
        for (i, name) in Self.names.enumerated() {
            let (reg, node) = try await h.register(hostname: name)
            ids[name] = reg.nodeId
            // Some stopped, some lagging their config (drift), some whose agent stopped (not
            // online), some never reporting.
            if i % 4 != 3 {
                var sample = Fixtures.sample(
                    1, phase: i % 3 == 0 ? .stopped : .running, appliedGeneration: i % 2 == 0 ? 1 : 0, takenAt: Date())
                sample.agentStopped = i % 5 == 4
                _ = try await node.pushSamples(nodeId: reg.nodeId, SampleBatch(samples: [sample]))
            }
            if i % 2 == 1 { try await h.admin.setLabels(reg.nodeId, ["rack": "1"]) }
        }
        // A deleted node is in no page.
        try await h.admin.deleteNode(ids["gone"]!)
        let live = Self.byteOrdered(Self.names.filter { $0 != "gone" })

        let filters: [(String, (FleetClient, Int?, String?) async throws -> NodeList)] = [
            ("none", { try await $0.listNodes(limit: $1, after: $2) }),
            ("selector rack=1", { try await $0.listNodes(selector: "rack=1", limit: $1, after: $2) }),
            ("phase Stopped", { try await $0.listNodes(phase: .stopped, limit: $1, after: $2) }),
            ("online false", { try await $0.listNodes(online: false, limit: $1, after: $2) }),
            ("drift true", { try await $0.listNodes(drift: true, limit: $1, after: $2) }),
        ]
        for (what, list) in filters {
            let whole = try await list(h.admin, nil, nil)
            let names = whole.nodes.map(\.name)
            #expect(names == Self.byteOrdered(names), "\(what): the whole list is in byte order")
            #expect(Set(names).isSubset(of: live) && whole.next == nil, "\(what)")
            if what == "none" {
                #expect(names == live)
            } else {
                #expect(!names.isEmpty && names.count < live.count, "\(what): the filter picks some nodes, not all: \(names)")
            }
            for limit in [1, 2, 3, names.count - 1, names.count, NodePages.maxLimit] where limit >= 1 {
                var pages: [NodeList] = [try await list(h.admin, limit, nil)]
                while let next = pages.last?.next, pages.count <= live.count {
                    pages.append(try await list(h.admin, limit, next))
                }
                let read = pages.flatMap { $0.nodes.map(\.name) }
                let context: Comment = "\(what), limit \(limit): \(pages.map { $0.nodes.map(\.name) })"
                #expect(read == names, context)
                #expect(pages.count == max(1, (names.count + limit - 1) / limit), "no empty page after the last: \(context)")
                for (i, page) in pages.enumerated() {
                    #expect(page.nodes.count <= limit, context)
                    let last = i == pages.count - 1
                    #expect(page.next == (last ? nil : page.nodes.last?.name), context)
                    // Only an answer holding the whole list has its summary, the unpaged one's.
                    #expect(page.summary == (pages.count == 1 ? whole.summary : nil), context)
                }
            }
        }

        // The cursor is a name, not a node: the node it names deleted or renamed between two
        // pages, the next page still starts after it; of two nodes registered meanwhile, the one
        // named after the cursor is in a later page, the one before it in none.
        let first = try await h.admin.listNodes(limit: 3)
        #expect(first.nodes.map(\.name) == Array(live.prefix(3)))
        let cursorName = try #require(first.next)
        try await h.admin.deleteNode(try #require(ids[cursorName]))
        _ = try await h.register(hostname: "c-new")
        _ = try await h.register(hostname: "e-new")
        var rest: [String] = []
        var after = first.next
        while let cursor = after {
            let page = try await h.admin.listNodes(limit: 3, after: cursor)
            rest += page.nodes.map(\.name)
            after = page.next
        }
        #expect(rest == Self.byteOrdered(Array(live.dropFirst(3)) + ["e-new"]))

        // The CLI's helper reads every page.
        let all = try await h.admin.allNodes(pageSize: 2)
        let unpaged = try await h.admin.listNodes()
        #expect(all.nodes == unpaged.nodes && all.summary == unpaged.summary && all.next == nil)
    }

    @Test("a page size outside 1-10000, or a cursor without a page size: 422 with the field; empty values are none")
    func badPageArguments() async throws {
        let h = try await Harness.start()
        defer { Task { await h.finish() } }
        _ = try await h.register(hostname: "a")
        for bad in ["0", "-1", "10001", "ten", "1.5", " 5"] {
            let r = try await h.admin.send(method: "GET", path: APIPaths.nodes, query: [("limit", bad)])
            #expect(r.status == 422, "limit=\(bad)")
            #expect(errorBody(r)?.error.field == "limit" && errorBody(r)?.error.code == APIErrorCode.invalidValue, "limit=\(bad)")
            #expect(errorBody(r)?.error.message == "'\(bad)' is not a node count from 1 to 10000", "limit=\(bad)")
        }
        let r = try await h.admin.send(method: "GET", path: APIPaths.nodes, query: [("after", "a")])
        #expect(r.status == 422 && errorBody(r)?.error.field == "after")
        // An empty cursor is none: the whole list, with its summary.
        let empty = try await h.admin.send(method: "GET", path: APIPaths.nodes, query: [("limit", "10000"), ("after", "")])
        let list = try StrictJSON.decoder().decode(NodeList.self, from: empty.body)
        #expect(empty.status == 200 && list.nodes.count == 1 && list.summary != nil && list.next == nil)
        #expect(try await h.admin.send(method: "GET", path: APIPaths.nodes, query: [("after", "")]).status == 200)
        // An empty page size is none, as every other parameter: the whole list.
        let noLimit = try await h.admin.send(method: "GET", path: APIPaths.nodes, query: [("limit", "")])
        let whole = try StrictJSON.decoder().decode(NodeList.self, from: noLimit.body)
        #expect(noLimit.status == 200 && whole.nodes.count == 1 && whole.summary != nil && whole.next == nil)
    }

    @Test("every filter of the listing takes an empty value as none; a value that is not one is 422 with the field")
    func emptyFiltersAreNone() async throws {
        let h = try await Harness.start()
        defer { Task { await h.finish() } }
        let (regA, nodeA) = try await h.register(hostname: "a")
        _ = try await h.register(hostname: "b")
        _ = try await nodeA.pushSamples(nodeId: regA.nodeId, Fixtures.batch(1...1))
        // A template with its variables unset: every node, as with no parameter at all.
        for name in ["selector", "phase", "online", "drift", "limit", "after"] {
            let r = try await h.admin.send(method: "GET", path: APIPaths.nodes, query: [(name, "")])
            let list = try? StrictJSON.decoder().decode(NodeList.self, from: r.body)
            #expect(r.status == 200 && list?.nodes.map(\.name) == ["a", "b"], "\(name)=: \(r.status) \(r.text)")
        }
        let all = try await h.admin.send(
            method: "GET", path: APIPaths.nodes,
            query: [("selector", ""), ("phase", ""), ("online", ""), ("drift", ""), ("limit", ""), ("after", "")])
        #expect(try StrictJSON.decoder().decode(NodeList.self, from: all.body).nodes.count == 2)
        // The filters still filter: a is online (it sent a sample), b has never reported.
        let online = try await h.admin.send(method: "GET", path: APIPaths.nodes, query: [("online", "yes")])
        #expect(try StrictJSON.decoder().decode(NodeList.self, from: online.body).nodes.map(\.name) == ["a"])
        let offline = try await h.admin.send(method: "GET", path: APIPaths.nodes, query: [("online", "no"), ("phase", "")])
        #expect(try StrictJSON.decoder().decode(NodeList.self, from: offline.body).nodes.map(\.name) == ["b"])
        for (name, bad) in [("online", "maybe"), ("drift", " "), ("phase", "Sleeping"), ("selector", "rack")] {
            let r = try await h.admin.send(method: "GET", path: APIPaths.nodes, query: [(name, bad)])
            #expect(r.status == 422 && errorBody(r)?.error.field == name, "\(name)=\(bad): \(r.status) \(r.text)")
        }
    }

    /// The page's loop over name ranges, on nodes in memory: ranges smaller than a page and than
    /// the matches between two of them, so that a page takes several ranges, for every filter
    /// density; each page against the whole list filtered and cut.
    @Test func aPageReadsAsManyRangesAsItNeeds() async throws {
        let names = (0..<23).map { String(format: "n%02d", $0) }
        let nodes = names.enumerated().map { i, name in
            DashboardPageDataTests.node(name, online: i % 3 != 0, drift: i % 7 == 0)
        }
        let filters: [(String, (NodeInfo) -> Bool)] = [
            ("all", { _ in true }), ("online", \.online), ("drift", \.drift), ("none", { _ in false }),
            ("the last", { $0.name == "n22" }),
        ]
        for (what, matches) in filters {
            let whole = nodes.filter(matches).map(\.name)
            for (limit, batch) in [(1, 1), (1, 2), (2, 1), (3, 2), (4, 4), (5, 30), (30, 3)] {
                var reads = 0
                var read: [String] = []
                var after: String?
                var pages = 0
                repeat {
                    let page = try await NodeListPage.read(
                        after: after, limit: limit, batch: batch,
                        from: { cursor, count in
                            reads += 1
                            return Array(nodes.filter { cursor == nil || $0.name > cursor! }.prefix(count))
                        }, name: \.name, info: { $0 }, matches: matches)
                    #expect(page.nodes.count <= limit)
                    read += page.nodes.map(\.name)
                    after = page.next
                    #expect(page.next == nil || page.next == page.nodes.last?.name)
                    pages += 1
                } while after != nil && pages <= nodes.count
                let context: Comment = "\(what), limit \(limit), ranges of \(batch)"
                #expect(read == whole, context)
                #expect(pages == max(1, (whole.count + limit - 1) / limit), context)
                // A range no longer than a page cannot hold the page and the node past it.
                if batch <= limit && whole.count > 1 { #expect(reads > pages, "some page read several ranges: \(context)") }
            }
        }
    }

    /// A node renamed between two pages comes in both: the CLI keeps it once, as read last.
    @Test func nodesReadTwiceAreKeptOnceAsReadLast() {
        var renamed = DashboardPageDataTests.node("b")
        let before = renamed
        renamed.name = "z"
        let read = [DashboardPageDataTests.node("a"), before, DashboardPageDataTests.node("c"), renamed]
        #expect(NodeList.lastOfEach(read).map(\.name) == ["a", "c", "z"])
    }
}
