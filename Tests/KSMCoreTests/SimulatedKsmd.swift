import KSMCore

/// A small model of ksmd for driving policies without a kernel.
///
/// Processes hold pages that are duplicated across the processes of their wave, unique, or
/// volatile (they change between passes and never merge). ksmd walks all pages in a ring:
/// each wake-up it scans `pages_to_scan` pages at `cost` CPU seconds a page plus a fixed
/// overhead, then sleeps `sleep_millisecs`. A page is tracked (has an rmap item) once seen; a
/// duplicate merges the second time it is seen, once a twin has been seen twice too (the
/// unstable tree). ksmd's CPU is reported in 10 ms ticks, like /proc/PID/stat.
struct SimulatedKsmd {
    enum Kind: UInt8 { case duplicate, unique, volatile }

    var kinds: [Kind] = []
    /// Content group of each duplicate page (-1 otherwise).
    var group: [Int32] = []
    var seen: [UInt8] = []
    /// Pages of each group seen twice (merge candidates).
    var candidates: [Int32] = []
    var position = 0
    var fullScans: Int64 = 0
    var pagesScanned: Int64 = 0
    var cpuSeconds = 0.0
    var tracked: Int64 = 0
    var shared: Int64 = 0
    var sharing: Int64 = 0
    var lonelyGroups: Int64 = 0
    var stableUnique: Int64 = 0

    var run = 0
    var pagesToScan = 100
    var sleepMillisecs = 20
    let cost: Double
    let wakeOverhead: Double
    var now = 0.0
    /// Fractional pages owed to the scan (rate × time).
    private var owed = 0.0
    let pageSize = 4096
    let baseAnonKB: Int64 = 200 * 1024

    init(cost: Double = 1e-4, wakeOverhead: Double = 20e-6) {
        self.cost = cost
        self.wakeOverhead = wakeOverhead
    }

    /// Starts `count` processes of `pages` pages each; the duplicate part is the same content in
    /// all of them (new content, unlike any earlier wave's). Returns the pages this wave can save.
    @discardableResult
    mutating func startProcesses(count: Int, pages: Int, duplicate: Double, volatile: Double = 0) -> Int64 {
        let dupPages = Int(Double(pages) * duplicate)
        let volPages = Int(Double(pages) * volatile)
        let firstGroup = candidates.count
        candidates.append(contentsOf: Array(repeating: 0, count: dupPages))
        for _ in 0..<count {
            for j in 0..<pages {
                if j < dupPages {
                    kinds.append(.duplicate)
                    group.append(Int32(firstGroup + j))
                } else if j < dupPages + volPages {
                    kinds.append(.volatile)
                    group.append(-1)
                } else {
                    kinds.append(.unique)
                    group.append(-1)
                }
                seen.append(0)
            }
        }
        return Int64(dupPages) * Int64(count - 1)
    }

    var anonKB: Int64 { baseAnonKB + Int64(kinds.count) * Int64(pageSize) / 1024 }

    mutating func apply(_ s: KernelSettings) {
        if let r = s.run { run = r }
        if let p = s.pagesToScan { pagesToScan = p }
        if let m = s.sleepMillisecs { sleepMillisecs = m }
    }

    /// ksmd's share of a core and pages per second with the settings in force.
    var rate: (share: Double, pagesPerSecond: Double) {
        guard run == 1, !kinds.isEmpty else { return (0, 0) }
        let busy = Double(pagesToScan) * cost + wakeOverhead
        let cycle = busy + Double(sleepMillisecs) / 1000
        return (busy / cycle, Double(pagesToScan) / cycle)
    }

    mutating func advance(by dt: Double) {
        let r = rate
        cpuSeconds += r.share * dt
        owed += r.pagesPerSecond * dt
        while owed >= 1 {
            owed -= 1
            scanOne()
        }
        now += dt
    }

