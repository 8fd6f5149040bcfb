import FleetAPI
import FleetClient
import FleetStore
import FleetTestSupport
import Foundation
import KSMCore
import Testing

@testable import FleetServer

/// The node page's config form: decoding (Hummingbird's URL-encoded form decoder), the form's
/// own checks, and that a change from it takes the API's path (validation, audit, generation,
/// long-poll wake-up).
@Suite struct DashboardConfigFormTests {
    static func decode(_ body: String) throws -> ConfigForm {
        try DashboardForm.decode(ConfigForm.self, from: Data(body.utf8))
    }

    @Test func decodesPostedFieldsAsTyped() throws {
        let form = try Self.decode(
            "csrf=ab&run=run&mode=customized&thresCoef=+35+&mergeAcrossNodes=&boost=%3Cb%3E%26&generation=7&unknown=x")
        #expect(form.run == "run" && form.mode == "customized")
        #expect(form.thresCoef == " 35 ")
        #expect(form.mergeAcrossNodes == "")
        #expect(form.boost == "<b>&")
        #expect(form.decay == "")  // missing: empty, refused as "required" in mode customized
        #expect(form.expectedGeneration == 7)
        let csrf = try DashboardForm.decode(DashboardForm.CSRFField.self, from: Data("run=stop&csrf=c0ffee".utf8))
        #expect(csrf.csrf == "c0ffee")
    }

    @Test func aPresetModeSendsNoParametersAndUnsetClearsMerge() throws {
        var form = ConfigForm()
        form.run = "run"
        form.mode = "high"
        form.thresCoef = "25"
        form.boost = "not read in a preset mode"
        let patch = try form.patch()
        #expect(patch.run == .run && patch.mode == .high && patch.thresCoef == 25)
        #expect(patch.parameters == nil)
        // Empty fields clear what they stand for: mergeAcrossNodes, and the ksmd CPU budget.
        #expect(patch.mergeAcrossNodes == nil && patch.clear == ["mergeAcrossNodes", "maxCpuPercent"])
    }

    @Test func adaptiveWithABudgetSendsIt() throws {
        let form = try Self.decode("run=run&mode=adaptive&thresCoef=100&mergeAcrossNodes=1&maxCpuPercent=12.5")
        let patch = try form.patch()
        #expect(patch.mode == .adaptive)
        #expect(patch.maxCpuPercent == 12.5)
        #expect(patch.clear == nil)
        let bad = try Self.decode("run=run&mode=adaptive&thresCoef=100&maxCpuPercent=lots")
        #expect(throws: ConfigForm.FieldErrors.self) { try bad.patch() }
        do {
            _ = try bad.patch()
        } catch {
            #expect(error.fields["maxCpuPercent"]?.contains("is not a number") == true)
        }
    }

