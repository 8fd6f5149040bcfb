#if canImport(Glibc)
import Glibc
#endif
import Logging
import NIOCore
import Synchronization

/// Keeps the server's open connections below its file limit. Every agent holds one or two
/// connections (long-poll, pushes); a server that accepts until `accept(2)` fails with EMFILE has
/// no descriptor left for its database, `/proc` or the thread pool, and libdispatch aborts the
/// process when it cannot open `/proc/<tid>/stat` (seen at ~9,900 simulated nodes under the
/// 20,000-file limit, docs/benchmarks.md "Fleet simulator"). Above the limit a new connection is
/// closed at once: the agent sees a connection error and retries or fails over, the server lives.
final class ConnectionLimit: Sendable {
    /// Descriptors kept for everything that is not a client connection: the database and its WAL,
    /// log files, `/proc` reads, the thread pool, TLS files.
    static let reserve = 512

    let limit: Int
    private let open = Atomic<Int>(0)
    private let refused = Atomic<Int>(0)
    /// The last time (seconds) a refusal was logged: once per 10 s, with the count since.
    private let lastLog = Mutex<Double>(0)
    private let logger: Logger

    init(limit: Int, logger: Logger) {
        self.limit = limit
        self.logger = logger
    }

    /// The default: the process's file limit (raised to its hard limit at start) less the reserve.
    static func fromFileLimit() -> Int {
        var rl = rlimit()
        guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &rl) == 0 else { return 1024 }
        let soft = Int(clamping: min(rl.rlim_cur, 1 << 20))  // RLIM_INFINITY is the largest value
        return max(64, soft - reserve)
    }

    var openConnections: Int { open.load(ordering: .relaxed) }
    var refusedConnections: Int { refused.load(ordering: .relaxed) }

    /// Counts a new connection; false when it is one too many (the caller closes it).
    func admit() -> Bool {
        let now = open.wrappingAdd(1, ordering: .relaxed).newValue
        if now <= limit { return true }
        open.wrappingSubtract(1, ordering: .relaxed)
        let total = refused.wrappingAdd(1, ordering: .relaxed).newValue
        let t = Double(NIODeadline.now().uptimeNanoseconds) / 1e9
        let due = lastLog.withLock { last -> Bool in
            guard t - last >= 10 else { return false }
            last = t
            return true
        }
        if due {
            logger.warning(
                "connection limit reached: closing new connections",
                metadata: [
                    "limit": "\(limit)", "refused_total": "\(total)",
                    "hint": "raise LimitNOFILE (the limit is the file limit less \(Self.reserve)), or add replicas",
                ])
        }
        return false
    }

    func release() { open.wrappingSubtract(1, ordering: .relaxed) }

    /// One per connection, first in the pipeline's additional handlers.
    func handler() -> Handler { Handler(limit: self) }

    final class Handler: ChannelInboundHandler, RemovableChannelHandler {
        typealias InboundIn = NIOAny
        private let limit: ConnectionLimit
        private var counted = false

        init(limit: ConnectionLimit) { self.limit = limit }

        func handlerAdded(context: ChannelHandlerContext) {
            if context.channel.isActive { admit(context) }
        }

        func channelActive(context: ChannelHandlerContext) {
            if !counted { admit(context) }
            context.fireChannelActive()
        }

        private func admit(_ context: ChannelHandlerContext) {
            guard !counted else { return }
            if limit.admit() {
                counted = true
            } else {
                context.close(promise: nil)
            }
        }

        func channelInactive(context: ChannelHandlerContext) {
            if counted {
                counted = false
                limit.release()
            }
            context.fireChannelInactive()
        }

        func handlerRemoved(context: ChannelHandlerContext) {
            if counted {
                counted = false
                limit.release()
            }
        }
    }
}
