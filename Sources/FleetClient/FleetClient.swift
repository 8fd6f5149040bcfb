#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import CCurl
import FleetAPI
import KSMCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The ksmfleet API over HTTP(S), on libcurl. Safe to share between tasks; connections are kept
/// alive through a small pool of handles, and every blocking transfer runs on its own thread.
public final class FleetClient: Sendable {
    public let options: ClientOptions
    /// `scheme://host[:port][/prefix]` without a trailing slash.
    private let base: String
    private let pool = EasyHandlePool()
    /// `KSMFleet-Timeout` with this client's request timeout, sent with an agent's writes (a
    /// push, a registration, its token's rotation) so that the server gives up their database
    /// work, and answers, before this client gives up on them (`ClientTimeout`). Written once:
    /// the options do not change.
    let timeoutHeader: [String: String]

    public init(_ options: ClientOptions) throws(ClientError) {
        self.options = options
        base = try Self.checkedBase(options.serverURL)
        timeoutHeader = ClientTimeout.value(options.requestTimeout).map { [ClientTimeout.header: $0] } ?? [:]
    }

    /// The server URL, checked: http or https, a host, no query or fragment; returned without
    /// a trailing slash. The agent checks its list of servers with it before it starts.
    public static func checkedBase(_ url: String) throws(ClientError) -> String {
        var u = url.trimmed
        while u.hasSuffix("/") { u.removeLast() }
        let lower = u.lowercased()
        let rest: Substring
        if lower.hasPrefix("http://") {
            rest = u.dropFirst(7)
        } else if lower.hasPrefix("https://") {
            rest = u.dropFirst(8)
        } else {
            throw .invalidURL("'\(url)' must start with http:// or https://")
        }
        let host = rest.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        if host.isEmpty { throw .invalidURL("'\(url)' has no host") }
        if u.contains("?") || u.contains("#") || u.contains(" ") {
            throw .invalidURL("'\(url)' must not contain a query, a fragment or spaces")
        }
        return u
    }

    /// `url` as `checkedBase` gives it, scheme and host in lower case (they are
    /// case-insensitive; a path is not): two spellings of one server compare equal
    /// (`https://Fleet:8443/` and `https://fleet:8443`). Nil for a URL `checkedBase` refuses.
    public static func comparableBase(_ url: String) -> String? {
        guard let base = try? checkedBase(url), let scheme = base.firstRange(of: "://") else { return nil }
        let rest = base[scheme.upperBound...]
        let hostEnd = rest.firstIndex(of: "/") ?? rest.endIndex
        return base[..<hostEnd].lowercased() + rest[hostEnd...]
    }

    /// The full URL for an API path and query.
    public func url(path: String, query: [(String, String)] = []) -> String {
        var s = base + (path.hasPrefix("/") ? path : "/" + path)
        if !query.isEmpty {
            s += "?" + query.map { "\(percentEncode($0.0))=\(percentEncode($0.1))" }.joined(separator: "&")
        }
        return s
    }

    /// Raw call: any status is returned, not thrown. Adds `Authorization: Bearer <token>` when a
    /// token is set and `headers` has no Authorization of its own.
    public func send(
        method: String, path: String, query: [(String, String)] = [], headers: [String: String] = [:],
        body: Data? = nil, timeout: Double? = nil
    ) async throws(ClientError) -> HTTPResponse {
        var lines: [String] = []
        var hasAuth = false
        for (name, value) in headers.sorted(by: { $0.key < $1.key }) {
            if name.contains("\n") || name.contains("\r") || value.contains("\n") || value.contains("\r") {
                throw .invalidURL("header \(name) contains a line break")
            }
            if name.lowercased() == "authorization" { hasAuth = true }
            lines.append("\(name): \(value)")
        }
        if !hasAuth, let token = options.token, !token.isEmpty {
            lines.append("Authorization: Bearer \(token)")
        }
        let target = url(path: path, query: query)
        let request = PreparedRequest(
            method: method.uppercased(), url: target, headerLines: lines, body: body,
            connectTimeoutMs: Self.milliseconds(options.connectTimeout),
            timeoutMs: Self.milliseconds(timeout ?? options.requestTimeout), caFile: options.caFile,
            userAgent: options.userAgent)
        switch await performTransfer(request, pool: pool) {
        case .response(let response):
            return response
        case .failure(let code, let message, let osErrno, let noReply):
            if ccurl_code_is_invalid_url(code) != 0 { throw .invalidURL("\(target): \(message)") }
            if noReply {
                // Reached, and asked: the server (or its database) is stuck or slow; "cannot
                // reach" would send an operator after the network.
                let within = Self.seconds(request.timeoutMs)
                throw .unreachable("no complete reply from \(base) within \(within) after connecting and sending the request")
            }
            throw .unreachable("cannot reach \(base): \(Self.reason(message: message, osErrno: osErrno))")
        }
    }

    /// A JSON call: encodes `body`, returns the decoded 2xx reply; any other status throws `.api`.
    /// `R` may be `NoContent` for replies without a body.
    public func request<R: Decodable>(
        _ method: String, _ path: String, query: [(String, String)] = [], headers: [String: String] = [:],
        json body: (any Encodable)? = nil, as: R.Type
    ) async throws(ClientError) -> R {
        let response = try await sendJSON(method, path, query: query, headers: headers, json: body, timeout: nil)
        try Self.throwIfError(response)
        return try Self.decode(R.self, from: response)
    }

