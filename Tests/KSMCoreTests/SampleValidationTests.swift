import FleetAPI
import Foundation
import KSMCore
import Testing

/// The per-field checks of an ingested sample's kernel and memory figures, field by field: the
/// checks are written out as comparisons (they run on every sample), so a field left out or a
/// name mistyped would otherwise go unnoticed.
@Suite("Sample validation: every counter checked by name")
struct SampleValidationTests {
    /// A status with every optional counter present and plausible.
    static func full() -> KSMStatus {
        KSMStatus(
            run: 1, pagesToScan: 100, sleepMillisecs: 20, pagesShared: 10, pagesSharing: 90, pagesUnshared: 5,
            pagesVolatile: 1, fullScans: 3, mergeAcrossNodes: 1, maxPageSharing: 256, stableNodeChains: 0,
            stableNodeDups: 0, useZeroPages: 0, ksmZeroPages: 7, generalProfit: 4096, pagesScanned: 1000,
            pagesSkipped: 2, smartScan: 1, advisorMode: "scan-time", advisorTargetScanTime: 200,
            advisorMinPagesToScan: 500, advisorMaxPagesToScan: 30000, advisorMaxCPU: 70)
    }

    @Test func eachNegativeKSMCounterIsNamed() {
        // Every KSM counter the kernel reports as never negative, by its name in the API.
        let ksmCounters: [(String, WritableKeyPath<KSMStatus, Int64?>)] = [
            ("stableNodeChains", \.stableNodeChains), ("stableNodeDups", \.stableNodeDups),
            ("ksmZeroPages", \.ksmZeroPages), ("pagesScanned", \.pagesScanned), ("pagesSkipped", \.pagesSkipped),
            ("advisorTargetScanTime", \.advisorTargetScanTime), ("advisorMinPagesToScan", \.advisorMinPagesToScan),
            ("advisorMaxPagesToScan", \.advisorMaxPagesToScan), ("advisorMaxCPU", \.advisorMaxCPU),
        ]
        let ksmOptionalInts: [(String, WritableKeyPath<KSMStatus, Int?>)] = [
            ("mergeAcrossNodes", \.mergeAcrossNodes), ("maxPageSharing", \.maxPageSharing),
            ("useZeroPages", \.useZeroPages), ("smartScan", \.smartScan),
        ]
        let ksmInts: [(String, WritableKeyPath<KSMStatus, Int>)] = [
            ("run", \.run), ("pagesToScan", \.pagesToScan), ("sleepMillisecs", \.sleepMillisecs),
        ]
        let ksmInt64s: [(String, WritableKeyPath<KSMStatus, Int64>)] = [
            ("pagesShared", \.pagesShared), ("pagesSharing", \.pagesSharing), ("pagesUnshared", \.pagesUnshared),
            ("pagesVolatile", \.pagesVolatile), ("fullScans", \.fullScans),
        ]

        #expect(Self.full().invalidField() == nil)
        #expect(KSMStatus().invalidField() == nil)  // the optional counters absent (older kernels)
        var names: [String] = []
        func check(_ name: String, _ edit: (inout KSMStatus) -> Void) {
            var s = Self.full()
            edit(&s)
            let bad = s.invalidField()
            #expect(bad?.field == name, "\(name): \(String(describing: bad))")
            #expect(bad?.message == "\(name) must not be negative")
            names.append(name)
        }
        for (name, path) in ksmInts { check(name) { $0[keyPath: path] = -1 } }
        for (name, path) in ksmInt64s { check(name) { $0[keyPath: path] = -1 } }
        for (name, path) in ksmOptionalInts { check(name) { $0[keyPath: path] = -1 } }
        for (name, path) in ksmCounters { check(name) { $0[keyPath: path] = -1 } }
        // Every field of KSMStatus but generalProfit (which may be negative) and advisorMode (a
        // name): a field added to the struct fails here until it is checked and listed above.
        let fields = Set(Mirror(reflecting: Self.full()).children.compactMap(\.label))
        #expect(names.count == 21 && Set(names).count == names.count)
        #expect(fields == Set(names).union(["generalProfit", "advisorMode"]))
        var profit = Self.full()
        profit.generalProfit = -4096
        #expect(profit.invalidField() == nil)
        // The first bad field in declaration order is the one named.
        var two = Self.full()
        two.advisorMaxCPU = -1
        two.pagesSharing = -1
        #expect(two.invalidField()?.field == "pagesSharing")
    }

    @Test func eachNegativeMemoryFigureIsNamed() {
        let good = MemorySnapshot(
            memTotalKB: 16_000_000, memAvailableKB: 2_500_000, memFreeKB: 1_000_000, buffersKB: 10_000,
            cachedKB: 900_000, anonPagesKB: 9_000_000)
        #expect(good.invalidField() == nil)
        let fields: [(String, WritableKeyPath<MemorySnapshot, Int64>)] = [
            ("memTotalKB", \.memTotalKB), ("memAvailableKB", \.memAvailableKB), ("memFreeKB", \.memFreeKB),
            ("buffersKB", \.buffersKB), ("cachedKB", \.cachedKB), ("anonPagesKB", \.anonPagesKB),
        ]
        // Every field of MemorySnapshot, once.
        #expect(Set(Mirror(reflecting: good).children.compactMap(\.label)) == Set(fields.map(\.0)))
        for (name, path) in fields {
            var m = good
            m[keyPath: path] = -1
            #expect(m.invalidField()?.field == name)
            #expect(m.invalidField()?.message == "\(name) must not be negative")
        }
    }
}
