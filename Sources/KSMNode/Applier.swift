#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif
import KSMCore
import Logging

/// What one apply did.
public struct ApplyReport: Sendable, Equatable, CustomStringConvertible {
    /// One value written: the file, what the kernel had, what it has now.
    public struct Change: Sendable, Equatable, CustomStringConvertible {
        public var tunable: KSMTunable
        public var from: Int?
        public var to: Int
        public init(_ tunable: KSMTunable, from: Int?, to: Int) {
            self.tunable = tunable
            self.from = from
            self.to = to
        }
        public var description: String { "\(tunable.fileName) \(from.map(String.init) ?? "?")→\(to)" }
    }

    /// Values written, in order.
    public var written: [Change] = []
    /// The advisor's files written ("advisor_mode none→scan-time").
    public var advisorWritten: [String] = []
    /// Values asked for that the kernel already had.
    public var unchanged: [KSMTunable] = []
    /// Values asked for that were not written (the kernel lacks the file, or the advisor owns it).
    public var skipped: [KSMTunable] = []
    /// Things an operator should know (skips, unmerges).
    public var warnings: [String] = []
    /// True when every merged page was unmerged (run=2) to change merge_across_nodes or
    /// max_page_sharing.
    public var unmerged = false

    public init() {}

    public var description: String {
        var parts: [String] = []
        parts.append(
            written.isEmpty && advisorWritten.isEmpty
                ? "nothing written"
                : "wrote " + (advisorWritten + written.map(\.description)).joined(separator: ", "))
        if !unchanged.isEmpty { parts.append("unchanged " + unchanged.map(\.fileName).joined(separator: ", ")) }
        if !skipped.isEmpty { parts.append("skipped " + skipped.map(\.fileName).joined(separator: ", ")) }
        return parts.joined(separator: "; ")
    }
}

/// Why settings could not be applied, in an operator's words, with what was done before.
public struct KSMApplyError: Error, Sendable, CustomStringConvertible {
    public enum Reason: Sendable, Equatable {
        /// A read or write failed.
        case kernel(KSMKernelError)
        /// pages_shared did not reach 0 in time after run=2. `restoredRun` is the run value put
        /// back (nil when restoring failed too, see `restoreError`).
        case unmergeTimeout(
            tunables: [KSMTunable], timeout: Duration, pagesShared: Int64, restoredRun: Int?, restoreError: String?)
        /// The settings would break a rule (pages_to_scan 0 with run 1); nothing was written.
        case invalidSettings(String)
        /// The task was cancelled while waiting for the unmerge; run was restored.
        case cancelled(restoredRun: Int?)
        /// run=2 was not written: unmerging would not leave enough memory available. Nothing that
        /// needs the unmerge was written; KSM stays merged with `run` as it was.
        case unmergeRefused(UnmergeShortfall)
        /// The kernel refused run=2 (e.g. ENOMEM; it then leaves run=0 with part of the pages
        /// still merged). `runLeft` is the run the kernel has afterwards, `restoredRun` the run
        /// put back (nil when none was, or restoring failed: see `restoreError`).
        case unmergeFailed(
            purpose: String, error: KSMKernelError, runLeft: Int?, pagesShared: Int64?, restoredRun: Int?,
            restoreError: String?)
        /// run=2 was not tried: an earlier refusal or failure holds unmerges back (the caller's words).
        case unmergeHeldBack(String)
    }

    /// True for the reasons that leave an unmerge undone (refused, failed, timed out or held
    /// back): the agent waits before it tries again (a timed-out unmerge put run back, so ksmd
    /// merges again meanwhile; trying at every step would unmerge for the whole timeout, again
    /// and again).
    public var isUnmergeNotDone: Bool {
        switch reason {
        case .unmergeRefused, .unmergeFailed, .unmergeHeldBack, .unmergeTimeout: return true
        default: return false
        }
    }

    public var reason: Reason
    /// What was written before the failure.
    public var report: ApplyReport

    public init(_ reason: Reason, report: ApplyReport) {
        self.reason = reason
        self.report = report
    }

