#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Serializes every test that touches the real `/sys/kernel/mm/ksm`: an async lock inside the
/// process (Swift Testing runs suites in parallel) AND an `flock` on
/// `/tmp/ksmfleet-kernel-tests.lock`, so test processes started separately (several `swift test`
/// runs on one machine) take turns too.
public enum KernelTestLock {
    public static let lockFilePath = "/tmp/ksmfleet-kernel-tests.lock"

    /// Runs `body` while holding both locks.
    public static func withLock<T>(_ body: () async throws -> T) async rethrows -> T {
        await gate.acquire()
        let fd = await acquireFileLock()
        defer {
            if fd >= 0 {
                _ = flock(fd, LOCK_UN)
                close(fd)
            }
            Task { await gate.release() }
        }
        return try await body()
    }

    static let gate = AsyncGate()

    /// Polls a non-blocking flock so no thread of the cooperative pool is ever blocked.
    /// Returns -1 (and runs unlocked across processes) only when the lock file cannot be opened.
    static func acquireFileLock() async -> Int32 {
        let fd = open(lockFilePath, O_RDWR | O_CREAT | O_CLOEXEC, 0o666)
        guard fd >= 0 else { return -1 }
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            try? await Task.sleep(for: .milliseconds(50))
        }
        return fd
    }
}

/// A FIFO async mutex.
actor AsyncGate {
    private var held = false
    private var waiters: [CheckedContinuation<Void, Never>] = []

    func acquire() async {
        if !held {
            held = true
            return
        }
        await withCheckedContinuation { waiters.append($0) }
    }

    func release() {
        if waiters.isEmpty {
            held = false
        } else {
            waiters.removeFirst().resume()
        }
    }
}
