/// A written date and time, as its fields: the one parser of ISO 8601 / RFC 3339 text in the
/// project. The server's sample decoder reads JSON timestamps with it (`.rfc3339`), report times
/// and the CLI's `--since`/`--until`/`--expires` go through `ReportTime.parse` (`.lenient`), and
/// the calendar arithmetic is `ReportTime.daysFromCivil`'s.
public struct Timestamp: Sendable, Equatable {
    public var year: Int
    public var month: Int
    public var day: Int
    public var hour = 0
    public var minute = 0
    public var second = 0
    /// The fraction of the second, in nanoseconds (the first nine digits).
    public var nanoseconds: Int64 = 0
    /// The zone's offset east of UTC, in seconds (0 for `Z` and for no zone).
    public var offsetSeconds = 0

    /// What text is taken.
    public enum Form: Sendable {
        /// `YYYY-MM-DDTHH:MM:SS[.f{1,9}](Z|±HH:MM)`: what JSON timestamps carry.
        case rfc3339
        /// For people: also a date alone `YYYY-MM-DD`, `t` or a space for the `T`, no seconds
        /// (`HH:MM`), a leap second `:60`, any number of fraction digits (nine are kept) after `.`
        /// or `,`, no zone (UTC), `z`, and `±HHMM`.
        case lenient
    }

    /// Whole seconds since 1970-01-01T00:00:00Z (the fraction is `nanoseconds`).
    public var unixSeconds: Int64 {
        Int64(ReportTime.daysFromCivil(year: year, month: month, day: day)) * 86400
            + Int64(hour * 3600 + minute * 60 + second) - Int64(offsetSeconds)
    }

    /// Seconds since 1970-01-01T00:00:00Z, with the fraction.
    public var unixTime: Double { Double(unixSeconds) + Double(nanoseconds) / 1e9 }

    /// Whether `day` exists in that month of the proleptic Gregorian calendar.
    public static func isValidDate(year: Int, month: Int, day: Int) -> Bool {
        guard (1...12).contains(month), day >= 1 else { return false }
        switch month {
        case 2:
            let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
            return day <= (leap ? 29 : 28)
        case 4, 6, 9, 11: return day <= 30
        default: return day <= 31
        }
    }

    public static func parse(_ text: String, form: Form) -> Timestamp? {
        var text = text
        return text.withUTF8 { parse($0, form: form) }
    }

    /// Parses the whole of `bytes` (UTF-8); nil when any of it is not a valid time in `form`
    /// (calendar values included: no 2026-02-30, no 24:00).
    public static func parse(_ bytes: UnsafeBufferPointer<UInt8>, form: Form) -> Timestamp? {
        let end = bytes.count
        let lenient = form == .lenient
        var j = 0
        func num(_ count: Int) -> Int? {
            guard j + count <= end else { return nil }
            var v = 0
            for _ in 0..<count {
                let d = bytes[j] &- 0x30
                guard d <= 9 else { return nil }
                v = v * 10 + Int(d)
                j += 1
            }
            return v
        }
        func lit(_ c: UInt8) -> Bool {
            guard j < end, bytes[j] == c else { return false }
            j += 1
            return true
        }
        guard let year = num(4), lit(0x2D), let month = num(2), lit(0x2D), let day = num(2),
            isValidDate(year: year, month: month, day: day)
        else { return nil }
        var t = Timestamp(year: year, month: month, day: day)
        if lenient && j == end { return t }
        // T (or t or a space)
        guard j < end, bytes[j] == 0x54 || (lenient && (bytes[j] == 0x74 || bytes[j] == 0x20)) else { return nil }
        j += 1
        guard let hour = num(2), lit(0x3A), let minute = num(2), hour <= 23, minute <= 59 else { return nil }
        t.hour = hour
        t.minute = minute
        if lit(0x3A) {
            guard let second = num(2), second <= (lenient ? 60 : 59) else { return nil }
            t.second = second
            if lit(0x2E) || (lenient && lit(0x2C)) {
                var count = 0
                while j < end, bytes[j] &- 0x30 <= 9 {
                    if count < 9 { t.nanoseconds = t.nanoseconds * 10 + Int64(bytes[j] &- 0x30) }
                    count += 1
                    j += 1
                    if count > 9 && !lenient { return nil }
                }
                guard count > 0 else { return nil }
                for _ in min(count, 9)..<9 { t.nanoseconds *= 10 }
            }
        } else if !lenient {
            return nil
        }
        if j == end { return lenient ? t : nil }
        if bytes[j] == 0x5A || (lenient && bytes[j] == 0x7A) {  // Z
            j += 1
            return j == end ? t : nil
        }
        guard bytes[j] == 0x2B || bytes[j] == 0x2D else { return nil }
        let sign = bytes[j] == 0x2D ? -1 : 1
        j += 1
        guard let oh = num(2) else { return nil }
        let colon = lit(0x3A)
        guard colon || lenient, let om = num(2), j == end, oh <= 23, om <= 59 else { return nil }
        t.offsetSeconds = sign * (oh * 3600 + om * 60)
        return t
    }
}
