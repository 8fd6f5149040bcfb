import Logging
import Synchronization

/// Log records kept in memory, so tests can check what was logged.
public final class LogCapture: Sendable {
    public struct Record: Sendable {
        public var level: Logger.Level
        public var message: String
        public var metadata: [String: String]
    }

    private let records = Mutex<[Record]>([])

    public init() {}

    /// A logger that writes into this capture (no global bootstrap needed).
    public func logger(label: String = "test", level: Logger.Level = .trace) -> Logger {
        var logger = Logger(label: label, factory: { _ in CaptureHandler(capture: self) })
        logger.logLevel = level
        return logger
    }

    public var all: [Record] { records.withLock { $0 } }

    public func messages(containing text: String) -> [Record] {
        all.filter { $0.message.contains(text) }
    }

    func append(_ r: Record) { records.withLock { $0.append(r) } }
}

struct CaptureHandler: LogHandler {
    let capture: LogCapture
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var all = metadata
        if let extra = event.metadata { all.merge(extra, uniquingKeysWith: { _, new in new }) }
        capture.append(
            LogCapture.Record(
                level: event.level, message: "\(event.message)",
                metadata: all.mapValues { "\($0)" }))
    }
}

/// A logger that drops everything.
public func quietLogger() -> Logger {
    Logger(label: "quiet", factory: { _ in SwiftLogNoOpLogHandler() })
}