    /// `POST /api/v1/register` with the enrollment token.
    public func register(_ req: RegisterRequest, enrollmentToken: String) async throws(ClientError) -> RegisterResponse {
        var headers = timeoutHeader
        headers["Authorization"] = "Bearer \(enrollmentToken)"
        return try await request("POST", APIPaths.register, headers: headers, json: req, as: RegisterResponse.self)
    }

    /// `GET /api/v1/nodes/{id}/config`; with a generation it is a conditional long-poll
    /// (`If-None-Match: "<generation>"`, `?wait=`), nil on 304 (unchanged).
    public func config(nodeId: String, ifNoneMatch generation: Int64?, waitSeconds: Int?) async throws(ClientError)
        -> NodeConfig?
    {
        var headers: [String: String] = [:]
        if let generation { headers["If-None-Match"] = "\"\(generation)\"" }
        var query: [(String, String)] = []
        var timeout: Double? = nil
        if let waitSeconds {
            query.append(("wait", String(waitSeconds)))
            timeout = Double(waitSeconds) + max(15, options.requestTimeout / 2)
        }
        let response = try await sendJSON(
            "GET", APIPaths.config(nodeId), query: query, headers: headers, json: nil, timeout: timeout)
        if response.status == 304 { return nil }
        try Self.throwIfError(response)
        return try Self.decode(NodeConfig.self, from: response)
    }

    /// `POST /api/v1/nodes/{id}/samples`.
    public func pushSamples(nodeId: String, _ batch: SampleBatch) async throws(ClientError) -> SampleBatchAck {
        try await request(
            "POST", APIPaths.samples(nodeId), headers: timeoutHeader, json: batch, as: SampleBatchAck.self)
    }

    /// `PUT /api/v1/nodes/{id}/facts` with the node's token: what the host is now (kernel, KSM
    /// features, memory, agent version); the answer names the fields the server had otherwise.
    public func putNodeFacts(nodeId: String, _ facts: NodeFactsRequest) async throws(ClientError) -> NodeFactsResponse {
        try await request(
            "PUT", APIPaths.facts(percentEncode(nodeId)), headers: timeoutHeader, json: facts, as: NodeFactsResponse.self)
    }

    // MARK: - helpers

    private func sendJSON(
        _ method: String, _ path: String, query: [(String, String)], headers: [String: String],
        json body: (any Encodable)?, timeout: Double?
    ) async throws(ClientError) -> HTTPResponse {
        var all = headers
        if !all.keys.contains(where: { $0.lowercased() == "accept" }) { all["Accept"] = "application/json" }
        var data: Data? = nil
        if let body {
            do {
                data = try StrictJSON.encoder().encode(body)
            } catch {
                throw .decoding("cannot encode the request body: \(error)")
            }
            all["Content-Type"] = "application/json"
        }
        return try await send(method: method, path: path, query: query, headers: all, body: data, timeout: timeout)
    }

    /// Throws `.api` for a status outside 2xx, with the server's JSON error or a synthesized one.
    public static func throwIfError(_ response: HTTPResponse) throws(ClientError) {
        guard !(200..<300).contains(response.status) else { return }
        let after = response.headers["retry-after"].flatMap { RetryAfter.seconds($0) }
        if let body = try? StrictJSON.decoder().decode(APIErrorBody.self, from: response.body) {
            throw .api(status: response.status, body: body, retryAfter: after)
        }
        throw .api(
            status: response.status, body: ClientError.synthesized(status: response.status, body: response.body),
            retryAfter: after)
    }

    /// Decodes a 2xx JSON body (`NoContent` accepts any body).
    public static func decode<R: Decodable>(_ type: R.Type, from response: HTTPResponse) throws(ClientError) -> R {
        if let none = NoContent() as? R { return none }
        do {
            return try StrictJSON.decoder().decode(R.self, from: response.body)
        } catch {
            let snippet = String(decoding: response.body.prefix(200), as: UTF8.self)
            throw .decoding("HTTP \(response.status) body is not a \(R.self): \(error); body: \(snippet)")
        }
    }

    static func milliseconds(_ seconds: Double) -> Int {
        guard seconds.isFinite, seconds > 0 else { return 0 }
        return Int(min(seconds, 86_400) * 1000)
    }

    /// "30 s", "1.5 s" (written as the push's timeout header writes seconds).
    static func seconds(_ ms: Int) -> String { "\(SecondsText.of(milliseconds: ms)) s" }

    static func reason(message: String, osErrno: Int) -> String {
        guard osErrno != 0, let s = strerror(Int32(osErrno)) else { return message }
        let text = String(cString: s)
        return message.contains(text) ? message : "\(text) (\(message))"
    }
}

/// The reply type for calls whose success has no body worth decoding (204, or ignored).
public struct NoContent: Decodable, Sendable, Equatable {
    public init() {}
    public init(from decoder: any Decoder) throws {}
}

/// Percent-encodes everything except RFC 3986 unreserved characters.
func percentEncode(_ s: String) -> String {
    var out = ""
    for byte in s.utf8 {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
            UInt8(ascii: "~"):
            out.unicodeScalars.append(Unicode.Scalar(byte))
        default:
            let hex = Array("0123456789ABCDEF".utf8)
            out += "%"
            out.unicodeScalars.append(Unicode.Scalar(hex[Int(byte >> 4)]))
            out.unicodeScalars.append(Unicode.Scalar(hex[Int(byte & 0xF)]))
        }
    }
    return out
}
