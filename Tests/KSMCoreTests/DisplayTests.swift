import KSMCore
import Testing

@Suite struct DisplayTests {
    @Test(arguments: [
        (0.004, "0.004"), (0.001234, "0.00123"), (0.0, "0"), (1.0, "1"), (1.5, "1.5"), (12.345, "12.3"),
        (999.6, "1000"), (9.996, "10"), (1234.5, "1235"), (-0.25, "-0.25"), (1e-12, "<0.000000001"),
    ])
    func numbersKeepThreeSignificantDigits(value: Double, text: String) {
        #expect(Display.number(value) == text)
    }

    @Test func aNonZeroValueIsNeverAZero() {
        var v = 1.0
        for _ in 0..<40 {
            #expect(Display.number(v) != "0", "\(v)")
            #expect(Display.hours(v) != "0 h")
            v /= 3
        }
    }

    @Test func bytesInBinaryUnits() {
        #expect(Display.bytes(Int64(0)) == "0 B")
        #expect(Display.bytes(Int64(576) << 20) == "576 MiB")
        #expect(Display.bytes(Int64(1) << 30) == "1 GiB")
        #expect(Display.bytes(Int64(1_073_741_823)) == "1 GiB")  // 1023.99 MiB rounds into the next unit
        #expect(Display.bytes(1.5 * 1_073_741_824) == "1.5 GiB")
        #expect(Display.bytes(Int64(4096)) == "4 KiB")
    }

    @Test func fractionsNeverRoundUpToWhole() {
        #expect(Display.fraction(1) == "100 %")
        #expect(Display.fraction(0.99999) == "99.99 %")
        #expect(Display.fraction(0.04) == "4 %")
        #expect(Display.fraction(0.0004) == "0.04 %")
    }
}

@Suite struct FleetNowTests {
    @Test func connectionFollowsTheGoodbyeAndTheThreshold() {
        #expect(NodeConnection.of(lastSeenAt: nil, agentStopped: false, now: 100, offlineAfter: 60) == .never)
        #expect(NodeConnection.of(lastSeenAt: 50, agentStopped: false, now: 100, offlineAfter: 60) == .online)
        #expect(NodeConnection.of(lastSeenAt: 30, agentStopped: false, now: 100, offlineAfter: 60) == .offline)
        // A goodbye counts at once, not a minute later.
        #expect(NodeConnection.of(lastSeenAt: 99, agentStopped: true, now: 100, offlineAfter: 60) == .agentStopped)
        #expect(NodeConnection.agentStopped.describe(lastSeenAgo: "5m") == "agent stopped, last reported 5m ago")
    }

    @Test func savedNowCountsOnlyReportingNodesAndShowsTheRestApart() {
        let f = FleetNow.summarize([
            .init(connection: .online, savedBytes: 100, ksmdCPUPercent: 2),
            .init(connection: .online, savedBytes: 50, ksmdCPUPercent: nil),
            .init(connection: .agentStopped, savedBytes: 1000, ksmdCPUPercent: 9),
            .init(connection: .offline, savedBytes: 7, ksmdCPUPercent: 9),
            .init(connection: .never, savedBytes: nil, ksmdCPUPercent: nil),
        ])
        #expect(f.nodes == 5 && f.online == 2 && f.agentStopped == 1 && f.offline == 1 && f.neverReported == 1)
        #expect(f.savedBytes == 150)
        #expect(f.ksmdCPUPercent == 2)
        #expect(f.lastKnownSavedBytesNotReporting == 1007)
    }
}
