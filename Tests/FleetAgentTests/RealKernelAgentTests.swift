import FleetAPI
import FleetAgent
import FleetClient
import FleetTestSupport
import Foundation
import KSMCore
import KSMNode
import Testing
import TestSupport

/// Server + agent on the real `/sys/kernel/mm/ksm`: skipped (visibly) where it is not writable;
/// otherwise under the kernel test lock, with the settings captured first and restored after.
@Suite("Real kernel: server + agent", .serialized)
struct RealKernelAgentTests {
    func withRealKSM(_ body: () async throws -> Void) async throws {
        let access = sysfsWritable()
        guard access.writable else {
            print("⚠️  SKIPPED real-kernel agent test: \(access.reason)")
            try Test.cancel("real KSM not usable here: \(access.reason)")
        }
        try await KernelTestLock.withLock {
            let snapshot = try KSMSysfsSnapshot.capture()
            var failure: (any Error)?
            do {
                try await body()
            } catch {
                failure = error
            }
            try await snapshot.restore()
            #expect(try LinuxKSMKernel().readStatus().pagesShared == 0, "pages left merged after the test")
            if let failure { throw failure }
        }
    }

    @Test("run + thresCoef 100 from the server merges a duplicate buffer; prune unmerges; savings reach the server")
    func mergeAndPrune() async throws {
        try await withRealKSM {
            let server = try await TestServer.start()
            defer { server.removeDataDir() }
            let root = makeTemporaryDirectory(prefix: "ksmfleet-real").path
            var o = testAgentOptions(
                server: server.baseURL, enrollToken: try await server.makeEnrollmentToken(), stateDir: root + "/a",
                name: "real")
            o.sampleInterval = 0.5
            o.tuneInterval = 2
            o.restoreOnExit = true
            let kernel = LinuxKSMKernel()
            let agent = try FleetAgent(options: o, kernel: kernel, logger: agentLogger("real"))
            let task = Task { try await agent.run() }
            do {
                let ready = await waitUntil(timeout: .seconds(20)) { await agent.status().appliedGeneration != nil }
                #expect(ready, "the agent did not register")
                let id = try #require(await agent.status().nodeId)
                let admin = try adminClient(server)

                let baseline = try kernel.readStatus().pagesSharing
                let pages = 2000
                let buffer = try MergeableBuffer(pages: pages)
                let fast = KSMConfig(
                    run: .run, mode: .customized, thresCoef: 100,
                    parameters: TunerParameters(boost: 0, decay: 0, minPages: 5000, maxPages: 5000, sleepMsec: 10))
                let gen = try await admin.replaceConfig(id, fast).generation
                let merged = await waitUntil(timeout: .seconds(40), poll: .milliseconds(200)) {
                    guard let s = try? kernel.readStatus() else { return false }
                    return s.run == 1 && s.pagesSharing >= baseline + Int64(pages) * 3 / 4
                }
                #expect(merged, "ksmd did not merge the buffer: \((try? kernel.readStatus()).map { "\($0)" } ?? "-")")
                #expect(await agent.status().appliedGeneration == gen)

                // The server's view: the node's last sample shows the savings.
                let saved = await waitUntil(timeout: .seconds(10)) {
                    guard let n = try? await admin.node(id), let sample = n.lastSample else { return false }
                    return sample.savedBytes >= Int64(pages / 2 * sample.pageSize) && n.appliedGeneration == gen
                }
                #expect(saved, "the server's samples do not show the savings")

                // prune unmerges everything.
                let pruneGen = try await admin.patchConfig(id, ConfigPatch(run: .prune)).generation
                let pruned = await waitUntil(timeout: .seconds(40), poll: .milliseconds(200)) {
                    guard let s = try? kernel.readStatus() else { return false }
                    return s.run == 2 && s.pagesShared == 0
                }
                #expect(pruned, "prune did not unmerge")
                let serverPruned = await waitUntil(timeout: .seconds(10)) {
                    guard let n = try? await admin.node(id), let sample = n.lastSample else { return false }
                    return sample.phase == .pruned && n.appliedGeneration == pruneGen && sample.status.pagesShared == 0
                }
                #expect(serverPruned, "the server did not see the prune")
                withExtendedLifetime(buffer) {}
            } catch {
                await agent.stop()
                _ = await task.result
                await server.stop()
                throw error
            }
            await agent.stop()
            _ = await task.result
            await server.stop()
        }
    }
}
