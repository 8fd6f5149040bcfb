import KSMCore

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif
#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// A config file that cannot be used, with where and why: the file, the line (YAML syntax), the
/// field (unknown, wrong type, invalid value) and the reason.
public struct ConfigFileError: Error, Sendable, Equatable, CustomStringConvertible {
    /// `unreadable`, `empty`, `malformed_json`, `malformed_yaml`, `unknown_field`, `invalid_type`,
    /// `missing_field`, `invalid_value`, or a validation code (`out_of_range`, `min_above_max`…).
    public var code: String
    public var path: String?
    public var line: Int?
    public var field: String?
    public var message: String
    /// Every validation problem when the values are invalid (one per field).
    public var issues: [ValidationIssue]

    public init(
        code: String, path: String? = nil, line: Int? = nil, field: String? = nil, message: String,
        issues: [ValidationIssue] = []
    ) {
        self.code = code
        self.path = path
        self.line = line
        self.field = field
        self.message = message
        self.issues = issues
    }

    public var description: String {
        var parts: [String] = []
        if let path { parts.append(path) }
        if let line { parts.append("line \(line)") }
        if issues.count > 1 {
            parts.append(issues.map(\.description).joined(separator: "; "))
        } else {
            if let field { parts.append(field) }
            parts.append(message)
        }
        return parts.joined(separator: ": ")
    }
}

/// Config files for the standalone agent and `ksmfleet config apply --file`: JSON or a small,
/// strict subset of YAML, with the shape of a node config (without `generation`).
public enum ConfigFile {
    public enum Format: String, Sendable {
        case json
        case yaml
    }

    /// `.json` → JSON, `.yaml`/`.yml` → YAML; otherwise JSON when the text starts with `{`.
    public static func format(path: String?, text: String) -> Format {
        if let path {
            let lower = path.lowercased()
            if lower.hasSuffix(".json") { return .json }
            if lower.hasSuffix(".yaml") || lower.hasSuffix(".yml") { return .yaml }
        }
        return text.trimmed.hasPrefix("{") ? .json : .yaml
    }

    /// The text of a file (UTF-8).
    public static func readText(path: String) throws(ConfigFileError) -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            let code = errno
            throw ConfigFileError(
                code: "unreadable", path: path, message: "cannot open: \(String(cString: strerror(code)))")
        }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                let code = errno
                throw ConfigFileError(
                    code: "unreadable", path: path, message: "cannot read: \(String(cString: strerror(code)))")
            }
            if n == 0 { break }
            bytes.append(contentsOf: chunk[0..<n])
            if bytes.count > 1 << 20 {
                throw ConfigFileError(code: "unreadable", path: path, message: "larger than 1 MiB; not a config file")
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The document of a JSON or YAML text as a JSONValue (syntax only; no field checks).
    public static func value(text: String, format: Format, path: String? = nil) throws(ConfigFileError) -> JSONValue {
        let value: JSONValue
        switch format {
        case .json:
            guard !text.trimmed.isEmpty else {
                throw ConfigFileError(code: "empty", path: path, message: "the file is empty")
            }
            do {
                value = try StrictJSON.decoder().decode(JSONValue.self, from: Data(text.utf8))
            } catch {
                throw ConfigFileError(
                    code: "malformed_json", path: path, message: "not valid JSON: \(describeJSONError(error))")
            }
        case .yaml:
            do {
                value = try YAMLSubset.parse(text)
            } catch {
                throw ConfigFileError(code: "malformed_yaml", path: path, line: error.line, message: error.message)
            }
        }
        if value == .null { throw ConfigFileError(code: "empty", path: path, message: "the file is empty") }
        return value
    }

    static func describeJSONError(_ error: any Error) -> String {
        if case DecodingError.dataCorrupted(let ctx) = error {
            return ctx.underlyingError.map { "\($0)" } ?? ctx.debugDescription
        }
        return "\(error)"
    }

    /// The document of a JSON or YAML file as a JSONValue (for `ksmfleet config apply --file`).
    public static func value(path: String) throws(ConfigFileError) -> JSONValue {
        let text = try readText(path: path)
        return try value(text: text, format: format(path: path, text: text), path: path)
    }

    /// A validated, normalized config from a parsed document: unknown fields, wrong types and
    /// invalid values are refused with the field named.
    public static func config(from value: JSONValue, path: String? = nil) throws(ConfigFileError) -> KSMConfig {
        guard case .object = value else {
            throw ConfigFileError(
                code: "invalid_type", path: path, message: "expected a mapping of config fields at the top level")
        }
        let decoded: KSMConfig
        do {
            decoded = try StrictJSON.decode(KSMConfig.self, from: value)
        } catch {
            throw ConfigFileError(code: error.code, path: path, field: error.field, message: error.message)
        }
        do {
            return try decoded.validated()
        } catch {
            let first = error.issues.first
            throw ConfigFileError(
                code: first?.code ?? "invalid_value", path: path, field: first?.field,
                message: first?.message ?? error.description, issues: error.issues)
        }
    }

    /// A config from JSON or YAML text.
    public static func parse(_ text: String, format: Format, path: String? = nil) throws(ConfigFileError) -> KSMConfig {
        try config(from: value(text: text, format: format, path: path), path: path)
    }

    /// A config from a file; nothing is applied anywhere.
    public static func load(path: String) throws(ConfigFileError) -> KSMConfig {
        try config(from: value(path: path), path: path)
    }
}

