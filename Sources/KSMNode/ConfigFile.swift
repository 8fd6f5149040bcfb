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

/// A config file that cannot be used, with where and why: the file, the field (unknown, wrong
/// type, invalid value) and the reason.
public struct ConfigFileError: Error, Sendable, Equatable, CustomStringConvertible {
    /// `unreadable`, `empty`, `malformed_json`, `duplicate_field`, `yaml_not_supported`, `unknown_field`, `invalid_type`,
    /// `missing_field`, `invalid_value`, or a validation code (`out_of_range`, `min_above_max`…).
    public var code: String
    public var path: String?
    public var field: String?
    public var message: String
    /// Every validation problem when the values are invalid (one per field).
    public var issues: [ValidationIssue]

    public init(
        code: String, path: String? = nil, field: String? = nil, message: String,
        issues: [ValidationIssue] = []
    ) {
        self.code = code
        self.path = path
        self.field = field
        self.message = message
        self.issues = issues
    }

    public var description: String {
        var parts: [String] = []
        if let path { parts.append(path) }
        if issues.count > 1 {
            parts.append(issues.map(\.description).joined(separator: "; "))
        } else {
            if let field { parts.append(field) }
            parts.append(message)
        }
        return parts.joined(separator: ": ")
    }
}

/// Config files for the standalone agent and `ksmfleet config apply --file`: JSON with the
/// shape of a node config (without `generation`). YAML is not read (a YAML file is refused with
/// a message saying so): see docs/benchmarks.md, "Config files: JSON only", for why.
public enum ConfigFile {
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

    /// The document of a JSON text as a JSONValue (syntax only; no field checks).
    public static func value(text: String, path: String? = nil) throws(ConfigFileError) -> JSONValue {
        guard !text.trimmed.isEmpty else {
            throw ConfigFileError(code: "empty", path: path, message: "the file is empty")
        }
        let value: JSONValue
        do {
            value = try StrictJSON.decoder().decode(JSONValue.self, from: Data(text.utf8))
        } catch {
            if looksLikeYAML(path: path, text: text) {
                throw ConfigFileError(
                    code: "yaml_not_supported", path: path,
                    message:
                        "this looks like YAML; config files are JSON (the same field names, e.g. {\"run\": \"run\", \"mode\": \"standard\", \"thresCoef\": 20}): convert it"
                )
            }
            throw ConfigFileError(
                code: "malformed_json", path: path, message: "not valid JSON: \(describeJSONError(error))")
        }
        if value == .null { throw ConfigFileError(code: "empty", path: path, message: "the file is empty") }
        if let key = StrictJSON.duplicateKey(in: Data(text.utf8)) {
            throw ConfigFileError(
                code: "duplicate_field", path: path, field: key.path,
                message: "'\(key.name)' appears twice in one object; write each field once")
        }
        return value
    }

    /// A text that is not JSON and that YAML was meant: a `.yaml`/`.yml` file, or one that does
    /// not start with `{` and has a `# comment`, a `---` or a `key:` line.
    static func looksLikeYAML(path: String?, text: String) -> Bool {
        if let path {
            let lower = path.lowercased()
            if lower.hasSuffix(".yaml") || lower.hasSuffix(".yml") { return true }
        }
        let body = text.trimmed
        if body.hasPrefix("{") || body.hasPrefix("[") { return false }
        return body.split(whereSeparator: \.isNewline).contains { line in
            let l = line.trimmed
            if l.hasPrefix("#") || l == "---" { return true }
            guard let colon = l.firstIndex(of: ":") else { return false }
            let key = l[..<colon]
            return !key.isEmpty && key.allSatisfy { $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" }
        }
    }

    static func describeJSONError(_ error: any Error) -> String {
        if case DecodingError.dataCorrupted(let ctx) = error {
            return ctx.underlyingError.map { "\($0)" } ?? ctx.debugDescription
        }
        return "\(error)"
    }

    /// The document of a JSON file as a JSONValue (for `ksmfleet config apply --file`).
    public static func value(path: String) throws(ConfigFileError) -> JSONValue {
        try value(text: readText(path: path), path: path)
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

    /// A config from JSON text.
    public static func parse(_ text: String, path: String? = nil) throws(ConfigFileError) -> KSMConfig {
        try config(from: value(text: text, path: path), path: path)
    }

    /// A config from a file; nothing is applied anywhere.
    public static func load(path: String) throws(ConfigFileError) -> KSMConfig {
        try config(from: value(path: path), path: path)
    }
}
