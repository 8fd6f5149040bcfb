import KSMCore
import Testing

/// A group's net saving (general_profit) beside its average saved: the sum over all its nodes
/// with data, or none; never a sum over some of them (docs/numbers.md, "average net saving").
@Suite("group net saving")
struct GroupNetSavingTests {
    /// An hour of data saving `saved` bytes; with `profit`, the kernel reported that net.
    func stats(saved: Double, profit: Double?) -> BucketStats {
        BucketStats(
            dataSeconds: 3600, samples: 60, savedByteSeconds: saved * 3600, peakSavedBytes: Int64(saved), cpuSeconds: 36,
            peakCPUPercent: 1, fullScans: 2, runningSeconds: 3600, stoppedSeconds: 0, prunedSeconds: 0,
            unmanagedSeconds: 0, profitByteSeconds: (profit ?? 0) * 3600, profitSeconds: profit == nil ? 0 : 3600)
    }

    @Test func theSumOfEveryNodeWithDataOrNone() {
        let gib = 1_073_741_824.0
        var all = GroupSums()
        all.add(stats(saved: 10 * gib, profit: 9.8 * gib), existence: 3600)
        all.add(stats(saved: 10 * gib, profit: 9.7 * gib), existence: 3600)
        // A node that existed without data counts for nothing either way.
        all.add(BucketStats(), existence: 3600)
        #expect(all.netProfit == 19.5 * gib)
        #expect(all.avgSaved == 20 * gib)

        for order in [[true, false, true], [false, true, true], [true, true, false]] {
            var some = GroupSums()
            for reports in order { some.add(stats(saved: 10 * gib, profit: reports ? 9.8 * gib : nil), existence: 3600) }
            #expect(some.netProfit == nil, "net over some nodes, order \(order): \(String(describing: some.netProfit))")
            #expect(some.avgSaved == 30 * gib)
        }
    }
}
