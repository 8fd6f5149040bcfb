import FleetClient
import Foundation

/// A browser's view of the dashboard for tests: signs in with the admin token, then GETs and
/// POSTs forms with the session cookie (no redirects followed).
public struct DashboardBrowser {
    public let client: FleetClient
    public var session = ""
    public var csrf = ""

    public struct SignInError: Error, CustomStringConvertible {
        public var description: String
    }

    public init(_ server: TestServer) throws {
        client = try Fixtures.client(server.baseURL, token: nil)
    }

    /// A browser for any server URL (a `ServerProcess`, another client such as one pinning a CA).
    public init(client: FleetClient) {
        self.client = client
    }

    /// The value of cookie `name` in a reply's Set-Cookie headers.
    public static func cookie(_ name: String, in response: HTTPResponse) -> String? {
        guard let header = response.headers["set-cookie"], let start = header.range(of: name + "=") else { return nil }
        return String(header[start.upperBound...].prefix { $0.isHexDigit })
    }

    public mutating func signIn(adminToken: String) async throws {
        func need<T>(_ v: T?, _ what: String) throws -> T {
            guard let v else { throw SignInError(description: "dashboard sign-in: \(what)") }
            return v
        }
        let page = try await client.send(method: "GET", path: "/login")
        let loginToken = try need(Self.cookie("ksmfleet_login", in: page), "no login cookie")
        let reply = try await client.send(
            method: "POST", path: "/login",
            headers: ["Cookie": "ksmfleet_login=\(loginToken)", "Content-Type": Self.form],
            body: Data("csrf=\(loginToken)&next=%2F&token=\(adminToken)".utf8))
        guard reply.status == 303 else { throw SignInError(description: "dashboard sign-in: status \(reply.status)") }
        session = try need(Self.cookie("ksmfleet_session", in: reply), "no session cookie")
        let overview = try await get("/")
        let field = try need(overview.text.range(of: "name=\"csrf\" value=\""), "no CSRF field on the overview")
        csrf = String(overview.text[field.upperBound...].prefix { $0.isHexDigit })
    }

    public static let form = "application/x-www-form-urlencoded"

    public func get(_ path: String, query: [(String, String)] = []) async throws -> HTTPResponse {
        try await client.send(
            method: "GET", path: path, query: query, headers: ["Cookie": "ksmfleet_session=\(session)"])
    }

    /// POSTs `fields` (URL-encoded, with the session's CSRF token).
    public func post(_ path: String, _ fields: [(String, String)]) async throws -> HTTPResponse {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        let body = ([("csrf", csrf)] + fields).map {
            "\($0.0)=\($0.1.addingPercentEncoding(withAllowedCharacters: allowed) ?? "")"
        }.joined(separator: "&")
        return try await client.send(
            method: "POST", path: path, headers: ["Cookie": "ksmfleet_session=\(session)", "Content-Type": Self.form],
            body: Data(body.utf8))
    }
}