    public var description: String {
        switch reason {
        case .kernel(let e):
            return e.description
        case .unmergeTimeout(let tunables, let timeout, let shared, let restoredRun, let restoreError):
            let names = tunables.map(\.fileName).joined(separator: " and ")
            var text =
                "\(names) change timed out after \(Applier.format(timeout)): pages_shared still \(shared)"
            if let restoredRun {
                text += "; run restored to \(restoredRun)"
            } else if let restoreError {
                text += "; restoring run failed: \(restoreError)"
            }
            return text
        case .invalidSettings(let why):
            return why
        case .cancelled(let restoredRun):
            return "cancelled while waiting for the unmerge" + (restoredRun.map { "; run restored to \($0)" } ?? "")
        case .unmergeRefused(let s):
            return s.description
        case .unmergeFailed(let purpose, let error, let runLeft, let shared, let restoredRun, let restoreError):
            var text = "unmerging every KSM page (run=2, \(purpose)) failed: \(error.description)"
            if let restoredRun {
                text += "; run restored to \(restoredRun)"
            } else if let restoreError {
                text += "; restoring run failed: \(restoreError)"
            } else if let runLeft {
                text += "; the kernel left run \(runLeft)"
            }
            if let shared { text += "; pages_shared still \(shared)" }
            return text
        case .unmergeHeldBack(let why):
            return why
        }
    }
}

/// What an unmerge (run=2) would allocate against the memory available, when it does not fit.
///
/// Unmerging gives every page that shares a KSM page its own copy again: it allocates the memory
/// KSM saves now (`Savings.savedBytes`: pages_sharing + ksm_zero_pages). The kernel's admin guide
/// warns this "may suddenly require more memory than is available", and the process writing run=2
/// is the OOM killer's first victim (`set_current_oom_origin`). The agent unmerges only when
/// MemAvailable minus that leaves at least `reservePercent` of MemTotal available.
public struct UnmergeShortfall: Sendable, Equatable, CustomStringConvertible {
    /// Why the unmerge was wanted: "for prune", "to change merge_across_nodes".
    public var purpose: String
    public var neededBytes: Int64
    public var memAvailableBytes: Int64
    public var memTotalBytes: Int64
    public var reservePercent: Double
    /// The run value left in force.
    public var run: Int

    public init(
        purpose: String, neededBytes: Int64, memAvailableBytes: Int64, memTotalBytes: Int64, reservePercent: Double,
        run: Int
    ) {
        self.purpose = purpose
        self.neededBytes = neededBytes
        self.memAvailableBytes = memAvailableBytes
        self.memTotalBytes = memTotalBytes
        self.reservePercent = reservePercent
        self.run = run
    }

    /// True when the unmerge leaves at least `reservePercent` of MemTotal available.
    public var fits: Bool {
        Double(memAvailableBytes) - Double(neededBytes) >= Double(memTotalBytes) * reservePercent / 100
    }

    public var description: String {
        "unmerging every KSM page (run=2, \(purpose)) would need ~\(Display.bytes(neededBytes)), MemAvailable is "
            + "\(Display.bytes(memAvailableBytes)) of \(Display.bytes(memTotalBytes)) and at least "
            + "\(Display.number(reservePercent)) % of MemTotal must stay available: not unmerged, KSM is left merged "
            + "with run \(run); free memory or unmerge by hand (echo 2 > /sys/kernel/mm/ksm/run)"
    }
}

/// How the Applier guards run=2 (unmerge everything).
public struct UnmergeGuard: Sendable, Equatable {
    /// The share of MemTotal (in %) that must stay available after an unmerge: 10.
    public static let defaultReservePercent = 10.0

    /// The share of MemTotal (in %) that must stay available after the unmerge.
    public var reservePercent: Double
    /// Set while an earlier refused, failed or timed-out unmerge holds new ones back: the text to
    /// report.
    /// An unmerge that allocates nothing (no page merged) is never held back.
    public var heldBack: String?

    public init(reservePercent: Double = UnmergeGuard.defaultReservePercent, heldBack: String? = nil) {
        self.reservePercent = reservePercent
        self.heldBack = heldBack
    }
}

/// Why waiting for an unmerge stopped before the write returned.
enum UnmergeStop {
    case timedOut, cancelled
}

