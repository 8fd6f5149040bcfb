import FleetAPI
import Foundation
import KSMCore
import Testing
import TestSupport

/// `NodeList.json()` and `NodeInfo.json()` write the listing member by member: the same bytes as
/// `StrictJSON.encoder()` (JSONEncoder) and `SortedJSONEncoder`, on random listings whose nodes
/// leave out every optional or carry it (configs with and without their nested settings, newest
/// samples with and without process reports, findings), with every double form, escapes in names
/// and labels, and dates either side of 1970.
@Suite struct NodeListJSONTests {
    static func node(_ g: RandomJSONParts) -> NodeInfo {
        func pick<T: CaseIterable>(_: T.Type) -> T where T.AllCases: RandomAccessCollection {
            T.allCases.randomElement(using: &g.rng)!
        }
        func int64() -> Int64 { Int64(g.int(Int.min...Int.max)) }
        let config = KSMConfig(
            run: pick(RunMode.self), mode: pick(TuningMode.self), thresCoef: g.int(-5...105),
            mergeAcrossNodes: g.maybe { g.int(0...1) },
            parameters: g.maybe {
                TunerParameters(
                    boost: g.int(0...1000), decay: g.int(0...1000), minPages: g.int(0...100_000),
                    maxPages: g.int(0...100_000), sleepMsec: g.int(0...5000))
            },
            throttle: g.maybe {
                ThrottleSettings(
                    aggressiveDivisor: g.int(1...99), aggressiveSleepMsec: g.int(0...99), standardDivisor: g.int(1...999),
                    standardSleepMsec: g.int(0...99), slowDivisor: g.int(1...999), slowSleepMsec: g.int(0...999),
                    toStandardSeconds: g.int(0...999), toSlowSeconds: g.int(0...999), toInitialSeconds: g.int(0...999))
            },
            maxPageSharing: g.maybe { g.int(2...1024) }, useZeroPages: g.maybe { g.int(0...1) },
            smartScan: g.maybe { g.int(0...1) }, maxCpuPercent: g.maybe { g.double() },
            advisor: g.maybe {
                AdvisorSettings(
                    targetScanTimeSeconds: g.int(1...999), maxCpuPercent: g.int(1...100), minPagesToScan: g.int(0...9999),
                    maxPagesToScan: g.int(0...99_999))
            })
        func processes() -> ProcessReport {
            ProcessReport(
                perProcessStats: g.int(0...1) == 1, processesScanned: g.int(0...9999), mergeableProcesses: g.int(0...999),
                mergingProcesses: g.int(0...999), rmapItems: int64(), mergingPages: int64(),
                anonHugePagesKB: g.maybe { int64() }, anonymousKB: g.maybe { int64() },
                transparentHugePages: g.maybe { g.string() }, truncated: g.int(0...1) == 1, scanMillis: g.double(),
                groups: (0..<g.int(0...4)).map { _ in
                    ProcessGroupSavings(
                        kind: pick(ProcessGroupKind.self), name: g.string(), processes: g.int(0...999), mergingPages: int64(),
                        zeroPages: int64(), rmapItems: int64(), profitBytes: g.maybe { int64() })
                })
        }
        let sample = g.maybe {
            StatusSample(
                seq: int64(), takenAt: g.date(),
                status: KSMStatus(
                    run: g.int(0...2), pagesToScan: g.int(0...100_000), sleepMillisecs: g.int(0...1000),
                    pagesShared: int64(), pagesSharing: int64(), pagesUnshared: int64(), pagesVolatile: int64(),
                    fullScans: int64(), mergeAcrossNodes: g.maybe { g.int(0...1) }, maxPageSharing: g.maybe { g.int(2...999) },
                    stableNodeChains: g.maybe { int64() }, stableNodeDups: g.maybe { int64() },
                    useZeroPages: g.maybe { g.int(0...1) }, ksmZeroPages: g.maybe { int64() },
                    generalProfit: g.maybe { int64() }, pagesScanned: g.maybe { int64() }, pagesSkipped: g.maybe { int64() },
                    smartScan: g.maybe { g.int(0...1) }, advisorMode: g.maybe { g.string() },
                    advisorTargetScanTime: g.maybe { int64() }, advisorMinPagesToScan: g.maybe { int64() },
                    advisorMaxPagesToScan: g.maybe { int64() }, advisorMaxCPU: g.maybe { int64() }),
                memory: MemorySnapshot(
                    memTotalKB: int64(), memAvailableKB: int64(), memFreeKB: int64(), buffersKB: int64(), cachedKB: int64(),
                    anonPagesKB: int64()),
                pageSize: g.int(0...65536), ksmdCPUPercent: g.maybe { g.double() }, ksmdCPUSeconds: g.maybe { g.double() },
                phase: pick(KSMPhase.self), phaseReason: g.string(), appliedGeneration: g.maybe { int64() },
                applyError: g.maybe { g.string() }, droppedSamples: g.maybe { int64() },
                agentStopped: g.maybe { g.int(0...1) == 1 }, processes: g.maybe { processes() })
        }
        return NodeInfo(
            id: g.string(), name: g.string(), machineId: g.string(),
            labels: Dictionary((0..<g.int(0...4)).map { _ in (g.string(), g.string()) }, uniquingKeysWith: { a, _ in a }),
            kernel: g.string(), memTotalBytes: int64(), numaNodes: g.int(0...64),
            ksmFeatures: (0..<g.int(0...4)).map { _ in g.string() }, agentVersion: g.string(), registeredAt: g.date(),
            lastSeenAt: g.maybe { g.date() }, online: g.int(0...1) == 1, connection: pick(NodeConnection.self),
            config: NodeConfig(generation: int64(), kickCounter: int64(), config: config),
            phase: g.maybe { pick(KSMPhase.self) }, phaseReason: g.maybe { g.string() },
            appliedGeneration: g.maybe { int64() }, applyError: g.maybe { g.string() }, drift: g.int(0...1) == 1,
            driftReason: g.maybe { g.string() }, lastSample: sample, processes: g.maybe { processes() },
            processesAt: g.maybe { g.date() },
            findings: g.maybe {
                (0..<g.int(0...3)).map { _ in
                    Finding(
                        code: g.string(), severity: pick(FindingSeverity.self), message: g.string(),
                        evidence: (0..<g.int(0...3)).map { _ in g.string() }, advice: g.string())
                }
            })
    }

