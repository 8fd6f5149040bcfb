/// The ksmfleet release, reported by the agent at registration and sent in the User-Agent.
public enum FleetVersion {
    public static let current = "0.1.0"
}
