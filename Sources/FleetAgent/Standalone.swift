import FleetAPI
import KSMCore
import KSMNode
import FleetLog
import Logging

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// How `ksmfleet-agent standalone` runs.
public struct StandaloneOptions: Sendable {
    public var configPath: String
    /// Seconds between tuning steps.
    public var interval: Double
    /// Seconds between status log lines; nil logs one after each tuning step.
    public var sampleInterval: Double?
    /// Put back the KSM settings captured at start when stopping.
    public var restoreOnExit: Bool
    /// Longest wait for pages_shared to reach 0 when merge_across_nodes/max_page_sharing change.
    public var unmergeTimeout: Double
    /// The share of MemTotal (in %) an unmerge must leave available (`UnmergeGuard`).
    public var unmergeReservePercent: Double
    public var sysfsRoot: String
    public var procRoot: String
    /// Where the KSM settings found before the first write are kept across restarts
    /// (`initial-settings.json`); nil keeps nothing: each start captures the kernel's settings.
    public var stateDir: String?
    /// Directories whose new entries are kicks (throttle mode), as the connected agent's
    /// `--watch`: kata's throttler watched `/run/vc/sbs` the same way.
    public var watchPaths: [String]

    public init(
        configPath: String, interval: Double = 60, sampleInterval: Double? = nil, restoreOnExit: Bool = false,
        unmergeTimeout: Double = 60, unmergeReservePercent: Double = UnmergeGuard.defaultReservePercent,
        sysfsRoot: String = "/sys/kernel/mm/ksm", procRoot: String = "/proc", stateDir: String? = nil,
        watchPaths: [String] = []
    ) {
        self.watchPaths = watchPaths
        self.unmergeReservePercent = unmergeReservePercent
        self.stateDir = stateDir
        self.configPath = configPath
        self.interval = interval
        self.sampleInterval = sampleInterval
        self.restoreOnExit = restoreOnExit
        self.unmergeTimeout = unmergeTimeout
        self.sysfsRoot = sysfsRoot
        self.procRoot = procRoot
    }
}

/// The tuning loop from a local config file, with no server (the ksmtuned replacement).
public enum Standalone {
    /// Exit codes: 0 clean stop, 1 runtime failure (no KSM, restore failed), 2 invalid config.
    public static let exitInvalidConfig: Int32 = 2
    public static let exitFailure: Int32 = 1