/// A YAML syntax error outside (or inside) the supported subset, with its 1-based line.
public struct YAMLSubsetError: Error, Sendable, Equatable, CustomStringConvertible {
    public var line: Int
    public var message: String
    public init(line: Int, message: String) {
        self.line = line
        self.message = message
    }
    public var description: String { "line \(line): \(message)" }
}

/// A reader for the small part of YAML that config files need, without Foundation or a YAML
/// library: block mappings by indentation (spaces only), block sequences of scalars, `#`
/// comments, and scalars (integers, floats, true/false, null/~, plain, 'single' and "double"
/// quoted strings). Everything else (flow `{}`/`[]` collections, anchors, aliases, tags,
/// multi-line and block scalars, several documents) is refused with its line number rather than
/// guessed at.
public enum YAMLSubset {
    struct Line {
        var number: Int
        var indent: Int
        var text: Substring
    }

    public static func parse(_ text: String) throws(YAMLSubsetError) -> JSONValue {
        let lines = try tokenize(text)
        guard !lines.isEmpty else { return .null }
        var parser = Parser(lines: lines)
        let value = try parser.block(indent: lines[0].indent)
        if parser.i < lines.count {
            let l = lines[parser.i]
            throw YAMLSubsetError(line: l.number, message: "unexpected indentation (\(l.indent) spaces)")
        }
        return value
    }

    /// Significant lines: comments and blank lines dropped, indentation measured.
    static func tokenize(_ text: String) throws(YAMLSubsetError) -> [Line] {
        var out: [Line] = []
        var number = 0
        var started = false
        // "\r\n" is one Character in Swift, so split on every line break form.
        let breaks: (Character) -> Bool = { $0 == "\n" || $0 == "\r\n" || $0 == "\r" }
        for var raw in text.split(omittingEmptySubsequences: false, whereSeparator: breaks) {
            number += 1
            if number == 1 && raw.hasPrefix("\u{FEFF}") { raw = raw.dropFirst() }
            var indent = 0
            var idx = raw.startIndex
            while idx < raw.endIndex {
                if raw[idx] == " " {
                    indent += 1
                } else if raw[idx] == "\t" {
                    let rest = raw[idx...].drop(while: { $0 == " " || $0 == "\t" })
                    if rest.isEmpty || rest.hasPrefix("#") { break }
                    throw YAMLSubsetError(line: number, message: "tab in indentation; indent with spaces")
                } else {
                    break
                }
                idx = raw.index(after: idx)
            }
            let content = stripComment(raw[idx...])
            if content.isEmpty { continue }
            if indent == 0 && content.hasPrefix("%") {
                throw YAMLSubsetError(line: number, message: "YAML directives are outside the supported subset")
            }
            if indent == 0 && (content == "---" || content.hasPrefix("--- ")) {
                if started || content != "---" {
                    throw YAMLSubsetError(
                        line: number,
                        message: "several documents (or content after ---) are outside the supported subset")
                }
                continue
            }
            if indent == 0 && content == "..." { break }
            started = true
            out.append(Line(number: number, indent: indent, text: content))
        }
        return out
    }

