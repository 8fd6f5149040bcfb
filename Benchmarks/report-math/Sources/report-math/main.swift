// What a live report over 1,000 nodes does with the raw samples of its partial hours: each node's
// samples integrated into hour buckets (`ReportMath.integrate`), and the fleet's peak swept over
// all of them (`ReportMath.groupPeak`). Samples every 10-60 s (by node) over 46 minutes and the
// 5-minute margins either side, as in the report bench's fill. Then the JSON of a savings report
// by node over as many nodes, as `SortedJSONEncoder` (any Encodable) and `SavingsReport.json()`
// (member by member) write it. Prints the best of 15 rounds.
#if canImport(Glibc)
import Glibc
#endif
import FleetAPI
import Foundation
import KSMCore

func seconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

let nodes = CommandLine.arguments.count > 1 ? Int(CommandLine.arguments[1]) ?? 1000 : 1000
let from = 1_796_302_800.0
let to = from + 46 * 60
var rng = SystemRandomNumberGenerator()
var streams: [[ReportSample]] = []
for n in 0..<nodes {
    let step = Double(10 + n % 51)
    var t = from - 300 + Double.random(in: 0..<step, using: &rng)
    var list: [ReportSample] = []
    var (cpu, scans) = (0.0, Int64(0))
    while t < to + 300 {
        cpu += 0.01
        scans += Int64.random(in: 0...1, using: &rng)
        list.append(
            ReportSample(
                at: (t * 1000).rounded() / 1000, savedBytes: Int64.random(in: 0...(1 << 30), using: &rng), cpuSeconds: cpu,
                cpuPercent: 1.5, fullScans: scans, phase: .running, netProfit: 12345))
        t += step
    }
    streams.append(list)
}
let samples = streams.reduce(0) { $0 + $1.count }
var best = (integrate: Double.infinity, peak: Double.infinity)
var sink = 0.0
for _ in 0..<15 {
    var t0 = seconds()
    for s in streams {
        sink += ReportMath.integrate(s, from: from, to: to, bucketSeconds: 3600, horizon: to).total.savedByteSeconds
    }
    best.integrate = min(best.integrate, seconds() - t0)
    t0 = seconds()
    sink += ReportMath.groupPeak(streams, from: from, to: to, horizon: to) ?? 0
    best.peak = min(best.peak, seconds() - t0)
}
func ms(_ s: Double) -> String { String(Double(Int(s * 10_000)) / 10) }
print("\(nodes) nodes, \(samples) samples; best of 15 rounds:")
print("  integrate (every node): \(ms(best.integrate)) ms, \(Int(best.integrate / Double(samples) * 1e9)) ns a sample")
print("  groupPeak (the fleet):  \(ms(best.peak)) ms, \(Int(best.peak / Double(samples) * 1e9)) ns a sample")

// A report by node as the API answers it: every row with its name, a peak basis, a phase or two,
// every 50th node with a gap.
func row(_ n: Int, _ rng: inout SystemRandomNumberGenerator) -> SavingsRow {
    let avg = Double.random(in: 1e8...4e9, using: &rng)
    let gaps =
        n % 50 == 0
        ? [TimeRange(from: Date(timeIntervalSince1970: from + 600), to: Date(timeIntervalSince1970: from + 1_800))] : []
    return SavingsRow(
        key: "n-\(String(n * 7_919 + 100_000_000_000, radix: 16))", name: "bench-\(n)", nodes: 1, avgSavedBytes: avg,
        peakSavedBytes: avg * 1.3, peakBasis: .samples, savedGiBHours: avg / 1_073_741_824 * 23.7,
        ksmdCPUHours: Double.random(in: 0...2, using: &rng), avgKsmdCPUCores: Double.random(in: 0...0.1, using: &rng),
        efficiencyGiBPerCore: Double.random(in: 10...900, using: &rng), avgNetProfitBytes: avg * 0.97,
        phaseHours: n % 7 == 0 ? ["Running": 20.5, "Stopped": 3.2] : ["Running": 23.7], dataHours: 23.7,
        periodHours: 24, coverage: 23.7 / 24, gaps: gaps)
}
let report = SavingsReport(
    since: Date(timeIntervalSince1970: from), until: Date(timeIntervalSince1970: to), by: .node, label: nil,
    generatedAt: Date(timeIntervalSince1970: to), rows: (0..<nodes).map { row($0, &rng) }, total: row(nodes, &rng), maxGapSeconds: 300)
var json = (generic: Double.infinity, direct: Double.infinity)
var bytes = 0
for _ in 0..<15 {
    var t0 = seconds()
    let a = try SortedJSONEncoder().encode(report)
    json.generic = min(json.generic, seconds() - t0)
    t0 = seconds()
    let b = try report.json()
    json.direct = min(json.direct, seconds() - t0)
    precondition(a == b, "SavingsReport.json() differs from SortedJSONEncoder")
    bytes = b.count
}
print("savings report by node, \(nodes + 1) rows, \(bytes / 1024) KB of JSON; best of 15 rounds:")
print("  SortedJSONEncoder (Encodable): \(ms(json.generic)) ms")
print("  SavingsReport.json():          \(ms(json.direct)) ms")
if sink.isNaN { print("") }