/// Writes KernelSettings to a kernel: only what differs, in a safe order, with the unmerge
/// protocol for merge_across_nodes and max_page_sharing.
public enum Applier {
    /// Applies `settings` (nil fields are left alone).
    ///
    /// Order: pages_to_scan and sleep_millisecs first (so ksmd never starts with stale values),
    /// then use_zero_pages and smart_scan, then run, and last merge_across_nodes/max_page_sharing
    /// (so the tuning is in force even when their unmerge times out). Those two need
    /// pages_shared == 0: when pages are shared (or ksmd runs and could share some), the
    /// protocol remembers run, writes run=2, waits until pages_shared is 0 (at most
    /// `unmergeTimeout`, logging progress), writes them and restores run. A timeout interrupts
    /// the kernel's unmerge, restores run and throws; it never hangs. run=2 is written on a thread
    /// of its own (`UnmergeThread`: Linux unmerges inside that write), so the caller's actor and
    /// threads are free while it lasts; a prune's unmerge has no time limit, a cancellation
    /// interrupts either.
    ///
    /// Every run=2 (prune, or the protocol) is guarded first (`unmergeGuard`): when unmerging
    /// would not leave `reservePercent` of MemTotal available (`UnmergeShortfall`), or an earlier
    /// refusal holds unmerges back, run=2 is not written and nothing that needs it is; what was
    /// written before stays and the error says so. When the kernel refuses run=2 (it then leaves
    /// run=0), the protocol restores run; prune leaves the kernel's run=0 (ksmd off, as asked).
    @discardableResult
    public static func apply(
        _ settings: KernelSettings, to kernel: any KSMKernel, unmergeTimeout: Duration = .seconds(60),
        pollInterval: Duration = .milliseconds(100), unmergeGuard: UnmergeGuard = UnmergeGuard(),
        unmergeControl: UnmergeControl? = nil, logger: Logger
    ) async throws(KSMApplyError) -> ApplyReport {
        var report = ApplyReport()
        func kernelCall<T>(_ body: () throws -> T) throws(KSMApplyError) -> T {
            do {
                return try body()
            } catch let error as KSMKernelError {
                throw KSMApplyError(.kernel(error), report: report)
            } catch {
                throw KSMApplyError(
                    .kernel(KSMKernelError(path: "", operation: .read, errno: 0, detail: "\(error)")), report: report)
            }
        }
        var status = try kernelCall { try kernel.readStatus() }
        let present = Set(try kernelCall { try kernel.features() })
        if try applyAdvisor(settings, status: status, present: present, kernel: kernel, report: &report) {
            status = try kernelCall { try kernel.readStatus() }
        }
        let advisorOwnsScan = status.advisorMode == "scan-time"

        // Refuse pages_to_scan 0 with run 1 before writing anything.
        let finalRun = settings.run ?? status.run
        let finalPages = advisorOwnsScan ? status.pagesToScan : (settings.pagesToScan ?? status.pagesToScan)
        if finalRun == 1 && finalPages == 0 && !advisorOwnsScan {
            throw KSMApplyError(
                .invalidSettings(
                    "pages_to_scan 0 with run 1 would let ksmd run while scanning nothing; nothing was written"),
                report: report)
        }

        func supported(_ t: KSMTunable) -> Bool {
            if present.contains(t.fileName) { return true }
            report.skipped.append(t)
            report.warnings.append("\(t.fileName) is not supported by this kernel (no \(t.fileName) file); left alone")
            return false
        }

        func writeIfChanged(_ t: KSMTunable, _ target: Int?, current: Int?) throws(KSMApplyError) {
            guard let target, supported(t) else { return }
            if current == target {
                report.unchanged.append(t)
                return
            }
            try kernelCall { try kernel.write(t, target) }
            report.written.append(.init(t, from: current, to: target))
            logger.debug(
                "wrote \(t.fileName)", metadata: ["from": "\(current.map(String.init) ?? "?")", "to": "\(target)"])
        }

        if let pages = settings.pagesToScan, advisorOwnsScan, pages != status.pagesToScan {
            report.skipped.append(.pagesToScan)
            report.warnings.append(
                "advisor_mode is scan-time: the kernel picks pages_to_scan itself; pages_to_scan \(pages) not written")
        } else {
            try writeIfChanged(.pagesToScan, settings.pagesToScan, current: status.pagesToScan)
        }
        try writeIfChanged(.sleepMillisecs, settings.sleepMillisecs, current: status.sleepMillisecs)
        try writeIfChanged(.useZeroPages, settings.useZeroPages, current: status.useZeroPages)
        try writeIfChanged(.smartScan, settings.smartScan, current: status.smartScan)

        /// Writes `run` back after an unmerge that did not take: the value written, or why not.
        func putBack(run: Int) -> (restored: Int?, error: String?) {
            do throws(KSMKernelError) {
                try kernel.write(.run, run)
                return (run, nil)
            } catch {
                return (nil, error.description)
            }
        }

        let clock = ContinuousClock()
        /// Waits for `unmerge` (run=2 on its own thread) without holding a thread: looks every
        /// few milliseconds at first, then every `pollInterval`, and says every 5 s how far it
        /// got (pages_shared, read while the kernel unmerges). Past `deadline`, once the task is
        /// cancelled, or once `unmergeControl` is stopped, it interrupts the write (the kernel
        /// looks for a signal between pages) and waits for it to return; says which.
        func wait(for unmerge: UnmergeThread, purpose: String, deadline: ContinuousClock.Instant?) async
            -> UnmergeStop?
        {
            let start = clock.now
            var lastLog = start
            var pause = Duration.milliseconds(1)
            while !unmerge.isDone {
                var stop: UnmergeStop?
                if Task.isCancelled || unmergeControl?.stopped == true {
                    stop = .cancelled
                } else if let deadline, clock.now >= deadline {
                    stop = .timedOut
                }
                if let stop {
                    // Signals again until the write returns (one sent just before the write began
                    // is lost), from a task of its own: this task's sleeps end at once once it is
                    // cancelled. The wait for the result holds no thread.
                    let repeater = Task.detached {
                        var every = Duration.milliseconds(1)
                        while !unmerge.isDone {
                            unmerge.interrupt()
                            try? await Task.sleep(for: every)
                            every = min(every * 2, .milliseconds(100))
                        }
                    }
                    _ = await unmerge.result()
                    repeater.cancel()
                    return stop
                }
                try? await Task.sleep(for: pause)
                pause = min(pause * 2, pollInterval)
                let now = clock.now
                if now - lastLog >= .seconds(5) {
                    lastLog = now
                    let status = try? kernel.readStatus()
                    logger.info(
                        "unmerging",
                        metadata: [
                            "purpose": "\(purpose)", "pages_sharing": "\(status.map { String($0.pagesSharing) } ?? "?")",
                            "pages_shared": "\(status.map { String($0.pagesShared) } ?? "?")",
                            "elapsed": "\(format(now - start))",
                        ])
                }
            }
            return nil
        }

        /// Writes run=2 if the memory allows it (see `UnmergeGuard`), on a thread of its own
        /// (`UnmergeThread`), and waits for it. Past `deadline` (the protocol's `unmergeTimeout`;
        /// prune has none) or on cancellation the unmerge is interrupted. When the write fails
        /// (refused by the kernel, or interrupted: the kernel then leaves run=0), puts `restoreTo`
        /// back (nil: leaves the run the kernel left) and throws.
        func unmergeAll(
            purpose: String, restoreTo: Int?, deadline: ContinuousClock.Instant?, tunables: [KSMTunable]
        ) async throws(KSMApplyError) {
            let now = try kernelCall { try kernel.readStatus() }
            let needed = Savings.savedBytes(now, pageSize: kernel.pageSize)
            if needed > 0 {
                if let held = unmergeGuard.heldBack {
                    throw KSMApplyError(.unmergeHeldBack(held), report: report)
                }
                let memory = try kernelCall { try kernel.readMemory() }
                let check = UnmergeShortfall(
                    purpose: purpose, neededBytes: needed, memAvailableBytes: memory.memAvailableKB &* 1024,
                    memTotalBytes: memory.memTotalKB &* 1024, reservePercent: unmergeGuard.reservePercent, run: now.run)
                if !check.fits {
                    logger.error(
                        "unmerge refused: not enough memory available",
                        metadata: [
                            "purpose": "\(purpose)", "needed_bytes": "\(check.neededBytes)",
                            "mem_available_bytes": "\(check.memAvailableBytes)",
                            "mem_total_bytes": "\(check.memTotalBytes)",
                            "reserve_percent": "\(Display.number(check.reservePercent))", "run": "\(now.run)",
                        ])
                    throw KSMApplyError(.unmergeRefused(check), report: report)
                }
            }
            if unmergeControl?.stopped == true {
                throw KSMApplyError(.cancelled(restoredRun: nil), report: report)
            }
            let unmerge = UnmergeThread.start(kernel, started: { u in unmergeControl?.began(u) })
            var stop = await wait(for: unmerge, purpose: purpose, deadline: deadline)
            unmergeControl?.ended()
            // `UnmergeControl.stop()` interrupts the thread itself: its write may return before
            // the wait looked at the control.
            if stop == nil, unmerge.wasInterrupted, unmergeControl?.stopped == true { stop = .cancelled }
            guard case .failure(let error) = await unmerge.result() else { return }
            if error.isPermissionDenied || error.isNotFound {
                throw KSMApplyError(.kernel(error), report: report)
            }
            let after = try? kernel.readStatus()
            let (restored, restoreError) = restoreTo.map(putBack(run:)) ?? (nil, nil)
            if let stop, error.errno == EINTR {
                switch stop {
                case .timedOut:
                    logger.error(
                        "unmerge timed out: interrupted",
                        metadata: [
                            "purpose": "\(purpose)", "pages_shared": "\(after.map { String($0.pagesShared) } ?? "?")",
                            "timeout": "\(format(unmergeTimeout))",
                            "run": "\(restored.map(String.init) ?? after.map { String($0.run) } ?? "?")",
                        ])
                    throw KSMApplyError(
                        .unmergeTimeout(
                            tunables: tunables, timeout: unmergeTimeout, pagesShared: after?.pagesShared ?? 0,
                            restoredRun: restored, restoreError: restoreError), report: report)
                case .cancelled:
                    throw KSMApplyError(.cancelled(restoredRun: restored), report: report)
                }
            }
            logger.error(
                "unmerge failed",
                metadata: [
                    "purpose": "\(purpose)", "error": "\(error.description)",
                    "run": "\(restored.map(String.init) ?? after.map { String($0.run) } ?? "?")",
                    "pages_shared": "\(after.map { String($0.pagesShared) } ?? "?")",
                ])
            throw KSMApplyError(
                .unmergeFailed(
                    purpose: purpose, error: error, runLeft: after?.run, pagesShared: after?.pagesShared,
                    restoredRun: restored, restoreError: restoreError), report: report)
        }

        if settings.run == 2 && status.run != 2 {
            logger.info("unmerging every KSM page for prune", metadata: ["pages_shared": "\(status.pagesShared)"])
            try await unmergeAll(purpose: "for prune", restoreTo: nil, deadline: nil, tunables: [])
            report.written.append(.init(.run, from: status.run, to: 2))
            logger.debug("wrote run", metadata: ["from": "\(status.run)", "to": "2"])
        } else {
            try writeIfChanged(.run, settings.run, current: status.run)
        }

        // The knobs that need pages_shared == 0.
        var pending: [(KSMTunable, Int, Int?)] = []
        for (t, target, current) in [
            (KSMTunable.mergeAcrossNodes, settings.mergeAcrossNodes, status.mergeAcrossNodes),
            (.maxPageSharing, settings.maxPageSharing, status.maxPageSharing),
        ] {
            guard let target, supported(t) else { continue }
            if current == target {
                report.unchanged.append(t)
            } else {
                pending.append((t, target, current))
            }
        }
        guard !pending.isEmpty else { return report }

        status = try kernelCall { try kernel.readStatus() }
        if status.pagesShared == 0 && status.run != 1 {
            var busy = false
            for (t, target, current) in pending {
                do throws(KSMKernelError) {
                    try kernel.write(t, target)
                    report.written.append(.init(t, from: current, to: target))
                } catch  where error.isBusy {
                    busy = true  // ksmd merged something meanwhile: fall through to the protocol
                    break
                } catch {
                    throw KSMApplyError(.kernel(error), report: report)
                }
            }
            if !busy { return report }
            let done = Set(report.written.map(\.tunable))
            pending = pending.filter { !done.contains($0.0) }
            status = try kernelCall { try kernel.readStatus() }
        }

        // The unmerge protocol.
        let names = pending.map(\.0.fileName).joined(separator: " and ")
        let remembered = status.run
        let restoreTo: Int? = remembered == 2 ? nil : remembered
        // Said before: on a real kernel the write of run=2 returns only when the unmerge is done.
        logger.info(
            "unmerging every KSM page to change \(names)",
            metadata: ["pages_shared": "\(status.pagesShared)", "run": "\(remembered)"])
        let start = clock.now
        let deadline = start.advanced(by: unmergeTimeout)
        if remembered != 2 {
            try await unmergeAll(
                purpose: "to change \(names)", restoreTo: remembered, deadline: deadline, tunables: pending.map(\.0))
        }
        report.unmerged = true
        report.warnings.append("unmerged every KSM page (run=2) to change \(names)")

        func restoreRun() -> (Int?, String?) {
            guard let restoreTo else { return (2, nil) }
            return putBack(run: restoreTo)
        }

        var lastLog = start
        while true {
            status = try kernelCall { try kernel.readStatus() }
            if status.pagesShared == 0 { break }
            let now = clock.now
            if now >= deadline {
                let (restored, restoreError) = restoreRun()
                logger.error(
                    "unmerge timed out",
                    metadata: [
                        "knobs": "\(names)", "pages_shared": "\(status.pagesShared)",
                        "timeout": "\(format(unmergeTimeout))",
                    ])
                throw KSMApplyError(
                    .unmergeTimeout(
                        tunables: pending.map(\.0), timeout: unmergeTimeout, pagesShared: status.pagesShared,
                        restoredRun: restored, restoreError: restoreError), report: report)
            }
            if now - lastLog >= .seconds(5) {
                lastLog = now
                logger.info(
                    "waiting for the unmerge",
                    metadata: ["pages_shared": "\(status.pagesShared)", "elapsed": "\(format(now - start))"])
            }
            do {
                try await Task.sleep(for: min(pollInterval, deadline - now))
            } catch {
                let (restored, _) = restoreRun()
                throw KSMApplyError(.cancelled(restoredRun: restored), report: report)
            }
        }
        for (t, target, current) in pending {
            do throws(KSMKernelError) {
                try kernel.write(t, target)
                report.written.append(.init(t, from: current, to: target))
            } catch {
                _ = restoreRun()
                throw KSMApplyError(.kernel(error), report: report)
            }
        }
        let (_, restoreError) = restoreRun()
        if let restoreError {
            report.warnings.append("restoring run to \(remembered) failed: \(restoreError)")
            throw KSMApplyError(
                .kernel(
                    KSMKernelError(path: "run", operation: .write(String(remembered)), errno: 0, detail: restoreError)),
                report: report)
        }
        logger.info("unmerge protocol done", metadata: ["knobs": "\(names)", "run": "\(remembered)"])
        return report
    }