    @Test(arguments: 0..<60)
    func randomListingsAsJSONEncoder(seed: UInt64) throws {
        let g = RandomJSONParts(rng: SeededRandom(seed: seed &* 6_007 &+ 11))
        let nodes = (0..<g.int(0...6)).map { _ in Self.node(g) }
        let summary = g.maybe {
            FleetNow(
                nodes: g.int(0...99_999), online: g.int(0...99_999), agentStopped: g.int(0...99), offline: g.int(0...99),
                neverReported: g.int(0...99), savedBytes: Int64(g.int(Int.min...Int.max)), ksmdCPUPercent: g.double(),
                lastKnownSavedBytesNotReporting: Int64(g.int(Int.min...Int.max)))
        }
        let list = NodeList(nodes: nodes, summary: summary, next: g.maybe { g.string() })
        let written = try list.json()
        SortedJSONEncoderTests.expectSameBytes(try StrictJSON.encoder().encode(list), written, "NodeList.json(), seed \(seed)")
        #expect(try SortedJSONEncoder().encode(list) == written)
        for node in nodes {
            SortedJSONEncoderTests.expectSameBytes(try StrictJSON.encoder().encode(node), try node.json(), "NodeInfo.json(), seed \(seed)")
        }
    }

    /// NaN or an infinity anywhere: the error JSONEncoder throws, with its path, as before.
    @Test func aValueJSONCannotSayThrowsAsTheEncoder() throws {
        let g = RandomJSONParts(rng: SeededRandom(seed: 5))
        var nodes: [NodeInfo] = []
        while nodes.count < 3 {
            let n = Self.node(g)
            if n.lastSample != nil { nodes.append(n) }
        }
        var list = NodeList(nodes: nodes, summary: FleetNow(), next: nil)
        let path = SortedJSONEncoderTests.invalidValuePath
        list.nodes[1].lastSample?.ksmdCPUPercent = .nan
        #expect(path { try list.json() } == path { try StrictJSON.encoder().encode(list) })
        #expect(path { try list.json() } == ["nodes", "Index 1", "lastSample", "ksmdCPUPercent"])
        list.nodes[1].lastSample?.ksmdCPUPercent = 1
        list.nodes[2].config.config.maxCpuPercent = .infinity
        #expect(path { try list.json() } == ["nodes", "Index 2", "config", "maxCpuPercent"])
        #expect(path { try list.nodes[2].json() } == ["config", "maxCpuPercent"])
        list.nodes[2].config.config.maxCpuPercent = nil
        list.summary?.ksmdCPUPercent = -.infinity
        #expect(path { try list.json() } == path { try StrictJSON.encoder().encode(list) })
        #expect(path { try list.json() } == ["summary", "ksmdCPUPercent"])
    }
}
