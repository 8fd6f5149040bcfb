import ArgumentParser
import FleetAgent
import FleetLog
import Logging

/// `ksmfleet-agent standalone --config FILE`: the tuning loop from a local config file, no server.
struct StandaloneCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "standalone",
        abstract: "Tune KSM on this host from a local JSON config file, with no server.",
        discussion: """
            Every interval one tuning step runs and a status line (counters, saved MiB, ksmd CPU %, \
            phase and reason) is logged to stderr. SIGUSR1 retunes at once (a kick in throttle mode); \
            SIGTERM or SIGINT stop cleanly. An invalid config file is refused before anything is written.
            """)

    @Option(
        name: .long, help: "The JSON config file: the shape of a node config, without generation.")
    var config: String

    @Option(
        name: [.customLong("interval"), .customLong("tune-interval")],
        help: "Seconds between tuning steps (--tune-interval, as `run` names it, is the same).")
    var interval: Double = 60

    @Option(name: .customLong("sample-interval"), help: "Seconds between status lines (default: one per tuning step).")
    var sampleInterval: Double?

    @OptionGroup var process: ProcessFlags

    @Option(
        name: .customLong("unmerge-timeout"),
        help: "Longest wait, in seconds, for the unmerge before a merge_across_nodes or max_page_sharing change; past it the unmerge is interrupted and run put back (default 60).")
    var unmergeTimeout: Double = 60

    @Option(
        name: .customLong("unmerge-reserve"),
        help: "The share of MemTotal, in % (0-90), that must stay available after an unmerge (run=2); the agent does not start one that would leave less (default 10; with 0 it must still fit in MemAvailable).")
    var unmergeReserve: String = "10"

    @Option(
        name: .customLong("watch"),
        help: "A directory whose new entries are kicks in throttle mode (repeatable, or a comma-separated list), e.g. /run/libvirt/qemu, /run/vc/sbs.")
    var watch: [String] = []

    @Option(name: .long, help: "The KSM sysfs directory.")
    var sysfs: String = "/sys/kernel/mm/ksm"

    @Option(
        name: .customLong("state-dir"),
        help: ArgumentHelp(
            "A directory (0700) where the KSM settings found before the first write are kept across restarts (initial-settings.json): the throttle's idle level and --restore-on-exit put those back. Without it, each start captures the kernel's settings, which after a restart may be the agent's own."
        ))
    var stateDir: String?

    @Option(name: .long, help: ArgumentHelp("The procfs directory.", visibility: .hidden))
    var proc: String = "/proc"

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: String = "info"

    func validate() throws {
        guard interval > 0 else { throw ValidationError("--interval must be greater than 0") }
        if let s = sampleInterval, s <= 0 { throw ValidationError("--sample-interval must be greater than 0") }
        guard unmergeTimeout > 0 else { throw ValidationError("--unmerge-timeout must be greater than 0") }
        do { _ = try AgentOptions.unmergeReserve(unmergeReserve) } catch { throw ValidationError("--\(error)") }
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical")
        }
    }

    func run() async throws {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in StderrLogHandler(label: label, level: level) }
        let options = StandaloneOptions(
            configPath: config, interval: interval, sampleInterval: sampleInterval, restoreOnExit: process.restoreOnExit,
            unmergeTimeout: unmergeTimeout,
            unmergeReservePercent: (try? AgentOptions.unmergeReserve(unmergeReserve)) ?? 10,
            sysfsRoot: sysfs, procRoot: proc, stateDir: stateDir, watchPaths: watch)
        let code = await Standalone.run(options, logger: Logger(label: "ksmfleet-agent"))
        if code != 0 { throw ExitCode(code) }
    }
}
