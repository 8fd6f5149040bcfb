import Foundation

/// Runs blocking work (waiting for a subprocess, reading a pipe to its end) on a thread of its
/// own and awaits it, so it never holds a thread that other work needs.
///
/// Not `DispatchQueue.global()`: on Linux that is the same default-QoS root queue (a few threads
/// for the whole process) that Swift's cooperative pool and every concurrent `DispatchQueue`
/// run on. A handful of parallel tests blocked there in `waitUntilExit` left no thread for any
/// task, and the in-process servers their subprocesses were talking to stopped answering.
public func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread {
            continuation.resume(with: Result { try body() })
        }
        thread.name = "off-pool"
        thread.start()
    }
}
