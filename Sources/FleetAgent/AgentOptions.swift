#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import FleetClient
import KSMCore
import KSMNode
import Logging

/// Everything the server-connected agent needs to run. Built from flags, environment and a
/// key=value file by `AgentOptions.resolve`, or directly by tests.
public struct AgentOptions: Sendable {
    /// The servers, in order of preference: replicas of one fleet (or one URL, say a load
    /// balancer in front of them). The agent stays on the one that answers and fails over to the
    /// next (`ServerRotation`). Never empty.
    public var serverURLs: [String]
    /// The first server; setting it makes it the only one.
    public var serverURL: String {
        get { serverURLs[0] }
        set { serverURLs = [newValue] }
    }
    /// Enrollment token for the first registration (and re-registration after a revoked token).
    public var enrollToken: String?
    public var caFile: String?
    public var stateDir: String = "/var/lib/ksmfleet-agent"
    /// Seconds between status samples.
    public var sampleInterval: Double = 10
    /// Seconds between tuning steps.
    public var tuneInterval: Double = 60
    /// Directories whose new entries are kicks (inotify IN_CREATE / IN_MOVED_TO).
    public var watchPaths: [String] = []
    public var restoreOnExit = false
    public var once = false
    /// Seconds to wait for pages to unmerge when merge_across_nodes/max_page_sharing change;
    /// past it the unmerge is interrupted and run put back (prune has no limit).
    public var unmergeTimeout: Double = 60
    /// The share of MemTotal (in %, 0–90) that must stay available after an unmerge (run=2):
    /// unmerging gives every merged page its copy back, so the agent does not start one that
    /// would leave less (`UnmergeGuard`).
    public var unmergeReservePercent: Double = UnmergeGuard.defaultReservePercent
    public var sysfsRoot: String = "/sys/kernel/mm/ksm"
    public var procRoot: String = "/proc"
    /// Seconds between scans of /proc for per-process KSM figures (sent with the sample that
    /// follows); 0 turns them off.
    public var processInterval: Double = 60
    /// Reported name (default: the host name).
    public var nodeName: String?
    /// Machine id override (default: /etc/machine-id): hosts cloned with the same
    /// /etc/machine-id (docs/identity.md); tests run several agents on one host.
    public var machineId: String?
    /// The log level (`trace` … `critical`).
    public var logLevel: Logger.Level = .info

    // Tuning of the loops (tests shorten these).
    /// Long-poll wait, a random value in this range per request (jitter).
    public var longPollWait: ClosedRange<Int> = 30...55
    public var backoffBase: Double = 1
    public var backoffCap: Double = 60
    public var connectTimeout: Double = 5
    public var requestTimeout: Double = 30
    /// Samples per push (the server accepts up to `SampleBatch.maxSamples`).
    public var batchSize = 500
    public var spoolLimits = SampleSpool.Limits()

    public init(serverURL: String, enrollToken: String? = nil, stateDir: String = "/var/lib/ksmfleet-agent") {
        self.init(serverURLs: [serverURL], enrollToken: enrollToken, stateDir: stateDir)
    }

    /// `serverURLs` must not be empty.
    public init(serverURLs: [String], enrollToken: String? = nil, stateDir: String = "/var/lib/ksmfleet-agent") {
        precondition(!serverURLs.isEmpty, "AgentOptions needs at least one server URL")
        self.serverURLs = serverURLs
        self.enrollToken = enrollToken
        self.stateDir = stateDir
    }
}

/// A setting the agent cannot run with, naming where it came from.
public struct AgentOptionsError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

extension AgentOptions {
    /// Settings by name, as flags, environment and file give them. Names are the long flag
    /// names (`server`, `enroll-token`, …); the environment uses `KSMFLEET_` + upper case with
    /// underscores (`KSMFLEET_ENROLL_TOKEN`), and the file accepts either spelling.
    public static let settingNames: [String] = [
        "server", "enroll-token", "enroll-token-file", "ca-file", "state-dir", "sample-interval",
        "tune-interval", "watch", "restore-on-exit", "unmerge-timeout", "unmerge-reserve", "sysfs", "node-name", "spool-max-samples",
        "spool-max-bytes", "process-interval", "log-level", "machine-id",
    ]

