import FleetAPI
import Foundation
import KSMCore

/// Byte-level helpers for sample batches (the fast decoder itself is `SampleBatchDecoder`); used
/// when a batch was decoded by the exact `StrictJSON` path.
enum FastJSON {
    /// The bytes of each element of the top-level `samples` array, as received (for storage:
    /// re-serializing them costs more than everything else in the request). The body has been
    /// parsed successfully already; nil when the scanner does not find the array as expected.
    static func sampleSlices(_ data: Data) -> [String]? {
        let d = [UInt8](data)
        let n = d.count
        var i = 0
        func isSpace(_ c: UInt8) -> Bool { c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 }
        func ws() { while i < n && isSpace(d[i]) { i += 1 } }
        func skipString() -> Bool {  // at the opening quote
            i += 1
            while i < n {
                if d[i] == 0x5C { i += 2; continue }
                if d[i] == 0x22 { i += 1; return true }
                i += 1
            }
            return false
        }
        func skipValue() -> Bool {
            ws()
            guard i < n else { return false }
            switch d[i] {
            case 0x22: return skipString()
            case 0x7B, 0x5B:
                var depth = 0
                while i < n {
                    let c = d[i]
                    if c == 0x22 {
                        if !skipString() { return false }
                        continue
                    }
                    if c == 0x7B || c == 0x5B {
                        depth += 1
                    } else if c == 0x7D || c == 0x5D {
                        depth -= 1
                        if depth == 0 { i += 1; return true }
                    }
                    i += 1
                }
                return false
            default:
                while i < n && !(d[i] == 0x2C || d[i] == 0x7D || d[i] == 0x5D || isSpace(d[i])) { i += 1 }
                return true
            }
        }
        ws()
        guard i < n, d[i] == 0x7B else { return nil }
        i += 1
        var result: [String]?
        while true {
            ws()
            guard i < n else { return nil }
            if d[i] == 0x7D { break }
            guard d[i] == 0x22 else { return nil }
            let keyStart = i + 1
            guard skipString() else { return nil }
            let key = d[keyStart..<(i - 1)]
            ws()
            guard i < n, d[i] == 0x3A else { return nil }
            i += 1
            ws()
            if key.elementsEqual("samples".utf8), i < n, d[i] == 0x5B {
                i += 1
                var out: [String] = []
                while true {
                    ws()
                    guard i < n else { return nil }
                    if d[i] == 0x5D { i += 1; break }
                    let start = i
                    guard skipValue() else { return nil }
                    out.append(String(decoding: d[start..<i], as: UTF8.self))
                    ws()
                    if i < n && d[i] == 0x2C { i += 1 }
                }
                result = out
            } else if !skipValue() {
                return nil
            }
            ws()
            if i < n && d[i] == 0x2C { i += 1 }
        }
        return result
    }
}
