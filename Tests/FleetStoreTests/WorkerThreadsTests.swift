import Foundation
import Synchronization
import Testing

@testable import FleetStore

/// The PostgreSQL engine's threads for blocking work (`WorkerThreads`): a burst of jobs gets a
/// thread each, up to the limit, also when a thread sat idle before it. Until 2026-12-05 a new
/// thread was started only when no thread was idle: an idle thread that had not yet woken for
/// the first job of a burst counted as free for every other, and the burst ran one after another
/// on it (here: four jobs waiting for each other ran on one thread and timed out).
@Suite("PostgreSQL engine threads")
struct WorkerThreadsTests {
    @Test("a burst of blocking jobs after an idle spell runs side by side, one thread each up to the limit")
    func aBurstGetsAThreadEach() async throws {
        let threads = WorkerThreads(name: "test-worker", max: 4)
        defer { threads.close() }
        // One thread started and left idle.
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in threads.submit { done.resume() } }
        try await Task.sleep(for: .milliseconds(50))
        // Four jobs submitted in one go (before the idle thread wakes for the first), each
        // waiting (up to 5 s) until all four are running.
        let running = Rendezvous(count: 4)
        let met = Tally()
        let done = DispatchGroup()
        for _ in 0..<4 {
            done.enter()
            threads.submit {
                if running.arriveAndWait(timeout: 5) { met.add() }
                done.leave()
            }
        }
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in done.notify(queue: .global()) { c.resume() } }
        #expect(met.value == 4, "only \(met.value) of the 4 jobs saw all four running")
        #expect(threads.live == 4)
        // Eight more at once, more than the limit: every one runs, on the four threads.
        let ran = Tally()
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<8 {
                group.addTask {
                    await withCheckedContinuation { done in
                        threads.submit {
                            usleep(20_000)
                            ran.add()
                            done.resume()
                        }
                    }
                }
            }
        }
        #expect(ran.value == 8)
        #expect(threads.live == 4)
    }
}

/// Threads meeting: `arriveAndWait` returns true once `count` have arrived, false at its timeout.
private final class Rendezvous: @unchecked Sendable {
    private let condition = NSCondition()
    private var arrived = 0
    private let count: Int
    init(count: Int) { self.count = count }

    func arriveAndWait(timeout: TimeInterval) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        arrived += 1
        condition.broadcast()
        let until = Date(timeIntervalSinceNow: timeout)
        while arrived < count {
            if !condition.wait(until: until) { return arrived >= count }
        }
        return true
    }
}

private final class Tally: Sendable {
    private let count = Mutex(0)
    func add() { count.withLock { $0 += 1 } }
    var value: Int { count.withLock { $0 } }
}

/// The engine's threads carry their names (`top -H`, `perf`, gdb). Until 2026-12-05 the name
/// was given before `start()`, which Foundation on Linux does not pass on: every engine thread
/// showed the name of the Dispatch thread that started it ("oot.default-qos"; seen here).
@Suite("PostgreSQL engine threads: names")
struct WorkerThreadNameTests {
    @Test("a job runs on a thread named as its pool")
    func named() async {
        let threads = WorkerThreads(name: "pg-read", max: 1)
        defer { threads.close() }
        let name = await withCheckedContinuation { (done: CheckedContinuation<String, Never>) in
            threads.submit {
                let comm = (try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8)) ?? "?"
                done.resume(returning: comm.trimmingCharacters(in: .whitespacesAndNewlines))
            }
        }
        #expect(name == "pg-read")
    }
}