    public static func envName(_ setting: String) -> String {
        "KSMFLEET_" + setting.uppercased().replacing("-", with: "_")
    }

    /// Parses a config file of `key=value` lines (`#` comments, blank lines, optional quotes,
    /// an optional `export `). Keys are setting names or their `KSMFLEET_*` spelling, so the
    /// same file can serve as a systemd EnvironmentFile.
    public static func parseConfigFile(_ text: String, path: String) throws(AgentOptionsError) -> [String: [String]] {
        var out: [String: [String]] = [:]
        for (i, raw) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
            var line = raw.trimmed
            if line.isEmpty || line.hasPrefix("#") { continue }
            if line.hasPrefix("export ") { line = String(line.dropFirst(7)).trimmed }
            guard let eq = line.firstIndex(of: "=") else {
                throw AgentOptionsError("\(path):\(i + 1): expected key=value, found '\(line)'")
            }
            let key = line[..<eq].trimmed
            var value = line[line.index(after: eq)...].trimmed
            if value.count >= 2, let f = value.first, f == "\"" || f == "'", value.last == f {
                value = String(value.dropFirst().dropLast())
            }
            guard let name = settingNames.first(where: { $0 == key || envName($0) == key }) else {
                throw AgentOptionsError(
                    "\(path):\(i + 1): unknown setting '\(key)'; known: \(settingNames.joined(separator: ", "))")
            }
            out[name, default: []].append(value)
        }
        return out
    }

    /// Resolves the settings: flags first, then the environment, then the config file, then defaults.
    /// `flags` holds only settings given on the command line (`watch` may repeat).
    public static func resolve(
        flags: [String: [String]], environment: [String: String], configFile: String?
    ) throws(AgentOptionsError) -> AgentOptions {
        var file: [String: [String]] = [:]
        let filePath = flags["config-file"]?.last ?? configFile ?? environment["KSMFLEET_CONFIG_FILE"]
        if let filePath {
            let text: String?
            do { text = try StateFiles.readText(filePath) } catch { throw AgentOptionsError("\(error)") }
            guard let text else { throw AgentOptionsError("\(filePath): no such config file") }
            file = try parseConfigFile(text, path: filePath)
        }
        func values(_ name: String) -> [String]? {
            if let v = flags[name], !v.isEmpty { return v }
            if let v = environment[envName(name)] { return [v] }
            return file[name]
        }
        func value(_ name: String) -> String? { values(name)?.last }
        func number(_ name: String, _ current: Double) throws(AgentOptionsError) -> Double {
            guard let text = value(name) else { return current }
            guard let v = Double(text), v > 0, v.isFinite else {
                throw AgentOptionsError("\(name) must be a number of seconds greater than 0, not '\(text)'")
            }
            return v
        }
        func integer(_ name: String, _ current: Int) throws(AgentOptionsError) -> Int {
            guard let text = value(name) else { return current }
            guard let v = Int(text), v > 0 else { throw AgentOptionsError("\(name) must be a positive integer, not '\(text)'") }
            return v
        }
        func bool(_ name: String, default absent: Bool = false) throws(AgentOptionsError) -> Bool {
            guard let text = value(name)?.lowercased() else { return absent }
            switch text {
            case "", "1", "true", "yes", "on": return true
            case "0", "false", "no", "off": return false
            default: throw AgentOptionsError("\(name) must be true or false, not '\(text)'")
            }
        }

        var o = AgentOptions(serverURLs: try serverList(values("server") ?? []))
        // The token and its file are one setting: the first source (flags, environment, file)
        // naming either gives it, so `--enroll-token-file` on the command line wins over an
        // `enroll-token=` left in the file. Within one source the token itself goes first.
        var token: String?
        let sources: [(String) -> String?] = [{ flags[$0]?.last }, { environment[envName($0)] }, { file[$0]?.last }]
        for source in sources {
            if let t = source("enroll-token"), !t.isEmpty {
                token = t
                break
            }
            if let tokenFile = source("enroll-token-file"), !tokenFile.isEmpty {
                let text: String?
                do { text = try StateFiles.readText(tokenFile) } catch { throw AgentOptionsError("enrollment token file \(error)") }
                guard let text, !text.trimmed.isEmpty else {
                    throw AgentOptionsError("enrollment token file \(tokenFile) is missing or empty")
                }
                token = text.trimmed
                break
            }
        }
        o.enrollToken = token
        o.caFile = value("ca-file").flatMap { $0.isEmpty ? nil : $0 }
        if let dir = value("state-dir"), !dir.isEmpty { o.stateDir = dir }
        o.sampleInterval = try number("sample-interval", o.sampleInterval)
        o.tuneInterval = try number("tune-interval", o.tuneInterval)
        o.unmergeTimeout = try number("unmerge-timeout", o.unmergeTimeout)
        if let text = value("unmerge-reserve") {
            o.unmergeReservePercent = try unmergeReserve(text)
        }
        if let text = value("process-interval") {
            guard let v = Double(text), v >= 0, v.isFinite else {
                throw AgentOptionsError("process-interval must be a number of seconds (0 turns process reports off), not '\(text)'")
            }
            o.processInterval = v
        }
        o.watchPaths = (values("watch") ?? []).flatMap { $0.split(whereSeparator: { $0 == "," || $0 == ":" }) }
            .map(\.trimmed).filter { !$0.isEmpty }
        o.restoreOnExit = try bool("restore-on-exit")
        if let sysfs = value("sysfs"), !sysfs.isEmpty { o.sysfsRoot = sysfs }
        o.nodeName = value("node-name").flatMap { $0.isEmpty ? nil : $0 }
        o.machineId = value("machine-id").flatMap { $0.isEmpty ? nil : $0 }
        if let text = value("log-level") {
            guard let level = Logger.Level(rawValue: text.lowercased()) else {
                throw AgentOptionsError("log-level must be one of trace, debug, info, notice, warning, error, critical, not '\(text)'")
            }
            o.logLevel = level
        }
        o.spoolLimits = SampleSpool.Limits(
            maxSamples: try integer("spool-max-samples", o.spoolLimits.maxSamples),
            maxBytes: try integer("spool-max-bytes", o.spoolLimits.maxBytes))
        if let ca = o.caFile, !StateFiles.exists(ca) { throw AgentOptionsError("CA file \(ca) does not exist") }
        return o
    }

    /// `--unmerge-reserve`: a percentage of MemTotal from 0 to 90.
    public static func unmergeReserve(_ text: String) throws(AgentOptionsError) -> Double {
        let t = text.hasSuffix("%") ? String(text.dropLast()).trimmed : text.trimmed
        guard let v = Double(t), v.isFinite, v >= 0, v <= 90 else {
            throw AgentOptionsError(
                "unmerge-reserve must be a percentage of MemTotal from 0 to 90 (0: no reserve; the unmerge must still fit in MemAvailable), not '\(text)'")
        }
        return v
    }

    /// The servers from the values of one source (the flag repeated, the file's key repeated, or
    /// the environment variable): each value may be a comma-separated list. Every entry must be
    /// an http(s) URL, and none may be listed twice.
    public static func serverList(_ values: [String]) throws(AgentOptionsError) -> [String] {
        let urls = values.flatMap { $0.split(separator: ",") }.map(\.trimmed).filter { !$0.isEmpty }
        guard !urls.isEmpty else {
            throw AgentOptionsError(
                "no server URL: give --server, KSMFLEET_SERVER or server= in the config file (or use `standalone`)")
        }
        var seen: [String: String] = [:]
        for url in urls {
            do { _ = try FleetClient.checkedBase(url) } catch {
                throw AgentOptionsError("server: \(error)")
            }
            let base = FleetClient.comparableBase(url) ?? url
            if let earlier = seen[base] {
                throw AgentOptionsError("server: '\(url)' is listed twice (as '\(earlier)')")
            }
            seen[base] = url
        }
        return urls
    }
}
