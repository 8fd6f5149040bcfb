import FleetAPI
import FleetClient
import FleetServer
import FleetTestSupport
import Foundation
import KSMCore
import TestSupport
import Testing

/// Two in-process servers on one PostgreSQL database (one data directory, so one database, and
/// one admin token): replicas of one fleet. A config change through either one must wake the
/// long-polls held by the other (LISTEN/NOTIFY, `ConfigNotificationService`).
@Suite("replicas on one PostgreSQL database")
struct ReplicaTests {
    static let postgresOnly: Comment =
        "replicas share a PostgreSQL database: runs on the PostgreSQL pass of make test (KSMFLEET_TEST_POSTGRES)"

    /// Waits until the server of `h` holds `count` config long-polls (its /metrics).
    func waiters(_ h: Harness, count: Int) async -> Bool {
        await waitUntil(timeout: .seconds(20), poll: .milliseconds(20)) {
            guard let m = try? await h.admin.send(method: "GET", path: "/metrics") else { return false }
            return MetricsText(m.text).values["ksmfleet_config_waiters"] == Double(count)
        }
    }

    /// Whether the server of `h` says it hears every config change now (its /metrics).
    func feedLive(_ h: Harness) async -> Bool {
        guard let m = try? await h.admin.send(method: "GET", path: "/metrics") else { return false }
        return MetricsText(m.text).values["ksmfleet_config_feed_live"] == 1
    }

    /// Both replicas of the test listen (their LISTEN connections on the database of `a`): the
    /// test database's location.
    func bothListening(_ a: Harness) async throws -> String {
        let database = try TestStore.location(for: a.server.dataDir)
        #expect(await listening(database, count: 2), "the replicas are not both listening")
        return database
    }

    /// Both replicas listen and A's change feed is live, so a fleet apply through A takes the
    /// notices' path: the test database's location.
    func listeningWithFeedLive(_ a: Harness) async throws -> String {
        let database = try await bothListening(a)
        let live = await waitUntil(timeout: .seconds(20), poll: .milliseconds(20)) { await feedLive(a) }
        try #require(live, "replica A's change feed is not live: the notices' path would not be tried")
        return database
    }

    /// The query that counts the LISTEN connections on the test database (by their name: the
    /// `query` column shows their last check's `SELECT 1`).
    static let listeners =
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'ksmfleet-listen'"

    /// Waits until `count` connections LISTEN on `database` (`extra`: more conditions).
    func listening(_ database: String, count: Int, _ extra: String = "") async -> Bool {
        await waitUntil(timeout: .seconds(20), poll: .milliseconds(20)) {
            (try? TestStore.psql(database, Self.listeners + extra))?.trimmingCharacters(in: .whitespacesAndNewlines)
                == String(count)
        }
    }

