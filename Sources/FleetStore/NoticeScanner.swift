import FleetAPI

/// Reads a config notice's payload, as `json_build_object` writes it: one JSON object whose keys
/// are `n`, `g`, `k`, `c` and `deleted` (migrations/postgres/0002_config_notify.sql: `{"n" : "…",
/// "g" : 2, …}`), `n` and `token` (0019_node_token_notify.sql), or `c` and `u`
/// (0015_config_notify_grouped.sql: `{"c" : "…", "u" : [["…", 2, 0], …]}`; the apply's own,
/// `ConfigNotices`, the same without spaces), with string, whole-number, boolean or null values
/// and `u`'s array of `[string, whole number, whole number]` arrays. nil for anything else
/// (another key, a key twice, a fraction or exponent, a lone surrogate, text after the object):
/// `ConfigChangeNotice.parse` hands those to `JSONDecoder`.
enum NoticeScanner {
    struct Fields: Equatable {
        var n: String?
        var g: Int64?
        var k: Int64?
        var c: String?
        var deleted: Bool?
        /// The grouped form's nodes: id, generation, kick counter.
        var u: [Entry]?
        /// A node's token changed (0019_node_token_notify.sql: `{"n" : "…", "token" : true}`).
        var token: Bool?
    }

    struct Entry: Equatable {
        var n: String
        var g: Int64
        var k: Int64
    }

    static func scan(_ payload: String) -> Fields? {
        var text = payload
        return text.withUTF8 { scan($0) }
    }

    private enum Value {
        case string(String), number(Int64), bool(Bool), null, entries([Entry])
    }

    static func scan(_ b: UnsafeBufferPointer<UInt8>) -> Fields? {
        var r = Reader(b: b)
        var f = Fields()
        var seen: UInt8 = 0
        r.ws()
        guard r.take(0x7B) else { return nil }  // {
        r.ws()
        if r.take(0x7D) { return r.atEnd() ? f : nil }  // {}
        while true {
            r.ws()
            guard let key = r.string() else { return nil }
            r.ws()
            guard r.take(0x3A) else { return nil }  // :
            r.ws()
            guard let value = r.value() else { return nil }
            let bit: UInt8
            switch (key, value) {
            case ("n", .string(let v)): f.n = v; bit = 1
            case ("g", .number(let v)): f.g = v; bit = 2
            case ("g", .null): bit = 2
            case ("k", .number(let v)): f.k = v; bit = 4
            case ("k", .null): bit = 4
            case ("c", .string(let v)): f.c = v; bit = 8
            case ("c", .null): bit = 8
            case ("deleted", .bool(let v)): f.deleted = v; bit = 16
            case ("deleted", .null): bit = 16
            case ("u", .entries(let v)): f.u = v; bit = 32
            case ("u", .null): bit = 32
            case ("token", .bool(let v)): f.token = v; bit = 64
            case ("token", .null): bit = 64
            default: return nil
            }
            if seen & bit != 0 { return nil }
            seen |= bit
            r.ws()
            if r.take(0x2C) { continue }  // ,
            guard r.take(0x7D) else { return nil }  // }
            return r.atEnd() ? f : nil
        }
    }

    private struct Reader {
        let b: UnsafeBufferPointer<UInt8>
        var i = 0

        mutating func ws() {
            while i < b.count, b[i] == 0x20 || b[i] == 0x0A || b[i] == 0x0D || b[i] == 0x09 { i += 1 }
        }

        mutating func take(_ c: UInt8) -> Bool {
            guard i < b.count, b[i] == c else { return false }
            i += 1
            return true
        }

        mutating func atEnd() -> Bool {
            ws()
            return i == b.count
        }

        mutating func literal(_ word: StaticString) -> Bool {
            let n = word.utf8CodeUnitCount
            guard b.count - i >= n else { return false }
            for j in 0..<n where b[i + j] != word.utf8Start[j] { return false }
            i += n
            return true
        }

        mutating func value() -> Value? {
            guard i < b.count else { return nil }
            switch b[i] {
            case 0x22: return string().map { .string($0) }
            case 0x74: return literal("true") ? .bool(true) : nil
            case 0x66: return literal("false") ? .bool(false) : nil
            case 0x6E: return literal("null") ? .null : nil
            case 0x5B: return entries().map { .entries($0) }
            default: return number().map { .number($0) }
            }
        }

        /// `[["id", g, k], …]` at its opening bracket.
        mutating func entries() -> [Entry]? {
            guard take(0x5B) else { return nil }  // [
            var out: [Entry] = []
            ws()
            if take(0x5D) { return out }  // ]
            while true {
                ws()
                guard take(0x5B) else { return nil }
                ws()
                guard let n = string() else { return nil }
                ws()
                guard take(0x2C) else { return nil }
                ws()
                guard let g = number() else { return nil }
                ws()
                guard take(0x2C) else { return nil }
                ws()
                guard let k = number() else { return nil }
                ws()
                guard take(0x5D) else { return nil }
                out.append(Entry(n: n, g: g, k: k))
                ws()
                if take(0x2C) { continue }
                return take(0x5D) ? out : nil
            }
        }

        /// A whole number as JSON writes it (no leading zeros, no fraction, no exponent).
        mutating func number() -> Int64? {
            let negative = take(0x2D)
            let start = i
            var v: Int64 = 0
            while i < b.count, b[i] >= 0x30, b[i] <= 0x39 {
                let d = Int64(b[i] - 0x30)
                let (m, o1) = v.multipliedReportingOverflow(by: 10)
                let (a, o2) = negative ? m.subtractingReportingOverflow(d) : m.addingReportingOverflow(d)
                if o1 || o2 { return nil }
                v = a
                i += 1
            }
            let digits = i - start
            if digits == 0 || (digits > 1 && b[start] == 0x30) { return nil }
            if i < b.count, b[i] == 0x2E || b[i] == 0x65 || b[i] == 0x45 { return nil }  // . e E
            return v
        }

        /// A string at its opening quote, unescaped.
        mutating func string() -> String? {
            guard take(0x22) else { return nil }
            let start = i
            while i < b.count, b[i] != 0x22, b[i] != 0x5C, b[i] >= 0x20 { i += 1 }
            guard i < b.count else { return nil }
            if b[i] == 0x22 {
                defer { i += 1 }
                return String(decoding: UnsafeBufferPointer(rebasing: b[start..<i]), as: UTF8.self)
            }
            var out = [UInt8](UnsafeBufferPointer(rebasing: b[start..<i]))
            guard JSONEscapes.readRest(b.baseAddress!, count: b.count, at: &i, into: &out) else { return nil }
            return String(decoding: out, as: UTF8.self)
        }
    }
}
