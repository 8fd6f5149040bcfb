import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// Whether a request reached the user over HTTPS, and who the client is: the server's own TLS
/// (`--tls-cert`), or a reverse proxy the operator named (`--trusted-proxy`) that says so in
/// `X-Forwarded-Proto`. Forwarded headers from any other peer are ignored, so a client cannot
/// claim HTTPS or another address by sending them itself.
public struct TransportSecurity: Sendable {
    /// The server terminates TLS itself.
    public var servesTLS: Bool
    /// Peer IP addresses (textual, as the socket reports them) whose X-Forwarded-* are believed.
    public var trustedProxies: Set<String>
    /// HSTS max-age in seconds (one year).
    public var hstsMaxAge: Int = 31_536_000

    public init(servesTLS: Bool = false, trustedProxies: Set<String> = []) {
        self.servesTLS = servesTLS
        self.trustedProxies = trustedProxies
    }

    static let forwardedProto = HTTPField.Name("X-Forwarded-Proto")
    static let forwardedFor = HTTPField.Name("X-Forwarded-For")

    /// The peer's IP address as text ("127.0.0.1", "::1"), IPv4-mapped IPv6 shown as IPv4.
    static func ip(_ address: SocketAddress?) -> String? {
        guard let text = address?.ipAddress else { return nil }
        if text.hasPrefix("::ffff:"), text.contains(".") { return String(text.dropFirst(7)) }
        return text
    }

    func fromTrustedProxy(_ peer: SocketAddress?) -> Bool {
        guard let ip = Self.ip(peer) else { return false }
        return trustedProxies.contains(ip)
    }

    /// Whether the user's browser talks HTTPS to us (directly or through a trusted proxy).
    func isSecure(_ request: Request, peer: SocketAddress?) -> Bool {
        if servesTLS { return true }
        guard fromTrustedProxy(peer), let name = Self.forwardedProto, let proto = request.headers[name] else {
            return false
        }
        // A chain of proxies may list several: the first is what the client used.
        let first = proto.split(separator: ",").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
        return first == "https"
    }

    /// The client's address: the peer's, or through trusted proxies the last X-Forwarded-For
    /// entry that is not itself a trusted proxy (entries further left could be forged by the
    /// client). Several X-Forwarded-For fields read as one list, in order.
    func clientAddress(_ request: Request, peer: SocketAddress?) -> String {
        let peerIP = Self.ip(peer) ?? "unknown"
        guard fromTrustedProxy(peer), let name = Self.forwardedFor else { return peerIP }
        let hops = request.headers[values: name].joined(separator: ",").split(separator: ",")
            .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty && $0.count <= 64 }
        return hops.last(where: { !trustedProxies.contains($0) }) ?? peerIP
    }
}

/// Over HTTPS (see `TransportSecurity`): marks every cookie the response sets `Secure`, and adds
/// `Strict-Transport-Security`, so a browser never sends the session over plain HTTP again.
struct TransportSecurityMiddleware<Context: RemoteAddressRequestContext>: RouterMiddleware {
    let security: TransportSecurity

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        let secure = security.isSecure(request, peer: context.remoteAddress)
        do {
            var response = try await next(request, context)
            if secure { Self.harden(&response.headers, maxAge: security.hstsMaxAge) }
            return response
        } catch let error as any HTTPResponseError {
            guard secure else { throw error }
            var response = try error.response(from: request, context: context)
            Self.harden(&response.headers, maxAge: security.hstsMaxAge)
            return response
        }
    }

    static func harden(_ headers: inout HTTPFields, maxAge: Int) {
        headers[.strictTransportSecurity] = "max-age=\(maxAge)"
        let cookies = headers[values: .setCookie]
        guard !cookies.isEmpty else { return }
        headers[values: .setCookie] = cookies.map { cookie in
            cookie.lowercased().contains("; secure") ? cookie : cookie + "; Secure"
        }
    }
}
