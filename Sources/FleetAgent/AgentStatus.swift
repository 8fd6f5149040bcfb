/// What the agent is doing, for tests and logs.
public struct AgentStatus: Sendable {
    public var nodeId: String?
    public var configGeneration: Int64?
    public var appliedGeneration: Int64?
    public var nextSeq: Int64
    public var samplesTaken: Int
    public var spooled: Int
    public var outbox: Int
    public var dropped: Int64
    public var lastAckedSeq: Int64?
    public var serverReachable: Bool
    /// Why the server keeps this host waiting (pending or rejected registration), nil otherwise.
    public var registrationWaiting: String? = nil
    /// The server the agent talks to now (one of `AgentOptions.serverURLs`).
    public var server: String
}
