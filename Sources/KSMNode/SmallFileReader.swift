#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Reads many small procfs files (one per process) into one buffer it keeps, with no allocation
/// per file: the per-process scan opens thousands of them every few seconds.
final class SmallFileReader {
    private let buffer: UnsafeMutableRawBufferPointer

    init(capacity: Int = 1024) {
        buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: capacity, alignment: 8)
    }

    deinit { buffer.deallocate() }

    /// The first `capacity` bytes of the file handed to `body`; nil when it cannot be read. For
    /// procfs files (one short read is the whole file), not for regular files.
    func withContents<T>(_ path: String, _ body: (UnsafeRawBufferPointer) -> T) -> T? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var total = 0
        while total < buffer.count {
            let n = read(fd, buffer.baseAddress?.advanced(by: total), buffer.count - total)
            if n < 0 {
                if errno == EINTR { continue }
                return nil
            }
            if n == 0 { break }
            total += n
            // procfs fills a read with the whole (small) file at once: a short read is the end,
            // and skipping the read that would return 0 saves a system call per process.
            if total < buffer.count { break }
        }
        return body(UnsafeRawBufferPointer(rebasing: buffer[0..<total]))
    }
}
