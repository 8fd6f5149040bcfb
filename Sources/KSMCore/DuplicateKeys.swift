#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

extension StrictJSON {
    /// The document `data` holds, refused as `malformed_json` when it is not JSON and as
    /// `duplicate_field` when one object names a key twice. JSON leaves a repeated key's meaning
    /// open: Foundation's decoder keeps the first value, most other tools (Python, JavaScript) the
    /// last, so a body checked by its sender and the same body read here could differ.
    public static func value(from data: Data) throws(InputError) -> JSONValue {
        let value: JSONValue
        do {
            value = try decoder().decode(JSONValue.self, from: data)
        } catch {
            throw InputError(code: "malformed_json", field: nil, message: "the body is not valid JSON: \(describe(error))")
        }
        // Foundation also reads UTF-16 and UTF-32, which the key scanner below does not: JSON
        // over HTTP is UTF-8 (RFC 8259), so anything else is refused here.
        if notUTF8(data) {
            throw InputError(code: "malformed_json", field: nil, message: "the body is not UTF-8 JSON (UTF-16 or UTF-32 is not accepted)")
        }
        if let key = duplicateKey(in: data) {
            throw InputError(
                code: "duplicate_field", field: key.path,
                message: "'\(key.name)' appears twice in one object; send each field once")
        }
        return value
    }

    /// The first key named twice in one object of `data`, a JSON text already parsed (its syntax
    /// is not checked again), with its path as `checkFields` writes one (`samples[0].status`);
    /// keys are compared as the decoder compares them, escapes decoded.
    public static func duplicateKey(in data: Data) -> (path: String, name: String)? {
        data.withUnsafeBytes { raw in
            var scanner = DuplicateKeyScanner(bytes: raw.bindMemory(to: UInt8.self))
            // A UTF-8 byte order mark, which Foundation's decoder skips.
            if raw.count >= 3, raw[0] == 0xEF, raw[1] == 0xBB, raw[2] == 0xBF { scanner.i = 3 }
            return scanner.value(path: "")
        }
    }

    /// Whether `data` is JSON in UTF-16 or UTF-32 (a byte order mark for either, or a NUL among
    /// the first four bytes, as RFC 4627 told the encodings apart), which UTF-8 never is.
    static func notUTF8(_ data: Data) -> Bool {
        let head = Array(data.prefix(4))
        if head.starts(with: [0xFE, 0xFF]) || head.starts(with: [0xFF, 0xFE]) { return true }
        return head.contains(0)
    }
}

/// `StrictJSON.duplicateKey`'s walk over a JSON text's bytes, one object's keys in a set at a time.
private struct DuplicateKeyScanner {
    let bytes: UnsafeBufferPointer<UInt8>
    var i = 0

    init(bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

    mutating func skipSpace() {
        while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x0A || bytes[i] == 0x0D || bytes[i] == 0x09 { i += 1 }
    }

    /// Moves `i` past the string at `i` (its opening quote): a value, whose text is not needed.
    mutating func skipString() {
        i += 1
        while i < bytes.count, bytes[i] != 0x22 { i += bytes[i] == 0x5C ? 2 : 1 }
        i += 1
    }

    /// The string at `i` (its opening quote), escapes decoded; `i` moves past its closing quote.
    mutating func string() -> String {
        let start = i
        i += 1
        var escaped = false
        while i < bytes.count, bytes[i] != 0x22 {
            if bytes[i] == 0x5C {
                escaped = true
                i += 1
            }
            i += 1
        }
        i += 1
        let literal = UnsafeBufferPointer(rebasing: bytes[start..<min(i, bytes.count)])
        if !escaped { return String(decoding: literal.dropFirst().dropLast(), as: UTF8.self) }
        return (try? JSONDecoder().decode(String.self, from: Data(literal))) ?? String(decoding: literal, as: UTF8.self)
    }

    mutating func value(path: String) -> (path: String, name: String)? {
        skipSpace()
        guard i < bytes.count else { return nil }
        switch bytes[i] {
        case 0x7B:  // {
            i += 1
            var seen = Set<String>()
            while true {
                skipSpace()
                guard i < bytes.count, bytes[i] != 0x7D else { i += 1; return nil }
                if bytes[i] == 0x2C { i += 1; continue }
                let key = string()
                let keyPath = path.isEmpty ? key : "\(path).\(key)"
                if !seen.insert(key).inserted { return (keyPath, key) }
                skipSpace()
                i += 1  // :
                if let found = value(path: keyPath) { return found }
            }
        case 0x5B:  // [
            i += 1
            var index = 0
            while true {
                skipSpace()
                guard i < bytes.count, bytes[i] != 0x5D else { i += 1; return nil }
                if bytes[i] == 0x2C { i += 1; continue }
                if let found = value(path: "\(path)[\(index)]") { return found }
                index += 1
            }
        case 0x22:
            skipString()
            return nil
        default:
            while i < bytes.count, ![0x2C, 0x7D, 0x5D, 0x20, 0x0A, 0x0D, 0x09].contains(bytes[i]) { i += 1 }
            return nil
        }
    }
}
