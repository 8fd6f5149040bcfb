import FleetAPI

/// Where and how to reach a ksmfleet server.
public struct ClientOptions: Sendable {
    /// `http://host:port` or `https://host:port` (a path prefix is allowed, a trailing `/` is ignored).
    public var serverURL: String
    /// Sent as `Authorization: Bearer <token>` on every call (node token or admin token).
    public var token: String?
    /// A PEM CA bundle for a server certificate from a private CA (libcurl's CURLOPT_CAINFO).
    public var caFile: String?
    /// Seconds to establish the connection (TCP + TLS).
    public var connectTimeout: Double = 5
    /// Seconds for a whole call, unless the call gives its own (long-polls do).
    public var requestTimeout: Double = 30
    public var userAgent: String = "ksmfleet/\(FleetVersion.current)"

    public init(
        serverURL: String, token: String? = nil, caFile: String? = nil, connectTimeout: Double = 5,
        requestTimeout: Double = 30
    ) {
        self.serverURL = serverURL
        self.token = token
        self.caFile = caFile
        self.connectTimeout = connectTimeout
        self.requestTimeout = requestTimeout
    }
}
