#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Decodes a `JSONValue` into a `Decodable` type, saying where a value does not fit: which field
/// holds a number with a fraction, or out of an integer's range, or a date that is not ISO 8601.
/// Foundation's decoder says only "The given data was not valid JSON." for those, with no field
/// (`StrictJSON.decode` asks this one after Foundation refused a body, for the error's words).
struct JSONValueDecoder: Decoder {
    let value: JSONValue
    let codingPath: [any CodingKey]
    /// How many single-value decodes in a row at this path led here: a type whose `init(from:)`
    /// asks its single value container for itself (a primitive this decoder does not name) is
    /// refused instead of recursing for ever.
    let singleDepth: Int
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    init(_ value: JSONValue, codingPath: [any CodingKey] = [], singleDepth: Int = 0) {
        self.value = value
        self.codingPath = codingPath
        self.singleDepth = singleDepth
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        guard case .object(let object) = value else {
            throw DecodingError.typeMismatch([String: JSONValue].self, .init(codingPath: codingPath, debugDescription: "expected an object"))
        }
        return KeyedDecodingContainer(Keyed(object: object, codingPath: codingPath))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        guard case .array(let items) = value else {
            throw DecodingError.typeMismatch([JSONValue].self, .init(codingPath: codingPath, debugDescription: "expected an array"))
        }
        return Unkeyed(items: items, codingPath: codingPath)
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer {
        Single(value: value, codingPath: codingPath, depth: singleDepth)
    }

    /// `value` as a `T`, primitives checked here (the field's path in every error).
    static func decode<T: Decodable>(
        _ type: T.Type, _ value: JSONValue, path: [any CodingKey], singleDepth: Int = 0
    ) throws -> T {
        func corrupt(_ message: String) -> DecodingError {
            .dataCorrupted(.init(codingPath: path, debugDescription: message))
        }
        func mismatch(_ expected: Any.Type) -> DecodingError {
            .typeMismatch(expected, .init(codingPath: path, debugDescription: "expected \(expected)"))
        }
        if case .null = value {
            throw DecodingError.valueNotFound(type, .init(codingPath: path, debugDescription: "found null"))
        }
        func integer<I: FixedWidthInteger>(_: I.Type) throws -> I {
            switch value {
            case .int(let i):
                guard let v = I(exactly: i) else { throw corrupt("\(i) is out of range (\(I.min)…\(I.max))") }
                return v
            case .double(let d):
                guard d.rounded() == d else { throw corrupt("expected a whole number, got \(d)") }
                guard let v = I(exactly: d) else { throw corrupt("\(d) is out of range (\(I.min)…\(I.max))") }
                return v
            default: throw mismatch(I.self)
            }
        }
        func floating<F: BinaryFloatingPoint>(_: F.Type) throws -> F {
            switch value {
            case .int(let i): return F(i)
            case .double(let d): return F(d)
            default: throw mismatch(F.self)
            }
        }
        if let integerType = type as? any FixedWidthInteger.Type { return try integer(integerType) as! T }
        if let floatType = type as? any BinaryFloatingPoint.Type { return try floating(floatType) as! T }
        switch type {
        case is Bool.Type:
            guard case .bool(let b) = value else { throw mismatch(Bool.self) }
            return b as! T
        case is String.Type:
            guard case .string(let s) = value else { throw mismatch(String.self) }
            return s as! T
        case is Date.Type:
            guard case .string(let s) = value else { throw mismatch(String.self) }
            guard let date = try? Date(s, strategy: .iso8601) else {
                throw corrupt("expected a date and time in ISO 8601 (2026-12-07T17:00:00Z), got \"\(s.prefix(40))\"")
            }
            return date as! T
        default:
            guard singleDepth < 4 else { throw mismatch(T.self) }
            return try T(from: JSONValueDecoder(value, codingPath: path, singleDepth: singleDepth + 1))
        }
    }

    struct Keyed<Key: CodingKey>: KeyedDecodingContainerProtocol {
        let object: [String: JSONValue]
        let codingPath: [any CodingKey]
        var allKeys: [Key] { object.keys.compactMap { Key(stringValue: $0) } }
        func contains(_ key: Key) -> Bool { object[key.stringValue] != nil }
        func child(_ key: Key) throws -> JSONValue {
            guard let v = object[key.stringValue] else {
                throw DecodingError.keyNotFound(key, .init(codingPath: codingPath, debugDescription: "missing"))
            }
            return v
        }
        func decodeNil(forKey key: Key) throws -> Bool { try child(key) == .null }
        func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
            try JSONValueDecoder.decode(type, child(key), path: codingPath + [key])
        }
        func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws
            -> KeyedDecodingContainer<NestedKey>
        {
            try JSONValueDecoder(child(key), codingPath: codingPath + [key]).container(keyedBy: type)
        }
        func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
            try JSONValueDecoder(child(key), codingPath: codingPath + [key]).unkeyedContainer()
        }
        func superDecoder() throws -> any Decoder { JSONValueDecoder(.object(object), codingPath: codingPath) }
        func superDecoder(forKey key: Key) throws -> any Decoder {
            JSONValueDecoder(try child(key), codingPath: codingPath + [key])
        }
    }

    struct Index: CodingKey {
        var intValue: Int?
        var stringValue: String { "Index \(intValue ?? 0)" }
        init(_ i: Int) { intValue = i }
        init?(intValue: Int) { self.intValue = intValue }
        init?(stringValue: String) { nil }
    }

    struct Unkeyed: UnkeyedDecodingContainer {
        let items: [JSONValue]
        let codingPath: [any CodingKey]
        var currentIndex = 0
        var count: Int? { items.count }
        var isAtEnd: Bool { currentIndex >= items.count }
        mutating func next() throws -> (JSONValue, [any CodingKey]) {
            guard !isAtEnd else {
                throw DecodingError.valueNotFound(
                    JSONValue.self, .init(codingPath: codingPath, debugDescription: "the array has no more elements"))
            }
            defer { currentIndex += 1 }
            return (items[currentIndex], codingPath + [Index(currentIndex)])
        }
        mutating func decodeNil() throws -> Bool {
            guard !isAtEnd, items[currentIndex] == .null else { return false }
            currentIndex += 1
            return true
        }
        mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
            let (v, path) = try next()
            return try JSONValueDecoder.decode(type, v, path: path)
        }
        mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws
            -> KeyedDecodingContainer<NestedKey>
        {
            let (v, path) = try next()
            return try JSONValueDecoder(v, codingPath: path).container(keyedBy: type)
        }
        mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
            let (v, path) = try next()
            return try JSONValueDecoder(v, codingPath: path).unkeyedContainer()
        }
        mutating func superDecoder() throws -> any Decoder {
            let (v, path) = try next()
            return JSONValueDecoder(v, codingPath: path)
        }
    }

    struct Single: SingleValueDecodingContainer {
        let value: JSONValue
        let codingPath: [any CodingKey]
        let depth: Int
        func decodeNil() -> Bool { value == .null }
        func decode<T: Decodable>(_ type: T.Type) throws -> T {
            try JSONValueDecoder.decode(type, value, path: codingPath, singleDepth: depth)
        }
    }
}
