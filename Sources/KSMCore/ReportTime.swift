/// UTC calendar arithmetic and parsing for reports, on Unix seconds (no Foundation calendar,
/// so it behaves the same on the agent, the CLI and the server).
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

    /// Parses a report time: `now`; relative `-30m`, `-24h`, `-7d`, `-2w` (or `30m` etc., also meaning
    /// ago); a UTC date `YYYY-MM-DD`; ISO 8601 `YYYY-MM-DDTHH:MM[:SS[.fff]](Z|±HH:MM|±HHMM)`
    /// (a space may replace the T; without a zone it is UTC); or Unix seconds `@1700000000`.
    /// Returns Unix seconds, nil when the text is none of these.
    public static func parse(_ text: String, now: Double) -> Double? {
        let s = text.trimmed
        if s.isEmpty { return nil }
        if s.lowercased() == "now" { return now }
        if s.hasPrefix("@") { return Double(s.dropFirst()) }
        // Relative.
        if let unit = s.last, "smhdw".contains(unit), !s.contains(":") {
            var body = Substring(s.dropLast())
            if body.hasPrefix("-") { body = body.dropFirst() }
            if let n = Double(body), n >= 0, n.isFinite {
                let mult: Double = ["s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800][String(unit)] ?? 1
                return now - n * mult
            }
        }
        return parseISO(s)
    }

    static func parseISO(_ s: String) -> Double? {
        let chars = Array(s.utf8)
        var i = 0
        func number(_ width: Int) -> Int? {
            guard i + width <= chars.count else { return nil }
            var v = 0
            for k in 0..<width {
                let c = chars[i + k]
                guard c >= 48 && c <= 57 else { return nil }
                v = v * 10 + Int(c - 48)
            }
            i += width
            return v
        }
        func expect(_ c: UInt8) -> Bool {
            guard i < chars.count, chars[i] == c else { return false }
            i += 1
            return true
        }
        guard let y = number(4), expect(45), let mo = number(2), expect(45), let d = number(2),
            (1...12).contains(mo), (1...31).contains(d)
        else { return nil }
        var t = Double(daysFromCivil(year: y, month: mo, day: d)) * day
        if i == chars.count { return t }
        guard i < chars.count, chars[i] == 84 || chars[i] == 116 || chars[i] == 32 else { return nil }
        i += 1
        guard let h = number(2), expect(58), let mi = number(2), h < 24, mi < 60 else { return nil }
        t += Double(h * 3600 + mi * 60)
        if expect(58) {
            guard let sec = number(2), sec < 61 else { return nil }
            t += Double(sec)
            if expect(46) || expect(44) {
                var frac = 0.0
                var scale = 0.1
                var digits = 0
                while i < chars.count, chars[i] >= 48 && chars[i] <= 57 {
                    frac += Double(chars[i] - 48) * scale
                    scale /= 10
                    i += 1
                    digits += 1
                }
                guard digits > 0 else { return nil }
                t += frac
            }
        }
        if i == chars.count { return t }
        if chars[i] == 90 || chars[i] == 122 {  // Z
            i += 1
            return i == chars.count ? t : nil
        }
        guard chars[i] == 43 || chars[i] == 45 else { return nil }
        let sign: Double = chars[i] == 43 ? 1 : -1
        i += 1
        guard let oh = number(2) else { return nil }
        _ = expect(58)
        guard let om = number(2), i == chars.count, oh < 24, om < 60 else { return nil }
        return t - sign * Double(oh * 3600 + om * 60)
    }

    /// A decimal with at most `places` digits after the point, trailing zeros removed
    /// (`1.5`, `2`, `0.333`), for CSV and the dashboard. No exponent notation.
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