    /// The advisor's settings, then advisor_mode (leaving scan-time first makes pages_to_scan
    /// writable again). Returns true when anything was written. A kernel without the advisor
    /// refuses scan-time in words; `none` there is already the case.
    static func applyAdvisor(
        _ settings: KernelSettings, status: KSMStatus, present: Set<String>, kernel: any KSMKernel,
        report: inout ApplyReport
    ) throws(KSMApplyError) -> Bool {
        guard let mode = settings.advisorMode else { return false }
        guard present.contains("advisor_mode") else {
            if mode == "none" { return false }
            throw KSMApplyError(
                .invalidSettings(
                    "mode advisor needs the kernel's KSM advisor (advisor_mode, Linux 6.7+); this kernel has none, so nothing was written"
                ), report: report)
        }
        var wrote = false
        func put(_ name: String, _ target: Int?, _ current: Int64?) throws(KSMApplyError) {
            guard let target, present.contains(name), Int64(target) != current else { return }
            do {
                try kernel.writeRaw(name, String(target))
            } catch {
                throw KSMApplyError(.kernel(error), report: report)
            }
            report.advisorWritten.append("\(name) \(current.map(String.init) ?? "?")→\(target)")
            wrote = true
        }
        // max before min so that raising both never passes through min > max.
        try put("advisor_max_pages_to_scan", settings.advisorMaxPagesToScan, status.advisorMaxPagesToScan)
        try put("advisor_min_pages_to_scan", settings.advisorMinPagesToScan, status.advisorMinPagesToScan)
        try put("advisor_target_scan_time", settings.advisorTargetScanTime, status.advisorTargetScanTime)
        try put("advisor_max_cpu", settings.advisorMaxCPU, status.advisorMaxCPU)
        if status.advisorMode != mode {
            do {
                try kernel.writeRaw("advisor_mode", mode)
            } catch {
                throw KSMApplyError(.kernel(error), report: report)
            }
            report.advisorWritten.append("advisor_mode \(status.advisorMode ?? "?")→\(mode)")
            wrote = true
        }
        return wrote
    }

    /// Puts back settings captured earlier (`KSMStatus.tunables`), e.g. on exit.
    @discardableResult
    public static func restore(
        _ captured: KernelSettings, to kernel: any KSMKernel, unmergeTimeout: Duration = .seconds(60),
        unmergeGuard: UnmergeGuard = UnmergeGuard(), unmergeControl: UnmergeControl? = nil, logger: Logger
    ) async throws(KSMApplyError) -> ApplyReport {
        try await apply(
            captured, to: kernel, unmergeTimeout: unmergeTimeout, unmergeGuard: unmergeGuard,
            unmergeControl: unmergeControl, logger: logger)
    }

    /// "60 s", "0.5 s".
    static func format(_ d: Duration) -> String {
        let seconds = Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
        if seconds == seconds.rounded() { return "\(Int(seconds)) s" }
        return "\((seconds * 10).rounded() / 10) s"
    }
}
