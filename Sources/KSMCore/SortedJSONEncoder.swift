// FoundationEssentials where it exists: KSMCore is linked into the agent, which must not pull in
// full Foundation (AgentBinaryTests).
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The JSON `StrictJSON.encoder()` writes (keys sorted by their UTF-8 bytes, ISO 8601 dates to
/// the second, slashes escaped, integral doubles without ".0"), byte for byte, without
/// Foundation's intermediate tree: the API's big replies (a savings report by node, a year of a
/// node's hourly history: 0.5–3 MB) spent most of their time in `JSONEncoder`, which allocates an
/// object per scalar and hashes every key of every object. Here each scalar is written once into
/// one byte buffer; objects and arrays only keep where their members' bytes are, and are put in
/// order when the whole value is written out. No library on the package mirror does this
/// (measured in docs/benchmarks.md; `SortedJSONEncoderTests` compares it with `JSONEncoder` on
/// random values of the API's types).
///
/// Values Foundation's encoder treats specially besides `Date` (`Data`, `URL`, `Decimal`) are
/// written by `JSONEncoder` itself, so they come out the same too.
public struct SortedJSONEncoder: Sendable {
    public init() {}

    public func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        let state = JSONEncodingState()
        let root = try state.encodeValue(value, path: nil)
        guard let root else {
            throw EncodingError.invalidValue(
                value, .init(codingPath: [], debugDescription: "Top-level \(T.self) did not encode any values."))
        }
        var out: [UInt8] = []
        out.reserveCapacity(state.scratch.count + state.scratch.count / 4 + 16)
        state.write(root, into: &out)
        return out
    }
}

/// A value being encoded: bytes already written (a scalar, or a value rendered by Foundation),
/// an object or array whose members are still open, or what a `superEncoder` comes to hold (an
/// empty object if nothing).
enum JSONNode {
    case bytes(Range<Int>)
    case object(JSONObjectBox)
    case array(JSONArrayBox)
    case encoder(NodeEncoder)
}

// Single-threaded within one `encode` call, with no overlapping access: the exclusivity checks
// at run time (a third of the encoder's time on a report by node) are left out.
final class JSONObjectBox {
    @exclusivity(unchecked) var keys: [String] = []
    @exclusivity(unchecked) var values: [JSONNode] = []

    /// Adds `key`; a key set twice is written once, with its last value (`JSONEncodingState.write`).
    func set(_ key: String, _ node: JSONNode) {
        keys.append(key)
        values.append(node)
    }
}

final class JSONArrayBox {
    @exclusivity(unchecked) var items: [JSONNode] = []
}

final class JSONEncodingState {
    @exclusivity(unchecked) var scratch: [UInt8] = []
    /// The key orders of the last few objects and their sorted permutations: the objects of a
    /// reply are mostly a few types (a row and its nested values), whose keys come in one order.
    @exclusivity(unchecked) private var orders: [(keys: [String], order: [Int])] = []
    @exclusivity(unchecked) private var nextOrder = 0

    init() { scratch.reserveCapacity(1 << 16) }

    // MARK: scalars

    func append(_ s: StaticString) -> JSONNode {
        let start = scratch.count
        s.withUTF8Buffer { scratch.append(contentsOf: $0) }
        return .bytes(start..<scratch.count)
    }

    func null() -> JSONNode { append("null") }
    func bool(_ b: Bool) -> JSONNode { b ? append("true") : append("false") }

    func integer<I: BinaryInteger>(_ v: I) -> JSONNode {
        let start = scratch.count
        JSONText.integer(v, into: &scratch)
        return .bytes(start..<scratch.count)
    }

    /// A Double or Float as `JSONText.float` writes it; JSONEncoder's error for NaN and the
    /// infinities (at `path` and `key`).
    func float<F: BinaryFloatingPoint & CustomStringConvertible>(
        _ v: F, _ path: JSONPath?, _ key: (any CodingKey)? = nil
    ) throws -> JSONNode {
        let start = scratch.count
        guard JSONText.float(v, into: &scratch) else {
            throw EncodingError.invalidValue(
                v, .init(codingPath: JSONPath.keys(path, key), debugDescription: "Unable to encode \(F.self).\(v) directly in JSON."))
        }
        return .bytes(start..<scratch.count)
    }

