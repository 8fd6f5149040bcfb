import ArgumentParser
import FleetAgent
import FleetLog
import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// `ksmfleet-agent run` (the default): register with the server, long-poll the config, apply it,
/// tune, sample and push; spool samples on disk while the server is away.
struct ConnectedCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Tune KSM on this host under a ksmfleet server (the default command).",
        discussion: """
            Settings come from flags, then the environment (KSMFLEET_SERVER, KSMFLEET_ENROLL_TOKEN, \
            KSMFLEET_ENROLL_TOKEN_FILE, KSMFLEET_CA_FILE, KSMFLEET_STATE_DIR, KSMFLEET_SAMPLE_INTERVAL, \
            KSMFLEET_TUNE_INTERVAL, KSMFLEET_WATCH, KSMFLEET_RESTORE_ON_EXIT, …), then the config file \
            (key=value lines, the same names). Several servers (replicas of one fleet): repeat \
            --server or the server= key, or give a comma-separated list; the first of flags, \
            environment and file that names any server gives the whole list. SIGUSR1 is a kick; \
            SIGTERM/SIGINT stop cleanly. \
            Exit status: 0 stopped cleanly, 1 failure, 2 invalid settings, 3 not enrolled (no \
            enrollment token and no valid node token).
            """)

    @Option(
        name: .long,
        help: ArgumentHelp(
            "A server URL (http:// or https://); repeat it or give a comma-separated list for replicas of one fleet.",
            discussion: "It stays on the server that answers; fails over on connection errors, timeouts and 5xx."))
    var server: [String] = []

    @Option(name: .customLong("enroll-token"), help: "Enrollment token for the first registration (prefer --enroll-token-file).")
    var enrollToken: String?

    @Option(name: .customLong("enroll-token-file"), help: "A file holding the enrollment token.")
    var enrollTokenFile: String?

    @Option(name: .customLong("ca-file"), help: "A PEM CA bundle for a server certificate from a private CA.")
    var caFile: String?

    @Option(name: .customLong("state-dir"), help: "Where node id, token, last good config and spool live (default /var/lib/ksmfleet-agent).")
    var stateDir: String?

    @Option(name: .customLong("sample-interval"), help: "Seconds between status samples (default 10).")
    var sampleInterval: String?

    @Option(name: .customLong("tune-interval"), help: "Seconds between tuning steps (default 60).")
    var tuneInterval: String?

    @Option(name: .customLong("watch"), help: "A directory whose new entries are kicks (repeatable), e.g. /run/libvirt/qemu.")
    var watch: [String] = []

    @OptionGroup var process: ProcessFlags

    @Option(
        name: .customLong("process-interval"),
        help: "Seconds between scans of /proc/PID/ksm_stat for who benefits (default 60; 0 = off).")
    var processInterval: String?

    @Flag(name: .customLong("once"), help: "One register/apply/sample/push cycle, then exit (0 on success).")
    var once = false

    @Option(name: .customLong("unmerge-timeout"), help: "Longest wait, in seconds, for the unmerge before a merge_across_nodes or max_page_sharing change; past it the unmerge is interrupted and run put back (default 60).")
    var unmergeTimeout: String?

    @Option(
        name: .customLong("unmerge-reserve"),
        help: "The share of MemTotal, in % (0-90), that must stay available after an unmerge (run=2, which gives every merged page its copy back); the agent does not start one that would leave less (default 10; with 0 it must still fit in MemAvailable).")
    var unmergeReserve: String?

    @Option(name: .long, help: "The KSM sysfs directory (default /sys/kernel/mm/ksm; tests use a fake one).")
    var sysfs: String?

    @Option(name: .long, help: ArgumentHelp("The procfs directory.", visibility: .hidden))
    var proc: String = "/proc"

    /// Hosts cloned with one /etc/machine-id (docs/identity.md); tests of replicas run several
    /// real agent processes on one host, each with a machine id of its own.
    @Option(
        name: .customLong("machine-id"),
        help: "The machine id to register with (default: /etc/machine-id), for hosts cloned with the same one.")
    var machineId: String?

    @Option(name: .customLong("node-name"), help: "The name to register with (default: the host name).")
    var nodeName: String?

    @Option(name: .customLong("config-file"), help: "A key=value settings file, e.g. /etc/ksmfleet/agent.conf.")
    var configFile: String?

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical (default info).")
    var logLevel: String?

    func flags() -> [String: [String]] {
        var f: [String: [String]] = [:]
        func put(_ name: String, _ value: String?) { if let value { f[name] = [value] } }
        if !server.isEmpty { f["server"] = server }
        put("enroll-token", enrollToken)
        put("enroll-token-file", enrollTokenFile)
        put("ca-file", caFile)
        put("state-dir", stateDir)
        put("sample-interval", sampleInterval)
        put("tune-interval", tuneInterval)
        put("unmerge-timeout", unmergeTimeout)
        put("unmerge-reserve", unmergeReserve)
        put("process-interval", processInterval)
        put("sysfs", sysfs)
        put("node-name", nodeName)
        put("machine-id", machineId)
        put("log-level", logLevel)
        if !watch.isEmpty { f["watch"] = watch }
        if process.restoreOnExit { f["restore-on-exit"] = ["true"] }
        return f
    }

    func run() async throws {
        var options: AgentOptions
        do {
            options = try AgentOptions.resolve(
                flags: flags(), environment: processEnvironment(), configFile: configFile)
        } catch {
            StandardError.write("ksmfleet-agent: \(error)\n")
            throw ExitCode(AgentCLI.invalidSettings)
        }
        let level = options.logLevel
        LoggingSystem.bootstrap { label in StderrLogHandler(label: label, level: level) }
        let logger = Logger(label: "ksmfleet-agent")
        options.once = once
        options.procRoot = proc
        let code = await ConnectedAgent.run(options, logger: logger)
        if code != 0 { throw ExitCode(code) }
    }
}

/// The environment as a dictionary, without Foundation.
func processEnvironment() -> [String: String] {
    var out: [String: String] = [:]
    var p = environ
    while let entry = p.pointee {
        let s = String(cString: entry)
        if let eq = s.firstIndex(of: "=") { out[String(s[..<eq])] = String(s[s.index(after: eq)...]) }
        p += 1
    }
    return out
}
