import FleetAPI
import Foundation
import KSMCore
import Testing

@Suite("adaptive and advisor modes: config and validation")
struct AdaptiveConfigTests {
    @Test("adaptive with a CPU budget is valid and round-trips through strict JSON")
    func roundTrip() throws {
        let c = try KSMConfig(run: .run, mode: .adaptive, thresCoef: 100, maxCpuPercent: 12.5).validated()
        let data = try StrictJSON.encoder().encode(c)
        let back = try StrictJSON.decode(KSMConfig.self, from: data)
        #expect(back == c)
        #expect(back.maxCpuPercent == 12.5)
        #expect(String(decoding: data, as: UTF8.self).contains("\"mode\":\"adaptive\""))
    }

    @Test("a budget outside 0.1–100 % of a core is refused on its own field", arguments: [0.0, -5, 100.5, 1000])
    func budgetRange(value: Double) {
        let issues = KSMConfig(run: .run, mode: .adaptive, maxCpuPercent: value).validate()
        #expect(issues.map(\.field) == ["maxCpuPercent"])
    }

    @Test("adaptive ignores ksmtuned parameters, so minPages 0 is not an error there")
    func parametersIgnored() {
        let c = KSMConfig(run: .run, mode: .adaptive, parameters: TunerParameters(boost: 0, decay: 0, minPages: 0, maxPages: 0, sleepMsec: 0))
        #expect(c.validate().isEmpty)
    }

    @Test("advisor settings are checked field by field, one error each")
    func advisorValidation() {
        let bad = AdvisorSettings(targetScanTimeSeconds: 0, maxCpuPercent: 101, minPagesToScan: 5000, maxPagesToScan: 100)
        let issues = KSMConfig(run: .run, mode: .advisor, advisor: bad).validate()
        #expect(issues.map(\.field) == ["advisor.targetScanTimeSeconds", "advisor.maxCpuPercent", "advisor.minPagesToScan"])
        #expect(KSMConfig(run: .run, mode: .advisor).validate().isEmpty)
    }

    @Test("unknown advisor fields are refused with their path")
    func advisorUnknownField() {
        let json = Data(#"{"run":"run","mode":"advisor","thresCoef":20,"advisor":{"targetScanTime":30}}"#.utf8)
        #expect(throws: InputError.self) { try StrictJSON.decode(KSMConfig.self, from: json) }
    }

    @Test("a patch sets and clears the budget; configDiff names it")
    func patch() throws {
        let base = KSMConfig.standardDefault
        let set = try ConfigPatch(mode: .adaptive, maxCpuPercent: 10).applied(to: base)
        #expect(set.mode == .adaptive)
        #expect(set.maxCpuPercent == 10)
        #expect(configDiff(base, set).contains("maxCpuPercent: unset → 10.0"))
        let cleared = try ConfigPatch(clear: ["maxCpuPercent"]).applied(to: set)
        #expect(cleared.maxCpuPercent == nil)
    }

    @Test("mode advisor is refused for a kernel whose features lack advisor_mode, and only then")
    func advisorOnKernel() {
        let c = KSMConfig(run: .run, mode: .advisor)
        #expect(c.issues(onKernelWith: ["run", "pages_to_scan"], kernel: "5.15.0").map(\.field) == ["mode"])
        #expect(c.issues(onKernelWith: ["run", "advisor_mode"], kernel: "6.18").isEmpty)
        #expect(c.issues(onKernelWith: [], kernel: "?").isEmpty, "unknown features refuse nothing")
        #expect(KSMConfig(run: .run, mode: .adaptive).issues(onKernelWith: ["run"], kernel: "5.15").isEmpty)
    }
}
