import Foundation

/// A TCP socket on 127.0.0.1 with a port the kernel picked: the start of the tests' own small
/// servers (StubServer's HTTP, the PostgreSQL stand-in that refuses TLS, nginx's ports) and of
/// an address where nothing listens.
public enum LoopbackSocket {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// A socket bound to 127.0.0.1 and its port, not listening (connections to it are refused);
    /// the caller closes it.
    public static func bound() throws -> (fd: Int32, port: Int) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket: errno \(errno)") }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = 0
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let named = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
        }
        guard named else {
            let why = errno
            close(fd)
            throw Failure(description: "bind to 127.0.0.1: errno \(why)")
        }
        return (fd, Int(UInt16(bigEndian: addr.sin_port)))
    }

    /// A socket listening on 127.0.0.1, `backlog` deep, and its port; the caller closes it.
    public static func listening(backlog: Int32) throws -> (fd: Int32, port: Int) {
        let (fd, port) = try bound()
        guard listen(fd, backlog) == 0 else {
            let why = errno
            close(fd)
            throw Failure(description: "listen on 127.0.0.1: errno \(why)")
        }
        return (fd, port)
    }
}