    func string(_ s: String) -> JSONNode {
        let start = scratch.count
        JSONText.string(s, into: &scratch)
        return .bytes(start..<scratch.count)
    }

    func date(_ d: Date) -> JSONNode {
        let start = scratch.count
        JSONText.date(d, into: &scratch)
        return .bytes(start..<scratch.count)
    }

    // MARK: values

    /// Encodes any value; nil when it encoded nothing (an empty `encode(to:)`).
    func encodeValue<T: Encodable>(_ value: T, path: JSONPath?) throws -> JSONNode? {
        // Metatype comparisons: cheaper than a cast per value, and most values are none of these.
        let type = T.self
        if type == Double.self { return try float(value as! Double, path) }
        if type == String.self { return string(value as! String) }
        if type == Int.self { return integer(value as! Int) }
        if type == Int64.self { return integer(value as! Int64) }
        if type == Bool.self { return bool(value as! Bool) }
        if type == Date.self { return date(value as! Date) }
        if type == Float.self { return try float(value as! Float, path) }
        switch value {
        case is Data, is URL, is Decimal:
            // Foundation's own forms (base64, the absolute string, the decimal's text).
            let encoder = StrictJSON.encoder()
            let bytes = try encoder.encode(value)
            let start = scratch.count
            scratch.append(contentsOf: bytes)
            return .bytes(start..<scratch.count)
        default:
            let encoder = NodeEncoder(state: self, path: path)
            try value.encode(to: encoder)
            return encoder.node
        }
    }

    /// A member of an object or array: a value that encodes nothing is an empty object, as with
    /// JSONEncoder.
    func member<T: Encodable>(_ value: T, path: JSONPath?) throws -> JSONNode {
        try encodeValue(value, path: path) ?? .object(JSONObjectBox())
    }

    // MARK: output

    func write(_ node: JSONNode, into out: inout [UInt8]) {
        switch node {
        case .bytes(let r):
            scratch.withUnsafeBufferPointer { out.append(contentsOf: UnsafeBufferPointer(rebasing: $0[r])) }
        case .array(let a):
            out.append(UInt8(ascii: "["))
            for (i, item) in a.items.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                write(item, into: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let o):
            out.append(UInt8(ascii: "{"))
            for (n, i) in sortedOrder(o.keys).enumerated() {
                if n > 0 { out.append(UInt8(ascii: ",")) }
                JSONText.string(o.keys[i], into: &out)
                out.append(UInt8(ascii: ":"))
                write(o.values[i], into: &out)
            }
            out.append(UInt8(ascii: "}"))
        case .encoder(let e):
            write(e.node ?? .object(JSONObjectBox()), into: &out)
        }
    }

    /// The indices of `keys` in the order of their UTF-8 bytes; of a key set more than once only
    /// the last (as a dictionary keeps it).
    private func sortedOrder(_ keys: [String]) -> [Int] {
        for cached in orders where cached.keys == keys { return cached.order }
        let sorted = keys.indices.sorted { a, b in
            keys[a] == keys[b] ? a < b : keys[a].utf8.lexicographicallyPrecedes(keys[b].utf8)
        }
        var order: [Int] = []
        order.reserveCapacity(sorted.count)
        for (n, i) in sorted.enumerated() where n + 1 == sorted.count || keys[sorted[n + 1]] != keys[i] {
            order.append(i)
        }
        if orders.count < 8 {
            orders.append((keys, order))
        } else {
            orders[nextOrder] = (keys, order)
            nextOrder = (nextOrder + 1) % 8
        }
        return order
    }
}

/// The `Encoder` a value encodes itself into: it holds the value's node once a container was
/// asked for (asking again for a keyed container returns the same object, as Foundation does).
final class NodeEncoder: Encoder {
    let state: JSONEncodingState
    let path: JSONPath?
    var codingPath: [any CodingKey] { JSONPath.keys(path) }
    var userInfo: [CodingUserInfoKey: Any] { [:] }
    @exclusivity(unchecked) var node: JSONNode?

