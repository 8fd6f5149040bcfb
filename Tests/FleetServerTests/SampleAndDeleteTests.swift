import FleetAPI
import FleetClient
import FleetTestSupport
import Foundation
import KSMCore
import Testing

@Suite struct SampleAndDeleteTests {
    @Test func duplicateAndOutOfOrderBatchesAreStoredOnce() async throws {
        let h = try await Harness.start()
        defer { Task { await h.finish() } }
        let (reg, node) = try await h.register()
        let id = reg.nodeId
        var ack = try await node.pushSamples(nodeId: id, Fixtures.batch([1, 2, 3]))
        #expect(ack == SampleBatchAck(highestSeq: 3, stored: 3, duplicates: 0))
        ack = try await node.pushSamples(nodeId: id, Fixtures.batch([1, 2, 3]))
        #expect(ack == SampleBatchAck(highestSeq: 3, stored: 0, duplicates: 3))
        ack = try await node.pushSamples(nodeId: id, Fixtures.batch([7, 5, 6]))
        #expect(ack == SampleBatchAck(highestSeq: 7, stored: 3, duplicates: 0))
        ack = try await node.pushSamples(nodeId: id, Fixtures.batch([4, 5]))
        #expect(ack == SampleBatchAck(highestSeq: 7, stored: 1, duplicates: 1))
        let db = try h.database()
        #expect(try await db.sampleSeqs(nodeId: id) == [1, 2, 3, 4, 5, 6, 7])
        try db.close()
        // The node's state comes from the newest sample.
        let info = try await h.admin.node(id)
        #expect(info.lastSample?.seq == 7)
        #expect(info.appliedGeneration == 1 && !info.drift && info.online && info.phase == .running)
        // The newest seq sent again with other values is a duplicate: acknowledged, not stored,
        // and the node's state stays that of the sample stored under it.
        var again = Fixtures.sample(7, pagesSharing: 999_999, phase: .stopped, appliedGeneration: 0)
        again.phaseReason = "sent again"
        ack = try await node.pushSamples(nodeId: id, SampleBatch(samples: [again]))
        #expect(ack == SampleBatchAck(highestSeq: 7, stored: 0, duplicates: 1))
        let unchanged = try await h.admin.node(id)
        #expect(unchanged.lastSample == info.lastSample && unchanged.phase == .running && unchanged.appliedGeneration == 1)
        // Batch size limit.
        let tooMany = await apiError {
            _ = try await node.pushSamples(nodeId: id, Fixtures.batch(Int64(100)...Int64(100 + SampleBatch.maxSamples)))
        }
        #expect(tooMany?.0 == 413 && tooMany?.1.error.field == "samples")
    }

    /// A query parameter the operation does not read is refused before anything happens: a
    /// typo in a deletion's `purgeHistory` deleted the node and kept its history. So is one
    /// given twice.
    @Test func unknownAndRepeatedQueryParametersAreRefused() async throws {
        let h = try await Harness.start()
        defer { Task { await h.finish() } }
        let (reg, node) = try await h.register()
        _ = try await node.pushSamples(nodeId: reg.nodeId, Fixtures.batch([1]))
        let typo = try await h.admin.send(
            method: "DELETE", path: APIPaths.node(reg.nodeId), query: [("purgehistory", "true")])
        #expect(typo.status == 400 && errorBody(typo)?.error.code == "unknown_parameter", "\(typo.text)")
        #expect(errorBody(typo)?.error.field == "purgehistory")
        #expect(try await h.admin.node(reg.nodeId).lastSample?.seq == 1, "the node is still there")
        let twice = try await h.admin.send(method: "GET", path: APIPaths.nodes, query: [("limit", "1"), ("limit", "abc")])
        #expect(twice.status == 400 && errorBody(twice)?.error.code == "repeated_parameter", "\(twice.text)")
        #expect(errorBody(twice)?.error.field == "limit")
        // The agent's long-poll and the listing's own parameters go through.
        let poll = try await node.send(method: "GET", path: APIPaths.config(reg.nodeId), query: [("wait", "0")])
        #expect(poll.status == 200, "\(poll.text)")
        let page = try await h.admin.send(method: "GET", path: APIPaths.nodes, query: [("limit", "1"), ("online", "true")])
        #expect(page.status == 200, "\(page.text)")
    }

