import FleetAPI
import FleetStore
import Hummingbird
import KSMCore
import Logging
import NIOHTTP1

/// Turns every error, ours or Hummingbird's (unknown route, body too large), into the JSON
/// error body with the right status, so clients parse one shape.
struct ErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    /// Where requests refused because the database cannot serve them are counted and logged.
    let outage: DatabaseOutage

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response)
        async throws -> Response
    {
        do {
            let response = try await next(request, context)
            // During an outage, an API write that went through (a push, a change) says the
            // database takes writes again.
            if outage.active, Self.isWrite(request.method), (200..<300).contains(response.status.code),
                request.uri.path.hasPrefix(APIPaths.prefix + "/")
            {
                outage.writeSucceeded(path: request.uri.path)
            }
            return response
        } catch {
            let e = Self.apiError(for: error, request: request, logger: context.logger, outage: outage)
            if Self.isDashboardPath(request.uri.path) {
                // A browser's: a page it shows, not the API's JSON.
                return Self.errorPage(e, request: request)
            }
            return try e.response(from: request, context: context)
        }
    }

    /// Whether a request of `method` writes (what ends an outage of writes).
    static func isWrite(_ method: HTTPRequest.Method) -> Bool {
        [.post, .put, .patch, .delete].contains(method)
    }

    /// Whether a path is the dashboard's (its pages, forms, sign-in, or a path that is none of
    /// them, typed into a browser), not the API's (`/api/…`) or an operations route (`/metrics`,
    /// `/healthz`, `/readyz`, `/openapi.yaml`), whose callers parse JSON.
    static func isDashboardPath(_ path: String) -> Bool {
        !path.hasPrefix("/api/") && path != "/api" && APIRoutes.allowedMethods(path) == nil
    }

    /// The dashboard's answer to an error its own pages did not render (those say "not found",
    /// "refused" and the like in the page frame): a plain page with the reason, since the frame
    /// needs a session and the session the database. While the database is unavailable (every
    /// page needs it) a page reloads every 5 s; a form is not sent again by itself, and the page
    /// says what to do. The API's headers that matter to a retry (`Retry-After`, `Allow`) stay.
    static func errorPage(_ e: APIError, request: Request) -> Response {
        let read = request.method == .get || request.method == .head
        let unavailable = e.detail.code == APIErrorCode.databaseUnavailable
        let heading = unavailable ? "The database is unavailable" : e.status.reasonPhrase
        let advice =
            if unavailable {
                read
                    ? "This page loads again every 5 seconds."
                    : "The form was not saved (unless the database went away during its commit): go back and send it again once the database answers; a config form saved after all then says the config changed meanwhile."
            } else {
                #"<a href="/">The fleet overview</a>"#
            }
        let html = """
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8">\(unavailable && read ? #"<meta http-equiv="refresh" content="5">"# : "")
            <title>\(HTML.esc(heading)) · ksmfleet</title></head>
            <body><h1>\(HTML.esc(heading))</h1>
            <p id="error-reason">\(HTML.esc(e.detail.message))</p>
            <p>\(advice)</p>
            </body></html>
            """
        var response = HTTP.text(html, contentType: "text/html; charset=utf-8", status: e.status)
        response.headers[.retryAfter] = e.headers[.retryAfter]
        response.headers[.allow] = e.headers[.allow]
        return response
    }

    static func apiError(for error: any Error, request: Request, logger: Logger, outage: DatabaseOutage) -> APIError {
        switch error {
        case let e as APIError:
            return e
        case let e as StoreError:
            return .from(e)
        case let e as InputError:
            return .badRequest(e)
        case let e as ConfigValidationError:
            return .invalid(e)
        case let e as HTTPParserError:
            // A body the HTTP parser refused while the route read it (a chunk size that is not
            // hex): the client's fault, said as such (400), not logged as the server's.
            return .httpParse(e)
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
                guard let message else {
                    return APIError(
                        .notFound, code: APIErrorCode.noRoute, message: "no route \(request.method) \(request.uri.path)")
                }
                return .notFound(message)
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
            if let unavailable = DatabaseUnavailable.of(error) {
                // Logged once per outage (DatabaseOutage), not once per request; the client is
                // told the kind of failure, the log the database's own words. Work given up by
                // this server's shutdown is no outage (the shutdown logs it).
                if !unavailable.atShutdown {
                    // An API write's route, which only an API write going through matches
                    // (`handle`); a dashboard form's refusal does not hold the outage open.
                    let apiWrite = isWrite(request.method) && request.uri.path.hasPrefix(APIPaths.prefix + "/")
                    outage.refused(unavailable, path: request.uri.path, write: apiWrite)
                }
                return .databaseUnavailable(unavailable.summary)
            }
            logger.error("request failed", metadata: ["error": "\(error)", "path": "\(request.uri.path)"])
            return APIError(.internalServerError, code: APIErrorCode.internalError, message: "internal error; see the server log")
        }
    }
}

/// The API's routes and their methods, to tell "no such path" (404) from "wrong method" (405):
/// Hummingbird's router answers both with 404. Read from the route table (`RouteTable`), so a
/// new route is known here without a second list.
enum APIRoutes {
    static let table: [([Substring], [String])] = {
        var byPath: [(String, [String])] = []
        for route in RouteTable.routes where !route.dashboard {
            let pattern = route.path.split(separator: "/").map { $0.hasPrefix(":") ? "*" : String($0) }
                .joined(separator: "/")
            if let i = byPath.firstIndex(where: { $0.0 == pattern }) {
                byPath[i].1.append(route.method.rawValue)
            } else {
                byPath.append((pattern, [route.method.rawValue]))
            }
        }
        return byPath.map { ($0.0.split(separator: "/"), $0.1) }
    }()

    /// The route `path` matches, its ids as `*` ("api/v1/nodes/*/samples"); the path itself when
    /// it matches none.
    static func route(_ path: String) -> String {
        match(path).map { $0.pattern.joined(separator: "/") } ?? path
    }

    /// The methods a known path accepts, nil for an unknown path.
    static func allowedMethods(_ path: String) -> [String]? {
        match(path)?.methods
    }

    /// The table's entry `path` matches: a `*` stands for any one segment.
    private static func match(_ path: String) -> (pattern: [Substring], methods: [String])? {
        let parts = path.split(separator: "/")
        return table.first { pattern, _ in
            pattern.count == parts.count && zip(pattern, parts).allSatisfy { $0 == "*" || $0 == $1 }
        }.map { (pattern: $0.0, methods: $0.1) }
    }
}
