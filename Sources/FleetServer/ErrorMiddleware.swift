import FleetAPI
import FleetStore
import Hummingbird
import KSMCore
import Logging

/// Turns every error, ours or Hummingbird's (unknown route, body too large), into the JSON
/// error body with the right status, so clients parse one shape.
struct ErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response)
        async throws -> Response
    {
        do {
            return try await next(request, context)
        } catch {
            return try Self.apiError(for: error, request: request, logger: context.logger)
                .response(from: request, context: context)
        }
    }

    static func apiError(for error: any Error, request: Request, logger: Logger) -> APIError {
        switch error {
        case let e as APIError:
            return e
        case let e as StoreError:
            return .from(e)
        case let e as InputError:
            return .badRequest(e)
        case let e as ConfigValidationError:
            return .invalid(e)
        case let e as any HTTPResponseError:
            let status = e.status
            let message = (e as? HTTPError)?.body
            switch status {
            case .notFound:
                if message == nil, let allowed = APIRoutes.allowedMethods(request.uri.path), !allowed.isEmpty {
                    var e = APIError(
                        .methodNotAllowed, code: "method_not_allowed",
                        message: "\(request.method) is not allowed on \(request.uri.path); allowed: \(allowed.joined(separator: ", "))")
                    e.headers[.allow] = allowed.joined(separator: ", ")
                    return e
                }
                return .notFound(message ?? "no route \(request.method) \(request.uri.path)")
            case .methodNotAllowed:
                return APIError(status, code: "method_not_allowed", message: message ?? "method not allowed")
            case .contentTooLarge:
                return APIError(
                    status, code: APIErrorCode.bodyTooLarge, message: message ?? "the request body is too large")
            case .unauthorized:
                return .unauthorized(message ?? "missing or wrong token")
            case .badRequest:
                return APIError(status, code: "bad_request", message: message ?? "bad request")
            default:
                return APIError(
                    status, code: status.code >= 500 ? APIErrorCode.internalError : "http_\(status.code)",
                    message: message ?? status.reasonPhrase)
            }
        default:
            logger.error("request failed", metadata: ["error": "\(error)", "path": "\(request.uri.path)"])
            return APIError(.internalServerError, code: APIErrorCode.internalError, message: "internal error; see the server log")
        }
    }
}

/// The API's routes and their methods, to tell "no such path" (404) from "wrong method" (405):
/// Hummingbird's router answers both with 404.
enum APIRoutes {
    static let table: [([Substring], [String])] = [
        ("/api/v1/register", ["POST"]), ("/api/v1/nodes", ["GET"]), ("/api/v1/nodes/*", ["GET", "DELETE"]),
        ("/api/v1/nodes/*/labels", ["PUT"]), ("/api/v1/nodes/*/config", ["GET", "PUT", "PATCH"]),
        ("/api/v1/nodes/*/samples", ["POST"]), ("/api/v1/nodes/*/kick", ["POST"]),
        ("/api/v1/nodes/*/history", ["GET"]), ("/api/v1/config/apply", ["POST"]),
        ("/api/v1/reports/savings", ["GET"]), ("/api/v1/enrollment-tokens", ["GET", "POST"]),
        ("/api/v1/enrollment-tokens/*", ["DELETE"]), ("/healthz", ["GET"]), ("/readyz", ["GET"]),
        ("/metrics", ["GET"]), ("/openapi.yaml", ["GET"]), ("/api/v1/nodes/*/token", ["POST"]),
        ("/api/v1/nodes/*/rotate-token", ["POST"]), ("/api/v1/registrations", ["GET"]),
        ("/api/v1/registrations/*/accept", ["POST"]), ("/api/v1/registrations/*/reject", ["POST"]),
    ].map { ($0.0.split(separator: "/"), $0.1) }

    /// The methods a known path accepts, nil for an unknown path.
    static func allowedMethods(_ path: String) -> [String]? {
        let parts = path.split(separator: "/")
        for (pattern, methods) in table where pattern.count == parts.count {
            if zip(pattern, parts).allSatisfy({ $0 == "*" || $0 == $1 }) { return methods }
        }
        return nil
    }
}
