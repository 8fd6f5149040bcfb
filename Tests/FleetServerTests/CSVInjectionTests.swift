import FleetAPI
import FleetClient
import FleetTestSupport
import Foundation
import KSMCore
import Testing

@Suite struct CSVInjectionTests {
    @Test(
        "cells starting with = + - @ tab CR get a leading quote and are quoted",
        arguments: [
            ("=HYPERLINK(\"http://evil\",\"x\")", "\"'=HYPERLINK(\"\"http://evil\"\",\"\"x\"\")\""),
            ("+1", "\"'+1\""), ("-2", "\"'-2\""), ("@SUM(A1)", "\"'@SUM(A1)\""), ("\tx", "\"'\tx\""),
            ("\rx", "\"'\rx\""), ("plain", "plain"), ("a,b", "\"a,b\""),
        ])
    func cells(_ input: String, _ expected: String) {
        #expect(CSVCell.text(input) == expected)
    }

    @Test("a savings report by label with =HYPERLINK(...) label values comes out inert")
    func reportCSVIsInert() async throws {
        let h = try await Harness.start()
        defer { Task { await h.finish() } }
        let (reg, node) = try await h.register(machineId: "m-csv", hostname: "csv-node")
        try await h.admin.setLabels(reg.nodeId, ["team": "=HYPERLINK(\"http://evil.example\")"])
        _ = try await node.pushSamples(
            nodeId: reg.nodeId, Fixtures.batch(1...3))
        let csv = try await h.admin.savingsReportCSV(
            since: Date(timeIntervalSince1970: 1_789_990_000), until: Date(timeIntervalSince1970: 1_790_010_000),
            by: .label, label: "team")
        let lines = csv.split(separator: "\n").map(String.init)
        let row = try #require(lines.first { $0.contains("HYPERLINK") })
        #expect(row.hasPrefix("\"'=HYPERLINK("), "the formula is not neutralised: \(row)")
        for line in lines { #expect(!line.hasPrefix("=")) }
    }
}
