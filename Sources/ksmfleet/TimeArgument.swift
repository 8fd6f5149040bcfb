import Foundation
import KSMCore

/// Times on the command line, read by `ReportTime.parse` (the server reads report times the
/// same way): ISO 8601 (`2026-11-01`, `2026-11-01T12:00:00Z`), `now`, `@` Unix seconds, or a
/// duration (`30m`, `24h`, `7d`, `2w`, `90s`): in the past for --since/--until, in the future for
/// --expires, unless a sign says otherwise (`-24h`, `+7d`).
enum TimeArgument {
    static func parse(
        _ text: String, option: String, direction: ReportTime.Direction, now: Date = Date()
    ) throws(CLIError) -> Date {
        guard let t = ReportTime.parse(text, now: now.timeIntervalSince1970, direction: direction) else {
            throw .usage(
                "\(option): '\(text)' is not a time; use ISO 8601 (2026-11-01 or 2026-11-01T12:00:00Z) or a duration like 30m, 24h, 7d"
            )
        }
        return Date(timeIntervalSince1970: t)
    }

    /// An --expires value: nil when not given, else a time that must lie in the future.
    static func expiry(_ text: String?, example: String, now: Date = Date()) throws(CLIError) -> Date? {
        guard let text else { return nil }
        let d = try parse(text, option: "--expires", direction: .future, now: now)
        if d <= now {
            throw .usage("--expires \(text) is in the past; give a future time or a duration like \(example)")
        }
        return d
    }
}
