#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import KSMCore

extension NodeList: JSONMemberWriting {
    /// The listing as JSON: the bytes `SortedJSONEncoder` (and so `StrictJSON.encoder()`) writes
    /// for it, written member by member in the keys' sorted order instead of through `Encodable`,
    /// as `SavingsReport.json()` is. At 10,000 nodes (11 MB) the generic encoder was about half of
    /// `GET /api/v1/nodes`' server CPU, each node's 24 members, its config's, its newest sample's
    /// and its kernel counters' each a node of the encoder's tree (docs/benchmarks.md).
    /// `NodeListJSONTests` holds the two the same on random listings; a member added to any of
    /// these types without being added here fails it. A value JSON cannot say (NaN, an infinity)
    /// goes to `SortedJSONEncoder`, which throws the error JSONEncoder throws, with its path.
    public func json() throws -> [UInt8] {
        try json(reserving: 1_200 * nodes.count + 512)
    }

    /// Members in the order of their keys' UTF-8 bytes: next, nodes, summary.
    func write(into out: inout [UInt8]) -> Bool {
        var m = MemberWriter()
        out.append(UInt8(ascii: "{"))
        m.string("next", next, into: &out)
        m.array("nodes", nodes, into: &out) { $0.write(into: &$1) }
        if let summary { m.object("summary", into: &out) { summary.write(into: &$0) } }
        out.append(UInt8(ascii: "}"))
        return m.ok
    }
}

extension NodeInfo: JSONMemberWriting {
    /// One node as JSON (`GET /api/v1/nodes/{id}`), as `NodeList.json()` writes each.
    public func json() throws -> [UInt8] {
        try json(reserving: 2_048)
    }

    /// Members in the order of their keys' UTF-8 bytes, optionals left out when nil as the
    /// synthesized `Encodable` leaves them out. false at a value JSON cannot say.
    func write(into out: inout [UInt8]) -> Bool {
        var m = MemberWriter()
        out.append(UInt8(ascii: "{"))
        m.string("agentVersion", agentVersion, into: &out)
        m.integer("appliedGeneration", appliedGeneration, into: &out)
        m.string("applyError", applyError, into: &out)
        m.object("config", into: &out) { config.write(into: &$0) }
        m.string("connection", connection.rawValue, into: &out)
        m.bool("drift", drift, into: &out)
        m.string("driftReason", driftReason, into: &out)
        if let findings { m.array("findings", findings, into: &out) { $0.write(into: &$1) } }
        m.string("id", id, into: &out)
        m.string("kernel", kernel, into: &out)
        m.strings("ksmFeatures", ksmFeatures, into: &out)
        m.stringMap("labels", labels, into: &out)
        if let lastSample { m.object("lastSample", into: &out) { lastSample.write(into: &$0) } }
        m.date("lastSeenAt", lastSeenAt, into: &out)
        m.string("machineId", machineId, into: &out)
        m.integer("memTotalBytes", memTotalBytes, into: &out)
        m.string("name", name, into: &out)
        m.integer("numaNodes", numaNodes, into: &out)
        m.bool("online", online, into: &out)
        m.string("phase", phase?.rawValue, into: &out)
        m.string("phaseReason", phaseReason, into: &out)
        if let processes { m.object("processes", into: &out) { processes.write(into: &$0) } }
        m.date("processesAt", processesAt, into: &out)
        m.date("registeredAt", registeredAt, into: &out)
        out.append(UInt8(ascii: "}"))
        return m.ok
    }
}

extension NodeConfig {
    /// The config's members and `generation`, `kickCounter` in one object (`encode(to:)`), in
    /// the order of their keys' bytes.
    func write(into out: inout [UInt8]) -> Bool {
        var m = MemberWriter()
        out.append(UInt8(ascii: "{"))
        if let advisor = config.advisor { m.object("advisor", into: &out) { advisor.write(into: &$0) } }
        m.integer("generation", generation, into: &out)
        m.integer("kickCounter", kickCounter, into: &out)
        m.double("maxCpuPercent", config.maxCpuPercent, into: &out)
        m.integer("maxPageSharing", config.maxPageSharing, into: &out)
        m.integer("mergeAcrossNodes", config.mergeAcrossNodes, into: &out)
        m.string("mode", config.mode.rawValue, into: &out)
        if let parameters = config.parameters { m.object("parameters", into: &out) { parameters.write(into: &$0) } }
        m.string("run", config.run.rawValue, into: &out)
        m.integer("smartScan", config.smartScan, into: &out)
        m.integer("thresCoef", config.thresCoef, into: &out)
        if let throttle = config.throttle { m.object("throttle", into: &out) { throttle.write(into: &$0) } }
        m.integer("useZeroPages", config.useZeroPages, into: &out)
        out.append(UInt8(ascii: "}"))
        return m.ok
    }
}

