import FleetAPI
import KSMCore

/// A status badge (`badge.mustache`).
struct Badge: Sendable, Equatable {
    var text: String
    /// One of ok, muted, warn, bad, info (a CSS class).
    var kind: String

    static func phase(_ p: KSMPhase?) -> Badge {
        guard let p else { return Badge(text: "unknown", kind: "muted") }
        switch p {
        case .running: return Badge(text: p.rawValue, kind: "ok")
        case .stopped: return Badge(text: p.rawValue, kind: "muted")
        case .pruned: return Badge(text: p.rawValue, kind: "warn")
        case .unmanaged: return Badge(text: p.rawValue, kind: "info")
        }
    }

    static func online(_ online: Bool) -> Badge {
        online ? Badge(text: "online", kind: "ok") : Badge(text: "offline", kind: "bad")
    }

    /// "drift" (bad when the agent reported an apply error) or "in sync".
    static func drift(_ n: NodeInfo) -> Badge {
        n.drift ? Badge(text: "drift", kind: n.applyError != nil ? "bad" : "warn") : Badge(text: "in sync", kind: "ok")
    }
}
