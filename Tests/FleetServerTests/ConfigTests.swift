import FleetAPI
import FleetClient
import FleetTestSupport
import Foundation
import KSMCore
import Testing

@Suite struct ConfigTests {
    @Test func longPollWakesOnChangeAndTimesOutWith304() async throws {
        let h = try await Harness.start()
        defer { Task { await h.finish() } }
        let (reg, node) = try await h.register()
        let id = reg.nodeId

        // Unchanged: 304 at the deadline (not before).
        let clock = ContinuousClock()
        var start = clock.now
        let unchanged = try await node.config(nodeId: id, ifNoneMatch: 1, waitSeconds: 1)
        #expect(unchanged == nil)
        #expect(clock.now - start >= .milliseconds(900))
        // A stale generation answers at once.
        start = clock.now
        let immediate = try await node.config(nodeId: id, ifNoneMatch: 0, waitSeconds: 30)
        #expect(immediate?.generation == 1)
        #expect(clock.now - start < .seconds(20))  // well before the 30 s deadline

        // Changed while waiting: 200 with the new config, long before the 30 s deadline.
        let waiter = Task { () -> (NodeConfig?, ContinuousClock.Instant) in
            let c = try await node.config(nodeId: id, ifNoneMatch: 1, waitSeconds: 30)
            return (c, ContinuousClock.now)
        }
        #expect(await waitForWaiters(h, count: 1), "the long-poll never reached the server")
        let changedAt = clock.now
        _ = try await h.admin.patchConfig(id, ConfigPatch(run: .run))
        let (woken, at) = try await waiter.value
        #expect(woken?.generation == 2 && woken?.config.run == .run)
        // "Well under a second" on an idle machine; generous here because the machine is shared.
        #expect(at - changedAt < .seconds(20))  // woken, not answered at the 30 s deadline

        // A kick also wakes a waiting agent (generation and kick counter move).
        let kickWaiter = Task { try await node.config(nodeId: id, ifNoneMatch: 2, waitSeconds: 30) }
        #expect(await waitForWaiters(h, count: 1))
        let kick = try await h.admin.kick(id)
        #expect(kick.kickCounter == 1 && kick.generation == 3)
        let kicked = try await kickWaiter.value
        #expect(kicked?.kickCounter == 1 && kicked?.generation == 3)
    }

    @Test("the long-poll's wait: empty is none (answered at once), anything but whole seconds is 422 naming it")
    func longPollWaitParameter() async throws {
        let h = try await Harness.start()
        defer { Task { await h.finish() } }
        let (reg, node) = try await h.register()
        let path = APIPaths.config(reg.nodeId)
        let clock = ContinuousClock()
        let start = clock.now
        let empty = try await node.send(method: "GET", path: path, query: [("wait", "")], headers: ["If-None-Match": "\"1\""])
        #expect(empty.status == 304 && clock.now - start < .seconds(20), "\(empty.status) \(empty.text)")
        for bad in ["-1", "ten", "1.5"] {
            let r = try await node.send(method: "GET", path: path, query: [("wait", bad)], headers: ["If-None-Match": "\"1\""])
            #expect(r.status == 422 && errorBody(r)?.error.field == "wait", "wait=\(bad): \(r.status) \(r.text)")
        }
    }

    /// The test agent registers a kernel without advisor_mode: mode advisor is refused for it,
    /// by PATCH and by a fleet-wide apply, with the field and the reason.
    @Test func advisorModeIsRefusedForAKernelWithoutTheAdvisor() async throws {
        let h = try await Harness.start()
        defer { Task { await h.finish() } }
        let (reg, _) = try await h.register()
        let refused = await apiError { _ = try await h.admin.patchConfig(reg.nodeId, ConfigPatch(mode: .advisor)) }
        #expect(refused?.0 == 422)
        #expect(refused?.1.error.message.contains("mode advisor needs the kernel's KSM advisor") == true, "\(String(describing: refused))")
        let applied = try await h.admin.applyConfig(ApplyRequest(all: true, change: ConfigPatch(mode: .advisor)))
        #expect(applied.results.allSatisfy { $0.status == "failed" && $0.error?.code == "unsupported" })
        // Adaptive works everywhere.
        let ok = try await h.admin.patchConfig(reg.nodeId, ConfigPatch(mode: .adaptive, maxCpuPercent: 10))
        #expect(ok.config.mode == .adaptive && ok.config.maxCpuPercent == 10)
    }

