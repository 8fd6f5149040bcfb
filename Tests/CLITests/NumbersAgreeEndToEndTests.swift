import FleetAPI
import FleetClient
import FleetTestSupport
import Foundation
import KSMCore
import Testing
import TestSupport

/// Issue 11's scenario end to end: a real agent process on a fake KSM directory whose
/// pages_sharing ramps from 0 to 1 GiB, `config set --run run --mode high`, then SIGTERM. The API,
/// the CLI and the dashboard show the same figures, from the first minute: coverage over the
/// node's own life, the fleet peak equal to its only node's peak, and a stopped agent marked at
/// once with what it left in the kernel.
@Suite("Numbers agree: a real agent on a fake KSM directory, API, CLI and dashboard", .serialized)
struct NumbersAgreeEndToEndTests {
    static let gib: Int64 = 1 << 30
    static let pageSize: Int64 = 4096

    @Test func figuresAgreeFromTheFirstMinuteAndAStoppedAgentIsMarkedAtOnce() async throws {
        guard let agentBinary = builtProduct("ksmfleet-agent") else {
            try Test.cancel("ksmfleet-agent is not built next to the tests (swift build --build-tests builds it)")
        }
        let server = try await TestServer.start()
        defer { server.removeDataDir() }
        let root = makeTemporaryDirectory(prefix: "ksmfleet-numbers").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        let sysfs = root + "/ksm"
        try FakeSysfsDirectory.create(at: sysfs)
        let tokenFile = root + "/enroll-token"
        let enroll = try await server.makeEnrollmentToken()
        try enroll.write(toFile: tokenFile, atomically: true, encoding: .utf8)

        let logPath = root + "/agent.log"
        let p = try startLogged(
            agentBinary,
            [
                "run", "--server", server.baseURL, "--enroll-token-file", tokenFile, "--state-dir", root + "/state",
                "--sysfs", sysfs, "--node-name", "ramp", "--sample-interval", "0.25", "--tune-interval", "1",
            ], logPath: logPath)
        defer { if p.isRunning { kill(p.processIdentifier, SIGKILL) } }
        var log: String { readText(logPath) }
        func cli(_ args: [String]) async throws -> CLIResult {
            try await CLI.run(args + ["--server", server.baseURL, "--token", server.adminToken, "--timeout", "60"])
        }

        do {
            let admin = try Fixtures.client(server.baseURL, token: server.adminToken)
            var nodeId = ""
            let registered = await waitUntil(timeout: .seconds(20)) {
                guard let n = try? await admin.listNodes().nodes.first(where: { $0.name == "ramp" }),
                    n.lastSample != nil
                else { return false }
                nodeId = n.id
                return true
            }
            try #require(registered, "the agent did not register and report: \(log)")

            // `ksmfleet config set ramp --run run --mode high`, as the operator did (with the
            // threshold at 100 % so that KSM runs whatever this machine's MemAvailable).
            let set = try await cli(["config", "set", "ramp", "--run", "run", "--mode", "high", "--thres-coef", "100"])
            #expect(set.status == 0, "\(set)")
            let running = await waitUntil(timeout: .seconds(10)) { FakeSysfsDirectory.read(sysfs, "run") == "1" }
            #expect(running, "the agent did not start KSM: \(log)")

            // pages_sharing ramps from 0 to 1 GiB in 5 s, as ksmd would merge.
            let full = Self.gib / Self.pageSize
            for step in 1...20 {
                let sharing = full * Int64(step) / 20
                try FakeSysfsDirectory.write(sysfs, "pages_sharing", "\(sharing)")
                try FakeSysfsDirectory.write(sysfs, "pages_shared", "\(sharing / 4)")
                try FakeSysfsDirectory.write(sysfs, "full_scans", "\(step)")
                try await Task.sleep(for: .milliseconds(250))
            }
            let atTop = await waitUntil(timeout: .seconds(10)) {
                (try? await admin.node(nodeId).lastSample?.savedBytes) == Self.gib
            }
            try #require(atTop, "the agent did not report 1 GiB: \(log)")
            // More than a second: the client sends report times in whole seconds (rounded down),
            // so the 1 GiB samples must be over a second old to be inside [since, until).
            try await Task.sleep(for: .milliseconds(1500))

            // Saved now: the API's summary, the nodes table and `ksmfleet status` agree.
            let list = try await admin.listNodes()
            #expect(list.summary?.savedBytes == Self.gib)
            #expect(list.nodes.first?.connection == .online)
            let status = try await cli(["status", "-o", "json"])
            let statusObject = try status.object()
            #expect(statusObject["savedBytes"] as? Int == Int(Self.gib), "\(status)")
            let statusTable = try await cli(["status"])
            #expect(statusTable.stdout.contains("Memory saved: 1 GiB"), "\(statusTable)")

            // The report over the last hour: the node existed for a few seconds of it and never
            // missed a sample, so its coverage is 1; the fleet's peak is its only node's peak.
            let now = Date()
            let report = try await admin.savingsReport(
                since: now.addingTimeInterval(-3600), until: now, by: .node, label: nil)
            let row = try #require(report.rows.first { $0.key == nodeId })
            #expect(row.peakSavedBytes == Double(Self.gib))
            #expect(report.total.peakSavedBytes == Double(Self.gib), "fleet peak below its only node's peak")
            #expect(report.total.peakBasis == .samples)
            #expect((row.coverage ?? 0) > 0.99 && (row.coverage ?? 2) <= 1, "coverage \(String(describing: row.coverage)) over \(row.periodHours) h")
            #expect(row.gaps.isEmpty, "\(row.gaps)")
            #expect(row.periodHours * 3600 < 120, "the node's life is its few seconds, not the hour")
            #expect(row.dataHours <= row.periodHours)
            let cliReport = try await cli(["report", "savings", "--since", "-1h", "-o", "json"])
            let cliParsed = try cliReport.json(SavingsReport.self)
            #expect(cliParsed.total.peakSavedBytes == Double(Self.gib), "\(cliReport)")
            #expect((cliParsed.rows.first?.coverage ?? 0) > 0.99)
            // `--since 24h`: 24 h to the second, so the peak is exact (from the samples), as at -1h.
            let dayReport = try await cli(["report", "savings", "--since", "24h", "-o", "json"]).json(SavingsReport.self)
            #expect(dayReport.until.timeIntervalSince(dayReport.since) == 86400)
            #expect(dayReport.total.peakBasis == .samples)
            #expect(dayReport.total.peakSavedBytes == Double(Self.gib))

            // The dashboard shows the same "saved now" and peak.
            var browser = try DashboardBrowser(server)
            try await browser.signIn(adminToken: server.adminToken)
            let overview = try await browser.get("/").text
            #expect(overview.contains(">1 GiB</div>"), "overview's saved-now card")
            let reportPage = try await browser.get("/reports", query: [("since", "-1h"), ("by", "node")]).text
            #expect(reportPage.contains("1 GiB"), "report page peak")

            // SIGTERM: the agent says goodbye; the node is "agent stopped" at once, with what it
            // left in the kernel, and its saving is shown apart, not as live.
            kill(p.processIdentifier, SIGTERM)
            let exited = await waitUntil(timeout: .seconds(15), poll: .milliseconds(50)) { !p.isRunning }
            #expect(exited && p.terminationStatus == 0, "the agent did not stop cleanly: \(log)")
            let info = try await admin.node(nodeId)
            #expect(info.connection == .agentStopped, "\(info.connection)")
            #expect(!info.online)
            #expect(info.lastSample?.agentStopped == true)
            #expect(info.phase == .running, "run=1 was left: \(String(describing: info.phaseReason))")
            #expect(info.phaseReason?.contains("left KSM running (run=1)") == true, "\(String(describing: info.phaseReason))")
            #expect(info.phaseReason?.contains("262144 pages still merged (1 GiB saved)") == true)
            let after = try await admin.listNodes()
            #expect(after.summary?.savedBytes == 0)
            #expect(after.summary?.lastKnownSavedBytesNotReporting == Self.gib)
            let stoppedStatus = try await cli(["status"])
            #expect(stoppedStatus.stdout.contains("agent stopped"), "\(stoppedStatus)")
            #expect(stoppedStatus.stdout.contains("1 GiB at their last report"), "\(stoppedStatus)")
            let nodesPage = try await browser.get("/nodes").text
            #expect(nodesPage.contains("agent stopped") && nodesPage.contains("Running (last reported)"))
        } catch {
            await server.stop()
            throw error
        }
        await server.stop()
    }
}
