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
        var first = true
        out.append(UInt8(ascii: "{"))
        if let buckets {
            JSONText.member("buckets", first: &first, into: &out)
            out.append(UInt8(ascii: "["))
            for (i, b) in buckets.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                guard b.write(into: &out) else { return false }
            }
            out.append(UInt8(ascii: "]"))
        }
        if let existence {
            JSONText.member("existence", first: &first, into: &out)
            existence.write(into: &out)
        }
        JSONText.member("gaps", first: &first, into: &out)
        out.append(UInt8(ascii: "["))
        for (i, gap) in gaps.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            gap.write(into: &out)
        }
        out.append(UInt8(ascii: "]"))
        JSONText.member("name", first: &first, into: &out)
        JSONText.string(name, into: &out)
        JSONText.member("nodeId", first: &first, into: &out)
        JSONText.string(nodeId, into: &out)
        if let omittedSamples {
            JSONText.member("omittedSamples", first: &first, into: &out)
            JSONText.integer(omittedSamples, into: &out)
        }
        JSONText.member("resolution", first: &first, into: &out)
        JSONText.string(resolution.rawValue, into: &out)
        if let samples {
            JSONText.member("samples", first: &first, into: &out)
            out.append(UInt8(ascii: "["))
            for (i, s) in samples.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                guard s.write(into: &out) else { return false }
            }
            out.append(UInt8(ascii: "]"))
        }
        JSONText.member("since", first: &first, into: &out)
        JSONText.date(since, into: &out)
        JSONText.member("until", first: &first, into: &out)
        JSONText.date(until, into: &out)
        out.append(UInt8(ascii: "}"))
        return true
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

/// The members of one object being written, in the order given (which must be the keys' bytes
/// order): doubles that JSON cannot say make `ok` false.
private struct MemberWriter {
    var first = true
    var ok = true

    mutating func double(_ name: StaticString, _ v: Double, into out: inout [UInt8]) {
        JSONText.member(name, first: &first, into: &out)
        if !JSONText.float(v, into: &out) { ok = false }
    }
    mutating func double(_ name: StaticString, _ v: Double?, into out: inout [UInt8]) {
        if let v { double(name, v, into: &out) }
    }
    mutating func integer<I: BinaryInteger>(_ name: StaticString, _ v: I, into out: inout [UInt8]) {
        JSONText.member(name, first: &first, into: &out)
        JSONText.integer(v, into: &out)
    }
    mutating func integer<I: BinaryInteger>(_ name: StaticString, _ v: I?, into out: inout [UInt8]) {
        if let v { integer(name, v, into: &out) }
    }
    mutating func string(_ name: StaticString, _ v: String?, into out: inout [UInt8]) {
        guard let v else { return }
        JSONText.member(name, first: &first, into: &out)
        JSONText.string(v, into: &out)
    }
    mutating func date(_ name: StaticString, _ v: Date, into out: inout [UInt8]) {
        JSONText.member(name, first: &first, into: &out)
        JSONText.date(v, into: &out)
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
        m.double("dataSeconds", dataSeconds, into: &out)
        m.date("end", end, into: &out)
        m.integer("fullScans", fullScans, into: &out)
        m.double("ksmdCPUSeconds", ksmdCPUSeconds, into: &out)
        m.double("peakKsmdCPUPercent", peakKsmdCPUPercent, into: &out)
        m.integer("peakSavedBytes", peakSavedBytes, into: &out)
        JSONText.member("phaseSeconds", first: &m.first, into: &out)
        out.append(UInt8(ascii: "{"))
        var phaseFirst = true
        for (phase, seconds) in phaseSeconds.sorted(by: { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }) {
            if !phaseFirst { out.append(UInt8(ascii: ",")) }
            phaseFirst = false
            JSONText.string(phase, into: &out)
            out.append(UInt8(ascii: ":"))
            if !JSONText.float(seconds, into: &out) { m.ok = false }
        }
        out.append(UInt8(ascii: "}"))
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
