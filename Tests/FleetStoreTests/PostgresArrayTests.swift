import Foundation
import KSMCore
import NIOCore
import PostgresNIO
import TestSupport
import Testing

@testable import FleetStore

/// PostgreSQL's binary arrays as the raw-sample read gets them (`array_agg` over a node's
/// samples): NULL elements, empty arrays, and what must be refused rather than misread.
@Suite struct PostgresArrayTests {
    /// A one-dimensional array in the binary format: ndim, has-nulls, element oid, length,
    /// lower bound, then each element's length (-1: NULL) and bytes.
    static func array(_ type: PostgresDataType, element: PostgresDataType, _ items: [[UInt8]?], ndim: Int32 = 1) -> PostgresCell {
        var b = ByteBuffer()
        b.writeInteger(items.isEmpty ? 0 : ndim)
        b.writeInteger(Int32(items.contains { $0 == nil } ? 1 : 0))
        b.writeInteger(element.rawValue)
        if !items.isEmpty {
            for _ in 0..<ndim {
                b.writeInteger(Int32(items.count))
                b.writeInteger(Int32(1))
            }
            for item in items {
                if let item {
                    b.writeInteger(Int32(item.count))
                    b.writeBytes(item)
                } else {
                    b.writeInteger(Int32(-1))
                }
            }
        }
        return PostgresCell(bytes: b, dataType: type, format: .binary, columnName: "c", columnIndex: 0)
    }

    static func be(_ v: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: v >> (56 - 8 * $0)) } }

    @Test func elementsNullsAndEmptyArrays() throws {
        let ints = Self.array(.int8Array, element: .int8, [Self.be(1_764_633_600_123), nil, Self.be(UInt64(bitPattern: -5))])
        #expect(try PostgresArray.ints(ints) == [1_764_633_600_123, nil, -5])
        let doubles = Self.array(.float8Array, element: .float8, [Self.be((0.25).bitPattern), nil, Self.be((-1e300).bitPattern)])
        #expect(try PostgresArray.doubles(doubles) == [0.25, nil, -1e300])
        let texts = Self.array(.textArray, element: .text, [Array("Running".utf8), nil, [], Array("Stopped".utf8)])
        #expect(try PostgresArray.texts(texts) == ["Running", nil, "", "Stopped"])
        #expect(try PostgresArray.ints(Self.array(.int8Array, element: .int8, [])).isEmpty)
        #expect(
            try PostgresArray.ints(PostgresCell(bytes: nil, dataType: .int8Array, format: .binary, columnName: "c", columnIndex: 0))
                .isEmpty)
    }

    @Test func whatCannotBeReadIsRefused() {
        // Another element type, a 4-byte integer where 8 are expected, two dimensions, a cut-off element.
        #expect(throws: PostgresArray.Malformed.self) {
            try PostgresArray.ints(Self.array(.int4Array, element: .int4, [[0, 0, 0, 1]]))
        }
        #expect(throws: PostgresArray.Malformed.self) {
            try PostgresArray.ints(Self.array(.int8Array, element: .int8, [[0, 0, 0, 1]]))
        }
        #expect(throws: PostgresArray.Malformed.self) {
            try PostgresArray.ints(Self.array(.int8Array, element: .int8, [Self.be(1), Self.be(2)], ndim: 2))
        }
        var cut = Self.array(.textArray, element: .text, [Array("Running".utf8)])
        cut.bytes = cut.bytes?.getSlice(at: 0, length: cut.bytes!.readableBytes - 2)
        #expect(throws: PostgresArray.Malformed.self) { try PostgresArray.texts(cut) }
    }
}

/// `rawSamples` gives each wanted node's samples in time order (ties by seq) with every column,
/// on both engines; on PostgreSQL they come as one row of arrays per node, in no set order.
@Suite struct RawSampleReadTests {
    @Test func eachWantedNodesSamplesInTimeOrder() async throws {
        let f = try ReportFixture()
        let t: Double = 1_793_577_600
        let a = try await f.node("a")
        let b = try await f.node("b")
        func s(_ at: Double, _ pages: Int64, cpu: Double?, profit: Int64?, phase: KSMPhase = .running) -> ReportSample {
            var x = ReportSample(at: at, savedBytes: pages * 4096)
            x.cpuSeconds = cpu
            x.cpuPercent = cpu.map { $0 / 10 }
            x.phase = phase
            x.netProfit = profit
            return x
        }
        // Seqs 1…5 in this order: later times first, two at the same instant.
        try await f.pushSamples(
            a,
            [
                s(t + 120, 1, cpu: 5, profit: 7), s(t, 2, cpu: nil, profit: nil), s(t, 3, cpu: 1.5, profit: -4, phase: .stopped),
                s(t + 60, 4, cpu: 2, profit: nil), s(t + 3600, 9, cpu: 9, profit: 9),
            ])
        try await f.pushSamples(b, [s(t + 30, 8, cpu: 1, profit: 1)])
        // Two more of one second, the higher seq sent first (a replayed spool): SQLite keeps ties
        // in the order they were stored, PostgreSQL has none and puts them in seq order
        // (`sampleOrder`).
        for (seq, pages) in [(Int64(20), Int64(20)), (10, 10)] {
            var late = sample(seq)
            late.takenAt = Date(timeIntervalSince1970: t + 300)
            late.status.pagesSharing = pages
            _ = try await f.db.insertSamples(nodeId: a, [late])
        }
        let tie: [Int64] = TestStore.isPostgres ? [10, 20] : [20, 10]
        let from = Int64((t - 600) * 1000)
        let to = Int64((t + 600) * 1000)
        let full = try await f.db.read { db in try FleetDatabase.rawSamples(db, from: from, to: to, full: true, packs: false, wanted: { $0 == a }) }
        let got = full.sorted
        #expect(got.map(\.0) == [a], "b is not wanted; a's sample an hour later is outside the range")
        let samples = try #require(got.first?.1)
        #expect(samples.map(\.at) == [t, t, t + 60, t + 120, t + 300, t + 300])
        #expect(samples.map(\.savedBytes) == ([2, 3, 4, 1] + tie).map { $0 * 4096 })
        #expect(samples.prefix(4).map(\.cpuSeconds) == [nil, 1.5, 2, 5])
        #expect(samples.prefix(4).map(\.cpuPercent) == [nil, 0.15, 0.2, 0.5])
        #expect(samples.prefix(4).map(\.netProfit) == [nil, -4, nil, 7])
        #expect(samples.map(\.phase) == [.running, .stopped, .running, .running, .running, .running])
        let peaks = try await f.db.read { db in try FleetDatabase.rawSamples(db, from: from, to: to, full: false, packs: false, wanted: { _ in true }) }
        #expect(peaks.sorted.map(\.0) == [a, b].sorted())
        #expect(peaks.sorted.first { $0.0 == a }?.1.map(\.savedBytes) == ([2, 3, 4, 1] + tie).map { $0 * 4096 })
    }
}