    @Test func customizedSendsTheParameters() throws {
        let form = try Self.decode(
            "run=stop&mode=customized&thresCoef=0&mergeAcrossNodes=1&boost=300&decay=10&minPages=100&maxPages=5000&sleepMsec=20"
        )
        let patch = try form.patch()
        #expect(patch.mergeAcrossNodes == 1 && patch.clear == ["maxCpuPercent"])
        #expect(
            patch.parameters
                == ConfigPatch.PartialParameters(boost: 300, decay: 10, minPages: 100, maxPages: 5000, sleepMsec: 20))
    }

    @Test func fieldErrorsAreNamedLikeTheValidatorsFields() {
        var form = ConfigForm()
        form.run = "sometimes"
        form.mode = "customized"
        form.thresCoef = "x"
        form.mergeAcrossNodes = "2"
        form.boost = ""
        form.decay = "1.5"
        form.minPages = "1"
        form.maxPages = "2"
        form.sleepMsec = "3"
        #expect(throws: ConfigForm.FieldErrors.self) { try form.patch() }
        do {
            _ = try form.patch()
        } catch {
            #expect(
                error.fields == [
                    "run": "choose stop, run, prune or unmanaged", "thresCoef": "'x' is not a whole number",
                    "mergeAcrossNodes": "choose unset, 0 or 1", "parameters.boost": "required",
                    "parameters.decay": "'1.5' is not a whole number",
                ])
        }
    }

    @Test func aDashboardChangeTakesTheAPIPath() async throws {
        let harness = try await Harness.start()
        do {
            let (reg, node) = try await harness.register()
            let generation = reg.config.generation
            var browser = try DashboardBrowser(harness.server)
            try await browser.signIn(adminToken: harness.server.adminToken)

            // The same validation: a change the API refuses, the form refuses with the same message.
            let invalid = ConfigPatch(
                mode: .customized, parameters: .init(boost: 0, decay: 0, minPages: 6000, maxPages: 10, sleepMsec: 20))
            let api = try await harness.admin.send(
                method: "PATCH", path: APIPaths.config(reg.nodeId), headers: ["Content-Type": "application/json"],
                body: try jsonBody(invalid))
            let message = try #require(errorBody(api)?.error.message)
            let fields: [(String, String)] = [
                ("generation", String(generation)), ("run", "run"), ("mode", "customized"), ("thresCoef", "20"),
                ("mergeAcrossNodes", ""), ("boost", "0"), ("decay", "0"), ("minPages", "6000"), ("maxPages", "10"),
                ("sleepMsec", "20"),
            ]
            let refused = try await browser.post("/nodes/\(reg.nodeId)/config", fields)
            #expect(api.status == 422 && refused.status == 422)
            #expect(refused.text.contains(message.replacingOccurrences(of: "'", with: "&#39;")))

            // A valid change wakes the node's waiting long-poll, bumps the generation and is audited.
            let poll = Task { try await node.config(nodeId: reg.nodeId, ifNoneMatch: generation, waitSeconds: 20) }
            try await Task.sleep(for: .milliseconds(300))
            var valid = fields
            valid[8] = ("maxPages", "7000")
            let saved = try await browser.post("/nodes/\(reg.nodeId)/config", valid)
            #expect(saved.status == 303)
            #expect(saved.headers["location"] == "/nodes/\(reg.nodeId)?saved=\(generation + 1)")
            let woken = try await poll.value
            #expect(woken?.generation == generation + 1)
            #expect(woken?.config.run == .run && woken?.config.effectiveParameters.maxPages == 7000)
            let db = try harness.database()
            let audit = try await db.auditLog(nodeId: reg.nodeId, limit: 1)
            try db.close()
            #expect(audit.first?.credential == "bootstrap" && audit.first?.action == "patch")
            #expect(audit.first?.generation == generation + 1)
            // The node page's audit trail names the generation the change gave, as the CLI does.
            let page = try await browser.get("/nodes/\(reg.nodeId)")
            #expect(page.text.contains("<th>Gen</th>"))
            #expect(
                page.text.contains("<td>patch</td>") && page.text.contains("<td class=\"audit-generation\">\(generation + 1)</td>"),
                "\(page.text.components(separatedBy: "node-audit").last?.prefix(600) ?? "")")

            // A stale form (the generation moved on) is refused, nothing stored.
            let stale = try await browser.post(
                "/nodes/\(reg.nodeId)/config", fields.map { $0.0 == "minPages" ? ("minPages", "5") : $0 })
            #expect(stale.status == 422 && stale.text.contains("id=\"form-error\""))
            #expect(try await harness.admin.nodeConfig(reg.nodeId).generation == generation + 1)

            // Only kicks since the form was filled (a throttle node's come all day): the form
            // applies. Its base is the page's; a change of the config itself is still a conflict.
            let form = try await browser.get("/nodes/\(reg.nodeId)")
            func hidden(_ name: String) -> String {
                guard let r = form.text.range(of: "name=\"\(name)\" value=\"") else { return "" }
                return String(form.text[r.upperBound...].prefix { $0 != "\"" })
            }
            let (formGeneration, base) = (hidden("generation"), hidden("base"))
            #expect(formGeneration == String(generation + 1) && base.count == 32, "\(formGeneration) \(base)")
            _ = try await harness.admin.kick(reg.nodeId)
            _ = try await harness.admin.kick(reg.nodeId)
            var afterKicks = valid.map { $0.0 == "generation" ? ("generation", formGeneration) : $0 }
            afterKicks = afterKicks.map { $0.0 == "thresCoef" ? ("thresCoef", "33") : $0 } + [("base", base)]
            let kicked = try await browser.post("/nodes/\(reg.nodeId)/config", afterKicks)
            #expect(kicked.status == 303, "refused after kicks only: \(kicked.status)")
            #expect(try await harness.admin.nodeConfig(reg.nodeId).config.thresCoef == 33)
            let changedMeanwhile = try await browser.post(
                "/nodes/\(reg.nodeId)/config", afterKicks.map { $0.0 == "thresCoef" ? ("thresCoef", "34") : $0 })
            #expect(changedMeanwhile.status == 422 && changedMeanwhile.text.contains("id=\"form-error\""))
        } catch {
            await harness.finish()
            throw error
        }
        await harness.finish()
    }
}
