#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif
import Synchronization

/// run=2 written on a thread of its own, so that nothing else waits for it.
///
/// Linux unmerges every KSM page inside that write (`run_store`): it returns when the last page
/// is unmerged, 0.6 s a GiB measured here, a minute or more on a host with a hundred GiB merged.
/// Written on the agent's own threads it held the engine (no samples, no config, no clean
/// shutdown) and one of the few threads Swift's concurrency runs everything on, and
/// `--unmerge-timeout` could not act, since the write itself was the wait. Here the caller waits
/// without holding a thread (`result()`), reads `pages_shared` meanwhile (the kernel's counters
/// are read without the lock the unmerge holds), and can stop it: the kernel checks for a pending
/// signal between pages, so `interrupt()` sends the thread SIGURG (a handler that does nothing,
/// installed without SA_RESTART), the write fails with EINTR and the kernel leaves run=0 with
/// the pages not yet unmerged still merged. An EINTR nobody asked for (another signal) writes
/// run=2 again: the unmerge goes on where it stopped.
public final class UnmergeThread: Sendable {
    private struct State {
        var thread: pthread_t?
        var interrupted = false
        var result: Result<Void, KSMKernelError>?
        var waiters: [CheckedContinuation<Result<Void, KSMKernelError>, Never>] = []
    }
    private let state = Mutex(State())
    private let kernel: any KSMKernel

    /// The signal `interrupt()` sends: ignored by default and unused by the agent otherwise.
    static let signal = SIGURG
    private static let handlerInstalled: Bool = {
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { _ in }
        sigemptyset(&action.sa_mask)
        action.sa_flags = 0  // no SA_RESTART: the interrupted write returns EINTR
        return sigaction(UnmergeThread.signal, &action, nil) == 0
    }()

    /// Called on the new thread just before its first write.
    private let started: @Sendable (UnmergeThread) -> Void

    private init(kernel: any KSMKernel, started: @escaping @Sendable (UnmergeThread) -> Void) {
        self.kernel = kernel
        self.started = started
    }

    /// Starts writing run=2 to `kernel` on a new thread; `started` is called on that thread just
    /// before the write.
    public static func start(_ kernel: any KSMKernel, started: @escaping @Sendable (UnmergeThread) -> Void = { _ in })
        -> UnmergeThread
    {
        let u = UnmergeThread(kernel: kernel, started: started)
        _ = handlerInstalled
        let box = Unmanaged.passRetained(u).toOpaque()
        var tid = pthread_t()
        let rc = pthread_create(
            &tid, nil,
            { arg in
                let u = Unmanaged<UnmergeThread>.fromOpaque(arg!).takeRetainedValue()
                u.run()
                return nil
            }, box)
        if rc == 0 {
            pthread_detach(tid)
        } else {
            Unmanaged<UnmergeThread>.fromOpaque(box).release()
            u.finish(
                .failure(
                    KSMKernelError(
                        path: KSMTunable.run.fileName, operation: .write("2"), errno: rc,
                        detail: "could not start a thread for the unmerge")))
        }
        return u
    }

    private func run() {
        // The thread may have been created with the signal blocked (a creator's mask).
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, Self.signal)
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
        let me = pthread_self()
        state.withLock { $0.thread = me }
        started(self)
        var result: Result<Void, KSMKernelError>
        while true {
            let stop = state.withLock { $0.interrupted }
            if stop {
                result = .failure(
                    KSMKernelError(
                        path: KSMTunable.run.fileName, operation: .write("2"), errno: EINTR,
                        detail: "interrupted before the unmerge began"))
                break
            }
            do throws(KSMKernelError) {
                try kernel.writeUnmerge()
                result = .success(())
                break
            } catch {
                if error.errno == EINTR && !state.withLock({ $0.interrupted }) { continue }
                result = .failure(error)
                break
            }
        }
        finish(result)
    }

    private func finish(_ result: Result<Void, KSMKernelError>) {
        let waiters = state.withLock { st in
            st.thread = nil  // never signalled again once its write is over
            st.result = result
            defer { st.waiters = [] }
            return st.waiters
        }
        for w in waiters { w.resume(returning: result) }
    }

    /// True once the write returned (or failed).
    public var isDone: Bool { state.withLock { $0.result != nil } }

    /// True when `interrupt()` was called.
    public var wasInterrupted: Bool { state.withLock { $0.interrupted } }

    /// Asks the unmerge to stop: signals the thread if its write is under way. A signal that
    /// arrives just before the write begins is lost, so callers repeat this until `isDone`.
    public func interrupt() {
        state.withLock { st in
            st.interrupted = true
            if let t = st.thread { pthread_kill(t, Self.signal) }
        }
    }

    /// The write's result, once it returned.
    public func result() async -> Result<Void, KSMKernelError> {
        await withCheckedContinuation { c in
            let ready = state.withLock { st -> Result<Void, KSMKernelError>? in
                if let r = st.result { return r }
                st.waiters.append(c)
                return nil
            }
            if let ready { c.resume(returning: ready) }
        }
    }
}

/// The unmerges an `Applier` runs for one owner (the agent's engine), seen from outside: whether
/// one is under way and since when (its write begun: samples say so), and a way to stop it for
/// good (the agent stopping: the one under way is interrupted, and none is started after).
public final class UnmergeControl: Sendable {
    private struct State {
        var current: UnmergeThread?
        var since: ContinuousClock.Instant?
        var stopped = false
    }
    private let state = Mutex(State())

    public init() {}

    /// When the write of the unmerge under way began; nil when none is under way.
    public var underWaySince: ContinuousClock.Instant? { state.withLock { $0.since } }

    /// True once `stop()` was called.
    public var stopped: Bool { state.withLock { $0.stopped } }

    /// Interrupts the unmerge under way, if any, and any later one as soon as it begins.
    public func stop() {
        let current = state.withLock { st -> UnmergeThread? in
            st.stopped = true
            return st.current
        }
        current?.interrupt()
    }

    func began(_ unmerge: UnmergeThread) {
        let stopped = state.withLock { st -> Bool in
            st.current = unmerge
            st.since = .now
            return st.stopped
        }
        if stopped { unmerge.interrupt() }
    }

    func ended() {
        state.withLock { st in
            st.current = nil
            st.since = nil
        }
    }
}
