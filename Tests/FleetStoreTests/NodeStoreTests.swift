import FleetAPI
import FleetStore
import Foundation
import KSMCore
import Testing

@Suite struct NodeStoreTests {
    @Test func aNewNodeGetsTheStandardConfigAtGenerationOne() async throws {
        let (db, dir) = try makeDatabase()
        defer { try? FileManager.default.removeItem(at: dir) }
        let reg = try await registerNode(db)
        #expect(!reg.reregistered)
        #expect(reg.node.id.hasPrefix("n-"))
        #expect(reg.config.generation == 1)
        #expect(reg.config.config == KSMConfig.standardDefault.normalized())
        #expect(reg.config.config.mergeAcrossNodes == nil)
        let audit = try await db.auditLog(nodeId: reg.node.id)
        #expect(audit.map(\.action) == ["create"])
    }

    @Test func reRegistrationWithoutProofIsPendingAndLeavesTheNodeAlone() async throws {
        let (db, dir) = try makeDatabase()
        defer { try? FileManager.default.removeItem(at: dir) }
        let first = try await registerNode(db, nodeToken: "kn_old")
        await #expect {
            _ = try await registerNode(db, nodeToken: "kn_thief")
        } throws: { e in
            if case .registrationPending(let p) = e as? StoreError { return p.holder?.nodeId == first.node.id }
            return false
        }
        #expect(try await db.nodeID(forTokenHash: Secrets.hash("kn_old")) == first.node.id)
        #expect(try await db.nodeID(forTokenHash: Secrets.hash("kn_thief")) == nil)
    }

    /// An agent whose registration answer was lost (a timeout, a reset connection) asks again
    /// with its registration key and no token: it gets its node back, with a new token, while the
    /// first token may never have reached it (no sample since, within the hour). Another key, no
    /// key, a node that has pushed since, or a retry after the hour: pending, node left alone.
    @Test func anAgentWhoseAnswerWasLostGetsItsNodeBackWithItsKey() async throws {
        let (db, dir) = try makeDatabase()
        defer { try? FileManager.default.removeItem(at: dir) }
        let t0 = Date().addingTimeInterval(-600)
        let first = try await registerNode(db, nodeToken: "kn_lost", key: "rk-1", now: t0)
        #expect(await isPending { try await registerNode(db, nodeToken: "kn_other", key: "rk-2", now: t0 + 20) })
        #expect(await isPending { try await registerNode(db, nodeToken: "kn_nokey", now: t0 + 20) })
        let again = try await registerNode(db, nodeToken: "kn_again", key: "rk-1", now: t0 + 30)
        #expect(again.reregistered)
        #expect(again.node.id == first.node.id)
        #expect(try await db.nodeID(forTokenHash: Secrets.hash("kn_lost")) == nil)
        #expect(try await db.nodeID(forTokenHash: Secrets.hash("kn_again")) == first.node.id)
        #expect(try await db.nodeID(forTokenHash: Secrets.hash("kn_other")) == nil)
        // The token reached the agent: it pushed. The key alone no longer proves anything.
        _ = try await db.insertSamples(nodeId: first.node.id, [sample(1)])
        #expect(await isPending { try await registerNode(db, nodeToken: "kn_late", key: "rk-1") })
        #expect(try await db.nodeID(forTokenHash: Secrets.hash("kn_again")) == first.node.id)
        // No sample, but the retry comes more than an hour after the registration.
        let old = try await registerNode(db, machine: "m-2", nodeToken: "kn_m2", key: "rk-m2", now: Date().addingTimeInterval(-3700))
        #expect(await isPending { try await registerNode(db, machine: "m-2", nodeToken: "kn_m2b", key: "rk-m2") })
        #expect(try await db.nodeID(forTokenHash: Secrets.hash("kn_m2")) == old.node.id)
    }

    /// The key proves a lost answer only for a token a registration issued: after a rotation (the
    /// agent asked for it with the token before) and after an admin gave the node to another host,
    /// the key alone gets a pending registration, whatever the node pushed.
    @Test func theKeyStopsProvingAfterARotationOrAnAdminsTakeover() async throws {
        let (db, dir) = try makeDatabase()
        defer { try? FileManager.default.removeItem(at: dir) }
        let t0 = Date().addingTimeInterval(-600)
        // Rotated before any sample: a copy of the agent's state (same key, the token before the
        // rotation) cannot take the node in the gap before the next push.
        let a = try await registerNode(db, nodeToken: "kn_a1", key: "rk-a", now: t0)
        #expect(
            try await db.rotateNodeToken(
                nodeId: a.node.id, presentedHash: Secrets.hash("kn_a1"), newHash: Secrets.hash("kn_a2"), now: t0 + 10))
        #expect(await isPending { try await registerNode(db, nodeToken: "kn_copy", key: "rk-a", now: t0 + 20) })
        #expect(try await db.nodeID(forTokenHash: Secrets.hash("kn_a2")) == a.node.id)
        // An admin gives the node to another host (with a key, and without one): the displaced
        // agent's key no longer proves anything, though the newcomer has not pushed yet.
        for (i, newcomerKey) in [("1", "rk-b" as String?), ("2", nil)] {
            let machine = "m-take-\(i)"
            let old = try await registerNode(db, machine: machine, nodeToken: "kn_old\(i)", key: "rk-old\(i)", now: t0)
            #expect(await isPending { try await registerNode(db, machine: machine, nodeToken: "kn_b\(i)", key: newcomerKey, now: t0 + 30) })
            let p = try #require(try await db.pendingRegistrations().first { $0.machineId == machine })
            _ = try await db.decideRegistration(id: p.id, accept: true, now: t0 + 40)
            let taken = try await registerNode(db, machine: machine, nodeToken: "kn_b\(i)", key: newcomerKey, now: t0 + 50)
            #expect(taken.node.id == old.node.id && taken.reregistered)
            #expect(await isPending { try await registerNode(db, machine: machine, nodeToken: "kn_back\(i)", key: "rk-old\(i)", now: t0 + 60) })
            #expect(try await db.nodeID(forTokenHash: Secrets.hash("kn_b\(i)")) == old.node.id)
        }
    }

    @Test func reRegistrationWithProofKeepsTheNodeAndRotatesItsToken() async throws {
        let (db, dir) = try makeDatabase()
        defer { try? FileManager.default.removeItem(at: dir) }
        let first = try await registerNode(db, nodeToken: "kn_old")
        _ = try await db.updateConfig(nodeId: first.node.id, action: "patch") { base throws(ConfigValidationError) in
            try ConfigPatch(run: .run).applied(to: base)
        }
        let second = try await registerNode(db, nodeToken: "kn_new", proof: "kn_old")
        #expect(second.reregistered)
        #expect(second.node.id == first.node.id)
        #expect(second.config.generation == 2, "re-registration keeps the config")
        #expect(try await db.nodeID(forTokenHash: Secrets.hash("kn_old")) == nil)
        #expect(try await db.nodeID(forTokenHash: Secrets.hash("kn_new")) == first.node.id)
    }

    @Test func samplesAreStoredOnceWhateverTheOrder() async throws {
        let (db, dir) = try makeDatabase()
        defer { try? FileManager.default.removeItem(at: dir) }
        let id = try await registerNode(db).node.id
        var ack = try await db.insertSamples(nodeId: id, [sample(1), sample(2), sample(3)])
        #expect(ack == SampleBatchAck(highestSeq: 3, stored: 3, duplicates: 0))
        ack = try await db.insertSamples(nodeId: id, [sample(3), sample(2), sample(5, sharing: 99, phase: .stopped)])
        #expect(ack == SampleBatchAck(highestSeq: 5, stored: 1, duplicates: 2))
        // An old batch replayed late: stored, but the node's state stays at seq 5.
        ack = try await db.insertSamples(nodeId: id, [sample(4, phase: .running, applied: 0)])
        #expect(ack == SampleBatchAck(highestSeq: 5, stored: 1, duplicates: 0))
        #expect(try await db.sampleSeqs(nodeId: id) == [1, 2, 3, 4, 5])
        let node = try #require(try await db.node(idOrName: id))
        #expect(node.phase == .stopped)
        #expect(node.lastSeq == 5)
        #expect(node.lastSample?.status.pagesSharing == 99)
        #expect(node.lastSeenAt != nil)
        // An empty batch just reports the highest seq.
        #expect(try await db.insertSamples(nodeId: id, []).highestSeq == 5)
    }

    @Test func generationsIncreaseAndStaleIfMatchConflicts() async throws {
        let (db, dir) = try makeDatabase()
        defer { try? FileManager.default.removeItem(at: dir) }
        let id = try await registerNode(db).node.id
        let change = try await db.updateConfig(nodeId: id, ifMatch: 1, action: "patch") { base throws(ConfigValidationError) in
            try ConfigPatch(run: .run).applied(to: base)
        }
        #expect(change.after.generation == 2 && change.changed)
        let same = try await db.updateConfig(nodeId: id, action: "patch") { base throws(ConfigValidationError) in
            try ConfigPatch(run: .run).applied(to: base)
        }
        #expect(!same.changed && same.after.generation == 2, "a write that changes nothing keeps the generation")
        await #expect(throws: StoreError.generationConflict(expected: 1, current: 2)) {
            _ = try await db.updateConfig(nodeId: id, ifMatch: 1, action: "patch") { base throws(ConfigValidationError) in
                try ConfigPatch(run: .stop).applied(to: base)
            }
        }
        let kicked = try await db.kick(nodeId: id)
        #expect(kicked.generation == 3 && kicked.kickCounter == 1)
        // A long-poll's first read: the generation its agent has comes back undecoded.
        #expect(try await db.config(nodeId: id, unlessGeneration: 3) == .unchanged(generation: 3))
        #expect(try await db.config(nodeId: id, unlessGeneration: 2) == .config(kicked))
        #expect(try await db.config(nodeId: id, unlessGeneration: nil) == .config(kicked))
        let audit = try await db.auditLog(nodeId: id)
        #expect(audit.map(\.action) == ["kick", "patch", "create"])
    }

    @Test func deleteKeepsHistoryUnlessPurged() async throws {
        let (db, dir) = try makeDatabase()
        defer { try? FileManager.default.removeItem(at: dir) }
        let a = try await registerNode(db, machine: "a", nodeToken: "kn_a").node.id
        let b = try await registerNode(db, machine: "b", nodeToken: "kn_b").node.id
        _ = try await db.insertSamples(nodeId: a, [sample(1), sample(2)])
        _ = try await db.insertSamples(nodeId: b, [sample(1)])
        try await db.deleteNode(nodeId: a, purgeHistory: false)
        #expect(try await db.config(nodeId: a) == nil)
        #expect(try await db.config(nodeId: a, unlessGeneration: 1) == nil)
        #expect(try await db.nodeID(forTokenHash: Secrets.hash("kn_a")) == nil)
        #expect(try await db.node(idOrName: a) == nil)
        #expect(try await db.sampleCount(nodeId: a) == 2)
        #expect(try await db.nodes(includeDeleted: true).contains { $0.id == a && $0.deletedAt != nil })
        try await db.deleteNode(nodeId: b, purgeHistory: true)
        #expect(try await db.sampleCount(nodeId: b) == 0)
        #expect(try await db.nodes(includeDeleted: true).allSatisfy { $0.id != b })
        // A deleted node does not come back by itself: its machine's registration is pending.
        await #expect {
            _ = try await registerNode(db, machine: "a", nodeToken: "kn_a2")
        } throws: { e in
            if case .registrationPending(let p) = e as? StoreError { return p.reason == "deleted" && p.holder?.nodeId == a }
            return false
        }
        #expect(try await db.nodeID(forTokenHash: Secrets.hash("kn_a2")) == nil)
        // A purged node is forgotten, machine id included: its machine registers as a new node.
        let again = try await registerNode(db, machine: "b", nodeToken: "kn_b2")
        #expect(!again.reregistered && again.node.id != b)
    }
}

/// Whether the registration was kept pending (`StoreError.registrationPending`).
private func isPending(_ body: () async throws -> Registration) async -> Bool {
    do {
        _ = try await body()
        return false
    } catch { if case .registrationPending = error as? StoreError { return true } else { return false } }
}
