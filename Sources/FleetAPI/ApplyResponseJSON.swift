#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import KSMCore

extension ApplyResponse: JSONMemberWriting {
    /// The answer as JSON: the bytes `SortedJSONEncoder` (and so `StrictJSON.encoder()`) writes
    /// for it, written member by member in the keys' sorted order instead of through `Encodable`,
    /// as `SavingsReport.json()` is. A fleet-wide change to 30,000 nodes answers 30,000 results;
    /// the generic encoder was about a tenth of the server's CPU for the apply (docs/benchmarks.md).
    /// `ApplyResponseJSONTests` holds the two the same on random answers; a member added to
    /// `ApplyResponse`, `ApplyResult` or `APIErrorBody.Detail` without being added here fails it.
    public func json() throws -> [UInt8] {
        try json(reserving: 160 * results.count + 64)
    }

    /// Members in the order of their keys' UTF-8 bytes: dryRun, results. Nothing here is a
    /// double, so it is always true.
    func write(into out: inout [UInt8]) -> Bool {
        var m = MemberWriter()
        out.append(UInt8(ascii: "{"))
        m.bool("dryRun", dryRun, into: &out)
        JSONText.member("results", first: &m.first, into: &out)
        out.append(UInt8(ascii: "["))
        for (i, r) in results.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            r.write(into: &out)
        }
        out.append(contentsOf: [UInt8(ascii: "]"), UInt8(ascii: "}")])
        return true
    }
}

extension ApplyResult {
    /// Members in the order of their keys' UTF-8 bytes: changes, error, generation, name,
    /// nodeId, status; optionals left out when nil, as the synthesized `Encodable` leaves them.
    func write(into out: inout [UInt8]) {
        var m = MemberWriter()
        out.append(UInt8(ascii: "{"))
        JSONText.member("changes", first: &m.first, into: &out)
        JSONText.strings(changes, into: &out)
        if let error {
            JSONText.member("error", first: &m.first, into: &out)
            var e = MemberWriter()
            out.append(UInt8(ascii: "{"))
            e.string("code", error.code, into: &out)
            e.string("field", error.field, into: &out)
            e.string("message", error.message, into: &out)
            out.append(UInt8(ascii: "}"))
        }
        m.integer("generation", generation, into: &out)
        m.string("name", name, into: &out)
        m.string("nodeId", nodeId, into: &out)
        m.string("status", status, into: &out)
        out.append(UInt8(ascii: "}"))
    }
}