extension AdvisorSettings {
    func write(into out: inout [UInt8]) -> Bool {
        var m = MemberWriter()
        out.append(UInt8(ascii: "{"))
        m.integer("maxCpuPercent", maxCpuPercent, into: &out)
        m.integer("maxPagesToScan", maxPagesToScan, into: &out)
        m.integer("minPagesToScan", minPagesToScan, into: &out)
        m.integer("targetScanTimeSeconds", targetScanTimeSeconds, into: &out)
        out.append(UInt8(ascii: "}"))
        return m.ok
    }
}

extension TunerParameters {
    func write(into out: inout [UInt8]) -> Bool {
        var m = MemberWriter()
        out.append(UInt8(ascii: "{"))
        m.integer("boost", boost, into: &out)
        m.integer("decay", decay, into: &out)
        m.integer("maxPages", maxPages, into: &out)
        m.integer("minPages", minPages, into: &out)
        m.integer("sleepMsec", sleepMsec, into: &out)
        out.append(UInt8(ascii: "}"))
        return m.ok
    }
}

extension ThrottleSettings {
    func write(into out: inout [UInt8]) -> Bool {
        var m = MemberWriter()
        out.append(UInt8(ascii: "{"))
        m.integer("aggressiveDivisor", aggressiveDivisor, into: &out)
        m.integer("aggressiveSleepMsec", aggressiveSleepMsec, into: &out)
        m.integer("slowDivisor", slowDivisor, into: &out)
        m.integer("slowSleepMsec", slowSleepMsec, into: &out)
        m.integer("standardDivisor", standardDivisor, into: &out)
        m.integer("standardSleepMsec", standardSleepMsec, into: &out)
        m.integer("toInitialSeconds", toInitialSeconds, into: &out)
        m.integer("toSlowSeconds", toSlowSeconds, into: &out)
        m.integer("toStandardSeconds", toStandardSeconds, into: &out)
        out.append(UInt8(ascii: "}"))
        return m.ok
    }
}

extension StatusSample {
    func write(into out: inout [UInt8]) -> Bool {
        var m = MemberWriter()
        out.append(UInt8(ascii: "{"))
        m.bool("agentStopped", agentStopped, into: &out)
        m.integer("appliedGeneration", appliedGeneration, into: &out)
        m.string("applyError", applyError, into: &out)
        m.integer("droppedSamples", droppedSamples, into: &out)
        m.double("ksmdCPUPercent", ksmdCPUPercent, into: &out)
        m.double("ksmdCPUSeconds", ksmdCPUSeconds, into: &out)
        m.object("memory", into: &out) { memory.write(into: &$0) }
        m.integer("pageSize", pageSize, into: &out)
        m.string("phase", phase.rawValue, into: &out)
        m.string("phaseReason", phaseReason, into: &out)
        if let processes { m.object("processes", into: &out) { processes.write(into: &$0) } }
        m.integer("seq", seq, into: &out)
        m.object("status", into: &out) { status.write(into: &$0) }
        m.date("takenAt", takenAt, into: &out)
        out.append(UInt8(ascii: "}"))
        return m.ok
    }
}

