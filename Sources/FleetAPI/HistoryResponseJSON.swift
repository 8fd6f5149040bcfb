#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import KSMCore

extension HistoryResponse: JSONMemberWriting {
    /// The history as JSON: the bytes `SortedJSONEncoder` (and so `StrictJSON.encoder()`) writes
    /// for it, written member by member in the keys' sorted order instead of through `Encodable`,
    /// as `SavingsReport.json()` is. A year of one node's hours is 8,760 buckets of 14 members
    /// (2.8 MB): the generic encoder took about 60 % of that request (docs/benchmarks.md).
    /// `HistoryResponseJSONTests` holds the two the same on random histories; a member added to
    /// `HistoryResponse`, `HistoryBucket` or `HistorySample` without being added here fails it.
    /// A value JSON cannot say (NaN, an infinity) goes to `SortedJSONEncoder`, which throws the
    /// error JSONEncoder throws, with its path.
    public func json() throws -> [UInt8] {
        try json(reserving: 330 * (buckets?.count ?? 0) + 420 * (samples?.count ?? 0) + 100 * gaps.count + 256)
    }

    /// Members in the order of their keys' UTF-8 bytes, optionals left out when nil as the
    /// synthesized `Encodable` leaves them out. false at a value JSON cannot say.
    func write(into out: inout [UInt8]) -> Bool {
        var m = MemberWriter()
        out.append(UInt8(ascii: "{"))
        if let buckets { m.array("buckets", buckets, into: &out) { $0.write(into: &$1) } }
        if let existence {
            JSONText.member("existence", first: &m.first, into: &out)
            existence.write(into: &out)
        }
        m.ranges("gaps", gaps, into: &out)
        m.string("name", name, into: &out)
        m.string("nodeId", nodeId, into: &out)
        m.integer("omittedSamples", omittedSamples, into: &out)
        m.string("resolution", resolution.rawValue, into: &out)
        if let samples { m.array("samples", samples, into: &out) { $0.write(into: &$1) } }
        m.date("since", since, into: &out)
        m.date("until", until, into: &out)
        out.append(UInt8(ascii: "}"))
        return m.ok
    }
}

extension TimeRange {
    /// `{"from":…,"to":…}`.
    func write(into out: inout [UInt8]) {
        var first = true
        out.append(UInt8(ascii: "{"))
        JSONText.member("from", first: &first, into: &out)
        JSONText.date(from, into: &out)
        JSONText.member("to", first: &first, into: &out)
        JSONText.date(to, into: &out)
        out.append(UInt8(ascii: "}"))
    }
}

extension HistoryBucket {
    /// Members in the order of their keys' UTF-8 bytes (capitals first). false at a value JSON
    /// cannot say.
    func write(into out: inout [UInt8]) -> Bool {
        var m = MemberWriter()
        out.append(UInt8(ascii: "{"))
        m.double("avgKsmdCPUPercent", avgKsmdCPUPercent, into: &out)
        m.double("avgNetProfitBytes", avgNetProfitBytes, into: &out)
        m.double("avgSavedBytes", avgSavedBytes, into: &out)
        m.double("coverage", coverage, into: &out)
        m.double("dataSeconds", dataSeconds, into: &out)
        m.date("end", end, into: &out)
        m.integer("fullScans", fullScans, into: &out)
        m.double("ksmdCPUSeconds", ksmdCPUSeconds, into: &out)
        m.double("peakKsmdCPUPercent", peakKsmdCPUPercent, into: &out)
        m.integer("peakSavedBytes", peakSavedBytes, into: &out)
        m.doubles("phaseSeconds", phaseSeconds, into: &out)
        m.double("runningSeconds", runningSeconds, into: &out)
        m.integer("samples", samples, into: &out)
        m.double("savedByteHours", savedByteHours, into: &out)
        m.date("start", start, into: &out)
        out.append(UInt8(ascii: "}"))
        return m.ok
    }
}

extension HistorySample {
    /// Members in the order of their keys' UTF-8 bytes (capitals first). false at a value JSON
    /// cannot say.
    func write(into out: inout [UInt8]) -> Bool {
        var m = MemberWriter()
        out.append(UInt8(ascii: "{"))
        m.integer("appliedGeneration", appliedGeneration, into: &out)
        m.string("applyError", applyError, into: &out)
        m.integer("fullScans", fullScans, into: &out)
        m.integer("generalProfit", generalProfit, into: &out)
        m.double("ksmdCPUPercent", ksmdCPUPercent, into: &out)
        m.double("ksmdCPUSeconds", ksmdCPUSeconds, into: &out)
        m.integer("memAvailableBytes", memAvailableBytes, into: &out)
        m.integer("memTotalBytes", memTotalBytes, into: &out)
        m.integer("pagesShared", pagesShared, into: &out)
        m.integer("pagesSharing", pagesSharing, into: &out)
        m.integer("pagesToScan", pagesToScan, into: &out)
        m.integer("pagesUnshared", pagesUnshared, into: &out)
        m.integer("pagesVolatile", pagesVolatile, into: &out)
        m.string("phase", phase.rawValue, into: &out)
        m.string("phaseReason", phaseReason, into: &out)
        m.integer("run", run, into: &out)
        m.integer("savedBytes", savedBytes, into: &out)
        m.integer("seq", seq, into: &out)
        m.integer("sleepMillisecs", sleepMillisecs, into: &out)
        m.date("takenAt", takenAt, into: &out)
        out.append(UInt8(ascii: "}"))
        return m.ok
    }
}