    @Test func staleIfMatchIs409() async throws {
        let h = try await Harness.start()
        defer { Task { await h.finish() } }
        let (reg, _) = try await h.register()
        let id = reg.nodeId
        let two = try await h.admin.patchConfig(id, ConfigPatch(run: .run), ifMatch: 1)
        #expect(two.generation == 2)
        let stale = await apiError { _ = try await h.admin.patchConfig(id, ConfigPatch(thresCoef: 30), ifMatch: 1) }
        #expect(stale?.0 == 409 && stale?.1.error.code == "generation_conflict")
        let stalePut = await apiError {
            _ = try await h.admin.replaceConfig(id, KSMConfig(run: .stop, mode: .high), ifMatch: 1)
        }
        #expect(stalePut?.0 == 409)
        // A NodeConfig body carries its generation: stale is refused, current accepted.
        let body = NodeConfig(generation: 1, config: KSMConfig(run: .run, mode: .high))
        let raw = try await h.admin.send(
            method: "PUT", path: APIPaths.config(id), headers: ["Content-Type": "application/json"], body: try jsonBody(body))
        #expect(raw.status == 409 && errorBody(raw)?.error.code == "generation_conflict")
        let current = NodeConfig(generation: 2, config: KSMConfig(run: .run, mode: .high))
        let ok = try await h.admin.send(
            method: "PUT", path: APIPaths.config(id), headers: ["Content-Type": "application/json"], body: try jsonBody(current))
        #expect(ok.status == 200 && ok.headers["etag"] == "\"3\"")
        // Unquoted If-Match works too.
        let unquoted = try await h.admin.send(
            method: "PATCH", path: APIPaths.config(id), headers: ["Content-Type": "application/json", "If-Match": "3"],
            body: Data(#"{"thresCoef": 25}"#.utf8))
        #expect(unquoted.status == 200)
        let final = try await h.admin.nodeConfig(id)
        #expect(final.generation == 4 && final.config.thresCoef == 25 && final.config.mode == .high)
        #expect(final.config.parameters == TunerParameters.high)
    }

    @Test func fleetApplyBySelectorWithDryRun() async throws {
        let h = try await Harness.start()
        defer { Task { await h.finish() } }
        let (a, _) = try await h.register(hostname: "a")
        let (b, _) = try await h.register(hostname: "b")
        let (c, _) = try await h.register(hostname: "c")
        try await h.admin.setLabels(a.nodeId, ["rack": "1", "env": "prod"])
        try await h.admin.setLabels(b.nodeId, ["rack": "1"])
        let dry = try await h.admin.applyConfig(
            ApplyRequest(selector: "rack=1", change: ConfigPatch(run: .run), dryRun: true))
        #expect(dry.dryRun && Set(dry.results.map(\.nodeId)) == [a.nodeId, b.nodeId])
        #expect(dry.results.allSatisfy { $0.status == "would_change" && $0.changes == ["run: stop → run"] })
        #expect(try await h.admin.nodeConfig(a.nodeId).generation == 1, "a dry run changes nothing")

        let real = try await h.admin.applyConfig(ApplyRequest(selector: "rack=1,env=prod", change: ConfigPatch(run: .run)))
        #expect(real.results.map(\.nodeId) == [a.nodeId] && real.results[0].status == "changed")
        #expect(real.results[0].generation == 2)
        let byIds = try await h.admin.applyConfig(
            ApplyRequest(nodes: [a.nodeId, "c", "nonexistent"], change: ConfigPatch(run: .run)))
        #expect(byIds.results.map(\.status) == ["unchanged", "changed", "not_found"])
        #expect(byIds.results[1].nodeId == c.nodeId)
        // A change invalid for one node fails that node only.
        let bad = try await h.admin.applyConfig(
            ApplyRequest(all: true, change: ConfigPatch(parameters: .init(minPages: 500))))
        #expect(bad.results.count == 3 && bad.results.allSatisfy { $0.status == "failed" && $0.error?.code == "preset_mismatch" })
        let neither = await apiError { _ = try await h.admin.applyConfig(ApplyRequest(change: ConfigPatch(run: .run))) }
        #expect(neither?.0 == 422)
        // Filters on the list.
        #expect(try await h.admin.listNodes(selector: "rack=1").nodes.count == 2)
        #expect(try await h.admin.listNodes(drift: true).nodes.count == 3)
        // None has sent a sample: none is online (never reported).
        #expect(try await h.admin.listNodes(online: false).nodes.count == 3)
        #expect(try await h.admin.listNodes(online: true).nodes.isEmpty)
    }

    /// Every bad input answers the JSON error body with the right status, code and field.
    @Test(arguments: BadInput.all)
    func badInputFollowsTheErrorContract(_ case_: BadInput) async throws {
        let h = try await Harness.start()
        defer { Task { await h.finish() } }
        let (reg, _) = try await h.register()
        var headers = ["Content-Type": "application/json"]
        switch case_.token {
        case .admin: headers["Authorization"] = "Bearer \(h.server.adminToken)"
        case .none: break
        case .wrong: headers["Authorization"] = "Bearer ka_wrong"
        }
        let anon = try Fixtures.client(h.server.baseURL, token: nil)
        let response = try await anon.send(
            method: case_.method, path: case_.path.replacingOccurrences(of: "{id}", with: reg.nodeId), headers: headers,
            body: case_.body)
        #expect(response.status == case_.status, "\(case_.name): \(response.text)")
        let body = try #require(errorBody(response), "\(case_.name): not the JSON error body: \(response.text)")
        #expect(body.error.code == case_.code, "\(case_.name)")
        #expect(body.error.field == case_.field, "\(case_.name)")
        #expect(!body.error.message.isEmpty)
        #expect(response.headers["content-type"]?.hasPrefix("application/json") == true)
    }

    func waitForWaiters(_ h: Harness, count: Int) async -> Bool {
        let deadline = ContinuousClock.now + .seconds(20)
        while ContinuousClock.now < deadline {
            if let m = try? await h.admin.send(method: "GET", path: "/metrics"),
                MetricsText(m.text).values["ksmfleet_config_waiters"] == Double(count)
            {
                return true
            }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return false
    }
}

/// Labels are bounded, and only what a selector can name (`k=v`, values trimmed).
@Suite struct LabelRulesTests {
    @Test func labelsAreBoundedAndSelectable() async throws {
        let h = try await Harness.start()
        defer { Task { await h.finish() } }
        let (reg, _) = try await h.register()
        let cases: [([String: String], String)] = [
            (["rack": " r1"], "labels.rack"), (["rack": "r1 "], "labels.rack"), (["rack": "a,b"], "labels.rack"),
            (["rack": "a\u{7}b"], "labels.rack"), (["rack": String(repeating: "x", count: 254)], "labels.rack"),
            ([String(repeating: "k", count: 64): "v"], "labels"), (["ra ck": "1"], "labels.ra ck"),
            (Dictionary(uniqueKeysWithValues: (0..<65).map { ("k\($0)", "v") }), "labels"),
        ]
        for (labels, field) in cases {
            let r = try await h.admin.send(
                method: "PUT", path: APIPaths.labels(reg.nodeId), headers: ["Content-Type": "application/json"],
                body: try JSONEncoder().encode(["labels": labels]))
            #expect(r.status == 422 && errorBody(r)?.error.field == field, "\(field): \(r.status) \(r.text.prefix(200))")
        }
        #expect(try await h.admin.node(reg.nodeId).labels.isEmpty, "nothing was stored")
        // At the limits: stored, and a selector names them (a space inside a value is fine).
        let long = String(repeating: "x", count: 253)
        try await h.admin.setLabels(reg.nodeId, ["rack": long, "env": "prod west"])
        for selector in ["env=prod west", "rack=\(long)"] {
            let r = try await h.admin.send(method: "GET", path: APIPaths.nodes, query: [("selector", selector)])
            let list = try StrictJSON.decoder().decode(NodeList.self, from: r.body)
            #expect(list.nodes.map(\.id) == [reg.nodeId], "\(selector)")
        }
    }
}

struct BadInput: Sendable, CustomTestStringConvertible {
    enum Token: Sendable { case admin, none, wrong }
    var name: String
    var method: String
    var path: String
    var token: Token
    var body: Data?
    var status: Int
    var code: String
    var field: String?
    var testDescription: String { name }

    static let config = "/api/v1/nodes/{id}/config"
    static let custom = #"{"run":"run","mode":"customized","thresCoef":20,"parameters":"#

    static let all: [BadInput] = [
        BadInput(name: "malformed JSON", method: "PATCH", path: config, token: .admin, body: Data("{\"run\":".utf8),
                 status: 400, code: "malformed_json", field: nil),
        BadInput(name: "unknown field", method: "PATCH", path: config, token: .admin,
                 body: Data(#"{"run":"run","turbo":true}"#.utf8), status: 400, code: "unknown_field", field: "turbo"),
        BadInput(name: "unknown nested field", method: "PUT", path: config, token: .admin,
                 body: Data((custom + #"{"boost":1,"decay":1,"minPages":1,"maxPages":2,"sleepMsec":5,"x":1}}"#).utf8),
                 status: 400, code: "unknown_field", field: "parameters.x"),
        // Python and JavaScript keep a repeated key's last value, Foundation its first: refused.
        BadInput(name: "key named twice", method: "PATCH", path: config, token: .admin,
                 body: Data(#"{"thresCoef":30,"thresCoef":101}"#.utf8), status: 400, code: "duplicate_field", field: "thresCoef"),
        BadInput(name: "nested key named twice", method: "PUT", path: config, token: .admin,
                 body: Data((custom + #"{"boost":1,"decay":1,"minPages":1,"maxPages":2,"sleepMsec":5,"boost":3}}"#).utf8),
                 status: 400, code: "duplicate_field", field: "parameters.boost"),
        BadInput(name: "minPages > maxPages", method: "PUT", path: config, token: .admin,
                 body: Data((custom + #"{"boost":1,"decay":1,"minPages":500,"maxPages":100,"sleepMsec":5}}"#).utf8),
                 status: 422, code: "min_above_max", field: "parameters.minPages"),
        BadInput(name: "thresCoef 101", method: "PATCH", path: config, token: .admin,
                 body: Data(#"{"thresCoef":101}"#.utf8), status: 422, code: "out_of_range", field: "thresCoef"),
        BadInput(name: "negative pages", method: "PUT", path: config, token: .admin,
                 body: Data((custom + #"{"boost":1,"decay":1,"minPages":-5,"maxPages":100,"sleepMsec":5}}"#).utf8),
                 status: 422, code: "negative", field: "parameters.minPages"),
        BadInput(name: "wrong type", method: "PATCH", path: config, token: .admin,
                 body: Data(#"{"thresCoef":"high"}"#.utf8), status: 400, code: "invalid_type", field: "thresCoef"),
        // Foundation names no field for these ("The given data was not valid JSON."): the server does.
        BadInput(name: "a fraction where a whole number goes", method: "PATCH", path: config, token: .admin,
                 body: Data(#"{"thresCoef":20.5}"#.utf8), status: 422, code: "invalid_value", field: "thresCoef"),
        BadInput(name: "a number beyond 64 bits", method: "PATCH", path: config, token: .admin,
                 body: Data(#"{"thresCoef":9223372036854775808}"#.utf8), status: 422, code: "invalid_value", field: "thresCoef"),
        BadInput(name: "a nested fraction", method: "PUT", path: config, token: .admin,
                 body: Data((custom + #"{"boost":1,"decay":1,"minPages":1.5,"maxPages":2,"sleepMsec":5}}"#).utf8),
                 status: 422, code: "invalid_value", field: "parameters.minPages"),
        BadInput(name: "a date that is not ISO 8601", method: "POST", path: "/api/v1/credentials", token: .admin,
                 body: Data(#"{"name":"x9","role":"viewer","expiresAt":"tomorrow"}"#.utf8), status: 422, code: "invalid_value",
                 field: "expiresAt"),
        BadInput(name: "a kick counter no GET gave", method: "PUT", path: config, token: .admin,
                 body: Data(#"{"run":"stop","mode":"standard","thresCoef":20,"generation":1,"kickCounter":-5}"#.utf8),
                 status: 422, code: "invalid_value", field: "kickCounter"),
        BadInput(name: "unknown enum value", method: "PATCH", path: config, token: .admin,
                 body: Data(#"{"run":"fast"}"#.utf8), status: 422, code: "invalid_value", field: "run"),
        BadInput(name: "missing token", method: "GET", path: "/api/v1/nodes", token: .none, body: nil,
                 status: 401, code: "unauthorized", field: nil),
        BadInput(name: "wrong token", method: "GET", path: "/api/v1/nodes", token: .wrong, body: nil,
                 status: 401, code: "unauthorized", field: nil),
        BadInput(name: "oversize body", method: "PUT", path: config, token: .admin,
                 body: Data(repeating: UInt8(ascii: " "), count: 2 << 20), status: 413, code: "body_too_large", field: nil),
        BadInput(name: "unknown node", method: "GET", path: "/api/v1/nodes/n-000000000000", token: .admin, body: nil,
                 status: 404, code: "not_found", field: nil),
        BadInput(name: "unknown route", method: "GET", path: "/api/v1/nope", token: .admin, body: nil,
                 status: 404, code: "no_route", field: nil),
        BadInput(name: "wrong method", method: "DELETE", path: "/api/v1/config/apply", token: .admin, body: nil,
                 status: 405, code: "method_not_allowed", field: nil),
        BadInput(name: "bad wait", method: "GET", path: config + "?wait=soon", token: .admin, body: nil,
                 status: 422, code: "invalid_value", field: "wait"),
    ]
}
