import Foundation
import GRDB

/// Copies the write-ahead log into the database file (PASSIVE checkpoints) on a connection and a
/// thread of its own while samples stream in. Left to SQLite, the checkpoint runs inside the
/// commit that crosses the WAL threshold, on the one writer: at 40,000 samples/s that was a
/// fifth of the writer's time (reading WAL frames, writing pages, fdatasync). A PASSIVE
/// checkpoint takes no write lock, so commits go on meanwhile. The WAL starts again from its
/// beginning only when a commit finds it entirely copied, which a writer that keeps appending
/// while this copies seldom does; so the writer keeps SQLite's own checkpoint at a larger
/// threshold (`writerAutocheckpointPages`): by then nearly every frame has been copied here, the
/// writer's checkpoint only finishes the tail, and the WAL restarts — which bounds its size.
final class WALCheckpointer: @unchecked Sendable {
    /// The writer's `wal_autocheckpoint` (pages; 16 MiB): finishes what this checkpointer
    /// copied and restarts the WAL, which bounds its size.
    static let writerAutocheckpointPages = 4_096
    /// The thread ends after this long without a request.
    static let idleSeconds = 2.0

    private let path: String
    // Guarded by `condition`.
    private let condition = NSCondition()
    private var due = false
    private var threadRunning = false
    private var closed = false
    // Guarded by `connectionLock`: only the checkpoint thread and `close()` use it.
    private let connectionLock = NSLock()
    private var connection: DatabaseQueue?
    /// Set by `close()`: no connection is opened any more (it would outlive the database and
    /// could create the file again after a test removed it).
    private var connectionClosed = false

    init(path: String) { self.path = path }

    /// Asks for a checkpoint soon (cheap: called after commits).
    func request() {
        condition.lock()
        defer { condition.unlock() }
        guard !closed else { return }
        due = true
        if !threadRunning {
            threadRunning = true
            startNamedThread("wal-checkpoint") { self.loop() }
        }
        condition.signal()
    }

    func close() {
        condition.lock()
        closed = true
        condition.signal()
        condition.unlock()
        connectionLock.lock()
        connectionClosed = true
        try? connection?.close()
        connection = nil
        connectionLock.unlock()
    }

    private func loop() {
        while true {
            condition.lock()
            while !due && !closed {
                if !condition.wait(until: Date(timeIntervalSinceNow: Self.idleSeconds)) && !due { break }
            }
            if !due || closed {
                threadRunning = false
                condition.unlock()
                return
            }
            due = false
            condition.unlock()
            checkpoint()
        }
    }

    private func checkpoint() {
        connectionLock.lock()
        defer { connectionLock.unlock() }
        guard !connectionClosed else { return }
        do {
            if connection == nil {
                var config = Configuration()
                config.label = "ksmfleet.checkpoint"
                config.busyMode = .timeout(1)
                connection = try DatabaseQueue(path: path, configuration: config)
            }
            _ = try connection?.writeWithoutTransaction { try $0.checkpoint(.passive) }
        } catch {
            // The writer's own autocheckpoint still bounds the WAL; try again next time.
        }
    }
}
