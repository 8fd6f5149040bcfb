import FleetAPI
import FleetStore
import Foundation
import Hummingbird
import Logging

/// Posted dashboard forms (application/x-www-form-urlencoded), decoded by Hummingbird's
/// `URLEncodedFormDecoder` into small Decodable structs, after the CSRF check.
enum DashboardForm {
    /// The CSRF token every dashboard form carries.
    struct CSRFField: Decodable {
        var csrf: String?
    }

    static func decode<T: Decodable>(_ type: T.Type, from data: Data) throws -> T {
        do {
            return try URLEncodedFormDecoder().decode(T.self, from: String(decoding: data, as: UTF8.self))
        } catch {
            throw APIError(
                .badRequest, code: APIErrorCode.invalidValue,
                message: "the form is not valid URL-encoded data: \(error)")
        }
    }

    /// The posted body of a signed-in user's form, or nil when its CSRF token is missing or not
    /// the session's (then the caller answers with the "refused" page).
    static func checked(_ request: Request, session: DashboardSession, logger: Logger) async throws -> Data? {
        let data = try await HTTP.body(request, limit: 64 * 1024)
        guard let token = try decode(CSRFField.self, from: data).csrf, Secrets.constantTimeEqual(token, session.csrf)
        else {
            logger.warning("dashboard form refused: bad CSRF token", metadata: ["path": "\(request.uri.path)"])
            return nil
        }
        return data
    }
}
