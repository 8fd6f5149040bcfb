import FleetAPI
import Foundation
import KSMCore

/// A table for people: columns aligned, numbers right-aligned.
struct Table {
    enum Align { case left, right }
    var headers: [String]
    var align: [Align]
    var rows: [[String]] = []

    init(_ columns: [(String, Align)]) {
        headers = columns.map(\.0)
        align = columns.map(\.1)
    }

    init(_ headers: String...) {
        self.headers = headers
        align = headers.map { _ in .left }
    }

    mutating func add(_ row: [String]) { rows.append(row) }

    func render() -> String {
        var widths = headers.map(\.count)
        for row in rows {
            for (i, cell) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], cell.count) }
        }
        func line(_ cells: [String]) -> String {
            var parts: [String] = []
            for (i, cell) in cells.enumerated() where i < widths.count {
                let pad = String(repeating: " ", count: widths[i] - cell.count)
                let last = i == cells.count - 1
                switch align[i] {
                case .left: parts.append(last ? cell : cell + pad)
                case .right: parts.append(pad + cell)
                }
            }
            return parts.joined(separator: "  ")
        }
        return ([line(headers)] + rows.map(line)).joined(separator: "\n")
    }
}

/// `key: value` lines with the values aligned.
struct KeyValues {
    var pairs: [(String, String)] = []
    mutating func add(_ key: String, _ value: String) { pairs.append((key, value)) }
    func render(indent: String = "") -> String {
        let width = pairs.map(\.0.count).max() ?? 0
        return pairs.map { k, v in
            indent + k + ":" + String(repeating: " ", count: width - k.count + 1) + v
        }.joined(separator: "\n")
    }
}

enum Fmt {
    /// Bytes as everywhere else (`Display.bytes`: three significant digits, binary units).
    static func bytes(_ n: Int64) -> String { Display.bytes(n) }
    static func bytes(_ n: Double?) -> String { n.map(Display.bytes) ?? "-" }

    static func percent(_ p: Double?) -> String { p.map(Display.percent) ?? "-" }

    static func number(_ v: Double?) -> String { v.map { Display.number($0) } ?? "-" }

    /// A node's connection in words: "online", "agent stopped, last reported 5m ago", …
    static func connection(_ n: NodeInfo, now: Date = Date()) -> String {
        n.connection.describe(lastSeenAgo: n.lastSeenAt.map { duration(Int(now.timeIntervalSince($0))) })
    }

    /// The phase, marked when it is only what a node that is not reporting said last.
    static func phaseShown(_ n: NodeInfo) -> String {
        let p = phase(n)
        return n.online || n.phase == nil ? p : "\(p) (last reported)"
    }

    /// MemAvailable in % as the tuner's reason writes it (same rounding, same digits near the threshold).
    static func memAvailable(_ m: MemorySnapshot, thresCoef: Int) -> String {
        m.memTotalKB > 0 ? Display.memAvailable(m, thresCoef: thresCoef) : "-"
    }

    static func date(_ d: Date?) -> String {
        guard let d else { return "-" }
        return isoSeconds(d)
    }

    static func isoSeconds(_ d: Date) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime]
        return f.string(from: d)
    }

    /// "2026-11-23T12:00:00Z (5m ago)".
    static func dateAgo(_ d: Date?, now: Date = Date()) -> String {
        guard let d else { return "never" }
        return "\(isoSeconds(d)) (\(ago(d, now: now)))"
    }

    static func ago(_ d: Date, now: Date = Date()) -> String {
        let s = Int(now.timeIntervalSince(d))
        if s < 0 { return "in \(duration(-s))" }
        return "\(duration(s)) ago"
    }

    static func duration(_ s: Int) -> String {
        if s < 60 { return "\(s)s" }
        if s < 3600 { return "\(s / 60)m" }
        if s < 86400 { return "\(s / 3600)h\(s % 3600 / 60 > 0 ? "\(s % 3600 / 60)m" : "")" }
        return "\(s / 86400)d\(s % 86400 / 3600 > 0 ? "\(s % 86400 / 3600)h" : "")"
    }

    static func labels(_ l: [String: String]) -> String {
        l.isEmpty ? "-" : l.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
    }

    static func opt<T>(_ v: T?) -> String { v.map { "\($0)" } ?? "-" }

    static func phase(_ node: NodeInfo) -> String { node.phase?.rawValue ?? "unknown" }

    /// "Stopped: MemAvailable 81 % is above the 20 % threshold".
    static func phaseWhy(_ node: NodeInfo) -> String {
        guard let phase = node.phase else { return "no status reported yet" }
        guard let reason = node.phaseReason, !reason.isEmpty else { return phase.rawValue }
        return reason.hasPrefix(phase.rawValue) ? reason : "\(phase.rawValue): \(reason)"
    }

    /// The config as lines for `config get` / `nodes show`.
    static func config(_ c: NodeConfig) -> KeyValues {
        var kv = KeyValues()
        let k = c.config
        kv.add("generation", "\(c.generation)")
        kv.add("run", k.run.rawValue)
        kv.add("mode", k.mode.rawValue)
        kv.add("thresCoef", "\(k.thresCoef) %")
        kv.add("mergeAcrossNodes", k.mergeAcrossNodes.map { "\($0)" } ?? "unset (kernel's value)")
        if k.mode == .throttle {
            let t = k.effectiveThrottle
            kv.add(
                "throttle",
                "aggressive 1/\(t.aggressiveDivisor) @\(t.aggressiveSleepMsec)ms, standard 1/\(t.standardDivisor) @\(t.standardSleepMsec)ms, slow 1/\(t.slowDivisor) @\(t.slowSleepMsec)ms; after \(t.toStandardSeconds)s/\(t.toSlowSeconds)s/\(t.toInitialSeconds)s"
                    + (k.throttle == nil ? " (defaults)" : ""))
            kv.add("kickCounter", "\(c.kickCounter)")
        } else if k.mode == .adaptive {
            kv.add("adaptive", "full speed while passes merge, near idle when they stop; kicks and new memory wake it")
            kv.add("kickCounter", "\(c.kickCounter)")
        } else if k.mode == .advisor {
            let a = k.effectiveAdvisor
            kv.add(
                "advisor",
                "target scan time \(a.targetScanTimeSeconds) s, max CPU \(a.maxCpuPercent) %, pages_to_scan \(a.minPagesToScan)–\(a.maxPagesToScan)"
                    + (k.advisor == nil ? " (defaults)" : ""))
        } else {
            let p = k.effectiveParameters
            kv.add(
                "parameters",
                "boost \(p.boost), decay \(p.decay), minPages \(p.minPages), maxPages \(p.maxPages), sleepMsec \(p.sleepMsec)"
            )
        }
        if let v = k.maxPageSharing { kv.add("maxPageSharing", "\(v)") }
        if let v = k.useZeroPages { kv.add("useZeroPages", "\(v)") }
        if let v = k.smartScan { kv.add("smartScan", "\(v)") }
        if let v = k.maxCpuPercent { kv.add("maxCpuPercent", "\(Display.number(v)) % of one core") }
        return kv
    }
}

/// Writes JSON for scripts: sorted keys, ISO 8601 dates, pretty.
func printJSON<T: Encodable>(_ value: T) throws {
    let data = try StrictJSON.encoder(pretty: true).encode(value)
    print(String(decoding: data, as: UTF8.self))
}
