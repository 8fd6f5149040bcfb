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

/// The members of one object being written, in the order given (which must be the keys' bytes
/// order): doubles that JSON cannot say make `ok` false.
struct MemberWriter {
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
    mutating func date(_ name: StaticString, _ v: Date?, into out: inout [UInt8]) {
        if let v { date(name, v, into: &out) }
    }
    /// `[…]` of JSON strings.
    mutating func strings(_ name: StaticString, _ v: [String], into out: inout [UInt8]) {
        JSONText.member(name, first: &first, into: &out)
        JSONText.strings(v, into: &out)
    }
    /// An object of strings, its keys in the order of their bytes (as JSONEncoder sorts them).
    mutating func stringMap(_ name: StaticString, _ v: [String: String], into out: inout [UInt8]) {
        map(name, v, into: &out) { value, out in
            JSONText.string(value, into: &out)
            return true
        }
    }
    /// An object of `v`'s values, its keys in the order of their bytes (as JSONEncoder sorts
    /// them), each value written by `write`.
    mutating func map<V>(
        _ name: StaticString, _ v: [String: V], into out: inout [UInt8], _ write: (V, inout [UInt8]) -> Bool
    ) {
        JSONText.member(name, first: &first, into: &out)
        out.append(UInt8(ascii: "{"))
        for (i, (key, value)) in v.sorted(by: { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }).enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            JSONText.string(key, into: &out)
            out.append(UInt8(ascii: ":"))
            if !write(value, &out) { ok = false }
        }
        out.append(UInt8(ascii: "}"))
    }
    /// A nested value written by `write` (false: a value JSON cannot say).
    mutating func object(_ name: StaticString, into out: inout [UInt8], _ write: (inout [UInt8]) -> Bool) {
        JSONText.member(name, first: &first, into: &out)
        if !write(&out) { ok = false }
    }
    /// `[…]` of `elements`, each written by `write`.
    mutating func array<T>(
        _ name: StaticString, _ elements: [T], into out: inout [UInt8], _ write: (T, inout [UInt8]) -> Bool
    ) {
        JSONText.member(name, first: &first, into: &out)
        out.append(UInt8(ascii: "["))
        for (i, e) in elements.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            if !write(e, &out) { ok = false }
        }
        out.append(UInt8(ascii: "]"))
    }
    mutating func bool(_ name: StaticString, _ v: Bool?, into out: inout [UInt8]) {
        guard let v else { return }
        JSONText.member(name, first: &first, into: &out)
        out.append(contentsOf: v ? "true".utf8 : "false".utf8)
    }
    /// An array of `{"from":…,"to":…}`.
    mutating func ranges(_ name: StaticString, _ v: [TimeRange], into out: inout [UInt8]) {
        array(name, v, into: &out) { range, out in
            range.write(into: &out)
            return true
        }
    }
    /// An object of doubles, its keys in the order of their bytes (as JSONEncoder sorts them).
    mutating func doubles(_ name: StaticString, _ v: [String: Double], into out: inout [UInt8]) {
        map(name, v, into: &out) { JSONText.float($0, into: &$1) }
    }
}

