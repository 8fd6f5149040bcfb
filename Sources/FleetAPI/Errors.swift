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
    public static let unknownField = "unknown_field"
    public static let missingField = "missing_field"
    public static let invalidType = "invalid_type"
    public static let invalidValue = "invalid_value"
    public static let unauthorized = "unauthorized"
    public static let forbidden = "forbidden"
    public static let notFound = "not_found"
    public static let generationConflict = "generation_conflict"
    public static let bodyTooLarge = "body_too_large"
    public static let internalError = "internal_error"
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
    public static func labels(_ id: String) -> String { "/api/v1/nodes/\(id)/labels" }
    public static func kick(_ id: String) -> String { "/api/v1/nodes/\(id)/kick" }
    public static func history(_ id: String) -> String { "/api/v1/nodes/\(id)/history" }
    public static let apply = "/api/v1/config/apply"
    public static let savingsReport = "/api/v1/reports/savings"
    public static let processReport = "/api/v1/reports/processes"
    public static let enrollmentTokens = "/api/v1/enrollment-tokens"
    public static func enrollmentToken(_ id: String) -> String { "/api/v1/enrollment-tokens/\(id)" }
    /// Longest long-poll the server grants.
    public static let maxWaitSeconds = 60
}
