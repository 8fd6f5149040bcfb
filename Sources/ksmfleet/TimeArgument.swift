import Foundation

/// Times on the command line: ISO 8601 (`2026-11-01`, `2026-11-01T12:00:00Z`) or relative to now
/// (`30m`, `24h`, `7d`, `2w`, `90s`): in the past for --since/--until, in the future for --expires.
enum TimeArgument {
    enum Direction { case past, future }

    static func parse(_ text: String, option: String, direction: Direction, now: Date = Date()) throws(CLIError) -> Date
    {
        var t = text.trimmingCharacters(in: .whitespaces)
        if t.lowercased() == "now" { return now }
        // "-24h" (ago) and "+7d" (from now) say the direction themselves; "24h" takes the option's.
        var dir = direction
        if t.count > 1, let sign = t.first, sign == "-" || sign == "+", relativeSeconds(String(t.dropFirst())) != nil {
            dir = sign == "-" ? .past : .future
            t.removeFirst()
        }
        if let seconds = relativeSeconds(t) {
            return dir == .past ? now.addingTimeInterval(-seconds) : now.addingTimeInterval(seconds)
        }
        if let d = iso(t) { return d }
        throw .usage(
            "\(option): '\(text)' is not a time; use ISO 8601 (2026-11-01 or 2026-11-01T12:00:00Z) or a duration like 30m, 24h, 7d"
        )
    }

    /// `7d` → 604800; nil when the text is not a duration.
    static func relativeSeconds(_ t: String) -> Double? {
        guard let unit = t.last, let n = Double(t.dropLast()), n.isFinite, n >= 0, n < 1e9, !t.dropLast().contains("-")
        else { return nil }
        switch unit {
        case "s": return n
        case "m": return n * 60
        case "h": return n * 3600
        case "d": return n * 86400
        case "w": return n * 7 * 86400
        default: return nil
        }
    }

    static func iso(_ t: String) -> Date? {
        let full = ISO8601DateFormatter()
        full.formatOptions = [.withInternetDateTime]
        if let d = full.date(from: t) { return d }
        full.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let d = full.date(from: t) { return d }
        let day = ISO8601DateFormatter()
        day.formatOptions = [.withFullDate]
        day.timeZone = TimeZone(identifier: "UTC")
        return day.date(from: t)
    }

    /// How a time goes on the wire (query parameters).
    static func wire(_ d: Date) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime]
        return f.string(from: d)
    }
}
