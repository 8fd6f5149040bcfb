#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import FleetClient
import Synchronization

/// Watches directories with inotify and reports each new entry (IN_CREATE, IN_MOVED_TO) as a
/// kick: a new VM or container under `/run/libvirt/qemu` or `/run/vc/sbs`. A directory that
/// does not exist yet (or is removed and created again) is picked up when it appears, checked
/// every few seconds. The blocking poll runs on its own thread, not on the cooperative pool.
public final class DirectoryWatcher: Sendable {
    /// One new entry.
    public struct Event: Sendable, Equatable {
        public var directory: String
        public var name: String
    }

    public let paths: [String]
    public let events: AsyncStream<Event>
    private let continuation: AsyncStream<Event>.Continuation
    private let stopped = Atomic<Bool>(false)
    private let started = Atomic<Bool>(false)

    public init(paths: [String]) {
        self.paths = paths
        (events, continuation) = AsyncStream<Event>.makeStream(bufferingPolicy: .bufferingNewest(256))
    }

    /// Starts the watching thread; false when inotify is unavailable.
    @discardableResult
    public func start() -> Bool {
        guard !paths.isEmpty, !started.exchange(true, ordering: .acquiringAndReleasing) else { return false }
        let fd = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        guard fd >= 0 else {
            continuation.finish()
            return false
        }
        let ok = runOnDedicatedThread(stackSize: 256 << 10) { [self] in self.loop(fd: fd) }
        if !ok {
            close(fd)
            continuation.finish()
        }
        return ok
    }

    /// Ends the thread (within half a second) and the event stream.
    public func stop() {
        stopped.store(true, ordering: .releasing)
        if !started.load(ordering: .acquiring) { continuation.finish() }
    }

    private func loop(fd: Int32) {
        defer {
            close(fd)
            continuation.finish()
        }
        var watches: [Int32: String] = [:]
        var lastScan = -1_000_000.0
        let mask = UInt32(IN_CREATE) | UInt32(IN_MOVED_TO) | UInt32(IN_DELETE_SELF) | UInt32(IN_MOVE_SELF)
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        while !stopped.load(ordering: .acquiring) {
            let now = monotonicSeconds()
            if watches.count < paths.count, now - lastScan >= 2 {
                lastScan = now
                for path in paths where !watches.values.contains(path) {
                    let wd = inotify_add_watch(fd, path, mask)
                    if wd >= 0 { watches[wd] = path }
                }
            }
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&pfd, 1, 500)
            if ready <= 0 { continue }
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { continue }
            var offset = 0
            let headerSize = MemoryLayout<inotify_event>.size
            while offset + headerSize <= n {
                let (wd, evMask, nameLen) = buffer.withUnsafeBytes { raw -> (Int32, UInt32, Int) in
                    let ev = raw.loadUnaligned(fromByteOffset: offset, as: inotify_event.self)
                    return (ev.wd, ev.mask, Int(ev.len))
                }
                let nameStart = offset + headerSize
                let nameBytes = buffer[nameStart..<min(nameStart + nameLen, n)].prefix(while: { $0 != 0 })
                let name = String(decoding: nameBytes, as: UTF8.self)
                offset = nameStart + nameLen
                if evMask & (UInt32(IN_IGNORED) | UInt32(IN_DELETE_SELF) | UInt32(IN_MOVE_SELF)) != 0 {
                    // The directory went away: watch it again when it is back.
                    if watches.removeValue(forKey: wd) != nil { inotify_rm_watch(fd, wd) }
                    continue
                }
                if evMask & (UInt32(IN_CREATE) | UInt32(IN_MOVED_TO)) != 0, let dir = watches[wd] {
                    continuation.yield(Event(directory: dir, name: name))
                }
            }
        }
    }
}

func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}
