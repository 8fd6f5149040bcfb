#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Small system-call wrappers for sysfs and procfs: one read or one write per file, errno kept.
enum FileIO {
    /// The whole content of a (small, virtual) file.
    static func read(_ path: String) throws(KSMKernelError) -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw KSMKernelError(path: path, operation: .read, errno: errno) }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { buf in Glibc.read(fd, buf.baseAddress, buf.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw KSMKernelError(path: path, operation: .read, errno: errno)
            }
            if n == 0 { break }
            bytes.append(contentsOf: chunk[0..<n])
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Writes `text` to an existing file in one write(2), as sysfs expects. A write a signal
    /// interrupted is written again, unless `retryInterrupted` is false (then EINTR is thrown).
    static func write(_ path: String, _ text: String, retryInterrupted: Bool = true) throws(KSMKernelError) {
        let fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC)
        if fd < 0 { throw KSMKernelError(path: path, operation: .write(text), errno: errno) }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        while true {
            let n = bytes.withUnsafeBytes { buf in Glibc.write(fd, buf.baseAddress, buf.count) }
            if n < 0 {
                if errno == EINTR && retryInterrupted { continue }
                throw KSMKernelError(path: path, operation: .write(text), errno: errno)
            }
            if n != bytes.count {
                throw KSMKernelError(
                    path: path, operation: .write(text), errno: EIO,
                    detail: "short write (\(n) of \(bytes.count) bytes)")
            }
            return
        }
    }

    /// Names in a directory, without "." and "..".
    static func list(_ path: String) throws(KSMKernelError) -> [String] {
        guard let dir = opendir(path) else { throw KSMKernelError(path: path, operation: .list, errno: errno) }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: entry.pointee.d_name) { ptr in
                ptr.withMemoryRebound(to: CChar.self, capacity: MemoryLayout.size(ofValue: entry.pointee.d_name)) {
                    String(cString: $0)
                }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    static func exists(_ path: String) -> Bool {
        access(path, F_OK) == 0
    }
}
