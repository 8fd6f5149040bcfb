import FleetAPI
import Foundation
import KSMCore

/// Strict decoding with a fast first pass. `StrictJSON.decode(_:from: Data)` builds its
/// `JSONValue` tree through `Codable`, probing every value with throwing container calls, which
/// dominated the cost of a 1000-sample batch. Here Foundation's `JSONSerialization` parses the
/// body once, the tree is converted without any throwing, and `StrictJSON` then checks the
/// fields (same codes, fields and messages) and decodes the typed value from the original bytes.
enum FastJSON {
    static func decode<T: Decodable & KnownFields>(_ type: T.Type, from data: Data) throws(InputError) -> (T, Any) {
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
        } catch {
            throw InputError(code: APIErrorCode.malformedJSON, field: nil, message: "the body is not valid JSON: \(error.localizedDescription)")
        }
        let value = shape(object)
        return (try StrictJSON.decode(type, from: value, originalData: data), object)
    }

    /// The object/array structure (all that the unknown-field check looks at); scalars become
    /// null placeholders.
    static func shape(_ any: Any) -> JSONValue {
        if let dict = any as? [String: Any] {
            var out: [String: JSONValue] = [:]
            out.reserveCapacity(dict.count)
            for (k, v) in dict { out[k] = shape(v) }
            return .object(out)
        }
        if let array = any as? [Any] { return .array(array.map(shape)) }
        return .null
    }

    /// Each element of `samples` in a parsed batch, re-serialized (sorted keys) for storage.
    static func sampleJSON(_ parsed: Any) -> [String]? {
        guard let dict = parsed as? [String: Any], let samples = dict["samples"] as? [Any] else { return nil }
        var out: [String] = []
        out.reserveCapacity(samples.count)
        for s in samples {
            guard let data = try? JSONSerialization.data(withJSONObject: s, options: [.sortedKeys, .withoutEscapingSlashes])
            else { return nil }
            out.append(String(decoding: data, as: UTF8.self))
        }
        return out
    }
}
