/// How figures are written for people, the same in the CLI, the dashboard and the docs
/// (docs/numbers.md): a fixed number of significant digits, so that a small value is never
/// shown as a bare 0 and a large one carries no false precision.
public enum Display {
    /// Significant digits shown by default.
    public static let significant = 3

    /// `v` with `significant` significant digits, without an exponent and without trailing
    /// zeros: 0.004 → "0.004", 0.0001234 → "0.000123", 1234.5 → "1235", 0 → "0".
    /// Values below 1e-9 in magnitude (but not 0) are written "<0.000000001" so that nothing
    /// non-zero reads as zero.
    public static func number(_ v: Double, significant: Int = Display.significant) -> String {
        guard v.isFinite else { return "—" }
        if v == 0 { return "0" }
        let magnitude = abs(v)
        if magnitude < 1e-9 { return (v < 0 ? "-" : "") + "<0.000000001" }
        var exponent = 0
        var m = magnitude
        while m >= 10 {
            m /= 10
            exponent += 1
        }
        while m < 1 {
            m *= 10
            exponent -= 1
        }
        var places = max(0, significant - 1 - exponent)
        // Rounding can carry into a new digit (9.996 → 10.0): one place fewer then.
        var scale = 1.0
        for _ in 0..<places { scale *= 10 }
        if (magnitude * scale).rounded() >= pow10(significant) && places > 0 { places -= 1 }
        return ReportTime.decimal(v, places: places)
    }

    private static func pow10(_ n: Int) -> Double {
        var x = 1.0
        for _ in 0..<n { x *= 10 }
        return x
    }

    /// Bytes in binary units (B, KiB, MiB, GiB, TiB, PiB): 603979776 → "576 MiB".
    public static func bytes(_ v: Double) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]
        var x = v
        var i = 0
        while abs(x) >= 1024 && i < units.count - 1 {
            x /= 1024
            i += 1
        }
        // Rounding to 3 digits can reach 1024 (1023.9 MiB): write the next unit then.
        if i < units.count - 1 && abs(Double(number(x)) ?? 0) >= 1024 {
            x /= 1024
            i += 1
        }
        return number(x) + " " + units[i]
    }

    public static func bytes(_ v: Int64) -> String { bytes(Double(v)) }

    /// A percentage: 0.04 → "0.04 %".
    public static func percent(_ p: Double) -> String { number(p) + " %" }

    /// A fraction 0…1 as a percentage: 0.9997 → "99.97 %", 1 → "100 %". Four significant digits,
    /// so that "almost complete" is never rounded up to a whole 100.
    public static func fraction(_ f: Double) -> String {
        if f < 1 && f > 0.9999 { return "99.99 %" }
        return number(f * 100, significant: 4) + " %"
    }

    /// MemAvailable in % as the tuner's reasons write it (`Percent.format`: one decimal only near
    /// the threshold), so that a counter and the reason beside it never disagree.
    public static func memAvailable(_ m: MemorySnapshot, thresCoef: Int) -> String {
        m.memTotalKB > 0 ? Percent.format(m.availablePercent, against: thresCoef) + " %" : "—"
    }

    /// Hours: 0.004 → "0.004 h".
    public static func hours(_ h: Double) -> String { number(h) + " h" }
}
