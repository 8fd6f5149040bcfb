#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A parsed JSON document, used to check input for unknown fields before decoding it.
public enum JSONValue: Codable, Sendable, Equatable, Hashable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    public init(from decoder: any Decoder) throws {
        if let keyed = try? decoder.container(keyedBy: Key.self) {
            var object: [String: JSONValue] = [:]
            // In a fixed order: `allKeys` comes from a dictionary, whose order differs from one
            // decoding to the next, and a body with two bad values must get the same error each time.
            for key in keyed.allKeys.sorted(by: { $0.stringValue < $1.stringValue }) {
                object[key.stringValue] = try keyed.decode(JSONValue.self, forKey: key)
            }
            self = .object(object)
        } else if var list = try? decoder.unkeyedContainer() {
            var items: [JSONValue] = []
            while !list.isAtEnd { items.append(try list.decode(JSONValue.self)) }
            self = .array(items)
        } else {
            let single = try decoder.singleValueContainer()
            if single.decodeNil() {
                self = .null
            } else if let b = try? single.decode(Bool.self) {
                self = .bool(b)
            } else if let i = try? single.decode(Int64.self) {
                self = .int(i)
            } else if let d = try? single.decode(Double.self) {
                self = .double(d)
            } else {
                self = .string(try single.decode(String.self))
            }
        }
    }

    public func encode(to encoder: any Encoder) throws {
        switch self {
        case .null:
            var c = encoder.singleValueContainer()
            try c.encodeNil()
        case .bool(let b):
            var c = encoder.singleValueContainer()
            try c.encode(b)
        case .int(let i):
            var c = encoder.singleValueContainer()
            try c.encode(i)
        case .double(let d):
            var c = encoder.singleValueContainer()
            try c.encode(d)
        case .string(let s):
            var c = encoder.singleValueContainer()
            try c.encode(s)
        case .array(let items):
            var c = encoder.unkeyedContainer()
            for item in items { try c.encode(item) }
        case .object(let object):
            var c = encoder.container(keyedBy: Key.self)
            for (k, v) in object.sorted(by: { $0.key < $1.key }) { try c.encode(v, forKey: Key(stringValue: k)) }
        }
    }
}

/// A type whose JSON input is checked for fields it does not know.
public protocol KnownFields {
    /// The JSON keys this type reads.
    static var fieldNames: Set<String> { get }
    /// Keys whose value is an object (or an array of objects) of another checked type.
    static var nestedFields: [String: any KnownFields.Type] { get }
}

extension KnownFields {
    public static var nestedFields: [String: any KnownFields.Type] { [:] }
}

/// Bad input, said in terms of the field an operator or a client has to fix.
public struct InputError: Error, Sendable, Equatable, CustomStringConvertible {
    /// `malformed_json`, `unknown_field`, `missing_field`, `invalid_type`, `invalid_value`, or a
    /// validation code.
    public var code: String
    public var field: String?
    public var message: String

    public init(code: String, field: String?, message: String) {
        self.code = code
        self.field = field
        self.message = message
    }

    public var description: String { field.map { "\($0): \(message)" } ?? message }
}

/// Decoding that refuses malformed JSON, a key named twice, unknown fields and wrong types with
/// the field named.
public enum StrictJSON {
    public static func decoder() -> JSONDecoder {
        let d = JSONDecoder()
        d.dateDecodingStrategy = .iso8601
        return d
    }

    public static func encoder(pretty: Bool = false) -> JSONEncoder {
        let e = JSONEncoder()
        e.dateEncodingStrategy = .iso8601
        e.outputFormatting = pretty ? [.sortedKeys, .prettyPrinted] : [.sortedKeys]
        return e
    }

    public static func decode<T: Decodable & KnownFields>(_ type: T.Type, from data: Data) throws(InputError) -> T {
        try decode(type, from: value(from: data), originalData: data)
    }

