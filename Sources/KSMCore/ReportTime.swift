/// UTC calendar arithmetic, formatting and the parsing of times people write, on Unix seconds
/// (no Foundation calendar, so it behaves the same on the agent, the CLI and the server).
public enum ReportTime {
    public static let hour: Double = 3600
    public static let day: Double = 86400

    /// Start of the UTC hour holding `t`.
    public static func hourStart(_ t: Double) -> Double { (t / hour).rounded(.down) * hour }
    /// Start of the UTC day holding `t`.
    public static func dayStart(_ t: Double) -> Double { (t / day).rounded(.down) * day }

    /// Start of the UTC calendar month holding `t`.
    public static func monthStart(_ t: Double) -> Double {
        let (y, m, _) = civilFromDays(Int((t / day).rounded(.down)))
        return Double(daysFromCivil(year: y, month: m, day: 1)) * day
    }

    /// Start of the UTC calendar month after the one holding `t`.
    public static func nextMonthStart(_ t: Double) -> Double {
        let (y, m, _) = civilFromDays(Int((t / day).rounded(.down)))
        return Double(daysFromCivil(year: m == 12 ? y + 1 : y, month: m == 12 ? 1 : m + 1, day: 1)) * day
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
    public static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146097 + doe - 719468
    }

    /// The date of a day number since 1970-01-01.
    public static func civilFromDays(_ z0: Int) -> (year: Int, month: Int, day: Int) {
        let z = z0 + 719468
        let era = (z >= 0 ? z : z - 146096) / 146097
        let doe = z - era * 146097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
    }

    private static func pad(_ v: Int, _ width: Int) -> String {
        let s = String(v)
        return s.count >= width ? s : String(repeating: "0", count: width - s.count) + s
    }

    /// `YYYY-MM-DD` of the UTC day holding `t`.
    public static func dayKey(_ t: Double) -> String {
        let (y, m, d) = civilFromDays(Int((t / day).rounded(.down)))
        return "\(pad(y, 4))-\(pad(m, 2))-\(pad(d, 2))"
    }

    /// `YYYY-MM-DDTHH:MM:SSZ` (whole seconds, UTC).
    public static func iso(_ t: Double) -> String {
        let secs = Int(t.rounded(.down))
        let days = Int((Double(secs) / day).rounded(.down))
        let rem = secs - days * 86400
        return "\(dayKey(t))T\(pad(rem / 3600, 2)):\(pad(rem % 3600 / 60, 2)):\(pad(rem % 60, 2))Z"
    }

    /// Which way a duration without a sign goes from now.
    public enum Direction: Sendable {
        /// Ago: `--since 24h`, a report's `since=7d`.
        case past
        /// From now: `--expires 7d`.
        case future
    }

    /// Parses a time as people write it: `now`; a duration `30s`, `30m`, `24h`, `7d`, `2w`, ago
    /// or from now as `direction` says, or as its sign says (`-24h` ago, `+7d` from now); a UTC
    /// date `YYYY-MM-DD`; ISO 8601 `YYYY-MM-DDTHH:MM[:SS[.fff]](Z|±HH:MM|±HHMM)` (a space may
    /// replace the T; without a zone it is UTC; `Timestamp`'s `.lenient` form); or Unix seconds
    /// `@1700000000` (within ±10¹¹). Returns Unix seconds, nil when the text is none of these.
    public static func parse(_ text: String, now: Double, direction: Direction = .past) -> Double? {
        let s = text.trimmed
        if s.isEmpty { return nil }
        if s.lowercased() == "now" { return now }
        if s.hasPrefix("@") {
            // Finite and within ±10¹¹ s (about the year 5138): `@nan`, `@inf` or `@1e17` trapped
            // the server where a time becomes an integer (any signed-in viewer's report link).
            guard let v = Double(s.dropFirst()), v.isFinite, abs(v) <= 1e11 else { return nil }
            return v
        }
        if let seconds = durationSeconds(s) {
            var ago = direction == .past
            if s.hasPrefix("-") { ago = true }
            if s.hasPrefix("+") { ago = false }
            return ago ? now - seconds : now + seconds
        }
        return Timestamp.parse(s, form: .lenient)?.unixTime
    }

    /// `7d` → 604800, `-24h` → 86400 (the sign is the caller's); nil when the text is not a
    /// duration (a number ≥ 0 below 10⁹ and one of the units s, m, h, d, w).
    public static func durationSeconds(_ s: String) -> Double? {
        guard let unit = s.last else { return nil }
        var body = Substring(s.dropLast())
        if body.hasPrefix("-") || body.hasPrefix("+") { body = body.dropFirst() }
        guard !body.contains("-"), !body.contains("+"), let n = Double(body), n.isFinite, n >= 0, n < 1e9 else {
            return nil
        }
        switch unit {
        case "s": return n
        case "m": return n * 60
        case "h": return n * hour
        case "d": return n * day
        case "w": return n * 7 * day
        default: return nil
        }
    }

    /// A decimal with at most `places` digits after the point, trailing zeros removed
    /// (`1.5`, `2`, `0.333`), for CSV and the dashboard. No exponent notation.
    /// `v` with every digit it has, without an exponent: the shortest text that reads back as
    /// the same double (Swift's `description`), its exponent written out (`0.00019073486328125`,
    /// `1073741824`). What the CSV carries: the JSON's value, not a rounding of it.
    public static func exactDecimal(_ v: Double) -> String {
        guard v.isFinite else { return "" }
        if v == v.rounded(), abs(v) < 1e15 { return String(Int64(v)) }
        let text = "\(v)"
        guard let e = text.firstIndex(where: { $0 == "e" || $0 == "E" }), let exponent = Int(text[text.index(after: e)...])
        else { return text }
        var mantissa = text[..<e]
        let negative = mantissa.hasPrefix("-")
        if negative { mantissa.removeFirst() }
        let parts = mantissa.split(separator: ".", omittingEmptySubsequences: false)
        let digits = String(parts[0]) + (parts.count > 1 ? String(parts[1]) : "")
        let point = parts[0].count + exponent
        let plain =
            point <= 0
            ? "0." + String(repeating: "0", count: -point) + digits
            : point >= digits.count
                ? digits + String(repeating: "0", count: point - digits.count)
                : String(digits.prefix(point)) + "." + String(digits.dropFirst(point))
        return (negative ? "-" : "") + plain
    }

    public static func decimal(_ v: Double, places: Int = 3) -> String {
        guard v.isFinite else { return "" }
        var scale = 1.0
        for _ in 0..<places { scale *= 10 }
        let scaled = (abs(v) * scale).rounded()
        guard scaled < 9.0e18 else { return "\(v.rounded())" }
        let n = UInt64(scaled)
        let s = UInt64(scale)
        var intPart = String(n / s)
        var frac = String(n % s)
        if places > 0 {
            frac = String(repeating: "0", count: places - frac.count) + frac
            while frac.hasSuffix("0") { frac.removeLast() }
        } else {
            frac = ""
        }
        if v < 0 && n > 0 { intPart = "-" + intPart }
        return frac.isEmpty ? intPart : intPart + "." + frac
    }
}