extension KSMStatus {
    func write(into out: inout [UInt8]) -> Bool {
        var m = MemberWriter()
        out.append(UInt8(ascii: "{"))
        m.integer("advisorMaxCPU", advisorMaxCPU, into: &out)
        m.integer("advisorMaxPagesToScan", advisorMaxPagesToScan, into: &out)
        m.integer("advisorMinPagesToScan", advisorMinPagesToScan, into: &out)
        m.string("advisorMode", advisorMode, into: &out)
        m.integer("advisorTargetScanTime", advisorTargetScanTime, into: &out)
        m.integer("fullScans", fullScans, into: &out)
        m.integer("generalProfit", generalProfit, into: &out)
        m.integer("ksmZeroPages", ksmZeroPages, into: &out)
        m.integer("maxPageSharing", maxPageSharing, into: &out)
        m.integer("mergeAcrossNodes", mergeAcrossNodes, into: &out)
        m.integer("pagesScanned", pagesScanned, into: &out)
        m.integer("pagesShared", pagesShared, into: &out)
        m.integer("pagesSharing", pagesSharing, into: &out)
        m.integer("pagesSkipped", pagesSkipped, into: &out)
        m.integer("pagesToScan", pagesToScan, into: &out)
        m.integer("pagesUnshared", pagesUnshared, into: &out)
        m.integer("pagesVolatile", pagesVolatile, into: &out)
        m.integer("run", run, into: &out)
        m.integer("sleepMillisecs", sleepMillisecs, into: &out)
        m.integer("smartScan", smartScan, into: &out)
        m.integer("stableNodeChains", stableNodeChains, into: &out)
        m.integer("stableNodeDups", stableNodeDups, into: &out)
        m.integer("useZeroPages", useZeroPages, into: &out)
        out.append(UInt8(ascii: "}"))
        return m.ok
    }
}

extension MemorySnapshot {
    func write(into out: inout [UInt8]) -> Bool {
        var m = MemberWriter()
        out.append(UInt8(ascii: "{"))
        m.integer("anonPagesKB", anonPagesKB, into: &out)
        m.integer("buffersKB", buffersKB, into: &out)
        m.integer("cachedKB", cachedKB, into: &out)
        m.integer("memAvailableKB", memAvailableKB, into: &out)
        m.integer("memFreeKB", memFreeKB, into: &out)
        m.integer("memTotalKB", memTotalKB, into: &out)
        out.append(UInt8(ascii: "}"))
        return m.ok
    }
}

extension ProcessReport {
    func write(into out: inout [UInt8]) -> Bool {
        var m = MemberWriter()
        out.append(UInt8(ascii: "{"))
        m.integer("anonHugePagesKB", anonHugePagesKB, into: &out)
        m.integer("anonymousKB", anonymousKB, into: &out)
        m.array("groups", groups, into: &out) { $0.write(into: &$1) }
        m.integer("mergeableProcesses", mergeableProcesses, into: &out)
        m.integer("mergingPages", mergingPages, into: &out)
        m.integer("mergingProcesses", mergingProcesses, into: &out)
        m.bool("perProcessStats", perProcessStats, into: &out)
        m.integer("processesScanned", processesScanned, into: &out)
        m.integer("rmapItems", rmapItems, into: &out)
        m.double("scanMillis", scanMillis, into: &out)
        m.string("transparentHugePages", transparentHugePages, into: &out)
        m.bool("truncated", truncated, into: &out)
        out.append(UInt8(ascii: "}"))
        return m.ok
    }
}

extension ProcessGroupSavings {
    func write(into out: inout [UInt8]) -> Bool {
        var m = MemberWriter()
        out.append(UInt8(ascii: "{"))
        m.string("kind", kind.rawValue, into: &out)
        m.integer("mergingPages", mergingPages, into: &out)
        m.string("name", name, into: &out)
        m.integer("processes", processes, into: &out)
        m.integer("profitBytes", profitBytes, into: &out)
        m.integer("rmapItems", rmapItems, into: &out)
        m.integer("zeroPages", zeroPages, into: &out)
        out.append(UInt8(ascii: "}"))
        return m.ok
    }
}

extension Finding {
    func write(into out: inout [UInt8]) -> Bool {
        var m = MemberWriter()
        out.append(UInt8(ascii: "{"))
        m.string("advice", advice, into: &out)
        m.string("code", code, into: &out)
        m.strings("evidence", evidence, into: &out)
        m.string("message", message, into: &out)
        m.string("severity", severity.rawValue, into: &out)
        out.append(UInt8(ascii: "}"))
        return m.ok
    }
}

extension FleetNow {
    func write(into out: inout [UInt8]) -> Bool {
        var m = MemberWriter()
        out.append(UInt8(ascii: "{"))
        m.integer("agentStopped", agentStopped, into: &out)
        m.double("ksmdCPUPercent", ksmdCPUPercent, into: &out)
        m.integer("lastKnownSavedBytesNotReporting", lastKnownSavedBytesNotReporting, into: &out)
        m.integer("neverReported", neverReported, into: &out)
        m.integer("nodes", nodes, into: &out)
        m.integer("offline", offline, into: &out)
        m.integer("online", online, into: &out)
        m.integer("savedBytes", savedBytes, into: &out)
        out.append(UInt8(ascii: "}"))
        return m.ok
    }
}
