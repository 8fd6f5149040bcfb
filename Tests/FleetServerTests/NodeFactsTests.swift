import FleetAPI
import FleetClient
import FleetTestSupport
import Foundation
import KSMCore
import Testing

/// `PUT /api/v1/nodes/{id}/facts`: a node tells what its host is now (its agent started, or found
/// the server again), so that a kernel or agent upgrade reaches the server without a
/// re-registration, and the config checks follow it.
@Suite struct NodeFactsTests {
    /// The test agent's registration: a kernel without the KSM advisor.
    static let oldFeatures = Fixtures.registerRequest().ksmFeatures
    static let advisorFeatures =
        oldFeatures + ["advisor_mode", "advisor_target_scan_time", "advisor_min_pages_to_scan", "advisor_max_pages_to_scan"]

    static func facts(
        kernel: String = "6.8.0-test", features: [String] = oldFeatures, agentVersion: String = "test"
    ) -> NodeFactsRequest {
        NodeFactsRequest(
            kernel: kernel, memTotalBytes: 16 << 30, numaNodes: 1, ksmFeatures: features, agentVersion: agentVersion,
            pageSize: 4096)
    }

    /// A host rebooted into a kernel with the advisor (and an upgraded agent) keeps its identity:
    /// the new kernel, features and agent version are stored and shown, mode advisor is accepted
    /// then (by PATCH and by a fleet-wide apply), the audit trail records the change (the
    /// changed facts before and after, once), and nothing else about the node changes (same
    /// token, name, config generation).
    @Test func aKernelUpgradeReachesTheServerAndAdvisorModeIsAccepted() async throws {
        let h = try await Harness.start()
        defer { Task { await h.finish() } }
        let (reg, node) = try await h.register(hostname: "upgraded")
        let refused = await apiError { _ = try await h.admin.patchConfig(reg.nodeId, ConfigPatch(mode: .advisor)) }
        #expect(refused?.0 == 422 && refused?.1.error.field == "mode", "\(String(describing: refused))")
        let auditBefore = try await h.admin.audit(node: reg.nodeId).entries.count

        let reply = try await node.putNodeFacts(
            nodeId: reg.nodeId,
            Self.facts(kernel: "6.8.0-100-generic", features: Self.advisorFeatures, agentVersion: "9.9.9"))
        #expect(reply.nodeId == reg.nodeId)
        #expect(reply.changed == ["kernel", "ksmFeatures", "agentVersion"], "\(reply.changed)")

        let info = try await h.admin.node(reg.nodeId)
        #expect(info.kernel == "6.8.0-100-generic")
        #expect(Set(info.ksmFeatures) == Set(Self.advisorFeatures))
        #expect(info.agentVersion == "9.9.9")
        #expect(info.name == "upgraded" && info.config.generation == 1)
        #expect(info.findings?.contains { $0.code == "config_unsupported" } == false)
        // The same token goes on working (no rotation).
        #expect(try await node.config(nodeId: reg.nodeId, ifNoneMatch: nil, waitSeconds: nil)?.generation == 1)
        let audit = try await h.admin.audit(node: reg.nodeId).entries
        #expect(audit.count == auditBefore + 1)
        let record = try #require(audit.first)
        #expect(record.action == "host-facts")
        #expect(record.nodeId == reg.nodeId)
        #expect(record.credential == "node:\(reg.nodeId)", "the node's agent made it: \(record.credential)")
        let oldSorted = Self.oldFeatures.sorted().map { "\"\($0)\"" }.joined(separator: ",")
        let newSorted = Self.advisorFeatures.sorted().map { "\"\($0)\"" }.joined(separator: ",")
        #expect(
            record.before
                == #"{"agentVersion":"test","kernel":"6.8.0-test","ksmFeatures":["# + oldSorted + "]}",
            "\(record.before ?? "nil")")
        #expect(
            record.after
                == #"{"agentVersion":"9.9.9","kernel":"6.8.0-100-generic","ksmFeatures":["# + newSorted + "]}",
            "\(record.after ?? "nil")")

        // The same facts again: nothing to change.
        let again = try await node.putNodeFacts(
            nodeId: reg.nodeId,
            Self.facts(kernel: "6.8.0-100-generic", features: Self.advisorFeatures.reversed(), agentVersion: "9.9.9"))
        #expect(again.changed.isEmpty, "\(again.changed)")
        #expect(try await h.admin.audit(node: reg.nodeId).entries.count == auditBefore + 1, "recorded once")

        let advisor = try await h.admin.patchConfig(reg.nodeId, ConfigPatch(mode: .advisor))
        #expect(advisor.config.mode == .advisor && advisor.generation == 2)
        // The fleet-wide path reads the stored features too.
        _ = try await h.admin.patchConfig(reg.nodeId, ConfigPatch(mode: .adaptive))
        let applied = try await h.admin.applyConfig(ApplyRequest(nodes: [reg.nodeId], change: ConfigPatch(mode: .advisor)))
        #expect(applied.results.map(\.status) == ["changed"], "\(applied.results)")
    }

    /// A host booted back into a kernel without the advisor: the server stores it, keeps the
    /// operator's advisor config as it is, and the node's findings say why it cannot apply.
    @Test func aKernelDowngradeKeepsTheConfigAndSaysWhyItCannotApply() async throws {
        let h = try await Harness.start()
        defer { Task { await h.finish() } }
        let (reg, node) = try await h.register(hostname: "downgraded")
        _ = try await node.putNodeFacts(nodeId: reg.nodeId, Self.facts(kernel: "6.8.0-new", features: Self.advisorFeatures))
        let advisor = try await h.admin.patchConfig(reg.nodeId, ConfigPatch(run: .run, mode: .advisor))

        let reply = try await node.putNodeFacts(nodeId: reg.nodeId, Self.facts(kernel: "6.1.0-old"))
        #expect(reply.changed == ["kernel", "ksmFeatures"], "\(reply.changed)")
        let info = try await h.admin.node(reg.nodeId)
        #expect(info.kernel == "6.1.0-old" && !info.ksmFeatures.contains("advisor_mode"))
        #expect(info.config == advisor, "the operator's config is kept")
        let finding = try #require(info.findings?.first { $0.code == "config_unsupported" })
        #expect(finding.severity == .error)
        #expect(finding.evidence.joined().contains("6.1.0-old"), "\(finding)")
        // A change that keeps the mode is still taken; a new one the kernel lacks is refused.
        _ = try await h.admin.patchConfig(reg.nodeId, ConfigPatch(thresCoef: 30))
        let refused = await apiError {
            _ = try await h.admin.patchConfig(reg.nodeId, ConfigPatch(mode: .adaptive))
            _ = try await h.admin.patchConfig(reg.nodeId, ConfigPatch(mode: .advisor))
        }
        #expect(refused?.0 == 422 && refused?.1.error.field == "mode")
    }

    /// Only the node itself, with its own token, and only values registration would take: every
    /// refusal is JSON with a code (and the field, for a bad value).
    @Test func refusals() async throws {
        let h = try await Harness.start()
        defer { Task { await h.finish() } }
        let (reg, node) = try await h.register(hostname: "one")
        let (other, otherNode) = try await h.register(hostname: "two")
        let body = try jsonBody(Self.facts(kernel: "6.9.0-intruder", features: Self.advisorFeatures))
        let json = ["Content-Type": "application/json"]

        // Another node's token: 403.
        let foreign = try await otherNode.send(method: "PUT", path: APIPaths.facts(reg.nodeId), headers: json, body: body)
        #expect(foreign.status == 403 && errorBody(foreign)?.error.code == "forbidden", "\(foreign.status) \(foreign.text)")
        // No token: 401; an admin credential is not the node: 403.
        let anon = try Fixtures.client(h.server.baseURL, token: nil)
        let none = try await anon.send(method: "PUT", path: APIPaths.facts(reg.nodeId), headers: json, body: body)
        #expect(none.status == 401 && errorBody(none)?.error.code != nil, "\(none.status) \(none.text)")
        let admin = try await h.admin.send(method: "PUT", path: APIPaths.facts(reg.nodeId), headers: json, body: body)
        #expect(admin.status == 403 && errorBody(admin)?.error.code == "forbidden", "\(admin.status) \(admin.text)")
        #expect(try await h.admin.node(reg.nodeId).kernel == "6.8.0-test", "nothing was stored")
        #expect(try await h.admin.node(other.nodeId).kernel == "6.8.0-test")

        // Bad values: 4xx JSON naming the field, nothing stored.
        var long = Self.facts()
        long.kernel = String(repeating: "k", count: 257)
        var longVersion = Self.facts()
        longVersion.agentVersion = String(repeating: "v", count: 257)
        var negativeMemory = Self.facts()
        negativeMemory.memTotalBytes = -1
        var negativeNuma = Self.facts()
        negativeNuma.numaNodes = -1
        var zeroPage = Self.facts()
        zeroPage.pageSize = 0
        var manyFeatures = Self.facts()
        manyFeatures.ksmFeatures = (0...NodeFactsRequest.maxFeatures).map { "f\($0)" }
        var longFeature = Self.facts()
        longFeature.ksmFeatures = ["run", String(repeating: "x", count: NodeFactsRequest.maxFeatureBytes + 1)]
        let cases: [(String, Data)] = [
            ("kernel", try jsonBody(long)), ("agentVersion", try jsonBody(longVersion)),
            ("memTotalBytes", try jsonBody(negativeMemory)), ("numaNodes", try jsonBody(negativeNuma)),
            ("pageSize", try jsonBody(zeroPage)),
            ("ksmFeatures", try jsonBody(manyFeatures)), ("ksmFeatures", try jsonBody(longFeature)),
            ("ksmFeatures", Data(#"{"kernel":"6.9","memTotalBytes":1,"numaNodes":1,"agentVersion":"x"}"#.utf8)),
            ("numaNodes", Data(#"{"kernel":"6.9","memTotalBytes":1,"numaNodes":"one","ksmFeatures":[],"agentVersion":"x"}"#.utf8)),
            ("hostname", Data(#"{"kernel":"6.9","memTotalBytes":1,"numaNodes":1,"ksmFeatures":[],"agentVersion":"x","hostname":"h"}"#.utf8)),
        ]
        for (field, data) in cases {
            let r = try await node.send(method: "PUT", path: APIPaths.facts(reg.nodeId), headers: json, body: data)
            let error = errorBody(r)?.error
            #expect((400..<500).contains(r.status) && error?.field == field && error?.code != nil,
                "\(field): \(r.status) \(r.text.prefix(300))")
        }
        let notJSON = try await node.send(method: "PUT", path: APIPaths.facts(reg.nodeId), headers: json, body: Data("{".utf8))
        #expect((400..<500).contains(notJSON.status) && errorBody(notJSON)?.error.code != nil, "\(notJSON.status) \(notJSON.text)")
        let stored = try await h.admin.node(reg.nodeId)
        #expect(stored.kernel == "6.8.0-test" && stored.agentVersion == "test" && stored.memTotalBytes == 16 << 30)

        // A deleted node's token no longer works.
        try await h.admin.deleteNode(reg.nodeId)
        let gone = try await node.send(method: "PUT", path: APIPaths.facts(reg.nodeId), headers: json, body: body)
        #expect([401, 404].contains(gone.status) && errorBody(gone)?.error.code != nil, "\(gone.status) \(gone.text)")
    }
}
