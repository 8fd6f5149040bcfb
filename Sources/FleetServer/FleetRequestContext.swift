import Hummingbird
import NIOCore

/// The server's request context: Hummingbird's basic one plus the TCP peer's address (login
/// throttling, and whether a request came through a trusted proxy).
public struct FleetRequestContext: RequestContext, RemoteAddressRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let remoteAddress: SocketAddress?

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.remoteAddress = source.channel.remoteAddress
    }
}
