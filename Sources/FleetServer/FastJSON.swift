import FleetAPI
import Foundation
import KSMCore

/// Strict decoding with a fast path for sample batches. `StrictJSON.decode(_:from: Data)` builds
/// a `JSONValue` tree through `Codable` (probing every value with throwing container calls)
/// before decoding, which dominated the cost of a 1000-sample batch.
enum FastJSON {
    /// Fast path: decode the typed value straight from the bytes, then confirm in one byte pass
    /// that every key is known. Any failure or doubt (a decoding error, an unknown or escaped
    /// key) falls back to `StrictJSON.decode`, which produces the exact error (code, field,
    /// message) the rest of the API gives. Errors are rare, so the slow path costs nothing in
    /// practice.
    static func decode<T: Decodable & KnownFields>(_ type: T.Type, from data: Data) throws(InputError) -> T {
        if let value = try? StrictJSON.decoder().decode(type, from: data), KeyScanner.allKnown(data, as: type) {
            return value
        }
        return try StrictJSON.decode(type, from: data)
    }

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

/// Checks the keys of already-valid JSON against a `KnownFields` type, recursively, in one pass
/// over the bytes. Answers false for an unknown key and also whenever it is unsure (escaped
/// keys, unexpected shapes), so that the caller takes the slow, exact path.
enum KeyScanner {
    static func allKnown(_ data: Data, as type: any KnownFields.Type) -> Bool {
        data.withUnsafeBytes { raw -> Bool in
            let d = raw.bindMemory(to: UInt8.self)
            var i = 0
            return value(d, &i, type)
        }
    }

    private static func ws(_ d: UnsafeBufferPointer<UInt8>, _ i: inout Int) {
        while i < d.count, d[i] == 0x20 || d[i] == 0x0A || d[i] == 0x0D || d[i] == 0x09 { i += 1 }
    }

    /// Skips a string at its opening quote; false when it has escapes and `noEscapes`.
    private static func string(_ d: UnsafeBufferPointer<UInt8>, _ i: inout Int, noEscapes: Bool) -> Bool {
        i += 1
        while i < d.count {
            let c = d[i]
            if c == 0x5C {
                if noEscapes { return false }
                i += 2
                continue
            }
            i += 1
            if c == 0x22 { return true }
        }
        return false
    }

    /// Scans one value; objects are checked against `type` (nil: anything goes below).
    private static func value(_ d: UnsafeBufferPointer<UInt8>, _ i: inout Int, _ type: (any KnownFields.Type)?) -> Bool {
        ws(d, &i)
        guard i < d.count else { return false }
        switch d[i] {
        case 0x7B:  // {
            i += 1
            while true {
                ws(d, &i)
                guard i < d.count else { return false }
                if d[i] == 0x7D { i += 1; return true }
                if d[i] == 0x2C { i += 1; continue }
                guard d[i] == 0x22 else { return false }
                let start = i + 1
                guard string(d, &i, noEscapes: true) else { return false }
                var nested: (any KnownFields.Type)? = nil
                if let type {
                    let key = String(decoding: UnsafeBufferPointer(rebasing: d[start..<(i - 1)]), as: UTF8.self)
                    guard type.fieldNames.contains(key) else { return false }
                    nested = type.nestedFields[key]
                }
                ws(d, &i)
                guard i < d.count, d[i] == 0x3A else { return false }
                i += 1
                guard value(d, &i, nested) else { return false }
            }
        case 0x5B:  // [ : elements take the same type (arrays of nested objects)
            i += 1
            while true {
                ws(d, &i)
                guard i < d.count else { return false }
                if d[i] == 0x5D { i += 1; return true }
                if d[i] == 0x2C { i += 1; continue }
                guard value(d, &i, type) else { return false }
            }
        case 0x22:
            return string(d, &i, noEscapes: false)
        default:
            while i < d.count, !(d[i] == 0x2C || d[i] == 0x7D || d[i] == 0x5D || d[i] == 0x20 || d[i] == 0x0A || d[i] == 0x0D || d[i] == 0x09) {
                i += 1
            }
            return true
        }
    }
}
