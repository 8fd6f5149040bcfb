import KSMCore

/// The body of every API error: `{"error": {"code", "message", "field"?}}`.
public struct APIErrorBody: Codable, Sendable, Equatable {
    public struct Detail: Codable, Sendable, Equatable {
        public var code: String
        public var message: String
        public var field: String?
        public init(code: String, message: String, field: String? = nil) {
            self.code = code
            self.message = message
            self.field = field
        }
    }
    public var error: Detail
    public init(code: String, message: String, field: String? = nil) {
        error = Detail(code: code, message: message, field: field)
    }
}

/// Error codes the server uses, so clients can branch on them.
public enum APIErrorCode {
    public static let malformedJSON = "malformed_json"
    /// 400: one object of the body names a key twice (`field` is its path).
    public static let duplicateField = "duplicate_field"
    public static let unknownField = "unknown_field"
    /// 400: a query parameter the operation does not read (`field` names it).
    public static let unknownParameter = "unknown_parameter"
    /// 400: a query parameter given more than once (`field` names it).
    public static let repeatedParameter = "repeated_parameter"
    public static let missingField = "missing_field"
    public static let invalidType = "invalid_type"
    public static let invalidValue = "invalid_value"
    public static let unauthorized = "unauthorized"
    public static let forbidden = "forbidden"
    public static let notFound = "not_found"
    /// 404: no route for this method and path (a mistyped path, or a route an older server lacks):
    /// not `not_found`, which an agent takes for its node being gone (it registers again).
    public static let noRoute = "no_route"
    public static let generationConflict = "generation_conflict"
    public static let bodyTooLarge = "body_too_large"
    public static let internalError = "internal_error"
    /// 409 on register: the machine id belongs to a live (or deleted) node and no proof of
    /// identity came with it; the registration waits for an admin (`ksmfleet nodes accept`).
    public static let registrationPending = "registration_pending"
    /// 403 on register: an admin rejected this host's pending registration.
    public static let registrationRejected = "registration_rejected"
    /// 429: too many requests (registrations, failed token checks, logins) from one address.
    public static let rateLimited = "rate_limited"
    /// 503: the database cannot serve the request now (down, restarting, out of reach, locked
    /// or full); the message says why, `Retry-After` when to try again. Nothing was acknowledged;
    /// a write whose commit the connection was lost in may still have been made (send a config
    /// change again with `If-Match`: 409 if it was).
    public static let databaseUnavailable = "database_unavailable"
}

extension InputError {
    public var apiBody: APIErrorBody { APIErrorBody(code: code, message: message, field: field) }
}

extension ValidationIssue {
    public var apiBody: APIErrorBody { APIErrorBody(code: code, message: message, field: field) }
}

/// Paths and headers shared by the server, the agent, the CLI and the docs.
public enum APIPaths {
    public static let version = "v1"
    public static let prefix = "/api/v1"
    public static let register = "/api/v1/register"
    public static let nodes = "/api/v1/nodes"
    public static func node(_ id: String) -> String { "/api/v1/nodes/\(id)" }
    public static func config(_ id: String) -> String { "/api/v1/nodes/\(id)/config" }
    public static func samples(_ id: String) -> String { "/api/v1/nodes/\(id)/samples" }
    /// The node tells what its host is now (node token).
    public static func facts(_ id: String) -> String { "/api/v1/nodes/\(id)/facts" }
    public static func labels(_ id: String) -> String { "/api/v1/nodes/\(id)/labels" }
    public static func kick(_ id: String) -> String { "/api/v1/nodes/\(id)/kick" }
    public static func history(_ id: String) -> String { "/api/v1/nodes/\(id)/history" }
    public static let apply = "/api/v1/config/apply"
    public static let savingsReport = "/api/v1/reports/savings"
    public static let processReport = "/api/v1/reports/processes"
    public static let enrollmentTokens = "/api/v1/enrollment-tokens"
    public static func enrollmentToken(_ id: String) -> String { "/api/v1/enrollment-tokens/\(id)" }
    /// The node replaces its own token (node token).
    public static func nodeToken(_ id: String) -> String { "/api/v1/nodes/\(id)/token" }
    /// An admin asks the node's agent to replace its token at its next push.
    public static func rotateToken(_ id: String) -> String { "/api/v1/nodes/\(id)/rotate-token" }
    public static let registrations = "/api/v1/registrations"
    public static func acceptRegistration(_ id: String) -> String { "/api/v1/registrations/\(id)/accept" }
    public static func rejectRegistration(_ id: String) -> String { "/api/v1/registrations/\(id)/reject" }
    /// Longest long-poll the server grants.
    public static let maxWaitSeconds = 60
}