    /// The line without its comment (a `#` at the start or after a space, outside quotes) and
    /// without trailing spaces. A quote opens a string only where a scalar starts.
    static func stripComment(_ s: Substring) -> Substring {
        var inDouble = false
        var inSingle = false
        var prev: Character? = nil
        var prevSignificant: Character? = nil
        var i = s.startIndex
        while i < s.endIndex {
            let c = s[i]
            if inDouble {
                if c == "\\" {
                    i = s.index(after: i)
                    if i < s.endIndex { prev = s[i] }
                    if i < s.endIndex { i = s.index(after: i) }
                    continue
                }
                if c == "\"" { inDouble = false }
            } else if inSingle {
                if c == "'" { inSingle = false }  // '' re-opens on the next char: same result
            } else if c == "#" && (prev == nil || prev == " " || prev == "\t") {
                return trimTrailing(s[s.startIndex..<i])
            } else if (c == "\"" || c == "'")
                && (prevSignificant == nil || prevSignificant == ":" || prevSignificant == "-")
                && (prev == nil || prev == " " || prev == "\t")
            {
                if c == "\"" { inDouble = true } else { inSingle = true }
            }
            if c != " " && c != "\t" { prevSignificant = c }
            prev = c
            i = s.index(after: i)
        }
        return trimTrailing(s)
    }

    static func trimTrailing(_ s: Substring) -> Substring {
        var end = s.endIndex
        while end > s.startIndex {
            let before = s.index(before: end)
            if s[before] == " " || s[before] == "\t" { end = before } else { break }
        }
        return s[s.startIndex..<end]
    }

    struct Parser {
        let lines: [Line]
        var i = 0

        init(lines: [Line]) { self.lines = lines }

        static func isSequenceItem(_ t: Substring) -> Bool { t == "-" || t.hasPrefix("- ") }

        mutating func block(indent: Int) throws(YAMLSubsetError) -> JSONValue {
            let first = lines[i]
            if Self.isSequenceItem(first.text) { return try sequence(indent: indent) }
            if try YAMLSubset.splitKey(first.text, line: first.number) != nil { return try mapping(indent: indent) }
            i += 1
            if i < lines.count && lines[i].indent >= indent {
                throw YAMLSubsetError(
                    line: lines[i].number,
                    message: "a value that spans several lines is outside the supported subset (quote it on one line)")
            }
            return try YAMLSubset.scalar(first.text, line: first.number)
        }

        mutating func mapping(indent: Int) throws(YAMLSubsetError) -> JSONValue {
            var object: [String: JSONValue] = [:]
            var seen: [String: Int] = [:]
            while i < lines.count {
                let l = lines[i]
                if l.indent < indent { break }
                if l.indent > indent {
                    throw YAMLSubsetError(line: l.number, message: "unexpected indentation (\(l.indent) spaces)")
                }
                if Self.isSequenceItem(l.text) {
                    throw YAMLSubsetError(
                        line: l.number, message: "a sequence item where a 'key: value' line was expected")
                }
                guard let (key, rest) = try YAMLSubset.splitKey(l.text, line: l.number) else {
                    throw YAMLSubsetError(line: l.number, message: "expected 'key: value'")
                }
                if let earlier = seen[key] {
                    throw YAMLSubsetError(line: l.number, message: "duplicate key '\(key)' (first on line \(earlier))")
                }
                seen[key] = l.number
                i += 1
                let value: JSONValue
                if rest.isEmpty {
                    if i < lines.count && lines[i].indent > indent {
                        value = try block(indent: lines[i].indent)
                    } else if i < lines.count && lines[i].indent == indent && Self.isSequenceItem(lines[i].text) {
                        value = try sequence(indent: indent)
                    } else {
                        value = .null
                    }
                } else {
                    value = try YAMLSubset.scalar(rest, line: l.number)
                    if i < lines.count && lines[i].indent > indent {
                        throw YAMLSubsetError(
                            line: lines[i].number,
                            message:
                                "unexpected indentation: '\(key)' already has a value on line \(l.number) (a value that spans several lines is outside the supported subset)"
                        )
                    }
                }
                object[key] = value
            }
            return .object(object)
        }

