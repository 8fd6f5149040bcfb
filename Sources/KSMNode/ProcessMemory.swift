#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// This process's own memory, from /proc/self (Linux only): what the agent reports about itself,
/// and the one-time trim of its start-up pages.
public enum ProcessMemory {
    /// Resident and anonymous memory of this process (`/proc/self/smaps_rollup`), in bytes.
    public struct Usage: Sendable, Equatable {
        public var residentBytes: Int64
        public var anonymousBytes: Int64
    }

    public static func usage() -> Usage? {
        guard let text = try? FileIO.read("/proc/self/smaps_rollup") else { return nil }
        var usage = Usage(residentBytes: 0, anonymousBytes: 0)
        for line in text.split(separator: "\n") {
            if line.hasPrefix("Rss:") { usage.residentBytes = kilobytes(line) * 1024 }
            if line.hasPrefix("Anonymous:") { usage.anonymousBytes = kilobytes(line) * 1024 }
        }
        return usage
    }

    /// One mapping of `/proc/self/smaps`, with what the trim needs to know about it.
    public struct Mapping: Sendable, Equatable {
        public var start: UInt
        public var end: UInt
        public var permissions: String
        public var path: String
        public var residentKB: Int64 = 0
        public var anonymousKB: Int64 = 0
        /// Copy-on-write pages of this mapping that were swapped out (not counted as Anonymous).
        public var swapKB: Int64 = 0
        public var flags: [String] = []

        /// Read-only pages of a regular file that this process never wrote (no anonymous
        /// copy-on-write page in it, in memory or in swap) and that are not locked, huge-page or
        /// device memory: dropping them from the page tables loses nothing, the next access maps
        /// them again from the page cache.
        public var isCleanFileMapping: Bool {
            permissions.hasPrefix("r-") && path.hasPrefix("/") && !path.hasPrefix("/dev/")
                && !path.hasSuffix(" (deleted)") && anonymousKB == 0 && swapKB == 0
                && !flags.contains("lo") && !flags.contains("io") && !flags.contains("pf") && !flags.contains("ht")
        }

        /// The executable or a shared library: mapped by the loader and never unmapped while
        /// the agent runs (it unloads no library), so its range cannot be reused under the trim.
        public func isLoadedObject(executable: String) -> Bool {
            path == executable || (path.split(separator: "/").last ?? "").contains(".so")
        }
    }

    /// Parses the text of `/proc/PID/smaps`.
    public static func mappings(smaps text: String) -> [Mapping] {
        var result: [Mapping] = []
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
            let first = line.first ?? " "
            if first.isHexDigit, let range = line.split(separator: " ", maxSplits: 1).first,
                range.contains("-")
            {
                // "start-end perms offset dev inode   path"
                let fields = line.split(separator: " ", maxSplits: 5, omittingEmptySubsequences: true)
                let bounds = range.split(separator: "-")
                guard fields.count >= 5, bounds.count == 2, let start = UInt(bounds[0], radix: 16),
                    let end = UInt(bounds[1], radix: 16)
                else { continue }
                let path = fields.count == 6 ? fields[5].trimmingLeadingSpaces() : ""
                result.append(Mapping(start: start, end: end, permissions: String(fields[1]), path: path))
            } else if !result.isEmpty {
                if line.hasPrefix("Rss:") {
                    result[result.count - 1].residentKB = kilobytes(line)
                } else if line.hasPrefix("Anonymous:") {
                    result[result.count - 1].anonymousKB = kilobytes(line)
                } else if line.hasPrefix("Swap:") {
                    result[result.count - 1].swapKB = kilobytes(line)
                } else if line.hasPrefix("VmFlags:") {
                    result[result.count - 1].flags = line.dropFirst("VmFlags:".count).split(separator: " ").map(String.init)
                }
            }
        }
        return result
    }

    /// What a trim did.
    public struct Trim: Sendable, Equatable {
        public var mappings: Int
        /// Resident kilobytes those mappings had before.
        public var releasedKB: Int64
    }

    /// Drops this process's page-table entries for the clean file pages of its executable and
    /// shared libraries (`MADV_DONTNEED` on their read-only mappings that hold no anonymous page,
    /// in memory or in swap): the code and data that only start-up touched (argument parsing,
    /// registration, the runtime's first scans, the libraries' initialisers) stop counting in its
    /// RSS. The pages stay in the page cache, where the kernel can reclaim them without unmapping
    /// anything, and the ones still used come back at their next access — what page reclaim does
    /// to any process at any time. Writable, anonymous, locked, huge-page and device mappings,
    /// and files other than the loaded objects, are left alone.
    ///
    /// Only mappings found identical in two reads of smaps `settle` apart are trimmed: a library
    /// being loaded at that moment (ld.so maps its whole span read-only first, then maps and
    /// relocates the data segment over part of it) is never caught between the two steps. What
    /// this cannot rule out: a library unloaded and its range reused, or a debugger breakpoint
    /// (a copy-on-write page) planted, in the microseconds between the second read and
    /// `madvise`. The agent unloads no library; a breakpoint set at that instant would be lost.
    public static func trimCleanFileMappings(settle: Duration = .milliseconds(50)) async -> Trim? {
        let executable = (try? FileIO.readLink("/proc/self/exe")) ?? ""
        func candidates(_ text: String) -> [Mapping] {
            mappings(smaps: text).filter { $0.isCleanFileMapping && $0.isLoadedObject(executable: executable) }
        }
        guard let first = try? FileIO.read("/proc/self/smaps") else { return nil }
        let stable = Set(candidates(first).map(MappingKey.init))
        try? await Task.sleep(for: settle)
        guard let second = try? FileIO.read("/proc/self/smaps") else { return nil }
        var trim = Trim(mappings: 0, releasedKB: 0)
        for m in candidates(second) where m.residentKB > 0 && stable.contains(MappingKey(m)) {
            guard let address = UnsafeMutableRawPointer(bitPattern: m.start) else { continue }
            if madvise(address, Int(m.end - m.start), MADV_DONTNEED) == 0 {
                trim.mappings += 1
                trim.releasedKB += m.residentKB
            }
        }
        return trim
    }

    private struct MappingKey: Hashable {
        let start: UInt, end: UInt, permissions: String, path: String
        init(_ m: Mapping) { (start, end, permissions, path) = (m.start, m.end, m.permissions, m.path) }
    }

    private static func kilobytes(_ line: Substring) -> Int64 {
        Int64(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") ?? 0
    }
}

extension Substring {
    fileprivate func trimmingLeadingSpaces() -> String { String(drop(while: { $0 == " " })) }
}
