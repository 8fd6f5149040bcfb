// What a live report over 1,000 nodes does with the raw samples of its partial hours: each node's
// samples integrated into hour buckets (`ReportMath.integrate`), and the fleet's peak swept over
// all of them (`ReportMath.groupPeak`). Samples every 10-60 s (by node) over 46 minutes and the
// 5-minute margins either side, as in the report bench's fill. Prints the best of 15 rounds.
#if canImport(Glibc)
import Glibc
#endif
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
if sink.isNaN { print("") }