    init(state: JSONEncodingState, path: JSONPath?) {
        self.state = state
        self.path = path
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        let box: JSONObjectBox
        if case .object(let existing) = node {
            box = existing
        } else {
            box = JSONObjectBox()
            node = .object(box)
        }
        return KeyedEncodingContainer(NodeKeyedContainer<Key>(state: state, box: box, path: path))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        let box: JSONArrayBox
        if case .array(let existing) = node {
            box = existing
        } else {
            box = JSONArrayBox()
            node = .array(box)
        }
        return NodeUnkeyedContainer(state: state, box: box, path: path)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer { NodeSingleValueContainer(encoder: self) }
}

struct NodeKeyedContainer<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let state: JSONEncodingState
    let box: JSONObjectBox
    let path: JSONPath?
    var codingPath: [any CodingKey] { JSONPath.keys(path) }

    private func put(_ node: JSONNode, _ key: Key) { box.set(key.stringValue, node) }

    mutating func encodeNil(forKey key: Key) throws { put(state.null(), key) }
    mutating func encode(_ value: Bool, forKey key: Key) throws { put(state.bool(value), key) }
    mutating func encode(_ value: String, forKey key: Key) throws { put(state.string(value), key) }
    mutating func encode(_ value: Double, forKey key: Key) throws { put(try state.float(value, path, key), key) }
    mutating func encode(_ value: Float, forKey key: Key) throws { put(try state.float(value, path, key), key) }
    mutating func encode(_ value: Int, forKey key: Key) throws { put(state.integer(value), key) }
    mutating func encode(_ value: Int8, forKey key: Key) throws { put(state.integer(value), key) }
    mutating func encode(_ value: Int16, forKey key: Key) throws { put(state.integer(value), key) }
    mutating func encode(_ value: Int32, forKey key: Key) throws { put(state.integer(value), key) }
    mutating func encode(_ value: Int64, forKey key: Key) throws { put(state.integer(value), key) }
    mutating func encode(_ value: UInt, forKey key: Key) throws { put(state.integer(value), key) }
    mutating func encode(_ value: UInt8, forKey key: Key) throws { put(state.integer(value), key) }
    mutating func encode(_ value: UInt16, forKey key: Key) throws { put(state.integer(value), key) }
    mutating func encode(_ value: UInt32, forKey key: Key) throws { put(state.integer(value), key) }
    mutating func encode(_ value: UInt64, forKey key: Key) throws { put(state.integer(value), key) }
    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        put(try state.member(value, path: JSONPath(path, key)), key)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(
        keyedBy keyType: NestedKey.Type, forKey key: Key
    ) -> KeyedEncodingContainer<NestedKey> {
        let nested = JSONObjectBox()
        put(.object(nested), key)
        return KeyedEncodingContainer(
            NodeKeyedContainer<NestedKey>(state: state, box: nested, path: JSONPath(path, key)))
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        let nested = JSONArrayBox()
        put(.array(nested), key)
        return NodeUnkeyedContainer(state: state, box: nested, path: JSONPath(path, key))
    }

    mutating func superEncoder() -> any Encoder { superEncoder(key: "super") }
    mutating func superEncoder(forKey key: Key) -> any Encoder { superEncoder(key: key.stringValue) }

    private func superEncoder(key: String) -> any Encoder {
        let encoder = NodeEncoder(state: state, path: JSONPath(path, AnyJSONKey(key)))
        box.set(key, .encoder(encoder))
        return encoder
    }
}

struct NodeUnkeyedContainer: UnkeyedEncodingContainer {
    let state: JSONEncodingState
    let box: JSONArrayBox
    let path: JSONPath?
    var codingPath: [any CodingKey] { JSONPath.keys(path) }
    var count: Int { box.items.count }

    private func add(_ node: JSONNode) { box.items.append(node) }
    private var nextKey: AnyJSONKey { AnyJSONKey(index: box.items.count) }
    private var nextPath: JSONPath { JSONPath(path, nextKey) }

