import FleetAPI
import FleetAgent
import FleetTestSupport
import Foundation
import KSMCore
import KSMNode
import TestSupport
import Testing

/// The agent sends the process report with its first sample; the server shows it on the node.
@Suite("Agent: process reports")
struct AgentProcessReportTests {
    /// A /proc tree with one QEMU guest whose pages KSM merged.
    static func procTree() throws -> String {
        let proc = makeTemporaryDirectory(prefix: "ksmfleet-proc").path
        let dir = proc + "/4242"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try "qemu-system-x86\n".write(toFile: dir + "/comm", atomically: false, encoding: .utf8)
        try "qemu-system-x86_64\0-name\0guest=web-1,debug-threads=on\0".write(
            toFile: dir + "/cmdline", atomically: false, encoding: .utf8)
        try "0::/\n".write(toFile: dir + "/cgroup", atomically: false, encoding: .utf8)
        try
            "ksm_rmap_items 1000\nksm_zero_pages 0\nksm_merging_pages 700\nksm_process_profit 2800000\nksm_merge_any: no\nksm_mergeable: yes\n"
            .write(toFile: dir + "/ksm_stat", atomically: false, encoding: .utf8)
        return proc
    }

    @Test func theFirstSampleCarriesTheReportAndTheNodeShowsIt() async throws {
        let server = try await TestServer.start()
        defer { server.removeDataDir() }
        do {
            let root = makeTemporaryDirectory(prefix: "ksmfleet-agent-proc").path
            let enroll = try await server.makeEnrollmentToken()
            var o = testAgentOptions(server: server.baseURL, enrollToken: enroll, stateDir: root + "/a", name: "procs")
            o.once = true
            o.procRoot = try Self.procTree()
            let agent = try FleetAgent(options: o, kernel: FakeKSMKernel(), logger: agentLogger("procs"))
            try await agent.runOnce()
            let nodeId = try #require(await agent.status().nodeId)
            let info = try await adminClient(server).node(nodeId)
            let report = try #require(info.processes, "the node has no process report")
            #expect(report.perProcessStats)
            #expect(report.groups.map(\.key) == [ProcessGroupKey(kind: .vm, name: "web-1")])
            #expect(report.groups.first?.mergingPages == 700)
        }
        await server.stop()
    }

    @Test func processIntervalIsASettingAndZeroTurnsReportsOff() throws {
        let on = try AgentOptions.resolve(flags: ["server": ["http://x"]], environment: [:], configFile: nil)
        #expect(on.processInterval == 60)
        let off = try AgentOptions.resolve(
            flags: ["server": ["http://x"]], environment: ["KSMFLEET_PROCESS_INTERVAL": "0"], configFile: nil)
        #expect(off.processInterval == 0)
        #expect(throws: AgentOptionsError.self) {
            _ = try AgentOptions.resolve(
                flags: ["server": ["http://x"], "process-interval": ["-1"]], environment: [:], configFile: nil)
        }
    }
}
