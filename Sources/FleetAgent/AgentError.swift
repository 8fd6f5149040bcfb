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

    public var description: String {
        switch self {
        case .notEnrolled(let s): return s
        case .state(let e): return "state directory: \(e)"
        case .kernel(let s): return "KSM: \(s)"
        case .server(let e): return "\(e)"
        case .invalidOptions(let s): return s
        }
    }
}
