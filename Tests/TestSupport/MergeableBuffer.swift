#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

public struct MergeableBufferError: Error, CustomStringConvertible {
    public var description: String
}

/// Anonymous memory owned by a test: `pages` pages filled with identical content and marked
/// MADV_MERGEABLE, so ksmd merges them. Unmapped when released.
public final class MergeableBuffer: @unchecked Sendable {
    public let pages: Int
    public let pageSize: Int
    private let base: UnsafeMutableRawPointer

    public init(pages: Int, fill: UInt8 = 0x5A) throws {
        let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))
        let length = pages * pageSize
        guard let p = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
            p != MAP_FAILED
        else {
            throw MergeableBufferError(
                description: "mmap of \(length) bytes failed: \(String(cString: strerror(errno)))")
        }
        self.pages = pages
        self.pageSize = pageSize
        self.base = p
        // Identical content in every page (not zeros, so use_zero_pages does not matter);
        // writing also makes the pages present.
        for i in 0..<pages {
            let page = p.advanced(by: i * pageSize)
            memset(page, Int32(fill), pageSize)
            page.storeBytes(of: UInt64(0x6B736D666C656574), as: UInt64.self)  // "ksmfleet"
        }
        if madvise(p, length, MADV_MERGEABLE) != 0 {
            let code = errno
            munmap(p, length)
            throw MergeableBufferError(
                description: "madvise(MADV_MERGEABLE) failed: \(String(cString: strerror(code)))")
        }
    }

    /// Reads every page, so the test keeps using the memory (and the compiler keeps it).
    public func checksum() -> UInt64 {
        var sum: UInt64 = 0
        for i in 0..<pages {
            sum &+= base.advanced(by: i * pageSize).load(as: UInt64.self)
        }
        return sum
    }

    deinit {
        munmap(base, pages * pageSize)
    }
}
