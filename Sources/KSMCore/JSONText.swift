// FoundationEssentials where it exists: KSMCore is linked into the agent, which must not pull in
// full Foundation (AgentBinaryTests).
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// JSON scalars written straight into bytes as `StrictJSON.encoder()` writes them (ISO 8601
/// dates to the second, slashes escaped, integral doubles without ".0"). `SortedJSONEncoder`
/// writes every scalar with these; a reply of a fixed shape that is big and frequent (the savings
/// report by node: `SavingsReport.json()`) writes its members with them directly, in its keys'
/// sorted order, without going through `Encodable` at all.
public enum JSONText {
    @inlinable
    public static func integer<I: BinaryInteger>(_ v: I, into out: inout [UInt8]) {
        guard let small = Int64(exactly: v) else {
            // Beyond Int64 (UInt64's upper half): as the type prints itself.
            out.append(contentsOf: String(v).utf8)
            return
        }
        int64(small, into: &out)
    }

    /// An Int64 in decimal: its digits written right to left into 20 bytes on the stack, then
    /// appended at once (reversing them in place in `out` went through a copy of the slice).
    public static func int64(_ v: Int64, into out: inout [UInt8]) {
        var n = v.magnitude
        if v >= 0 && n < 10 {
            out.append(UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: n))
            return
        }
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { digits in
            var at = 20
            repeat {
                at -= 1
                digits[at] = UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: n % 10)
                n /= 10
            } while n > 0
            if v < 0 { out.append(UInt8(ascii: "-")) }
            out.append(contentsOf: UnsafeBufferPointer(rebasing: digits[at...]))
        }
    }

    /// A Double or Float as its shortest round-trip text, without the ".0" of an integral value.
    /// NaN and the infinities, which JSON cannot say: nothing written, false.
    public static func float<F: BinaryFloatingPoint & CustomStringConvertible>(_ v: F, into out: inout [UInt8]) -> Bool {
        guard v.isFinite else { return false }
        let start = out.count
        out.append(contentsOf: v.description.utf8)
        let n = out.count
        if n - start >= 2, out[n - 2] == UInt8(ascii: "."), out[n - 1] == UInt8(ascii: "0") {
            out.removeLast(2)
        }
        return true
    }

    /// A JSON string as JSONEncoder writes it: `"`, `\` and `/` escaped, the control characters
    /// below 0x20 as `\b \f \n \r \t` or `\u00XX`, every other character as its UTF-8.
    public static func string(_ s: String, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        var s = s
        s.withUTF8 { bytes in
            var runStart = 0
            for i in 0..<bytes.count {
                let b = bytes[i]
                let escape: UInt8?
                switch b {
                case UInt8(ascii: "\""): escape = UInt8(ascii: "\"")
                case UInt8(ascii: "\\"): escape = UInt8(ascii: "\\")
                case UInt8(ascii: "/"): escape = UInt8(ascii: "/")
                case 0x08: escape = UInt8(ascii: "b")
                case 0x0C: escape = UInt8(ascii: "f")
                case 0x0A: escape = UInt8(ascii: "n")
                case 0x0D: escape = UInt8(ascii: "r")
                case 0x09: escape = UInt8(ascii: "t")
                case 0..<0x20: escape = UInt8(ascii: "u")
                default: continue
                }
                out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[runStart..<i]))
                runStart = i + 1
                out.append(UInt8(ascii: "\\"))
                out.append(escape!)
                if escape == UInt8(ascii: "u") {
                    let hex = Array("0123456789abcdef".utf8)
                    out.append(contentsOf: [UInt8(ascii: "0"), UInt8(ascii: "0"), hex[Int(b >> 4)], hex[Int(b & 0xF)]])
                }
            }
            out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[runStart..<bytes.count]))
        }
        out.append(UInt8(ascii: "\""))
    }

    /// `[…]` of JSON strings, each as `string` writes it.
    public static func strings(_ values: some Sequence<String>, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "["))
        var first = true
        for v in values {
            if !first { out.append(UInt8(ascii: ",")) }
            first = false
            string(v, into: &out)
        }
        out.append(UInt8(ascii: "]"))
    }

    /// An instant as ISO 8601 in UTC to the second, the seconds rounded down (JSONEncoder's
    /// `.iso8601` strategy), in the Gregorian calendar for years 1600–9999; other years by
    /// Foundation's formatter (which turns Julian before October 1582).
    public static func date(_ d: Date, into out: inout [UInt8]) {
        let t = d.timeIntervalSince1970
        let seconds = t.rounded(.down)
        guard seconds >= -11_676_096_000, seconds < 253_402_300_800 else {
            string(d.formatted(.iso8601), into: &out)
            return
        }
        let total = Int(seconds)
        var days = total / 86_400
        var rest = total % 86_400
        if rest < 0 {
            rest += 86_400
            days -= 1
        }
        let (year, month, day) = ReportTime.civilFromDays(days)
        out.append(UInt8(ascii: "\""))
        func digits(_ v: Int, _ width: Int) {
            var unit = 1
            for _ in 1..<width { unit *= 10 }
            while unit > 0 {
                out.append(UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: v / unit % 10))
                unit /= 10
            }
        }
        digits(year, 4)
        out.append(UInt8(ascii: "-"))
        digits(month, 2)
        out.append(UInt8(ascii: "-"))
        digits(day, 2)
        out.append(UInt8(ascii: "T"))
        digits(rest / 3_600, 2)
        out.append(UInt8(ascii: ":"))
        digits(rest / 60 % 60, 2)
        out.append(UInt8(ascii: ":"))
        digits(rest % 60, 2)
        out.append(contentsOf: [UInt8(ascii: "Z"), UInt8(ascii: "\"")])
    }

    /// Starts a member of an object being written: a comma unless it is the object's first
    /// (`first`, true after the object's `{`), then `"name":`. `name` must need no escaping.
    public static func member(_ name: StaticString, first: inout Bool, into out: inout [UInt8]) {
        if !first { out.append(UInt8(ascii: ",")) }
        first = false
        out.append(UInt8(ascii: "\""))
        name.withUTF8Buffer { out.append(contentsOf: $0) }
        out.append(contentsOf: [UInt8(ascii: "\""), UInt8(ascii: ":")])
    }
}