    /// Runs until SIGTERM or SIGINT. The config file is read and validated before anything is
    /// written; every interval one tuning step runs and a status line is logged; SIGUSR1
    /// retunes at once (a kick in throttle mode).
    public static func run(_ options: StandaloneOptions, kernel: (any KSMKernel)? = nil, logger: Logger) async -> Int32
    {
        let config: KSMConfig
        do {
            config = try ConfigFile.load(path: options.configPath)
        } catch {
            StandardError.write("ksmfleet-agent: invalid config file: \(error)\n")
            return exitInvalidConfig
        }
        // From here on SIGTERM/SIGINT are handled by the loop, not by the default action.
        let signals = Signals.stream([SIGUSR1, SIGTERM, SIGINT])

        let kernel = kernel ?? LinuxKSMKernel(root: options.sysfsRoot, proc: options.procRoot)
        var stateDir: AgentStateDir?
        if let path = options.stateDir {
            do {
                stateDir = try AgentStateDir(path)
            } catch {
                StandardError.write("ksmfleet-agent: cannot use the state directory: \(error)\n")
                return exitFailure
            }
        }
        let engine: NodeEngine
        do {
            engine = try NodeEngine(
                kernel: kernel, logger: logger, unmergeTimeout: .milliseconds(Int64(options.unmergeTimeout * 1000)),
                unmergeReservePercent: options.unmergeReservePercent,
                stateDir: stateDir)
        } catch {
            StandardError.write("ksmfleet-agent: cannot read KSM: \(error)\n")
            return exitFailure
        }
        logger.info(
            "standalone mode started",
            metadata: [
                "config": "\(options.configPath)", "interval_s": "\(format(options.interval))",
                "run": "\(config.run.rawValue)", "mode": "\(config.mode.rawValue)",
                "captured": "\(engine.initialCapture.summary)",
                "captured_from": "\(engine.initialCaptureFile ?? "the kernel at this start")",
                "state_dir": "\(options.stateDir ?? "none (the capture is not kept across restarts)")",
                "restore_on_exit": "\(options.restoreOnExit)",
            ])

        enum Event: Sendable {
            case tune
            case sample
            case signal(Int32)
            case watched(String)
        }
        let (events, continuation) = AsyncStream<Event>.makeStream()
        // Listening before the first step: a prune unmerges in it (later steps find run 2 and
        // write nothing), and a SIGTERM then interrupts that unmerge at once.
        let signalTask = Task {
            for await sig in signals {
                // A step under way may be in an unmerge that lasts minutes: interrupted now.
                if sig != SIGUSR1 { engine.stopApplying() }
                continuation.yield(.signal(sig))
            }
        }

        await engine.setConfig(config, generation: nil)
        await logStatus(engine, logger: logger)
        // Every interval, or every second while the mode feeds back from the kernel (adaptive).
        let tuneTask = Task {
            while !Task.isCancelled {
                let seconds = await engine.tuneInterval(default: options.interval)
                let woken: Bool
                do { woken = try await engine.wakeup.sleep(seconds: seconds) } catch { return }
                // Woken by a kick (which tuned already): only the wait is worked out again.
                if !woken { continuation.yield(.tune) }
            }
        }
        let sampleTask = options.sampleInterval.map { seconds in
            let every = Duration.milliseconds(Int64(seconds * 1000))
            return Task {
                while !Task.isCancelled {
                    do { try await Task.sleep(for: every) } catch { return }
                    continuation.yield(.sample)
                }
            }
        }

        // Repeated or comma-separated, as the connected agent's `--watch`.
        let watchPaths = options.watchPaths.flatMap { $0.split(whereSeparator: { $0 == "," || $0 == ":" }) }
            .map(\.trimmed).filter { !$0.isEmpty }
        let watcher = watchPaths.isEmpty ? nil : DirectoryWatcher(paths: watchPaths)
        if let watcher, !watcher.start() {
            logger.warning("cannot watch directories (inotify unavailable); kicks come from SIGUSR1 only")
        }
        let watchTask = watcher.map { watcher in
            Task {
                for await event in watcher.events { continuation.yield(.watched("\(event.directory)/\(event.name)")) }
            }
        }

        let clock = ContinuousClock()
        var lastStatus = clock.now
        let statusEvery = Duration.milliseconds(Int64(options.interval * 1000) - 50)
        loop: for await event in events {
            switch event {
            case .tune:
                await engine.tune()
                // A status line per interval, not per step of a mode that steps every second.
                if options.sampleInterval == nil && clock.now - lastStatus >= statusEvery {
                    lastStatus = clock.now
                    await logStatus(engine, logger: logger)
                }
            case .sample:
                await logStatus(engine, logger: logger)
            case .signal(let sig) where sig == SIGUSR1:
                await engine.kick(source: "SIGUSR1")
                await logStatus(engine, logger: logger)
            case .watched(let entry):
                await engine.kick(source: "watch:\(entry)")
                await logStatus(engine, logger: logger)
            case .signal(let sig):
                logger.info("stopping", metadata: ["signal": "\(Signals.name(sig))"])
                break loop
            }
        }
        tuneTask.cancel()
        sampleTask?.cancel()
        watcher?.stop()
        watchTask?.cancel()
        continuation.finish()
        // Still listening during the restore: a second SIGTERM cuts its unmerge short.
        defer { signalTask.cancel() }

        if options.restoreOnExit {
            do {
                try await engine.restoreInitial()
            } catch {
                logger.error("could not restore the KSM settings captured at start", metadata: ["error": "\(error)"])
                return exitFailure
            }
        }
        logger.info("stopped")
        return 0
    }

    /// One structured line with the counters, the saving, ksmd CPU and the phase with its reason.
    static func logStatus(_ engine: NodeEngine, logger: Logger) async {
        let snap: EngineSnapshot
        do {
            snap = try await engine.snapshot()
        } catch {
            logger.error("cannot read KSM status", metadata: ["error": "\(error)"])
            return
        }
        let s = snap.status
        let thresCoef = await engine.config?.thresCoef ?? KSMConfig().thresCoef
        var metadata: Logger.Metadata = [
            "phase": "\(snap.phase.rawValue)",
            "reason": "\(snap.phaseReason)",
            "run": "\(s.run)",
            "pages_to_scan": "\(s.pagesToScan)",
            "sleep_millisecs": "\(s.sleepMillisecs)",
            "pages_shared": "\(s.pagesShared)",
            "pages_sharing": "\(s.pagesSharing)",
            "pages_unshared": "\(s.pagesUnshared)",
            "pages_volatile": "\(s.pagesVolatile)",
            "full_scans": "\(s.fullScans)",
            "saved_mib": "\(Display.number(Double(snap.savedBytes) / 1_048_576))",
            // As the reason beside it writes it (`Percent.format`): 19.97 against a 20 % threshold
            // is 19.97, not 20.
            "mem_available_pct": "\(Percent.format(snap.memory.availablePercent, against: thresCoef))",
            "ksmd_cpu_pct": "\(snap.ksmdCPUPercent.map { Display.number($0) } ?? "-")",
        ]
        if let z = s.ksmZeroPages { metadata["ksm_zero_pages"] = "\(z)" }
        if let p = s.generalProfit { metadata["general_profit_mib"] = "\(Display.number(Double(p) / 1_048_576))" }
        if let e = snap.applyError { metadata["apply_error"] = "\(e)" }
        logger.info("status", metadata: metadata)
    }

    /// One decimal at most: 12, 12.5 (the interval; figures are `Display.number`'s, never a bare
    /// 0 for a value that is not zero).
    static func format(_ v: Double) -> String {
        guard v.isFinite else { return "\(v)" }
        let r = (v * 10).rounded() / 10
        return r == r.rounded() ? "\(Int(r))" : "\(r)"
    }
}
