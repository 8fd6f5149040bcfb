import KSMCore
import Testing

/// The one parser of written times: RFC 3339 for JSON timestamps, the lenient form for people,
/// and durations with a direction (the CLI's `--expires 7d` is from now, `--since 7d` ago).
@Suite struct TimestampTests {
    /// 2026-11-02T00:00:00Z
    static let t0: Double = 1_793_577_600

    @Test(arguments: [
        ("2026-11-02T00:00:00Z", 0.0),
        ("2026-11-02T01:30:00+01:30", 0),
        ("2026-11-01T23:00:00.25-01:00", 0.25),
        ("2026-11-02T00:00:00.5Z", 0.5),
    ])
    func rfc3339(text: String, offsetFromT0: Double) throws {
        let t = try #require(Timestamp.parse(text, form: .rfc3339))
        #expect(t.unixTime == Self.t0 + offsetFromT0)
    }

    @Test(arguments: [
        "2026-11-02", "2026-11-02T00:00", "2026-11-02 00:00:00Z", "2026-11-02t00:00:00z", "2026-11-02T00:00:00+0100",
        "2026-11-02T00:00:60Z", "2026-11-02T00:00:00,5Z", "2026-11-02T00:00:00.1234567891Z", "2026-11-02T00:00:00",
    ])
    func lenientOnly(text: String) {
        #expect(Timestamp.parse(text, form: .rfc3339) == nil, "\(text)")
        #expect(Timestamp.parse(text, form: .lenient) != nil, "\(text)")
    }

    @Test(arguments: [
        "", "2026-11-02T", "2026-13-01", "2026-02-29", "2026-04-31", "2100-02-29", "2026-11-02T24:00:00Z",
        "2026-11-02T00:60:00Z", "2026-11-02T00:00:61Z", "2026-11-02T00:00:00.Z", "2026-11-02T00:00:00Q",
        "2026-11-02T00:00:00+24:00", "2026-11-02T00:00:00+01:60", "2026-11-02T00:00:00Zx", "26-11-02", "2026-1-02",
    ])
    func refusedInBothForms(text: String) {
        #expect(Timestamp.parse(text, form: .rfc3339) == nil, "\(text)")
        #expect(Timestamp.parse(text, form: .lenient) == nil, "\(text)")
    }

    @Test func leapDaysAndCenturies() {
        #expect(Timestamp.isValidDate(year: 2024, month: 2, day: 29))
        #expect(Timestamp.isValidDate(year: 2000, month: 2, day: 29))
        #expect(!Timestamp.isValidDate(year: 1900, month: 2, day: 29))
        #expect(!Timestamp.isValidDate(year: 2026, month: 2, day: 29))
        #expect(!Timestamp.isValidDate(year: 2026, month: 0, day: 1))
        #expect(Timestamp.parse("2000-03-01T00:00:00Z", form: .rfc3339)?.unixSeconds == 951_868_800)
        #expect(Timestamp.parse("1970-01-01T00:00:00Z", form: .rfc3339)?.unixSeconds == 0)
    }

    @Test func durationsTakeTheDirectionOrTheirSign() {
        let now = Self.t0
        #expect(ReportTime.parse("7d", now: now) == now - 7 * 86400)
        #expect(ReportTime.parse("7d", now: now, direction: .future) == now + 7 * 86400)
        #expect(ReportTime.parse("-7d", now: now, direction: .future) == now - 7 * 86400)
        #expect(ReportTime.parse("+2w", now: now) == now + 14 * 86400)
        #expect(ReportTime.parse("90s", now: now) == now - 90)
        #expect(ReportTime.parse("1.5h", now: now) == now - 5400)
        #expect(ReportTime.parse("7x", now: now) == nil)
        #expect(ReportTime.parse("-", now: now) == nil)
        #expect(ReportTime.parse("1e10d", now: now) == nil)
        // Unix seconds, finite and within ±10¹¹: `@nan` and `@1e17` trapped the server where the
        // time became an integer (a viewer's report or audit link).
        #expect(ReportTime.parse("@1700000000", now: now) == 1_700_000_000)
        #expect(ReportTime.parse("@-5", now: now) == -5)
        for bad in ["@nan", "@inf", "@-inf", "@1e17", "@", "@x"] {
            #expect(ReportTime.parse(bad, now: now) == nil, "\(bad)")
        }
        #expect(ReportTime.parse("--7d", now: now) == nil)
        #expect(ReportTime.parse("2026-02-30", now: now) == nil, "calendar values are checked")
    }
}