    /// The backend pids of the LISTEN connections, comma-separated.
    func listenerPids(_ database: String) throws -> String {
        try TestStore.psql(
            database,
            "SELECT string_agg(pid::text, ',') FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'ksmfleet-listen'"
        ).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Freezes the LISTEN backends (SIGSTOP) of the test database, which must be `count`
    /// processes of the local test server; returns their pids, to thaw with SIGCONT.
    func freezeListeners(_ database: String, count: Int) throws -> [pid_t] {
        let listed = try listenerPids(database)
        let pids = listed.split(separator: ",").compactMap { pid_t($0) }
        try #require(pids.count == count, "LISTEN backends: \(listed)")
        // Only backends of a PostgreSQL on this machine (the test server) can be frozen.
        for pid in pids {
            let comm = (try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8)) ?? ""
            if !comm.hasPrefix("postgres") {
                try Test.cancel("the LISTEN backends are not processes of this machine (pid \(pid): \(comm))")
            }
        }
        var stopped: [pid_t] = []
        for pid in pids {
            guard kill(pid, SIGSTOP) == 0 else {
                for p in stopped { kill(p, SIGCONT) }
                throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EPERM)
            }
            stopped.append(pid)
        }
        return stopped
    }

    /// A node registered through A, its config read through B, and a 30 s long-poll of it held
    /// by B (counted there) with the generation it has: the poll ends with the config it got
    /// and when. (B may be A: the poll is then held where the node registered.)
    func pollHeldOnB(_ a: Harness, _ b: Harness, hostname: String) async throws
        -> (reg: RegisterResponse, nodeOnB: FleetClient, current: NodeConfig,
            poll: Task<(NodeConfig?, ContinuousClock.Instant), any Error>)
    {
        let (reg, _) = try await a.register(hostname: hostname)
        let nodeOnB = try Fixtures.client(b.server.baseURL, token: reg.nodeToken)
        let current = try #require(try await nodeOnB.config(nodeId: reg.nodeId, ifNoneMatch: nil, waitSeconds: nil))
        let poll = Task {
            let c = try await nodeOnB.config(nodeId: reg.nodeId, ifNoneMatch: current.generation, waitSeconds: 30)
            return (c, ContinuousClock.now)
        }
        #expect(await waiters(b, count: 1), "the long-poll is not waiting on the second replica")
        return (reg, nodeOnB, current, poll)
    }

    /// Two servers on one database (one data directory, one admin token), stopped afterwards
    /// whatever `body` does.
    func withTwoReplicas(
        configure: (inout ServerConfig) -> Void = { _ in }, _ body: (Harness, Harness) async throws -> Void
    ) async throws {
        let a = try await Harness.start(configure: configure)
        let b: Harness
        do {
            b = try await Harness.start(dataDir: a.server.dataDir, adminToken: a.server.adminToken, configure: configure)
        } catch {
            await a.finish()
            throw error
        }
        do {
            try await body(a, b)
        } catch {
            await b.server.stop()
            await a.finish()
            throw error
        }
        await b.server.stop()
        await a.finish()
    }

    @Test(
        "the replica running the background work gathers the planner's statistics of a table that doubled within seconds, between its rounds, not at autovacuum's first analyze"
    )
    func grownTablesAreAnalyzedBetweenRounds() async throws {
        guard TestStore.isPostgres else { try Test.cancel(Self.postgresOnly) }
        // Rounds a minute apart: only the checks between them can analyze in time.
        let h = try await Harness.start(configure: { $0.rollupIntervalSeconds = 60 })
        do {
            let database = try TestStore.location(for: h.server.dataDir)
            // Only the server may analyze the table here.
            _ = try TestStore.psql(database, "ALTER TABLE nodes SET (autovacuum_enabled = false)")
            let pages = "SELECT relpages FROM pg_class WHERE relname = 'nodes'"
            #expect(try TestStore.psql(database, pages).trimmingCharacters(in: .whitespacesAndNewlines) == "0")
            _ = try TestStore.psql(
                database,
                """
                INSERT INTO nodes (id, name, machine_id, kernel, mem_total_bytes, numa_nodes, agent_version, registered_at)
                SELECT 'n-' || g, 'grown-' || g, 'm-grown-' || g, '6.8.0', 17179869184, 1, 'test', 0
                FROM generate_series(1, 5000) g
                """)
            // Well before the next round (60 s): the 1 s checks between rounds.
            let analyzed = await waitUntil(timeout: .seconds(20), poll: .milliseconds(100)) {
                (Int((try? TestStore.psql(database, pages))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "") ?? 0) >= 32
            }
            #expect(analyzed, "nodes was not analyzed within 20 s of growing to 5,000 rows")
        } catch {
            await h.finish()
            throw error
        }
        await h.finish()
    }

    @Test(
        "a config change through one replica ends a long-poll held by the other at once; deleting the node through it ends one with 404"
    )
    func longPollsWakeAcrossReplicas() async throws {
        guard TestStore.isPostgres else { try Test.cancel(Self.postgresOnly) }
        try await withTwoReplicas { a, b in
            // A long-poll held by B (its waiter counted there, none on A) …
            let (reg, nodeOnB, current, poll) = try await pollHeldOnB(a, b, hostname: "replicated")
            let clock = ContinuousClock()
            #expect(await waiters(a, count: 0))
            // … ends with the change made through A, long before its 30 s are up.
            let sent = clock.now
            let changed = try await a.admin.patchConfig(reg.nodeId, ConfigPatch(thresCoef: 55))
            let committed = clock.now
            let (got, returned) = try await poll.value
            let latency = returned - sent
            print(
                "ReplicaTests: a change through replica A woke the long-poll on replica B \(latency) after the request "
                    + "(\(returned - committed) after A's reply)")
            #expect(changed.generation > current.generation)
            #expect(got?.generation == changed.generation, "the long-poll on B returned \(String(describing: got))")
            #expect(got?.config.thresCoef == 55)
            #expect(latency < .seconds(10), "the long-poll on B returned only after \(latency)")

            // A config change made on B wakes a long-poll held by A the same way (both directions).
            let pollA = Task {
                try await Fixtures.client(a.server.baseURL, token: reg.nodeToken)
                    .config(nodeId: reg.nodeId, ifNoneMatch: changed.generation, waitSeconds: 30)
            }
            #expect(await waiters(a, count: 1), "the long-poll is not waiting on the first replica")
            let start2 = clock.now
            let again = try await b.admin.patchConfig(reg.nodeId, ConfigPatch(thresCoef: 60))
            let gotA = try await pollA.value
            let latency2 = clock.now - start2
            print("ReplicaTests: a change through replica B woke the long-poll on replica A \(latency2) after the request")
            #expect(gotA?.generation == again.generation)
            #expect(latency2 < .seconds(10), "the long-poll on A returned only after \(latency2)")

            // Deleting the node through A ends B's long-poll with 404.
            let doomed = Task {
                try await nodeOnB.config(nodeId: reg.nodeId, ifNoneMatch: again.generation, waitSeconds: 30)
            }
            #expect(await waiters(b, count: 1), "the second long-poll is not waiting on the second replica")
            let deleteSent = clock.now
            try await a.admin.deleteNode(reg.nodeId)
            let error = await apiError { _ = try await doomed.value }
            let deleteLatency = clock.now - deleteSent
            print("ReplicaTests: deleting the node through A ended the long-poll on B \(deleteLatency) after the request")
            #expect(error?.0 == 404, "\(String(describing: error))")
            #expect(deleteLatency < .seconds(10), "the long-poll on B ended only after \(deleteLatency)")
            #expect(await waiters(b, count: 0))
        }
    }

    /// A replica remembers which node a token is after its first lookup (`NodeTokenCache`). A
    /// token replaced, a rotation asked for or a node deleted through another replica reaches
    /// that memory by the other replica's notice (postgres migration 0019): the old token ends on
    /// both replicas alike, and the agent is told to rotate wherever it pushes.
    @Test(
        "a rotation asked for, a token replaced or a node deleted through one replica holds on the other at once, though that one remembered the token"
    )
    func tokenChangesReachTheOtherReplica() async throws {
        guard TestStore.isPostgres else { try Test.cancel(Self.postgresOnly) }
        try await withTwoReplicas { a, b in
            let database = try await bothListening(a)
            let (reg, nodeOnA) = try await a.register(hostname: "rotated")
            let nodeOnB = try Fixtures.client(b.server.baseURL, token: reg.nodeToken)
            var seq: Int64 = 0
            /// A one-sample push of `client`'s token through its replica: the status, and whether
            /// the answer says to rotate.
            func push(_ client: FleetClient) async throws -> (status: Int, rotate: Bool) {
                seq += 1
                let r = try await client.send(
                    method: "POST", path: APIPaths.samples(reg.nodeId), body: try jsonBody(Fixtures.batch([seq])))
                let ack = r.status == 200 ? try StrictJSON.decoder().decode(SampleBatchAck.self, from: r.body) : nil
                return (r.status, ack?.rotateToken == true)
            }
            let clock = ContinuousClock()
            // B looks the token up once and remembers it.
            #expect(try await push(nodeOnB) == (200, false))
            #expect(try await push(nodeOnB) == (200, false))

            // An admin asks for a rotation through A: B says so at the agent's next push.
            let asked = clock.now
            _ = try await a.admin.requestTokenRotation(reg.nodeId)
            let told = await waitUntil(timeout: .seconds(10), poll: .milliseconds(20)) {
                (try? await push(nodeOnB)) ?? (0, false) == (200, true)
            }
            print("ReplicaTests: a rotation asked for through A was told by B \(clock.now - asked) after the request")
            #expect(told, "B never told the agent of the rotation asked for through A")

            // The agent rotates through A and uses its new token there; its old one ends (its
            // grace cut short here) and B refuses it as A does.
            let rotated = try await nodeOnA.rotateNodeToken(nodeId: reg.nodeId)
            let newOnA = try Fixtures.client(a.server.baseURL, token: rotated.nodeToken)
            #expect(try await push(newOnA) == (200, false))
            _ = try TestStore.psql(
                database, "UPDATE nodes SET previous_token_expires_at = 0 WHERE id = '\(reg.nodeId)'")
            #expect(try await push(nodeOnA).status == 401)
            let refused = await waitUntil(timeout: .seconds(10), poll: .milliseconds(20)) {
                (try? await push(nodeOnB))?.status == 401
            }
            #expect(refused, "B still takes the token replaced through A")
            let newOnB = try Fixtures.client(b.server.baseURL, token: rotated.nodeToken)
            #expect(try await push(newOnB) == (200, false))
            #expect(try await push(newOnB) == (200, false))

            // The node deleted through A: B refuses its token as unknown.
            try await a.admin.deleteNode(reg.nodeId)
            var last = 0
            let gone = await waitUntil(timeout: .seconds(10), poll: .milliseconds(20)) {
                last = (try? await push(newOnB))?.status ?? 0
                return last == 401
            }
            #expect(gone, "B answers \(last) to the token of a node deleted through A")
        }
    }

    /// Why a node's samples are refused is kept in the store: the finding shows through the
    /// replica the operator asks, whichever the agent pushes to, and a batch stored through
    /// another replica ends it.
    @Test("a node's samples refused through one replica: its finding shows through the other, and a batch stored through that one ends it")
    func sampleRefusalsShowThroughEveryReplica() async throws {
        guard TestStore.isPostgres else { try Test.cancel(Self.postgresOnly) }
        try await withTwoReplicas { a, b in
            let (reg, nodeOnA) = try await a.register(hostname: "skewed")
            var ahead = Fixtures.sample(1)
            ahead.takenAt = Date().addingTimeInterval(3600)
            let refused = await apiError { _ = try await nodeOnA.pushSamples(nodeId: reg.nodeId, SampleBatch(samples: [ahead])) }
            #expect(refused?.0 == 422 && refused?.1.error.field == "samples[0].takenAt", "\(String(describing: refused))")
            let seen = try await b.admin.node(reg.nodeId).findings?.first { $0.code == "samples_refused" }
            #expect(seen?.message.contains("samples[0].takenAt") == true, "through B: \(String(describing: seen))")
            let nodeOnB = try Fixtures.client(b.server.baseURL, token: reg.nodeToken)
            #expect(try await nodeOnB.pushSamples(nodeId: reg.nodeId, Fixtures.batch([1])).stored == 1)
            #expect(try await a.admin.node(reg.nodeId).findings?.contains { $0.code == "samples_refused" } == false)
        }
    }

    /// A fleet-wide apply does not wake the long-polls of the replica it went through directly
    /// while that replica's change feed is live: its own notices do, as on every other replica
    /// (`ConfigWaiters.feedWakesOwnWrites`). Nor when the notices never come (the LISTEN backends
    /// frozen, so the feed still counts as live when the change commits): A's poll is woken by
    /// the apply's own check after its grace period (2 s), B's when the LISTEN check replaces the
    /// connection and the resync reads the waiting nodes' configs.
    @Test("a fleet-wide change through a replica reaches the long-polls held on it, by its own notices, and on the other; also when its LISTEN backend is frozen as the change commits")
    func aFleetApplyWakesTheApplyingReplicasPolls() async throws {
        guard TestStore.isPostgres else { try Test.cancel(Self.postgresOnly) }
        // Every apply leaves the wake-up to the notices (a few nodes would be woken directly).
        try await withTwoReplicas(configure: {
            $0.listenCheckSeconds = 2
            $0.applyDirectWakeLimit = 0
        }) { a, b in
            let database = try await listeningWithFeedLive(a)
            let (regA, _) = try await a.register(hostname: "held-on-a")
            let (regB, _) = try await a.register(hostname: "held-on-b")
            let onA = try Fixtures.client(a.server.baseURL, token: regA.nodeToken)
            let onB = try Fixtures.client(b.server.baseURL, token: regB.nodeToken)
            let clock = ContinuousClock()

            /// Polls held on A and B with the generations their nodes have; `before`, then a
            /// fleet-wide change through A: both polls must end with its generations.
            func applyAndCheck(thresCoef: Int, within: Duration, before: () async throws -> Void = {}) async throws {
                let genA = try #require(try await onA.config(nodeId: regA.nodeId, ifNoneMatch: nil, waitSeconds: nil)).generation
                let genB = try #require(try await onB.config(nodeId: regB.nodeId, ifNoneMatch: nil, waitSeconds: nil)).generation
                let pollA = Task { try await onA.config(nodeId: regA.nodeId, ifNoneMatch: genA, waitSeconds: 30) }
                let pollB = Task { try await onB.config(nodeId: regB.nodeId, ifNoneMatch: genB, waitSeconds: 30) }
                #expect(await waiters(a, count: 1), "the long-poll is not waiting on replica A")
                #expect(await waiters(b, count: 1), "the long-poll is not waiting on replica B")
                try await before()
                let sent = clock.now
                let applied = try await a.admin.applyConfig(ApplyRequest(all: true, change: ConfigPatch(thresCoef: thresCoef)))
                // Still live once the apply has answered: it was when the apply chose not to wake.
                #expect(await feedLive(a), "A's feed was not live at the apply: the notices' path was not tried")
                let generations = Dictionary(uniqueKeysWithValues: applied.results.map { ($0.nodeId, $0.generation) })
                let gotA = try await pollA.value
                let tookA = clock.now - sent
                let gotB = try await pollB.value
                let tookB = clock.now - sent
                print("ReplicaTests: a fleet-wide change through A reached the poll on A after \(tookA), on B after \(tookB)")
                #expect(gotA?.generation == generations[regA.nodeId] ?? nil, "A's poll: \(String(describing: gotA)) after \(tookA)")
                #expect(gotA?.config.thresCoef == thresCoef)
                #expect(gotB?.generation == generations[regB.nodeId] ?? nil, "B's poll: \(String(describing: gotB)) after \(tookB)")
                #expect(tookA < within, "the long-poll on A returned only after \(tookA)")
                #expect(tookB < within, "the long-poll on B returned only after \(tookB)")
            }

            try await applyAndCheck(thresCoef: 55, within: .seconds(10))
            // Both LISTEN backends frozen: nothing is delivered and nothing fails until the
            // check (every 2 s here, answered within 4 s) finds no answer, so A still counts its
            // feed live.
            var pids: [pid_t] = []
            defer { for pid in pids { kill(pid, SIGCONT) } }
            try await applyAndCheck(thresCoef: 60, within: .seconds(20)) {
                pids = try freezeListeners(database, count: 2)
            }
            let frozen = pids.map(String.init).joined(separator: ",")
            #expect(await listening(database, count: 2, " AND pid NOT IN (\(frozen))"), "the replicas did not listen again")
        }
    }

    /// An apply of a few nodes wakes them on its own replica at once (`applyDirectWakeLimit`),
    /// without waiting for notices: here none come (the LISTEN backends frozen, checked only
    /// every 10 s), and the poll on A still ends at once.
    @Test("a fleet-wide change of a few nodes wakes the long-polls of the replica it went through at once, without its notices")
    func aSmallApplyWakesItsReplicasPollsDirectly() async throws {
        guard TestStore.isPostgres else { try Test.cancel(Self.postgresOnly) }
        try await withTwoReplicas { a, b in
            let database = try await bothListening(a)
            // Held on A itself this time.
            let (reg, _, _, poll) = try await pollHeldOnB(a, a, hostname: "small-apply")
            let pids = try freezeListeners(database, count: 2)
            defer { for pid in pids { kill(pid, SIGCONT) } }
            let clock = ContinuousClock()
            let sent = clock.now
            let applied = try await a.admin.applyConfig(ApplyRequest(nodes: [reg.nodeId], change: ConfigPatch(thresCoef: 33)))
            #expect(await feedLive(a), "A's feed was not live at the apply: the case was not tried")
            let (got, _) = try await poll.value
            let took = clock.now - sent
            #expect(got?.generation == applied.results.first?.generation, "A's poll: \(String(describing: got)) after \(took)")
            #expect(took < .seconds(5), "the long-poll on A returned only after \(took): it waited for the notices")
        }
    }

    /// A fleet apply that leaves its wake-ups to its notices does not leave its own replica's
    /// polls waiting when none come back (both LISTEN backends frozen, the check that would
    /// replace them an hour away): `applyNoticeGraceSeconds` after the commit it wakes them
    /// itself (`ServerState.wakeUnheard`).
    @Test("a fleet-wide change whose notices never come back reaches the long-polls of the replica it went through after the grace period")
    func aFleetApplyWhoseNoticesStallStillWakesItsReplicasPolls() async throws {
        guard TestStore.isPostgres else { try Test.cancel(Self.postgresOnly) }
        try await withTwoReplicas(configure: {
            $0.listenCheckSeconds = 3600
            $0.applyDirectWakeLimit = 0
            $0.applyNoticeGraceSeconds = 1
        }) { a, b in
            let database = try await listeningWithFeedLive(a)
            let (reg, _, _, poll) = try await pollHeldOnB(a, a, hostname: "stalled-notices")
            let pids = try freezeListeners(database, count: 2)
            defer { for pid in pids { kill(pid, SIGCONT) } }
            let clock = ContinuousClock()
            let sent = clock.now
            let applied = try await a.admin.applyConfig(ApplyRequest(all: true, change: ConfigPatch(thresCoef: 33)))
            #expect(await feedLive(a), "A's feed was not live at the apply: the notices' path was not tried")
            let (got, returned) = try await poll.value
            let took = returned - sent
            let expected = applied.results.first { $0.nodeId == reg.nodeId }?.generation
            #expect(expected != nil && got?.generation == expected, "A's poll: \(String(describing: got)) after \(took)")
            // Woken by the check after the grace period, not at once (that is the small apply's
            // path) nor at the poll's 30 s.
            #expect(took >= .milliseconds(900), "the long-poll on A returned after \(took): not the grace period's wake-up")
            #expect(took < .seconds(10), "the long-poll on A returned only after \(took)")
        }
    }

    /// What B's LISTEN connection missed must not be hidden by what B heard before: a replica
    /// that handed a poll a generation trusts it to be the store's while LISTEN lives (the next
    /// poll asking with it reads nothing), and forgets it when LISTEN is lost.
    @Test("a change committed while a replica was not listening reaches the next poll there, though it asks with the generation that replica handed out")
    func aChangeMissedWhileNotListeningReachesTheNextPoll() async throws {
        guard TestStore.isPostgres else { try Test.cancel(Self.postgresOnly) }
        try await withTwoReplicas { a, b in
            let database = try await bothListening(a)
            let (reg, _) = try await a.register(hostname: "unheard")
            let nodeOnB = try Fixtures.client(b.server.baseURL, token: reg.nodeToken)
            let current = try #require(try await nodeOnB.config(nodeId: reg.nodeId, ifNoneMatch: nil, waitSeconds: nil))
            // B hands a poll the change made through A: B has heard of that generation.
            let poll = Task { try await nodeOnB.config(nodeId: reg.nodeId, ifNoneMatch: current.generation, waitSeconds: 30) }
            #expect(await waiters(b, count: 1), "the long-poll is not waiting on the second replica")
            let first = try await a.admin.patchConfig(reg.nodeId, ConfigPatch(thresCoef: 55))
            #expect(try await poll.value?.generation == first.generation)

            // PostgreSQL ends both replicas' LISTEN connections; the next change commits through
            // A before B listens again (it waits half a second before reconnecting).
            let old = try listenerPids(database)
            try TestStore.psql(database, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid IN (\(old))")
            let second = try await a.admin.patchConfig(reg.nodeId, ConfigPatch(thresCoef: 60))
            #expect(await listening(database, count: 2, " AND pid NOT IN (\(old))"), "the replicas did not listen again")
            // Both listen again since after the change committed: B never heard of it.
            let late = try TestStore.psql(
                database,
                Self.listeners
                    + " AND backend_start > (SELECT to_timestamp(updated_at / 1000.0) FROM node_configs WHERE node_id = :'node')",
                variables: ["node": reg.nodeId]
            ).trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(late == "2", "a replica listened again before the change committed: the case was not tried")

            // The agent asks B with the generation B handed it: B must not trust it any more.
            let clock = ContinuousClock()
            let asked = clock.now
            let got = try await nodeOnB.config(nodeId: reg.nodeId, ifNoneMatch: first.generation, waitSeconds: 20)
            let took = clock.now - asked
            #expect(got?.generation == second.generation, "B answered \(String(describing: got?.generation)) after \(took)")
            #expect(took < .seconds(10), "B answered only after \(took)")
        }
    }

    /// A LISTEN connection that stops answering without an error (its backend frozen with
    /// SIGSTOP: the TCP connection stays up, nothing is delivered, as with a half-open
    /// connection) is found by the replica's check, closed, and replaced; a change committed
    /// meanwhile reaches the poll held there, long before the poll's own timeout.
    @Test("a LISTEN connection that stops answering is replaced, and a change committed meanwhile reaches the poll held on that replica")
    func aListenConnectionThatStopsAnsweringIsReplaced() async throws {
        guard TestStore.isPostgres else { try Test.cancel(Self.postgresOnly) }
        try await withTwoReplicas(configure: { $0.listenCheckSeconds = 1 }) { a, b in
            let database = try await bothListening(a)
            let (reg, _, _, poll) = try await pollHeldOnB(a, b, hostname: "frozen-listener")
            let clock = ContinuousClock()

            // Freeze both replicas' LISTEN backends, then commit a change through A.
            let pids = try freezeListeners(database, count: 2)
            let frozen = pids.map(String.init).joined(separator: ",")
            // Thawed at the end whatever happens: they find their connections closed and exit.
            defer { for pid in pids { kill(pid, SIGCONT) } }
            let sent = clock.now
            let changed = try await a.admin.patchConfig(reg.nodeId, ConfigPatch(thresCoef: 44))

            let (got, returned) = try await poll.value
            let took = returned - sent
            print("ReplicaTests: with its LISTEN backend frozen, the change reached the poll on B \(took) after the request")
            #expect(got?.generation == changed.generation, "the poll on B returned \(String(describing: got?.generation))")
            #expect(took < .seconds(15), "the poll on B returned only after \(took)")
            // The case was tried: the frozen backends are still there (nothing but the check
            // closed their connections), and the replicas listen on new ones.
            #expect(
                await listening(database, count: 2, " AND pid NOT IN (\(frozen))"),
                "the replicas did not listen again on new connections")
            let stillFrozen = try TestStore.psql(database, "SELECT count(*) FROM pg_stat_activity WHERE pid IN (\(frozen))")
                .trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(stillFrozen == "2", "a frozen backend went away by itself: the check was not what replaced it")
            for h in [a, b] {
                #expect(
                    await waitUntil(timeout: .seconds(20), poll: .milliseconds(50)) { await feedLive(h) },
                    "a replica does not say it hears every change again")
            }
        }
    }

    /// A query waiting for a frozen backend ignores cancellation: a server stopped while its
    /// check waits must close the connection, not wait for an answer that never comes.
    @Test("a server stopped while its LISTEN check waits on a frozen backend stops at once")
    func aStopWhileTheCheckWaitsEnds() async throws {
        guard TestStore.isPostgres else { try Test.cancel(Self.postgresOnly) }
        let h = try await Harness.start(configure: { $0.listenCheckSeconds = 3 })
        let database = try TestStore.location(for: h.server.dataDir)
        guard await listening(database, count: 1) else {
            await h.finish()
            Issue.record("the server is not listening")
            return
        }
        let pids: [pid_t]
        do { pids = try freezeListeners(database, count: 1) } catch {
            await h.finish()
            throw error
        }
        // A check goes out within 3 s of the freeze and waits 6 s for its answer: stop the
        // server while it waits (the connection not replaced yet).
        try? await Task.sleep(for: .milliseconds(3500))
        let frozen = pids.map(String.init).joined(separator: ",")
        #expect(
            try TestStore.psql(database, Self.listeners + " AND pid NOT IN (\(frozen))")
                .trimmingCharacters(in: .whitespacesAndNewlines) == "0",
            "the frozen connection was replaced before the stop: the case was not tried")
        let clock = ContinuousClock()
        let asked = clock.now
        let stopping = Task { await h.server.stop() }
        let stopped = await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                await stopping.value
                return true
            }
            group.addTask {
                try? await Task.sleep(for: .seconds(15))
                return false
            }
            let first = await group.next() ?? false
            // A stop that hangs is released by thawing the backend, so that the test ends.
            if !first { for pid in pids { kill(pid, SIGCONT) } }
            group.cancelAll()
            await group.waitForAll()
            return first
        }
        let took = clock.now - asked
        for pid in pids { kill(pid, SIGCONT) }
        await h.finish()
        print("ReplicaTests: a server whose LISTEN check waited on a frozen backend stopped in \(took)")
        #expect(stopped, "the server did not stop within 15 s")
        #expect(took < .seconds(10), "the server took \(took) to stop")
    }
    /// The advisory locks granted on the test database (the background lock is the only one).
    static let advisoryLocks =
        "FROM pg_locks l JOIN pg_database d ON d.oid = l.database WHERE l.locktype = 'advisory' AND l.granted AND d.datname = current_database()"
    /// The backend holding the background lock (one row while one replica holds it).
    static let lockHolder = "SELECT string_agg(l.pid::text, ',') " + advisoryLocks

    /// How many advisory locks are granted on the test database.
    func backgroundLockHolders(_ database: String) throws -> String {
        try TestStore.psql(database, "SELECT count(*) " + Self.advisoryLocks).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// What a restart of PostgreSQL (or a failover) does to the replicas: every connection they
    /// hold ends at once — the pools' idle ones, the LISTEN connections, the background lock's.
    /// Each request after it is stored or answered 503 (never 500, never acknowledged and lost);
    /// both replicas take pushes and changes again, the polls they hold hear changes, and one of
    /// them takes the background work again. (DatabaseOutageTests: a database refusing
    /// connections for a while.)
    @Test("every connection the replicas hold is ended at once, as in a restart of PostgreSQL: pushes and changes go on, polls hear them, and one replica takes the background work again")
    func everyDatabaseConnectionEndedAtOnce() async throws {
        guard TestStore.isPostgres else { try Test.cancel(Self.postgresOnly) }
        // The background service asks for its lock every round: a round a second, not every 10 s.
        try await withTwoReplicas(configure: { $0.rollupIntervalSeconds = 1 }) { a, b in
            let database = try await bothListening(a)
            let (reg, nodeOnA) = try await a.register(hostname: "cut-off")
            let nodeOnB = try Fixtures.client(b.server.baseURL, token: reg.nodeToken)
            _ = try await nodeOnA.pushSamples(nodeId: reg.nodeId, Fixtures.batch([1]))
            _ = try await nodeOnB.pushSamples(nodeId: reg.nodeId, Fixtures.batch([2]))
            let leading = await waitUntil(timeout: .seconds(20), poll: .milliseconds(50)) {
                (try? backgroundLockHolders(database)) == "1"
            }
            try #require(leading, "no replica holds the background lock before the cut")
            let lockHolder = try TestStore.psql(
                database, Self.lockHolder
            ).trimmingCharacters(in: .whitespacesAndNewlines)

            let ended = try TestStore.psql(
                database,
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).trimmingCharacters(in: .whitespacesAndNewlines)
            // At least each replica's LISTEN connection, the lock's and a pool's.
            #expect((Int(ended) ?? 0) >= 4, "ended \(ended) connections")

            // Pushes through either replica: stored, or refused with 503 and sent again.
            var acknowledged: [Int64] = [1, 2]
            for seq in Int64(3)...8 {
                let client = seq % 2 == 0 ? nodeOnB : nodeOnA
                let stored = await waitUntil(timeout: .seconds(10), poll: .milliseconds(100)) {
                    guard let r = try? await client.send(
                        method: "POST", path: APIPaths.samples(reg.nodeId), body: try jsonBody(Fixtures.batch([seq])))
                    else { return false }
                    #expect(r.status == 200 || (r.status == 503 && errorBody(r)?.error.code == APIErrorCode.databaseUnavailable),
                            "push \(seq) after the cut: \(r.status) \(String(decoding: r.body, as: UTF8.self))")
                    return r.status == 200
                }
                #expect(stored, "push \(seq) was not stored within 10 s of the cut")
                if stored { acknowledged.append(seq) }
            }
            let store = try a.database()
            #expect(try await store.sampleSeqs(nodeId: reg.nodeId) == acknowledged)
            try store.close()

            // Both listen again, and a change through A reaches the poll held on B.
            #expect(await listening(database, count: 2), "the replicas did not listen again")
            let (other, _, _, poll) = try await pollHeldOnB(a, b, hostname: "after-the-cut")
            let clock = ContinuousClock()
            let sent = clock.now
            let changed = try await a.admin.patchConfig(other.nodeId, ConfigPatch(thresCoef: 41))
            let (got, returned) = try await poll.value
            #expect(got?.generation == changed.generation, "the poll on B returned \(String(describing: got?.generation))")
            #expect(returned - sent < .seconds(5), "the poll on B returned only after \(returned - sent)")

            // One replica runs the background work again (the lock is on a new connection).
            let again = await waitUntil(timeout: .seconds(25), poll: .milliseconds(100)) {
                (try? backgroundLockHolders(database)) == "1"
            }
            #expect(again, "no replica took the background lock again")
            let newHolder = try TestStore.psql(
                database, Self.lockHolder
            ).trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(newHolder != lockHolder, "the lock is still on the ended connection \(lockHolder)")
        }
    }
}