    mutating func encodeNil() throws { add(state.null()) }
    mutating func encode(_ value: Bool) throws { add(state.bool(value)) }
    mutating func encode(_ value: String) throws { add(state.string(value)) }
    mutating func encode(_ value: Double) throws { add(try state.float(value, path, nextKey)) }
    mutating func encode(_ value: Float) throws { add(try state.float(value, path, nextKey)) }
    mutating func encode(_ value: Int) throws { add(state.integer(value)) }
    mutating func encode(_ value: Int8) throws { add(state.integer(value)) }
    mutating func encode(_ value: Int16) throws { add(state.integer(value)) }
    mutating func encode(_ value: Int32) throws { add(state.integer(value)) }
    mutating func encode(_ value: Int64) throws { add(state.integer(value)) }
    mutating func encode(_ value: UInt) throws { add(state.integer(value)) }
    mutating func encode(_ value: UInt8) throws { add(state.integer(value)) }
    mutating func encode(_ value: UInt16) throws { add(state.integer(value)) }
    mutating func encode(_ value: UInt32) throws { add(state.integer(value)) }
    mutating func encode(_ value: UInt64) throws { add(state.integer(value)) }
    mutating func encode<T: Encodable>(_ value: T) throws {
        add(try state.member(value, path: nextPath))
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
        let nested = JSONObjectBox()
        let nestedPath = nextPath
        add(.object(nested))
        return KeyedEncodingContainer(NodeKeyedContainer<NestedKey>(state: state, box: nested, path: nestedPath))
    }

    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        let nested = JSONArrayBox()
        let nestedPath = nextPath
        add(.array(nested))
        return NodeUnkeyedContainer(state: state, box: nested, path: nestedPath)
    }

    mutating func superEncoder() -> any Encoder {
        let encoder = NodeEncoder(state: state, path: nextPath)
        add(.encoder(encoder))
        return encoder
    }
}

struct NodeSingleValueContainer: SingleValueEncodingContainer {
    let encoder: NodeEncoder
    var codingPath: [any CodingKey] { encoder.codingPath }
    private var state: JSONEncodingState { encoder.state }
    private func set(_ node: JSONNode) { encoder.node = node }

    mutating func encodeNil() throws { set(state.null()) }
    mutating func encode(_ value: Bool) throws { set(state.bool(value)) }
    mutating func encode(_ value: String) throws { set(state.string(value)) }
    mutating func encode(_ value: Double) throws { set(try state.float(value, encoder.path)) }
    mutating func encode(_ value: Float) throws { set(try state.float(value, encoder.path)) }
    mutating func encode(_ value: Int) throws { set(state.integer(value)) }
    mutating func encode(_ value: Int8) throws { set(state.integer(value)) }
    mutating func encode(_ value: Int16) throws { set(state.integer(value)) }
    mutating func encode(_ value: Int32) throws { set(state.integer(value)) }
    mutating func encode(_ value: Int64) throws { set(state.integer(value)) }
    mutating func encode(_ value: UInt) throws { set(state.integer(value)) }
    mutating func encode(_ value: UInt8) throws { set(state.integer(value)) }
    mutating func encode(_ value: UInt16) throws { set(state.integer(value)) }
    mutating func encode(_ value: UInt32) throws { set(state.integer(value)) }
    mutating func encode(_ value: UInt64) throws { set(state.integer(value)) }
    mutating func encode<T: Encodable>(_ value: T) throws {
        set(try state.member(value, path: encoder.path))
    }
}

/// Where a value is, for errors: its container's place and its key (`codingPath` is built only
/// when asked for, not for every value).
final class JSONPath {
    let parent: JSONPath?
    let key: any CodingKey
    init(_ parent: JSONPath?, _ key: any CodingKey) {
        self.parent = parent
        self.key = key
    }

    static func keys(_ path: JSONPath?, _ last: (any CodingKey)? = nil) -> [any CodingKey] {
        var out: [any CodingKey] = last.map { [$0] } ?? []
        var at = path
        while let p = at {
            out.append(p.key)
            at = p.parent
        }
        return out.reversed()
    }
}

/// A coding key for paths in errors (array indices, `super`).
struct AnyJSONKey: CodingKey {
    var stringValue: String
    var intValue: Int?
    init(_ string: String) { stringValue = string }
    init(index: Int) {
        stringValue = "Index \(index)"
        intValue = index
    }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { self.init(index: intValue) }
}
