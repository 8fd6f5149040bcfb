import KSMCore

/// Parsers for the text the kernel gives in sysfs and procfs. Pure, so tests feed them samples.
public enum ProcParsing {
    /// A sysfs integer file ("1\n").
    public static func integer(_ text: String) -> Int64? {
        Int64(text.trimmed)
    }

    /// A sysfs choice file such as `advisor_mode`: "[none] scan-time" → "none". A file without
    /// brackets gives its whole trimmed content.
    public static func selectedChoice(_ text: String) -> String? {
        let t = text.trimmed
        guard !t.isEmpty else { return nil }
        if let open = t.firstIndex(of: "["), let close = t[open...].firstIndex(of: "]") {
            let inner = t[t.index(after: open)..<close]
            return inner.isEmpty ? nil : String(inner)
        }
        return t
    }

    /// `/proc/meminfo`: the figures the tuner needs, in kB. MemTotal is required; MemAvailable
    /// falls back to MemFree + Buffers + Cached on kernels older than 3.14.
    public static func meminfo(_ text: String) -> MemorySnapshot? {
        var values: [Substring: Int64] = [:]
        for line in text.split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let key = line[..<colon]
            let rest = line[line.index(after: colon)...].split(separator: " ", omittingEmptySubsequences: true)
            if let first = rest.first, let v = Int64(first) { values[key] = v }
        }
        guard let total = values["MemTotal"] else { return nil }
        let free = values["MemFree"] ?? 0
        let buffers = values["Buffers"] ?? 0
        let cached = values["Cached"] ?? 0
        return MemorySnapshot(
            memTotalKB: total, memAvailableKB: values["MemAvailable"] ?? (free + buffers + cached),
            memFreeKB: free, buffersKB: buffers, cachedKB: cached, anonPagesKB: values["AnonPages"] ?? 0)
    }

    /// The fields of `/proc/PID/stat` after the command name: the name is inside parentheses and
    /// may itself contain spaces and ')', so everything is read after the LAST ')'.
    /// Returns (comm, fields from field 3 on).
    public static func statFields(_ text: String) -> (comm: String, rest: [Substring])? {
        guard let open = text.firstIndex(of: "("), let close = text.lastIndex(of: ")"), open < close else {
            return nil
        }
        let comm = String(text[text.index(after: open)..<close])
        let rest = text[text.index(after: close)...].split(whereSeparator: { $0 == " " || $0 == "\n" })
        return (comm, rest)
    }

    /// utime + stime (fields 14 and 15 of `/proc/PID/stat`) in clock ticks.
    public static func cpuTicks(stat text: String) -> UInt64? {
        guard let (_, rest) = statFields(text) else { return nil }
        // rest[0] is field 3 (state), so field N is rest[N - 3].
        guard rest.count > 12, let utime = UInt64(rest[11]), let stime = UInt64(rest[12]) else { return nil }
        return utime + stime
    }
}
