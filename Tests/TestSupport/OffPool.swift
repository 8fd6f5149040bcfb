import Dispatch

/// Runs blocking work (waiting for a subprocess, reading a pipe to its end) on a dispatch thread
/// and awaits it, so it never holds one of the cooperative pool's threads (two on this 2-CPU
/// machine), which every in-process server and test task shares.
public func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        DispatchQueue.global().async {
            continuation.resume(with: Result { try body() })
        }
    }
}
