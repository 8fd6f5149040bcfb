#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import KSMNode

/// A failure of the agent's own files (state directory, spool, config file).
public struct AgentFileError: Error, Sendable, CustomStringConvertible {
    public var path: String
    public var message: String
    public init(path: String, message: String) {
        self.path = path
        self.message = message
    }
    public var description: String { "\(path): \(message)" }

    static func errno(_ path: String, _ what: String, _ code: Int32 = Glibc.errno) -> AgentFileError {
        AgentFileError(path: path, message: "\(what): \(Errno.name(code)) (\(Errno.message(code)))")
    }
}

/// Small POSIX file helpers: private files (0600) written atomically (temp file, fsync, rename).
enum StateFiles {
    static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    /// Creates the directory (and parents) with mode 0700, and tightens an existing one to 0700.
    static func ensurePrivateDirectory(_ path: String) throws(AgentFileError) {
        var prefix = path.hasPrefix("/") ? "" : "."
        for part in path.split(separator: "/") {
            prefix += "/" + part
            if mkdir(prefix, 0o700) != 0 && Glibc.errno != EEXIST {
                throw .errno(prefix, "cannot create the directory")
            }
        }
        if chmod(path, 0o700) != 0 { throw .errno(path, "cannot set mode 0700") }
    }

    static func read(_ path: String) throws(AgentFileError) -> Data? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            if Glibc.errno == ENOENT { return nil }
            throw .errno(path, "cannot open")
        }
        defer { close(fd) }
        var out = Data()
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if Glibc.errno == EINTR { continue }
                throw .errno(path, "cannot read")
            }
            if n == 0 { break }
            out.append(contentsOf: chunk[0..<n])
        }
        return out
    }

    static func readText(_ path: String) throws(AgentFileError) -> String? {
        try read(path).map { String(decoding: $0, as: UTF8.self) }
    }

    /// Replaces `path` atomically with `data`, mode 0600, synced to disk.
    static func writeAtomically(_ path: String, _ data: Data) throws(AgentFileError) {
        let tmp = path + ".tmp"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        if fd < 0 { throw .errno(tmp, "cannot create") }
        do throws(AgentFileError) {
            try writeAll(fd, data, path: tmp)
            if fchmod(fd, 0o600) != 0 { throw .errno(tmp, "cannot set mode 0600") }
            if fsync(fd) != 0 { throw .errno(tmp, "cannot sync") }
        } catch {
            close(fd)
            unlink(tmp)
            throw error
        }
        close(fd)
        if rename(tmp, path) != 0 {
            let code = Glibc.errno
            unlink(tmp)
            throw .errno(path, "cannot rename into place", code)
        }
        syncDirectory(of: path)
    }

    /// Appends `data` to `path` (created 0600), synced.
    /// Appends `data` whole or not at all: a write cut short (a full disk) is cut off again, so
    /// that no torn line is left for the next append to be glued onto.
    static func append(_ path: String, _ data: Data) throws(AgentFileError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        if fd < 0 { throw .errno(path, "cannot open for append") }
        defer { close(fd) }
        let before = lseek(fd, 0, SEEK_END)
        do throws(AgentFileError) {
            try writeAll(fd, data, path: path)
            if fsync(fd) != 0 { throw AgentFileError.errno(path, "cannot sync") }
        } catch {
            if before >= 0 { _ = ftruncate(fd, before) }
            throw error
        }
    }

    /// Cuts a file after its last newline (a line torn by a crash mid-append); true when it had
    /// to.
    @discardableResult
    static func trimTornLine(_ path: String) throws(AgentFileError) -> Bool {
        guard let data = try read(path), let last = data.last, last != UInt8(ascii: "\n") else { return false }
        let keep = data.lastIndex(of: UInt8(ascii: "\n")).map { $0 - data.startIndex + 1 } ?? 0
        if truncate(path, off_t(keep)) != 0 { throw .errno(path, "cannot cut its torn last line") }
        return true
    }

    static func writeAll(_ fd: Int32, _ data: Data, path: String) throws(AgentFileError) {
        var offset = 0
        while offset < data.count {
            let n = data.withUnsafeBytes { buf in
                Glibc.write(fd, buf.baseAddress.map { $0 + offset }, buf.count - offset)
            }
            if n < 0 {
                if Glibc.errno == EINTR { continue }
                throw .errno(path, "cannot write")
            }
            offset += n
        }
    }

    static func remove(_ path: String) {
        unlink(path)
    }

    static func list(_ path: String) throws(AgentFileError) -> [String] {
        guard let dir = opendir(path) else { throw .errno(path, "cannot list") }
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
        return names.sorted()
    }

    static func fileSize(_ path: String) -> Int {
        var st = stat()
        return stat(path, &st) == 0 ? Int(st.st_size) : 0
    }

    static func mode(_ path: String) -> Int? {
        var st = stat()
        return stat(path, &st) == 0 ? Int(st.st_mode & 0o7777) : nil
    }

    private static func syncDirectory(of path: String) {
        let dir: String
        if let slash = path.lastIndex(of: "/") {
            dir = slash == path.startIndex ? "/" : String(path[..<slash])
        } else {
            dir = "."
        }
        let fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd >= 0 {
            fsync(fd)
            close(fd)
        }
    }
}
