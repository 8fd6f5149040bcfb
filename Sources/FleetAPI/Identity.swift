#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import KSMCore

/// `POST /api/v1/nodes/{id}/token` (node token): the node's new token. The old one stays
/// valid until the agent has used the new one (plus a short grace for requests in flight).
public struct TokenRotationResponse: Codable, Sendable, Equatable, KnownFields {
    public var nodeId: String
    /// Shown once; the server keeps only its hash.
    public var nodeToken: String
    public init(nodeId: String, nodeToken: String) {
        self.nodeId = nodeId
        self.nodeToken = nodeToken
    }
    public static let fieldNames: Set<String> = ["nodeId", "nodeToken"]
}

/// `POST /api/v1/nodes/{id}/rotate-token` (admin): the rotation is asked for; the agent picks
/// it up at its next sample push.
public struct RotationRequestedResponse: Codable, Sendable, Equatable, KnownFields {
    public var nodeId: String
    public var requestedAt: Date
    public init(nodeId: String, requestedAt: Date) {
        self.nodeId = nodeId
        self.requestedAt = requestedAt
    }
    public static let fieldNames: Set<String> = ["nodeId", "requestedAt"]
}

/// One side of a registration conflict: a host as it described itself.
public struct RegistrationHost: Codable, Sendable, Equatable, KnownFields {
    /// The node id (for the host that holds the node now); nil for the newcomer.
    public var nodeId: String?
    public var hostname: String
    public var kernel: String
    public var agentVersion: String
    /// The address its last registration came from, when known.
    public var source: String?
    /// When it was last seen (a sample, or a registration attempt).
    public var lastSeenAt: Date?
    /// The node was deleted (for a `deleted` pending registration).
    public var deleted: Bool?
    public init(
        nodeId: String? = nil, hostname: String, kernel: String, agentVersion: String, source: String?,
        lastSeenAt: Date?, deleted: Bool? = nil
    ) {
        self.nodeId = nodeId
        self.hostname = hostname
        self.kernel = kernel
        self.agentVersion = agentVersion
        self.source = source
        self.lastSeenAt = lastSeenAt
        self.deleted = deleted
    }
    public static let fieldNames: Set<String> = [
        "nodeId", "hostname", "kernel", "agentVersion", "source", "lastSeenAt", "deleted",
    ]
}

/// A registration waiting for an admin: a host claimed a machine id that a live node holds
/// (`conflict`) or that a deleted node had (`deleted`), without proving it is that node.
public struct PendingRegistration: Codable, Sendable, Equatable, KnownFields {
    public var id: String
    public var machineId: String
    /// `conflict` or `deleted`.
    public var reason: String
    /// The same in words an operator understands.
    public var explanation: String
    /// `pending`, `accepted` (the agent's next attempt takes the node over) or `rejected`.
    public var status: String
    /// The host that asks.
    public var newcomer: RegistrationHost
    /// The node that holds (or held) the machine id.
    public var holder: RegistrationHost?
    public var firstSeenAt: Date
    public var lastSeenAt: Date
    public var attempts: Int
    public var decidedAt: Date?

    public init(
        id: String, machineId: String, reason: String, explanation: String, status: String,
        newcomer: RegistrationHost, holder: RegistrationHost?, firstSeenAt: Date, lastSeenAt: Date, attempts: Int,
        decidedAt: Date?
    ) {
        self.id = id
        self.machineId = machineId
        self.reason = reason
        self.explanation = explanation
        self.status = status
        self.newcomer = newcomer
        self.holder = holder
        self.firstSeenAt = firstSeenAt
        self.lastSeenAt = lastSeenAt
        self.attempts = attempts
        self.decidedAt = decidedAt
    }
    public static let fieldNames: Set<String> = [
        "id", "machineId", "reason", "explanation", "status", "newcomer", "holder", "firstSeenAt", "lastSeenAt",
        "attempts", "decidedAt",
    ]
    public static var nestedFields: [String: any KnownFields.Type] {
        ["newcomer": RegistrationHost.self, "holder": RegistrationHost.self]
    }
}

/// `GET /api/v1/registrations`.
public struct PendingRegistrationList: Codable, Sendable, Equatable, KnownFields {
    public var registrations: [PendingRegistration]
    public init(registrations: [PendingRegistration]) { self.registrations = registrations }
    public static let fieldNames: Set<String> = ["registrations"]
    public static var nestedFields: [String: any KnownFields.Type] { ["registrations": PendingRegistration.self] }
}
