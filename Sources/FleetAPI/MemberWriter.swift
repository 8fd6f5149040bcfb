#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import KSMCore

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

