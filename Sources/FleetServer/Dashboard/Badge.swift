import FleetAPI
import KSMCore
import Mustache

/// A status badge (`badge.mustache`).
struct Badge: Sendable, Equatable {
    var text: String
    /// One of ok, muted, warn, bad, info (a CSS class).
    var kind: String

    /// The phase; for a node that is not reporting, the phase it reported last, muted and marked
    /// as such (never a live green badge).
    static func phase(_ p: KSMPhase?, live: Bool = true) -> Badge {
        guard let p else { return Badge(text: "unknown", kind: "muted") }
        if !live { return Badge(text: "\(p.rawValue) (last reported)", kind: "muted") }
        switch p {
        case .running: return Badge(text: p.rawValue, kind: "ok")
        case .stopped: return Badge(text: p.rawValue, kind: "muted")
        case .pruned: return Badge(text: p.rawValue, kind: "warn")
        case .unmanaged: return Badge(text: p.rawValue, kind: "info")
        }
    }

    /// online, agent stopped (a clean stop), offline (silent), never reported.
    static func connection(_ c: NodeConnection) -> Badge {
        switch c {
        case .online: return Badge(text: "online", kind: "ok")
        case .agentStopped: return Badge(text: "agent stopped", kind: "warn")
        case .offline: return Badge(text: "offline", kind: "bad")
        case .never: return Badge(text: "never reported", kind: "muted")
        }
    }

    /// "drift" (bad when the agent reported an apply error) or "in sync".
    static func drift(_ n: NodeInfo) -> Badge {
        n.drift ? Badge(text: "drift", kind: n.applyError != nil ? "bad" : "warn") : Badge(text: "in sync", kind: "ok")
    }
}

/// By name, not by `Mirror` (a badge is rendered three times a row of the nodes table).
extension Badge: MustacheParent {
    func child(named name: String) -> Any? {
        switch name {
        case "text": return text
        case "kind": return kind
        default: return nil
        }
    }
}