        mutating func sequence(indent: Int) throws(YAMLSubsetError) -> JSONValue {
            var items: [JSONValue] = []
            while i < lines.count {
                let l = lines[i]
                if l.indent < indent { break }
                if l.indent > indent {
                    throw YAMLSubsetError(line: l.number, message: "unexpected indentation (\(l.indent) spaces)")
                }
                guard Self.isSequenceItem(l.text) else { break }
                let rest = l.text.dropFirst().drop(while: { $0 == " " })
                if rest.isEmpty || Self.isSequenceItem(rest) {
                    throw YAMLSubsetError(
                        line: l.number, message: "empty or nested sequence items are outside the supported subset")
                }
                if try YAMLSubset.splitKey(rest, line: l.number) != nil {
                    throw YAMLSubsetError(
                        line: l.number, message: "sequences of mappings are outside the supported subset")
                }
                items.append(try YAMLSubset.scalar(rest, line: l.number))
                i += 1
                if i < lines.count && lines[i].indent > indent {
                    throw YAMLSubsetError(
                        line: lines[i].number, message: "unexpected indentation (\(lines[i].indent) spaces)")
                }
            }
            return .array(items)
        }
    }

    /// `key: rest` → (key, rest); nil when the line is not a mapping entry.
    static func splitKey(_ text: Substring, line: Int) throws(YAMLSubsetError) -> (String, Substring)? {
        if let q = text.first, q == "\"" || q == "'" {
            let (key, end) = try quoted(text, line: line)
            let after = text[end...]
            guard after.hasPrefix(":") else { return nil }
            let rest = after.dropFirst()
            guard rest.isEmpty || rest.first == " " else { return nil }
            return (key, rest.drop(while: { $0 == " " }))
        }
        var idx = text.startIndex
        while idx < text.endIndex {
            if text[idx] == ":" {
                let next = text.index(after: idx)
                if next == text.endIndex || text[next] == " " {
                    let key = text[text.startIndex..<idx].trimmed
                    if key.isEmpty { throw YAMLSubsetError(line: line, message: "empty key") }
                    if let c = key.first, "{[&*!|>".contains(c) {
                        throw YAMLSubsetError(
                            line: line, message: "complex keys (\(c)) are outside the supported subset")
                    }
                    return (key, text[next...].drop(while: { $0 == " " }))
                }
            }
            idx = text.index(after: idx)
        }
        return nil
    }

    /// A quoted string at the start of `text`; returns it and the index after the closing quote.
    static func quoted(_ text: Substring, line: Int) throws(YAMLSubsetError) -> (String, Substring.Index) {
        guard let q = text.first else { throw YAMLSubsetError(line: line, message: "expected a quoted string") }
        var out = ""
        var i = text.index(after: text.startIndex)
        while i < text.endIndex {
            let c = text[i]
            if q == "'" {
                if c == "'" {
                    let next = text.index(after: i)
                    if next < text.endIndex && text[next] == "'" {
                        out.append("'")
                        i = text.index(after: next)
                        continue
                    }
                    return (out, next)
                }
                out.append(c)
            } else {
                if c == "\"" { return (out, text.index(after: i)) }
                if c == "\\" {
                    i = text.index(after: i)
                    guard i < text.endIndex else { break }
                    switch text[i] {
                    case "\\": out.append("\\")
                    case "\"": out.append("\"")
                    case "/": out.append("/")
                    case "n": out.append("\n")
                    case "t": out.append("\t")
                    case "r": out.append("\r")
                    case "0": out.append("\0")
                    case "u":
                        let start = text.index(after: i)
                        guard let end = text.index(start, offsetBy: 4, limitedBy: text.endIndex),
                            let code = UInt32(text[start..<end], radix: 16), let scalar = Unicode.Scalar(code)
                        else {
                            throw YAMLSubsetError(line: line, message: "bad \\u escape (expected 4 hex digits)")
                        }
                        out.unicodeScalars.append(scalar)
                        i = text.index(before: end)
                    default:
                        throw YAMLSubsetError(
                            line: line, message: "unsupported escape '\\\(text[i])' in a double-quoted string")
                    }
                } else {
                    out.append(c)
                }
            }
            i = text.index(after: i)
        }
        throw YAMLSubsetError(line: line, message: "unterminated quoted string")
    }

