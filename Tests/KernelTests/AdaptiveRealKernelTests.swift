import FleetAgent
import Foundation
import KSMCore
import KSMNode
import TestSupport
import Testing

/// The adaptive mode on the real kernel: it merges a test-owned buffer at full speed, then backs
/// off and idles below the steady-state bound (0.6 ksmd CPU-s a minute, 1 % of a core).
@Suite("Real kernel: adaptive mode", .serialized)
struct AdaptiveRealKernelTests {
    static let pages = 16_384

    @Test func adaptiveMergesThenIdles() async throws {
        try await withRealKSM { _ in
            let kernel = LinuxKSMKernel()
            let baseline = try realStatus().pagesSharing
            let buffer = try MergeableBuffer(pages: Self.pages)
            let engine = try NodeEngine(kernel: kernel, logger: quietLogger())
            let config = KSMConfig(run: .run, mode: .adaptive, thresCoef: 100)
            let first = await engine.setConfig(config, generation: 1)
            #expect(first.applyError == nil)
            #expect(first.decision.reason.contains("full speed"), "\(first.decision.reason)")

            // Steps every second, as the agent takes them in this mode.
            let clock = ContinuousClock()
            let start = clock.now
            var merged = false
            var idle = false
            var reason = ""
            while clock.now - start < .seconds(90) {
                try await Task.sleep(for: .seconds(1))
                let outcome = await engine.tune()
                #expect(outcome.applyError == nil)
                reason = outcome.decision.reason
                if !merged, try realStatus().pagesSharing >= baseline + Int64(Self.pages) * 9 / 10 {
                    merged = true
                }
                if merged && reason.contains("idle at") {
                    idle = true
                    break
                }
            }
            #expect(merged, "the buffer did not merge: \(statusText())")
            #expect(idle, "not idle after 90 s: \(reason)")

            // Idle: ksmd's CPU over 30 s, still stepping every second.
            let ticks0 = try #require(try kernel.ksmdCPUTicks())
            let windowStart = clock.now
            while clock.now - windowStart < .seconds(30) {
                try await Task.sleep(for: .seconds(1))
                await engine.tune()
            }
            let ticks1 = try #require(try kernel.ksmdCPUTicks())
            let seconds = Double(ticks1 - ticks0) / Double(kernel.clockTicksPerSecond)
            let elapsed = clock.now - windowStart
            let perMinute =
                seconds * 60 / (Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
            #expect(perMinute <= 0.6, "ksmd used \(perMinute) CPU-s a minute when idle: \(statusText())")
            let s = try realStatus()
            #expect(s.run == 1, "idle is slow scanning, not stopped")
            #expect(s.pagesSharing >= baseline + Int64(Self.pages) * 9 / 10, "merged pages stay merged")
            _ = buffer.checksum()
        }
    }
}
