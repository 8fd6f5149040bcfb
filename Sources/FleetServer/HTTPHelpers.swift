import FleetAPI
import Foundation
import Hummingbird
import KSMCore

/// JSON in and out, ETags, query parameters.
enum HTTP {
    /// Every JSON answer's content type (replies and errors alike).
    static let jsonContentType = "application/json; charset=utf-8"

    /// `Cache-Control: no-store`: for every reply that carries a secret (a token handed out
    /// once) or a node's own state.
    static var noStore: HTTPFields {
        var headers = HTTPFields()
        headers[.cacheControl] = "no-store"
        return headers
    }

    static func json<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) throws
        -> Response
    {
        // StrictJSON.encoder()'s bytes, without Foundation's tree (big reports: SortedJSONEncoder).
        json(bytes: ByteBuffer(bytes: try SortedJSONEncoder().encode(value)), status: status, headers: headers)
    }

    /// JSON already encoded (a body kept for many answers).
    static func json(bytes: ByteBuffer, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) -> Response {
        var headers = headers
        headers[.contentType] = jsonContentType
        return Response(status: status, headers: headers, body: .init(byteBuffer: bytes))
    }

    /// JSON already rendered (a hot path's small reply).
    static func jsonText(_ json: String, status: HTTPResponse.Status = .ok) -> Response {
        text(json, contentType: jsonContentType, status: status)
    }

    static func text(_ text: String, contentType: String, status: HTTPResponse.Status = .ok) -> Response {
        self.text(ByteBuffer(string: text), contentType: contentType, status: status)
    }

    /// Text already in a buffer (`/metrics`: megabytes, not copied through a String again).
    static func text(_ text: ByteBuffer, contentType: String, status: HTTPResponse.Status = .ok) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = contentType
        return Response(status: status, headers: headers, body: .init(byteBuffer: text))
    }

    /// The request body, at most `limit` bytes (413 above).
    static func body(_ request: Request, limit: Int) async throws -> Data {
        if let length = request.headers[.contentLength].flatMap(Int.init), length > limit {
            throw APIError(
                .contentTooLarge, code: APIErrorCode.bodyTooLarge,
                message: "the request body is \(length) bytes; the limit is \(limit)")
        }
        do {
            let buffer = try await request.body.collect(upTo: limit)
            return Data(buffer.readableBytesView)
        } catch let error as any HTTPResponseError where error.status == .contentTooLarge {
            throw APIError(
                .contentTooLarge, code: APIErrorCode.bodyTooLarge, message: "the request body is over the \(limit)-byte limit")
        }
    }

    /// Decodes a body strictly: malformed JSON, unknown fields, missing fields and wrong types
    /// are 400 with the field named; an impossible value (an unknown enum case) is 422.
    static func decode<T: Decodable & KnownFields>(_ type: T.Type, _ request: Request, limit: Int) async throws -> T {
        let data = try await body(request, limit: limit)
        return try decode(type, data)
    }

    static func decode<T: Decodable & KnownFields>(_ type: T.Type, _ data: Data) throws -> T {
        do {
            return try StrictJSON.decode(type, from: data)
        } catch {
            throw inputError(error)
        }
    }

    static func inputError(_ e: InputError) -> APIError {
        let status: HTTPResponse.Status = e.code == APIErrorCode.invalidValue ? .unprocessableContent : .badRequest
        return APIError(status, code: e.code, message: e.message, field: e.field)
    }

    /// `"7"`, `W/"7"` or `7` → 7; `*` → nil with `any` true.
    static func generationTag(_ value: String?) -> (generation: Int64?, invalid: Bool) {
        guard var v = value?.trimmingCharacters(in: .whitespaces), !v.isEmpty else { return (nil, false) }
        if v == "*" { return (nil, false) }
        if v.hasPrefix("W/") { v.removeFirst(2) }
        if v.hasPrefix("\"") && v.hasSuffix("\"") && v.count >= 2 { v = String(v.dropFirst().dropLast()) }
        guard let g = Int64(v) else { return (nil, true) }
        return (g, false)
    }

    static func etag(_ generation: Int64) -> String { "\"\(generation)\"" }

    /// Refuses an API request's query parameter its route does not read (`reads`, the route
    /// table's): a typo such as `?purgehistory=true` was ignored, and the node deleted with its
    /// history kept; and one given twice (`?limit=1&limit=5`), where which copy counts is a guess.
    static func checkQuery(_ request: Request, reads: Set<String>) throws {
        var seen: Set<Substring> = []
        for (name, _) in request.uri.queryParameters {
            guard reads.contains(String(name)) else {
                let known = reads.isEmpty ? "none" : reads.sorted().joined(separator: ", ")
                throw APIError(
                    .badRequest, code: APIErrorCode.unknownParameter,
                    message: "unknown query parameter '\(name)'; this operation reads: \(known)", field: String(name))
            }
            guard seen.insert(name).inserted else {
                throw APIError(
                    .badRequest, code: APIErrorCode.repeatedParameter,
                    message: "query parameter '\(name)' is given more than once; give it once", field: String(name))
            }
        }
    }

    /// Query parameter `name` as given: "" for `?name=` or a bare `?name`. The dashboard's forms
    /// and a deletion's `purgeHistory` read it so; the API's parameters through `param`.
    static func query(_ request: Request, _ name: String) -> String? {
        request.uri.queryParameters[Substring(name)].map(String.init)
    }

    /// Query parameter `name` of a dashboard GET form: as a browser sends a form, `+` is a
    /// space (`rack=r1, zone=a` typed in the nodes filter arrives as `rack%3Dr1%2C+zone%3Da`; a
    /// `+` typed is sent as %2B). Not for the API, whose clients may send `+02:00` unescaped.
    static func formQuery(_ request: Request, _ name: String) -> String? {
        query(request, name).map { $0.replacing("+", with: " ") }
    }

    /// Query parameter `name` of an API request; nil when it is absent or empty: an API parameter
    /// given empty (a template with its variable unset) is as if not given (openapi.yaml).
    static func param(_ request: Request, _ name: String) -> String? {
        query(request, name).flatMap { $0.isEmpty ? nil : $0 }
    }

    /// The whole number in query parameter `name`, in `range`; nil when it is absent or empty
    /// (`param`). Anything else is 422 naming the parameter: "'x' is not a `what` from 1 to 10000".
    static func intQuery(_ request: Request, _ name: String, in range: ClosedRange<Int>, what: String) throws -> Int? {
        guard let text = param(request, name) else { return nil }
        guard let v = Int(text), range.contains(v) else {
            throw APIError.invalidValue(name, "'\(text)' is not \(what) from \(range.lowerBound) to \(range.upperBound)")
        }
        return v
    }

    /// true or false in query parameter `name` (`true`/`1`/`yes`, `false`/`0`/`no`, any case);
    /// nil when it is absent or empty (`param`): `?online=&drift=` lists every node.
    /// `emptyIsNone: false` for a parameter of an action that destroys something (a deletion's
    /// `purgeHistory`): a bare `?purgeHistory` or an unset variable must not go through as a
    /// deletion that kept what its caller meant to purge. Anything else is 422 naming the parameter.
    static func boolQuery(_ request: Request, _ name: String, emptyIsNone: Bool = true) throws -> Bool? {
        guard let v = emptyIsNone ? param(request, name) : query(request, name) else { return nil }
        switch v.lowercased() {
        case "true", "1", "yes": return true
        case "false", "0", "no": return false
        default: throw APIError.invalidValue(name, "'\(v)' is not true or false")
        }
    }
}
