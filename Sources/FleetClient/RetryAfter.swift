#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import KSMCore

/// The `Retry-After` header of an error reply (RFC 9110 §10.2.3), in seconds from now.
public enum RetryAfter {
    /// `value` is delay-seconds (`120`) or an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`,
    /// the form servers send); a date already past is 0 s. Nil for anything else (the obsolete
    /// RFC 850 and asctime date forms included): the caller then keeps its own backoff.
    public static func seconds(_ value: String, now: Date = Date()) -> Double? {
        let v = value.trimmed
        if !v.isEmpty, v.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) {
            // Beyond a year is as good as "much later": no overflow for absurd values.
            return v.count > 8 ? 365 * 86_400 : Double(Int(v)!)
        }
        guard let date = imfFixdate(v) else { return nil }
        return max(0, date.timeIntervalSince(now))
    }

    private static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    private static let weekdays = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]

    /// `Sun, 06 Nov 1994 08:49:37 GMT` → that instant; nil for any other shape or an impossible date.
    static func imfFixdate(_ s: String) -> Date? {
        let parts = s.split(separator: " ", omittingEmptySubsequences: false)
        guard parts.count == 6, parts[0].count == 4, parts[0].hasSuffix(","),
            weekdays.contains(String(parts[0].dropLast())), parts[5] == "GMT",
            parts[1].count == 2, let day = Int(parts[1]),
            let month = months.firstIndex(of: String(parts[2])).map({ $0 + 1 }),
            parts[3].count == 4, let year = Int(parts[3])
        else { return nil }
        let clock = parts[4].split(separator: ":", omittingEmptySubsequences: false)
        guard clock.count == 3, clock.allSatisfy({ $0.count == 2 }),
            let h = Int(clock[0]), let m = Int(clock[1]), let sec = Int(clock[2]),
            (0...23).contains(h), (0...59).contains(m), (0...60).contains(sec),
            day >= 1, day <= daysIn(month: month, year: year)
        else { return nil }
        let days = daysFromCivil(year: year, month: month, day: day)
        return Date(timeIntervalSince1970: Double(days * 86_400 + h * 3_600 + m * 60 + sec))
    }

    private static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
    private static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }
}