    private mutating func scanOne() {
        let i = position
        pagesScanned += 1
        if seen[i] == 0 { tracked += 1 }
        switch kinds[i] {
        case .volatile:
            seen[i] = 1
        case .unique:
            if seen[i] == 1 { stableUnique += 1 }
            seen[i] = min(seen[i] + 1, 3)
        case .duplicate:
            if seen[i] == 1 {
                let g = Int(group[i])
                candidates[g] += 1
                switch candidates[g] {
                case 1: lonelyGroups += 1
                case 2:
                    lonelyGroups -= 1
                    shared += 1
                    sharing += 1
                default: sharing += 1
                }
            }
            seen[i] = min(seen[i] + 1, 3)
        }
        position += 1
        if position >= kinds.count {
            position = 0
            fullScans += 1
        }
    }

    var status: KSMStatus {
        let unshared = stableUnique + lonelyGroups
        return KSMStatus(
            run: run, pagesToScan: pagesToScan, sleepMillisecs: sleepMillisecs, pagesShared: shared,
            pagesSharing: sharing, pagesUnshared: unshared, pagesVolatile: max(0, tracked - shared - sharing - unshared),
            fullScans: fullScans, pagesScanned: pagesScanned)
    }

    /// CPU seconds in whole clock ticks, as the agent reads them.
    var cpuTicksSeconds: Double { (cpuSeconds * 100).rounded(.down) / 100 }

    func observation(pressure: Double? = nil) -> KernelObservation {
        KernelObservation(status: status, ksmdCPUSeconds: cpuTicksSeconds, memoryPressureSomeAvg10: pressure)
    }

    var memory: MemorySnapshot {
        MemorySnapshot(memTotalKB: 16 * 1024 * 1024, memAvailableKB: 8 * 1024 * 1024, anonPagesKB: anonKB)
    }
}

/// One run of a policy against the model: a step every `stepSeconds`, the model advanced in
/// 10 ms slices, and a trace of (time, pages_sharing, ksmd CPU seconds).
struct SimulationRun {
    struct Point {
        var time: Double
        var sharing: Int64
        var cpu: Double
    }

    var model: SimulatedKsmd
    var trace: [Point] = []
    var state = TunerState()
    var reasons: [(Double, String)] = []
    let config: KSMConfig?
    let stepSeconds: Double

    /// `config` nil means full speed (pages_to_scan 20000, sleep 0) all along.
    init(model: SimulatedKsmd, config: KSMConfig?, stepSeconds: Double = 1) {
        self.model = model
        self.config = config
        self.stepSeconds = stepSeconds
        if config == nil { self.model.apply(KernelSettings(run: 1, pagesToScan: 20_000, sleepMillisecs: 0)) }
    }

    mutating func step(pressure: Double? = nil) {
        guard let config else { return }
        let input = TunerInput(
            memory: model.memory, pageSize: model.pageSize, initial: KernelSettings(), now: model.now,
            observation: model.observation(pressure: pressure))
        let d = Tuner.decide(config: config, input: input, state: state)
        state = d.state
        reasons.append((model.now, d.reason))
        model.apply(d.settings)
    }

    mutating func kick() { state = Tuner.kick(state: state, now: model.now) }

    mutating func run(for seconds: Double, pressure: Double? = nil) {
        let end = model.now + seconds
        while model.now < end - 1e-9 {
            step(pressure: pressure)
            let slices = Int((stepSeconds / 0.01).rounded())
            for _ in 0..<slices {
                model.advance(by: 0.01)
                trace.append(Point(time: model.now, sharing: model.sharing, cpu: model.cpuSeconds))
            }
        }
    }

    /// First time after `from` at which pages_sharing reached `base + fraction × possible`,
    /// and the ksmd CPU seconds spent from `from` to then.
    func reach(_ fraction: Double, of possible: Int64, base: Int64 = 0, from: Double = 0) -> (time: Double, cpu: Double)? {
        let startCPU = cpu(at: from)
        let goal = Double(base) + fraction * Double(possible)
        guard let p = trace.first(where: { $0.time > from && Double($0.sharing) >= goal }) else { return nil }
        return (p.time - from, p.cpu - startCPU)
    }

    func cpu(at time: Double) -> Double {
        trace.last(where: { $0.time <= time + 1e-9 })?.cpu ?? 0
    }

    func sharing(at time: Double) -> Int64 {
        trace.last(where: { $0.time <= time + 1e-9 })?.sharing ?? 0
    }
}
