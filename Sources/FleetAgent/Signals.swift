import Dispatch

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Signals as an async sequence. The default action of each signal is turned off (SIG_IGN) and a
/// dispatch source reports it instead, so SIGTERM/SIGINT no longer kill the process and
/// SIGUSR1 no longer terminates it. Ending the stream (or its consumer's task) cancels the
/// sources; the signals stay ignored, so a second SIGTERM during a clean shutdown (e.g. while
/// restoring the KSM settings) cannot cut it short.
///
///     for await signal in Signals.stream([SIGUSR1, SIGTERM, SIGINT]) { ... }
public enum Signals {
    public static func stream(_ signals: [Int32]) -> AsyncStream<Int32> {
        let (stream, continuation) = AsyncStream<Int32>.makeStream(bufferingPolicy: .bufferingNewest(64))
        let queue = DispatchQueue(label: "ksmfleet.signals")
        var sources: [any DispatchSourceSignal] = []
        for sig in signals {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: queue)
            source.setEventHandler {
                // A signal that arrived N times between wake-ups is reported N times.
                for _ in 0..<max(source.data, 1) { continuation.yield(sig) }
            }
            source.resume()
            sources.append(source)
        }
        let holder = SourceHolder(sources)
        continuation.onTermination = { _ in holder.cancel() }
        return stream
    }

    /// A short name for logs: "SIGTERM".
    public static func name(_ sig: Int32) -> String {
        switch sig {
        case SIGTERM: return "SIGTERM"
        case SIGINT: return "SIGINT"
        case SIGUSR1: return "SIGUSR1"
        case SIGUSR2: return "SIGUSR2"
        case SIGHUP: return "SIGHUP"
        default: return "signal \(sig)"
        }
    }
}

/// Keeps the dispatch sources alive for as long as the stream lives.
private final class SourceHolder: @unchecked Sendable {
    private var sources: [any DispatchSourceSignal]
    private let lock = DispatchQueue(label: "ksmfleet.signals.holder")

    init(_ sources: [any DispatchSourceSignal]) {
        self.sources = sources
    }

    func cancel() {
        lock.sync {
            for s in sources { s.cancel() }
            sources = []
        }
    }
}
