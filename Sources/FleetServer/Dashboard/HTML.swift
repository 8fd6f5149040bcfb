import FleetAPI
import Foundation
import KSMCore

/// Formatting of figures for the dashboard's pages (bytes, percent, times), and escaping and
/// percent-encoding for the few places that build markup or URLs in code (the SVG `Charts`, links).
/// Page markup is in the Mustache templates, which escape every value themselves.
enum HTML {
    /// Escapes text for element content and quoted attribute values.
    static func esc(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for c in s.unicodeScalars {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }

    /// Percent-encodes a query value.
    static func q(_ s: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return s.addingPercentEncoding(withAllowedCharacters: allowed) ?? ""
    }

    // Figures are written as everywhere else (`Display`, docs/numbers.md): three significant
    // digits, never a bare 0 for a value that is not zero. "—" where there is no value.

    static func bytes(_ v: Double?) -> String { v.map(Display.bytes) ?? "—" }

    static func bytes(_ v: Int64?) -> String { bytes(v.map(Double.init)) }

    static func percent(_ v: Double?) -> String { v.map(Display.percent) ?? "—" }

    static func num(_ v: Double?) -> String { v.map { Display.number($0) } ?? "—" }

    /// A coverage fraction 0…1 as "99.97 %", never rounded up to 100 %.
    static func fraction(_ v: Double?) -> String { v.map(Display.fraction) ?? "—" }

    static func int(_ v: Int64?) -> String {
        guard let v else { return "—" }
        // Thousands separated by thin spaces for readability.
        let s = String(abs(v))
        var out = ""
        for (i, c) in s.enumerated() {
            if i > 0 && (s.count - i) % 3 == 0 { out += "\u{2009}" }
            out.append(c)
        }
        return (v < 0 ? "-" : "") + out
    }

    static func time(_ d: Date?) -> String {
        guard let d else { return "never" }
        let s = ReportTime.iso(d.timeIntervalSince1970)
        return String(s.prefix(16)).replacingOccurrences(of: "T", with: " ") + " UTC"
    }

    /// "3 min ago", "2 h ago", for last-seen times.
    /// A node's "last seen" cell: how long ago while it reports; "last reported …" when it
    /// stopped; for a node that never reported, its registration (the last news from it).
    static func lastSeen(_ n: NodeInfo, now: Date) -> String {
        switch n.connection {
        case .online: return ago(n.lastSeenAt, now: now)
        case .never: return n.lastSeenAt.map { "registered " + ago($0, now: now) } ?? "never"
        case .agentStopped, .offline: return "last reported " + ago(n.lastSeenAt, now: now)
        }
    }

    static func ago(_ d: Date?, now: Date) -> String {
        guard let d else { return "never" }
        let s = max(0, now.timeIntervalSince(d))
        if s < 90 { return "\(Int(s)) s ago" }
        if s < 5400 { return "\(Int(s / 60)) min ago" }
        if s < 172_800 { return "\(Int(s / 3600)) h ago" }
        return "\(Int(s / 86400)) d ago"
    }
}
