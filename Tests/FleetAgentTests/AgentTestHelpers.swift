import FleetAPI
import FleetAgent
import FleetClient
import FleetTestSupport
import Foundation
import KSMCore
import KSMNode
import FleetLog
import Logging
import TestSupport

/// A sample with the given sequence number (contents do not matter for the spool).
func makeSample(_ seq: Int64) -> StatusSample {
    StatusSample(
        seq: seq, takenAt: Date(timeIntervalSince1970: 1_700_000_000 + Double(seq)),
        status: KSMStatus(run: 1, pagesShared: seq, pagesSharing: seq * 2),
        memory: MemorySnapshot(memTotalKB: 16_000_000, memAvailableKB: 8_000_000), pageSize: 4096,
        phase: .running, phaseReason: "Running: test")
}

/// Agent options for loopback tests: short intervals, short waits, quick backoff.
func testAgentOptions(server: String, enrollToken: String?, stateDir: String, name: String) -> AgentOptions {
    var o = AgentOptions(serverURL: server, enrollToken: enrollToken, stateDir: stateDir)
    o.sampleInterval = 0.25
    o.tuneInterval = 1
    o.longPollWait = 5...8
    o.backoffBase = 0.1
    o.backoffCap = 0.5
    o.connectTimeout = 1
    o.requestTimeout = 10
    o.nodeName = name
    o.machineId = "machine-\(name)-\(UUID().uuidString.prefix(8))"
    return o
}

/// Logs of agents under test: quiet unless KSMFLEET_TEST_LOG is set.
func agentLogger(_ name: String) -> Logger {
    guard let level = ProcessInfo.processInfo.environment["KSMFLEET_TEST_LOG"].flatMap(Logger.Level.init(rawValue:)) else {
        return quietLogger()
    }
    var logger = Logger(label: "agent-\(name)", factory: { StderrLogHandler(label: $0, level: level) })
    logger.logLevel = level
    return logger
}

/// An agent running in a task, with its fake kernel.
struct RunningAgent {
    let name: String
    let agent: FleetAgent
    let kernel: FakeKSMKernel
    let task: Task<AgentError?, Never>
    let stateDir: String

    static func start(
        _ options: AgentOptions, kernel: FakeKSMKernel = FakeKSMKernel(), name: String, logger: Logger? = nil
    ) throws -> RunningAgent {
        let agent = try FleetAgent(options: options, kernel: kernel, logger: logger ?? agentLogger(name))
        let task = Task<AgentError?, Never> {
            do throws(AgentError) {
                try await agent.run()
                return nil
            } catch {
                return error
            }
        }
        return RunningAgent(name: name, agent: agent, kernel: kernel, task: task, stateDir: options.stateDir)
    }

    /// Stops the agent and waits for `run()` to end (it flushes or spools what it has).
    @discardableResult
    func stop() async -> AgentError? {
        await agent.stop()
        return await task.value
    }
}

func adminClient(_ server: TestServer) throws -> FleetClient {
    try FleetClient(ClientOptions(serverURL: server.baseURL, token: server.adminToken))
}

/// Every stored sample sequence number of a node, in the server's order.
func storedSeqs(_ admin: FleetClient, nodeId: String) async throws -> [Int64] {
    let history = try await admin.history(
        nodeId, since: Date().addingTimeInterval(-3 * 86400), until: Date().addingTimeInterval(3600), resolution: .raw)
    return (history.samples ?? []).map(\.seq)
}

func elapsedSeconds(since start: ContinuousClock.Instant) -> Double {
    let d = ContinuousClock.now - start
    return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
}
