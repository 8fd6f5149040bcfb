import FleetClient

/// Why the agent cannot go on.
public enum AgentError: Error, Sendable, CustomStringConvertible {
    /// No node identity and no enrollment token, or the node token was refused without one.
    case notEnrolled(String)
    /// The state directory or the spool cannot be used.
    case state(AgentFileError)
    /// KSM cannot be read on this host.
    case kernel(String)
    /// `--once`: a call to the server failed.
    case server(ClientError)
    case invalidOptions(String)
    /// The server keeps this host's registration pending (the machine id belongs to another
    /// node, or to a deleted one) or an admin rejected it: wait `retryAfter` seconds, then ask again.
    case pending(String, retryAfter: Double)

    public var description: String {
        switch self {
        case .notEnrolled(let s): return s
        case .state(let e): return "state directory: \(e)"
        case .kernel(let s): return "KSM: \(s)"
        case .server(let e): return "\(e)"
        case .invalidOptions(let s): return s
        case .pending(let s, _): return s
        }
    }
}