    public static func decode<T: Decodable & KnownFields>(
        _ type: T.Type, from value: JSONValue, originalData: Data? = nil
    ) throws(InputError) -> T {
        try checkFields(value, as: type, path: "")
        do {
            let data = try originalData ?? encoder().encode(value)
            return try decoder().decode(type, from: data)
        } catch let error as DecodingError {
            // Foundation names no field for a number that does not fit an integer ("The given
            // data was not valid JSON."), and the object, not the field, for a date that is not
            // ISO 8601: the value decoder names the field, when it finds one further down.
            if case .dataCorrupted(let ctx) = error {
                do {
                    _ = try JSONValueDecoder.decode(type, value, path: [])
                } catch let precise as DecodingError {
                    if case .dataCorrupted(let p) = precise, p.codingPath.count > ctx.codingPath.count {
                        throw inputError(precise)
                    }
                } catch {}
            }
            throw inputError(error)
        } catch {
            throw InputError(code: "invalid_value", field: nil, message: "\(error)")
        }
    }

    /// Refuses keys that `type` does not know, recursively through its nested objects.
    public static func checkFields(_ value: JSONValue, as type: any KnownFields.Type, path: String) throws(InputError) {
        switch value {
        case .object(let object):
            for key in object.keys.sorted() {
                let fieldPath = path.isEmpty ? key : "\(path).\(key)"
                guard type.fieldNames.contains(key) else {
                    let known = type.fieldNames.sorted().joined(separator: ", ")
                    throw InputError(
                        code: "unknown_field", field: fieldPath,
                        message: "unknown field '\(key)'; known fields here: \(known)")
                }
                if let nested = type.nestedFields[key], let child = object[key] {
                    try checkFields(child, as: nested, path: fieldPath)
                }
            }
        case .array(let items):
            for (i, item) in items.enumerated() { try checkFields(item, as: type, path: "\(path)[\(i)]") }
        default:
            break
        }
    }

    static func path(_ codingPath: [any CodingKey], _ extra: (any CodingKey)? = nil) -> String? {
        var parts: [String] = []
        for key in codingPath + (extra.map { [$0] } ?? []) {
            if let i = key.intValue, key.stringValue.hasPrefix("Index") || key.stringValue == "\(i)" {
                parts.append("[\(i)]")
            } else {
                parts.append((parts.isEmpty ? "" : ".") + key.stringValue)
            }
        }
        let joined = parts.joined()
        return joined.isEmpty ? nil : joined
    }

    static func inputError(_ error: DecodingError) -> InputError {
        switch error {
        case .keyNotFound(let key, let ctx):
            return InputError(
                code: "missing_field", field: path(ctx.codingPath, key), message: "required field is missing")
        case .typeMismatch(let type, let ctx):
            return InputError(
                code: "invalid_type", field: path(ctx.codingPath), message: "expected \(typeName(type))")
        case .valueNotFound(let type, let ctx):
            return InputError(
                code: "invalid_type", field: path(ctx.codingPath), message: "expected \(typeName(type)), found null")
        case .dataCorrupted(let ctx):
            return InputError(code: "invalid_value", field: path(ctx.codingPath), message: ctx.debugDescription)
        @unknown default:
            return InputError(code: "invalid_value", field: nil, message: "\(error)")
        }
    }

    static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is Int.Type, is Int64.Type, is Int32.Type, is UInt64.Type: return "an integer"
        case is Double.Type: return "a number"
        case is String.Type: return "a string"
        case is Bool.Type: return "true or false"
        default:
            let name = "\(type)"
            if name.hasPrefix("Array") { return "an array" }
            if name.hasPrefix("Dictionary") { return "an object" }
            return "a value of type \(name)"
        }
    }

    static func describe(_ error: any Error) -> String {
        if case DecodingError.dataCorrupted(let ctx) = error {
            return (ctx.underlyingError.map { "\($0)" }) ?? ctx.debugDescription
        }
        return "\(error)"
    }
}

extension TunerParameters: KnownFields {
    public static var fieldNames: Set<String> { Set(CodingKeys.allCases.map(\.stringValue)) }
}

extension ThrottleSettings: KnownFields {
    public static var fieldNames: Set<String> { Set(CodingKeys.allCases.map(\.stringValue)) }
}

extension AdvisorSettings: KnownFields {
    public static var fieldNames: Set<String> { Set(CodingKeys.allCases.map(\.stringValue)) }
}

extension KSMConfig: KnownFields {
    public static var fieldNames: Set<String> { Set(CodingKeys.allCases.map(\.stringValue)) }
    public static var nestedFields: [String: any KnownFields.Type] {
        ["parameters": TunerParameters.self, "throttle": ThrottleSettings.self, "advisor": AdvisorSettings.self]
    }
}