    /// The fast sample path gives the same errors as every other endpoint.
    @Test func badSampleBatchesFollowTheErrorContract() async throws {
        let h = try await Harness.start()
        defer { Task { await h.finish() } }
        let (reg, node) = try await h.register()
        var good = try #require(try JSONSerialization.jsonObject(with: try jsonBody(Fixtures.batch([1]))) as? [String: Any])
        var samples = try #require(good["samples"] as? [[String: Any]])
        var status = try #require(samples[0]["status"] as? [String: Any])
        status["turbo"] = 1
        samples[0]["status"] = status
        good["samples"] = samples
        var cases: [(Data, Int, String, String?)] = [
            (try JSONSerialization.data(withJSONObject: good), 400, "unknown_field", "samples[0].status.turbo"),
            (Data(#"{"samples": [{"seq": 1"#.utf8), 400, "malformed_json", nil),
            (Data(#"{"samples": [{"seq": 1}]}"#.utf8), 400, "missing_field", nil),
            (Data(#"{"samples": [], "extra": true}"#.utf8), 400, "unknown_field", "extra"),
            (Data(#"{"sampl\u0065s": [], "x": 1}"#.utf8), 400, "unknown_field", "x"),
        ]
        // A key named twice in one object: refused, whichever copy a reader would keep (a body
        // whose first `samples` was checked and whose last was stored once broke every listing).
        let goodText = String(decoding: try jsonBody(Fixtures.batch([1])), as: UTF8.self)
        let sampleStart = try #require(goodText.range(of: #""samples":["#)?.upperBound)
        let cases2: [(String, String)] = [
            (String(goodText.dropLast()) + #","samples":[0]}"#, "samples"),
            (String(goodText.dropLast()) + #","sampl\u0065s":[]}"#, "samples"),
            (goodText.replacingCharacters(in: sampleStart..<goodText.index(after: sampleStart), with: #"{"seq":9,"#), "samples[0].seq"),
        ]
        cases += cases2.map { (Data($0.0.utf8), 400, "duplicate_field", $0.1) }
        // A date that is not ISO 8601, named down to its field (Foundation names none).
        let badDate = goodText.replacing(/"takenAt":"[^"]*"/, with: #""takenAt":"yesterday""#)
        #expect(badDate != goodText)
        cases.append((Data(badDate.utf8), 422, "invalid_value", "samples[0].takenAt"))
        for (body, status, code, field) in cases {
            let r = try await node.send(
                method: "POST", path: APIPaths.samples(reg.nodeId), headers: ["Content-Type": "application/json"], body: body)
            #expect(r.status == status, "\(r.text)")
            #expect(errorBody(r)?.error.code == code, "\(r.text)")
            if let field { #expect(errorBody(r)?.error.field == field, "\(r.text)") }
        }
        // The client's timeout header (`ClientTimeout`): seconds over 0 and at most an hour, or
        // the push is refused naming the header, and nothing is stored.
        let body = try jsonBody(Fixtures.batch([1]))
        for bad in ["0", "-5", "abc", "3601", "inf", "nan", "30s"] {
            let r = try await node.send(
                method: "POST", path: APIPaths.samples(reg.nodeId),
                headers: ["Content-Type": "application/json", ClientTimeout.header: bad], body: body)
            #expect(r.status == 422 && errorBody(r)?.error.field == ClientTimeout.header, "\(bad): \(r.status) \(r.text)")
        }
        #expect(try await h.admin.node(reg.nodeId).lastSample == nil)
        // A good batch after all that (the client sends its timeout), stored as the bytes received.
        #expect(try await node.pushSamples(nodeId: reg.nodeId, Fixtures.batch([1, 2])).stored == 2)
        let info = try await h.admin.node(reg.nodeId)
        #expect(info.lastSample == Fixtures.sample(2))
    }

    /// A sample no real agent could send refuses its whole batch (422 naming the field), and
    /// nothing of that batch is stored, not even the good sample before it.
    @Test func implausibleSamplesRefuseTheirBatchAndStoreNothing() async throws {
        let h = try await Harness.start()
        defer { Task { await h.finish() } }
        let (reg, node) = try await h.register()
        let now = Date()
        func bad(_ edit: (inout StatusSample) -> Void) -> StatusSample {
            var s = Fixtures.sample(2)
            edit(&s)
            return s
        }
        let cases: [(StatusSample, String)] = [
            (bad { $0.takenAt = now.addingTimeInterval(3600) }, "takenAt"),
            (bad { $0.takenAt = Date(timeIntervalSince1970: 0) }, "takenAt"),
            (bad { $0.seq = -1 }, "seq"),
            (bad { $0.pageSize = 1 }, "pageSize"),
            (bad { $0.pageSize = 12288 }, "pageSize"),
            (bad { $0.status.pagesUnshared = -1 }, "status.pagesUnshared"),
            (bad { $0.status.run = -1 }, "status.run"),
            (bad { $0.memory.memAvailableKB = -5 }, "memory.memAvailableKB"),
            (bad { $0.ksmdCPUPercent = -1 }, "ksmdCPUPercent"),
            (bad { $0.ksmdCPUPercent = 1e300 }, "ksmdCPUPercent"),
            (bad { $0.ksmdCPUSeconds = -0.5 }, "ksmdCPUSeconds"),
            (bad { $0.appliedGeneration = -1 }, "appliedGeneration"),
            (bad { $0.droppedSamples = -5 }, "droppedSamples"),
        ]
        for (sample, field) in cases {
            let refused = await apiError {
                _ = try await node.pushSamples(nodeId: reg.nodeId, SampleBatch(samples: [Fixtures.sample(1), sample]))
            }
            #expect(refused?.0 == 422, "\(field): \(String(describing: refused))")
            #expect(refused?.1.error.code == "invalid_value" && refused?.1.error.field == "samples[1].\(field)")
        }
        let db = try h.database()
        #expect(try await db.sampleSeqs(nodeId: reg.nodeId).isEmpty)
        try db.close()
        // Counted in /metrics by field, so an operator can alert on nodes whose data is refused.
        let metrics = MetricsText(try await h.admin.send(method: "GET", path: "/metrics").text)
        #expect(metrics.values[#"ksmfleet_samples_refused_batches_total{field="takenAt"}"#] == 2)
        #expect(metrics.values[#"ksmfleet_samples_refused_batches_total{field="ksmdCPUPercent"}"#] == 2)
        // The node says why its data stops, where operators look (CLI, dashboard: findings).
        let refusedNode = try await h.admin.node(reg.nodeId)
        let finding = try #require(refusedNode.findings?.first { $0.code == "samples_refused" })
        #expect(finding.severity == .error && finding.message.contains("samples[1].droppedSamples"), "\(finding)")
        // What real nodes do send is taken: a clock a few minutes ahead, 64 KiB pages, a negative
        // general_profit (rmap overhead above the saving), ksmd a hair over one core by tick rounding.
        var edge = Fixtures.sample(2)
        edge.takenAt = now.addingTimeInterval(300)
        edge.pageSize = 65536
        edge.status.generalProfit = -4096
        edge.ksmdCPUPercent = 100.4
        #expect(try await node.pushSamples(nodeId: reg.nodeId, SampleBatch(samples: [Fixtures.sample(1), edge])).stored == 2)
        // A stored batch ends the finding.
        #expect(try await h.admin.node(reg.nodeId).findings?.contains { $0.code == "samples_refused" } == false)
        // A refusal is kept in the store: a server started anew on the same data still says so.
        _ = await apiError { _ = try await node.pushSamples(nodeId: reg.nodeId, SampleBatch(samples: [cases[0].0])) }
        await h.server.stop()
        let again = try await Harness.start(dataDir: h.server.dataDir, adminToken: h.server.adminToken)
        let kept = try await again.admin.node(reg.nodeId).findings?.first { $0.code == "samples_refused" }
        #expect(kept?.message.contains("samples[0].takenAt") == true, "after a restart: \(String(describing: kept))")
        await again.finish()
    }

    @Test func deleteRemovesConfigAndTokenButKeepsHistoryUnlessPurged() async throws {
        let h = try await Harness.start()
        defer { Task { await h.finish() } }
        let (a, nodeA) = try await h.register(hostname: "a")
        let (b, _) = try await h.register(hostname: "b")
        _ = try await nodeA.pushSamples(nodeId: a.nodeId, Fixtures.batch([1, 2]))
        // A waiting long-poll of the deleted node ends (404), it does not hang.
        let waiting = Task { try await nodeA.config(nodeId: a.nodeId, ifNoneMatch: 1, waitSeconds: 30) }
        try await Task.sleep(for: .milliseconds(300))
        // A purge asked for without saying true or false (an unset variable, a bare flag): 422,
        // nothing deleted, rather than a deletion that kept the history.
        for query in ["purgeHistory=", "purgeHistory"] {
            let r = try await h.admin.send(method: "DELETE", path: APIPaths.node(a.nodeId) + "?" + query)
            #expect(r.status == 422 && errorBody(r)?.error.field == "purgeHistory", "\(query): \(r.status) \(r.text)")
        }
        #expect(try await h.admin.node(a.nodeId).id == a.nodeId)
        try await h.admin.deleteNode(a.nodeId)
        let ended = await apiError { _ = try await waiting.value }
        #expect(ended?.0 == 401 || ended?.0 == 404)
        let gone = await apiError { _ = try await h.admin.node(a.nodeId) }
        #expect(gone?.0 == 404)
        let token = await apiError { _ = try await nodeA.pushSamples(nodeId: a.nodeId, Fixtures.batch([3])) }
        #expect(token?.0 == 401)
        let db = try h.database()
        #expect(try await db.sampleCount(nodeId: a.nodeId) == 2, "history stays for reports")
        #expect(try await db.config(nodeId: a.nodeId) == nil)
        try await h.admin.deleteNode("b", purgeHistory: true)  // by name
        #expect(try await db.nodes(includeDeleted: true).allSatisfy { $0.id != b.nodeId })
        try db.close()
        #expect(try await h.admin.listNodes().nodes.isEmpty)
    }
}
