import FleetClient

/// Which of the configured servers (replicas of one fleet) the agent talks to, and what to do
/// after a failed call: a pure policy, no I/O and no clock. `AgentRegistration` owns one; the
/// long-poll, the pushes and registration all use its current server.
///
/// - Sticky: the agent stays on the server that answers, whatever its place in the list.
/// - A call that failed in a way another replica may not (`failsOver`: no connection, a timeout,
///   a 5xx) moves to the next server in the list, to be tried at once.
/// - When every server has failed one after another since the last answer (a full round), the
///   caller backs off (its `Backoff`) before trying the next one; a new round starts then.
/// - A failure on a server the agent has left already (a long-poll and a push were in flight on
///   the same dead server) moves nothing: the current server is tried at once.
///
/// With one server this is the behaviour of a single URL: every failure backs off.
public struct ServerRotation: Sendable, Equatable {
    public let servers: [String]
    public private(set) var index = 0
    /// Servers that failed one after another since the last answer, in this round.
    public private(set) var failedInRound = 0

    /// What to do after a failure.
    public enum Step: Sendable, Equatable {
        /// Moved on to this server: try it at once.
        case switchTo(String)
        /// Every server failed in turn: wait (back off), then try this server (the next one;
        /// the same one when there is only one).
        case backOff(then: String)
        /// The failure was on a server already left: try the current one at once.
        case alreadyLeft(current: String)
    }

    /// `servers` must not be empty (`AgentOptions.resolve` refuses an empty list).
    public init(_ servers: [String]) {
        precondition(!servers.isEmpty, "ServerRotation needs at least one server")
        self.servers = servers
    }

    public var current: String { servers[index] }

    /// A call to `server` failed in a way that fails over (see `failsOver`).
    public mutating func failed(_ server: String) -> Step {
        guard server == current else { return .alreadyLeft(current: current) }
        failedInRound += 1
        index = (index + 1) % servers.count
        if failedInRound >= servers.count {
            failedInRound = 0
            return .backOff(then: current)
        }
        return .switchTo(current)
    }

    /// `server` answered: the round starts again (an answer from a server already left is
    /// not one from the current server and changes nothing).
    public mutating func answered(_ server: String) {
        if server == current { failedInRound = 0 }
    }

    /// Whether a failed call is worth trying on another replica: the server could not be reached
    /// (connection refused or reset, DNS, TLS, a timeout) or answered 5xx (a proxy's 502/503/504
    /// included). A 4xx is not: a refused token, a deleted node or an invalid batch mean the
    /// same on every replica of one fleet, and keep their own handling.
    public static func failsOver(_ error: ClientError) -> Bool {
        switch error {
        case .unreachable: return true
        case .api(let status, _, _): return (500...599).contains(status)
        case .invalidURL, .decoding: return false
        }
    }
}
