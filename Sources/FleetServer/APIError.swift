import FleetAPI
import FleetStore
import Foundation
import Hummingbird
import KSMCore

/// An error answered as the JSON error body `{error: {code, message, field?}}` (plus, for
/// validation errors, every issue in `issues`).
struct APIError: Error, HTTPResponseError, Sendable {
    var status: HTTPResponse.Status
    var detail: APIErrorBody.Detail
    var issues: [APIErrorBody.Detail]?
    var headers: HTTPFields = [:]

    init(_ status: HTTPResponse.Status, code: String, message: String, field: String? = nil) {
        self.status = status
        self.detail = .init(code: code, message: message, field: field)
    }

    static func badRequest(_ e: InputError) -> APIError {
        APIError(.badRequest, code: e.code, message: e.message, field: e.field)
    }
    static func invalid(_ e: ConfigValidationError) -> APIError {
        let first =
            e.issues.first.map { APIErrorBody.Detail(code: $0.code, message: $0.message, field: $0.field) }
            ?? .init(code: APIErrorCode.invalidValue, message: "invalid config")
        var error = APIError(.unprocessableContent, code: first.code, message: first.message, field: first.field)
        error.issues = e.issues.map { .init(code: $0.code, message: $0.message, field: $0.field) }
        return error
    }
    static func invalidValue(_ field: String?, _ message: String) -> APIError {
        APIError(.unprocessableContent, code: APIErrorCode.invalidValue, message: message, field: field)
    }
    static func unauthorized(_ message: String) -> APIError {
        var e = APIError(.unauthorized, code: APIErrorCode.unauthorized, message: message)
        e.headers[.wwwAuthenticate] = "Bearer"
        return e
    }
    static func forbidden(_ message: String) -> APIError {
        APIError(.forbidden, code: APIErrorCode.forbidden, message: message)
    }
    /// 429 with `Retry-After`.
    static func rateLimited(_ message: String, retryAfter: Int) -> APIError {
        var e = APIError(.tooManyRequests, code: APIErrorCode.rateLimited, message: message)
        e.headers[.retryAfter] = String(max(1, retryAfter))
        return e
    }
    /// 503 `database_unavailable`: the database cannot serve the request now (`reason`, the
    /// engine's words); try again in a few seconds. Nothing was acknowledged: an agent sends its
    /// batch again (stored once by sequence number); a write whose commit the connection was
    /// lost in may have been made all the same (a config change sent again with `If-Match` then
    /// gets 409).
    static func databaseUnavailable(_ reason: String) -> APIError {
        var e = APIError(
            .serviceUnavailable, code: APIErrorCode.databaseUnavailable,
            message: "the database is unavailable (\(reason)); try again in a few seconds")
        e.headers[.retryAfter] = "5"
        return e
    }
    static func notFound(_ message: String) -> APIError {
        APIError(.notFound, code: APIErrorCode.notFound, message: message)
    }

    /// Maps a store error to its HTTP answer.
    static func from(_ error: StoreError) -> APIError {
        switch error {
        case .registrationPending:
            var e = APIError(.conflict, code: APIErrorCode.registrationPending, message: error.description, field: "machineId")
            e.headers[.retryAfter] = "60"
            return e
        case .registrationRejected:
            var e = APIError(.forbidden, code: APIErrorCode.registrationRejected, message: error.description, field: "machineId")
            e.headers[.retryAfter] = "3600"
            return e
        case .nodeNotFound, .enrollmentTokenNotFound, .registrationNotFound, .credentialNotFound:
            return .notFound(error.description)
        case .credentialNameTaken:
            return APIError(.conflict, code: "name_taken", message: error.description, field: "name")
        case .enrollmentRefused(let why):
            return .unauthorized(why)
        case .generationConflict:
            return APIError(.conflict, code: APIErrorCode.generationConflict, message: error.description, field: "generation")
        case .invalidConfig(let e):
            return .invalid(e)
        case .databaseTooNew, .databaseNotUTF8, .badDatabaseURL:
            return APIError(.internalServerError, code: APIErrorCode.internalError, message: error.description)
        }
    }

    struct Body: Encodable {
        var error: APIErrorBody.Detail
        var issues: [APIErrorBody.Detail]?
    }

    /// The error's JSON body.
    func body() throws -> ByteBuffer {
        ByteBuffer(bytes: try StrictJSON.encoder().encode(Body(error: detail, issues: issues)))
    }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        HTTP.json(bytes: try body(), status: status, headers: headers)
    }
}
