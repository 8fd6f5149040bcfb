#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import KSMCore

/// A wire value that writes its own JSON member by member (`write(into:)`: the bytes
/// `SortedJSONEncoder` writes for it, false at a value JSON cannot say), falling back to
/// `SortedJSONEncoder` for its error.
protocol JSONMemberWriting: Encodable {
    func write(into out: inout [UInt8]) -> Bool
}

extension JSONMemberWriting {
    /// The value as JSON, `capacity` bytes reserved; a value JSON cannot say (NaN, an infinity)
    /// throws the error JSONEncoder throws, with its path.
    func json(reserving capacity: Int) throws -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(capacity)
        guard write(into: &out) else { return try SortedJSONEncoder().encode(self) }
        return out
    }
}

extension SavingsReport: JSONMemberWriting {
    /// The report as JSON: the bytes `SortedJSONEncoder` (and so `StrictJSON.encoder()`) writes
    /// for it, written member by member in the keys' sorted order instead of through `Encodable`.
    /// A report by node is 1,000 rows of 17 members on a 1,000-node fleet; the generic encoder
    /// spent most of its time on containers, key sorting and nodes for them, not on the text
    /// (docs/benchmarks.md). `SavingsReportJSONTests` holds the two the same on random reports;
    /// a member added to `SavingsRow` or `SavingsReport` without being added here fails it.
    /// A value JSON cannot say (NaN, an infinity) goes to `SortedJSONEncoder`, which throws the
    /// error JSONEncoder throws, with its path.
    public func json() throws -> [UInt8] {
        try json(reserving: 600 * (rows.count + 1) + 256)
    }

    /// Members in the order of their keys' UTF-8 bytes: by, generatedAt, label, maxGapSeconds,
    /// rows, since, total, until. false at a value JSON cannot say.
    func write(into out: inout [UInt8]) -> Bool {
        var first = true
        out.append(UInt8(ascii: "{"))
        JSONText.member("by", first: &first, into: &out)
        JSONText.string(by.rawValue, into: &out)
        JSONText.member("generatedAt", first: &first, into: &out)
        JSONText.date(generatedAt, into: &out)
        if let label {
            JSONText.member("label", first: &first, into: &out)
            JSONText.string(label, into: &out)
        }
        JSONText.member("maxGapSeconds", first: &first, into: &out)
        guard JSONText.float(maxGapSeconds, into: &out) else { return false }
        JSONText.member("rows", first: &first, into: &out)
        out.append(UInt8(ascii: "["))
        for (i, row) in rows.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            guard row.write(into: &out) else { return false }
        }
        out.append(UInt8(ascii: "]"))
        JSONText.member("since", first: &first, into: &out)
        JSONText.date(since, into: &out)
        JSONText.member("total", first: &first, into: &out)
        guard total.write(into: &out) else { return false }
        JSONText.member("until", first: &first, into: &out)
        JSONText.date(until, into: &out)
        out.append(UInt8(ascii: "}"))
        return true
    }
}

extension SavingsRow {
    /// Members in the order of their keys' UTF-8 bytes (capitals first), optionals left out when
    /// nil as the synthesized `Encodable` leaves them out. false at a value JSON cannot say.
    func write(into out: inout [UInt8]) -> Bool {
        var m = MemberWriter()
        out.append(UInt8(ascii: "{"))
        m.double("avgKsmdCPUCores", avgKsmdCPUCores, into: &out)
        m.double("avgNetProfitBytes", avgNetProfitBytes, into: &out)
        m.double("avgSavedBytes", avgSavedBytes, into: &out)
        m.double("coverage", coverage, into: &out)
        m.double("dataHours", dataHours, into: &out)
        m.bool("deleted", deleted, into: &out)
        m.double("efficiencyGiBPerCore", efficiencyGiBPerCore, into: &out)
        m.ranges("gaps", gaps, into: &out)
        m.string("key", key, into: &out)
        m.double("ksmdCPUHours", ksmdCPUHours, into: &out)
        m.string("name", name, into: &out)
        m.integer("nodes", nodes, into: &out)
        m.string("peakBasis", peakBasis?.rawValue, into: &out)
        m.double("peakSavedBytes", peakSavedBytes, into: &out)
        m.double("periodHours", periodHours, into: &out)
        m.doubles("phaseHours", phaseHours, into: &out)
        m.double("savedGiBHours", savedGiBHours, into: &out)
        out.append(UInt8(ascii: "}"))
        return m.ok
    }
}
