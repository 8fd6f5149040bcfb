#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import FleetAPI

/// An HTTP reply: status, headers (names lowercased; repeated headers joined with ", "), body.
public struct HTTPResponse: Sendable {
    public var status: Int
    public var headers: [String: String]
    public var body: Data

    public init(status: Int, headers: [String: String], body: Data) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// The body as UTF-8 text (lossy), for messages and CSV.
    public var text: String { String(decoding: body, as: UTF8.self) }
}

/// Why a call failed, in terms a user can act on.
public enum ClientError: Error, CustomStringConvertible, Sendable {
    /// The server URL (or a path built from it) is not a usable http/https URL.
    case invalidURL(String)
    /// Connection refused, DNS, TLS failure, timeout: `cannot reach http://…: Connection refused`;
    /// a request sent and not answered in full in time: `no complete reply from http://… within 30 s …`.
    case unreachable(String)
    /// The server answered with an error status; `body` is its JSON error (synthesized when the
    /// reply was not JSON, with code `http_<status>`); `retryAfter` is the reply's `Retry-After`
    /// in seconds from now (`RetryAfter.seconds`), nil when it sent none or one that does not parse.
    case api(status: Int, body: APIErrorBody, retryAfter: Double? = nil)
    /// A 2xx reply whose body does not decode as expected.
    case decoding(String)

    public var description: String {
        switch self {
        case .invalidURL(let s): return "invalid server URL: \(s)"
        case .unreachable(let s): return s
        case .api(let status, let body, _):
            let field = body.error.field.map { " (field \($0))" } ?? ""
            return "server refused (HTTP \(status)) \(body.error.code): \(body.error.message)\(field)"
        case .decoding(let s): return "unexpected reply from the server: \(s)"
        }
    }

    /// The HTTP status of an `.api` error, nil otherwise.
    public var status: Int? {
        if case .api(let status, _, _) = self { return status }
        return nil
    }

    /// The API error code of an `.api` error (`unauthorized`, `not_found`, …), nil otherwise.
    public var code: String? {
        if case .api(_, let body, _) = self { return body.error.code }
        return nil
    }

    /// The seconds the server asked the client to wait before trying again (`Retry-After` on an
    /// error reply: 503 while its database is away or it is shutting down, 429 when rate-limited),
    /// nil when it did not say.
    public var retryAfter: Double? {
        if case .api(_, _, let after) = self { return after }
        return nil
    }

    /// An error the ksmfleet server answered itself, with its JSON error body: not a reply of a
    /// proxy, load balancer or captive portal in front of it (a body that is not the API's JSON
    /// error gets the code `http_<status>`). Only the server's own refusals are final.
    public var isFromServer: Bool {
        if case .api(_, let body, _) = self { return !body.error.code.hasPrefix("http_") }
        return false
    }

    /// True when the server could not be reached (worth retrying later).
    public var isUnreachable: Bool {
        if case .unreachable = self { return true }
        return false
    }

    /// An error body for a reply that is not our JSON error shape.
    static func synthesized(status: Int, body: Data) -> APIErrorBody {
        var text = String(decoding: body.prefix(300), as: UTF8.self)
        text = text.replacing("\n", with: " ").replacing("\r", with: "")
        let reason = reasonPhrase(status)
        let message = text.isEmpty ? reason : "\(reason): \(text)"
        return APIErrorBody(code: "http_\(status)", message: message)
    }

    static func reasonPhrase(_ status: Int) -> String {
        switch status {
        case 400: return "bad request"
        case 401: return "unauthorized"
        case 403: return "forbidden"
        case 404: return "not found"
        case 405: return "method not allowed"
        case 409: return "conflict"
        case 413: return "body too large"
        case 422: return "invalid value"
        case 429: return "too many requests"
        case 500: return "internal server error"
        case 502: return "bad gateway"
        case 503: return "service unavailable"
        case 504: return "gateway timeout"
        default: return "HTTP \(status)"
        }
    }
}