/// How long a client waits for the answer to an agent's write (a sample push, a registration,
/// a token rotation), told to the server in the header `KSMFleet-Timeout` (seconds) so that the
/// server answers before the client gives up: the request's database work may take
/// `serverLimit` of it (and at most the server's own request deadline). Without it a push stuck
/// behind a database stall was held by the server for up to its 60 s while the agent had given
/// up at 30 s, and the agent saw a timeout instead of the server's 503 with its reason and
/// `Retry-After`; a registration went on and committed after the agent's retry.
public enum ClientTimeout {
    public static let header = "KSMFleet-Timeout"
    /// The seconds of a client's timeout the server's database work may take: all but 10 % of it
    /// and at least 2 s (the server notices a deadline up to a quarter second late, and the
    /// answer has its way back to make), at least half of it, and never under `leastServerLimit`
    /// (a push's deadline can shorten its whole group commit's). 30 s: 27 s; 6 s: 4 s; 1 s: 2 s.
    public static func serverLimit(_ seconds: Double) -> Double {
        max(leastServerLimit, seconds / 2, seconds - max(2, seconds * 0.1))
    }
    /// The least a push's database work is given whatever its client says: the group commit
    /// gives a group the earliest deadline of its pushes, and one client stating a tiny timeout
    /// would otherwise cut its neighbours' pushes short on a slow database.
    public static let leastServerLimit = 2.0
    /// Longest timeout the header may state (seconds).
    public static let maxSeconds = 3600.0

    /// The header's value for `seconds`, to the millisecond ("30", "2.5", "0.3" for
    /// 0.30000000000000004); nil for what `parse` would refuse (the header is then not sent).
    public static func value(_ seconds: Double) -> String? {
        guard seconds.isFinite, seconds > 0, seconds <= maxSeconds else { return nil }
        let ms = Int((seconds * 1000).rounded())
        guard ms > 0 else { return nil }
        return SecondsText.of(milliseconds: ms)
    }

    /// The seconds a header value states: digits, at most three after a point (openapi.yaml's
    /// pattern), over 0 and at most `maxSeconds`; nil for anything else ("+30", "1e1", "0x10"
    /// and "inf" are numbers to `Double(_:)`, not to the header).
    public static func parse(_ text: String) -> Double? {
        let parts = text.utf8.split(separator: UInt8(ascii: "."), maxSplits: 1, omittingEmptySubsequences: false)
        guard let whole = parts.first, (1...4).contains(whole.count),
            parts.count == 1 || (1...3).contains(parts[1].count),
            parts.allSatisfy({ $0.allSatisfy { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) } }),
            let s = Double(text), s > 0, s <= maxSeconds
        else { return nil }
        return s
    }
}

/// Seconds as the header and the messages about time limits write them: to the millisecond,
/// without trailing zeros ("30", "2.5", "0.3", "7200").
public enum SecondsText {
    public static func of(milliseconds ms: Int) -> String {
        let sign = ms < 0 ? "-" : ""
        let ms = ms.magnitude
        guard ms % 1000 != 0 else { return sign + String(ms / 1000) }
        var fraction = String(ms % 1000)
        fraction = String(repeating: "0", count: 3 - fraction.count) + fraction
        while fraction.hasSuffix("0") { fraction.removeLast() }
        return "\(sign)\(ms / 1000).\(fraction)"
    }

    /// `d` to the nearest millisecond.
    public static func of(_ d: Duration) -> String {
        let (whole, attos) = d.components
        return of(milliseconds: Int(whole) * 1000 + Int((Double(attos) / 1e15).rounded()))
    }
}
