import FleetAPI
import FleetTestSupport
import Foundation
import KSMCore
import Testing

@testable import FleetServer

/// The cost of `/metrics` for a large fleet, by hand only: CPU seconds and RSS of the first and
/// second render of `KSMFLEET_METRICS_SCRAPE_NODES` nodes, printed (nothing is asserted on time).
///
///     KSMFLEET_METRICS_SCRAPE_NODES=10000 swift test --skip-build --filter MetricsScrapeCost
@Suite struct MetricsScrapeCost {
    static let nodeCount = ProcessInfo.processInfo.environment["KSMFLEET_METRICS_SCRAPE_NODES"].flatMap(Int.init)

    @Test(.enabled(if: nodeCount != nil, "KSMFLEET_METRICS_SCRAPE_NODES is not set"))
    func firstAndSecondScrape() {
        let count = Self.nodeCount ?? 0
        let now = Date(timeIntervalSince1970: 1_790_000_100)
        let nodes = (0..<count).map { i in
            var sample = Fixtures.sample(Int64(i % 500 + 1), pagesSharing: Int64(1000 + i))
            sample.status.fullScans = Int64(i)
            return NodeInfo(
                id: UUID().uuidString.lowercased(), name: "node-\(i).rack-\(i % 40).example.net", machineId: "m-\(i)",
                labels: [:], kernel: "6.8", memTotalBytes: 1 << 34, numaNodes: 1, ksmFeatures: [], agentVersion: "t",
                registeredAt: now.addingTimeInterval(-600), lastSeenAt: now.addingTimeInterval(-Double(i % 90)),
                online: true, connection: .online, config: NodeConfig(generation: 1, config: .standardDefault),
                phase: sample.phase, phaseReason: sample.phaseReason, appliedGeneration: sample.appliedGeneration,
                applyError: nil, drift: false, driftReason: nil, lastSample: sample)
        }
        let metrics = ServerMetrics()
        print("metrics scrape cost: \(count) nodes, RSS \(Self.rssMiB()) MiB before the first scrape")
        for scrape in ["first", "second"] {
            let cpu = Self.cpuSeconds()
            let wall = ContinuousClock.now
            let text = metrics.render(nodes: nodes, waiting: 0, now: now)
            let spent = Self.cpuSeconds() - cpu
            print(
                "metrics scrape cost: \(scrape) scrape \(String(format: "%.2f", spent)) s CPU, "
                    + "\(ContinuousClock.now - wall) wall, \(text.utf8.count) bytes, RSS \(Self.rssMiB()) MiB")
        }
    }

    static func cpuSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
        return seconds(usage.ru_utime) + seconds(usage.ru_stime)
    }

    /// VmRSS of this process, MiB.
    static func rssMiB() -> Int {
        let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
        return (Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0) / 1024
    }
}