    /// A scalar value: quoted string, null, bool, integer, float, or plain string.
    static func scalar(_ text: Substring, line: Int) throws(YAMLSubsetError) -> JSONValue {
        guard let c = text.first else { return .null }
        if c == "\"" || c == "'" {
            let (s, end) = try quoted(text, line: line)
            if end != text.endIndex {
                throw YAMLSubsetError(line: line, message: "unexpected text after the quoted string: '\(text[end...])'")
            }
            return .string(s)
        }
        switch c {
        case "{", "[":
            throw YAMLSubsetError(
                line: line, message: "flow collections ('\(c)') are outside the supported subset; use indented blocks")
        case "&": throw YAMLSubsetError(line: line, message: "anchors (&) are outside the supported subset")
        case "*": throw YAMLSubsetError(line: line, message: "aliases (*) are outside the supported subset")
        case "!": throw YAMLSubsetError(line: line, message: "tags (!) are outside the supported subset")
        case "|", ">":
            throw YAMLSubsetError(line: line, message: "block scalars (\(c)) are outside the supported subset")
        case "@", "`": throw YAMLSubsetError(line: line, message: "'\(c)' cannot start a plain value; quote it")
        default: break
        }
        if text.contains(": ") || text.hasSuffix(":") {
            throw YAMLSubsetError(line: line, message: "':' inside a plain value; quote the value")
        }
        switch text {
        case "null", "Null", "NULL", "~": return .null
        case "true", "True", "TRUE": return .bool(true)
        case "false", "False", "FALSE": return .bool(false)
        default: break
        }
        if isInteger(text) {
            guard let v = Int64(text.hasPrefix("+") ? text.dropFirst() : text) else {
                throw YAMLSubsetError(line: line, message: "integer \(text) is out of range")
            }
            return .int(v)
        }
        if isFloat(text) {
            guard let d = Double(String(text)), d.isFinite else {
                throw YAMLSubsetError(line: line, message: "number \(text) is out of range")
            }
            return .double(d)
        }
        let lower = text.lowercased()
        if [".inf", "+.inf", "-.inf", ".nan"].contains(lower) {
            throw YAMLSubsetError(line: line, message: "infinite and NaN numbers are outside the supported subset")
        }
        return .string(String(text))
    }

    static func isInteger(_ t: Substring) -> Bool {
        var s = t
        if s.first == "-" || s.first == "+" { s = s.dropFirst() }
        return !s.isEmpty && s.allSatisfy { $0.isASCII && $0.isNumber }
    }

    static func isFloat(_ t: Substring) -> Bool {
        var s = t
        if s.first == "-" || s.first == "+" { s = s.dropFirst() }
        let digit: (Character) -> Bool = { $0.isASCII && $0.isNumber }
        let intPart = s.prefix(while: digit)
        s = s.dropFirst(intPart.count)
        var fracCount = 0
        if s.first == "." {
            s = s.dropFirst()
            let frac = s.prefix(while: digit)
            fracCount = frac.count
            s = s.dropFirst(frac.count)
        } else if s.first != "e" && s.first != "E" {
            return false
        }
        guard intPart.count + fracCount > 0 else { return false }
        if s.first == "e" || s.first == "E" {
            s = s.dropFirst()
            if s.first == "-" || s.first == "+" { s = s.dropFirst() }
            let exp = s.prefix(while: digit)
            guard !exp.isEmpty else { return false }
            s = s.dropFirst(exp.count)
        }
        return s.isEmpty
    }
}
