import ArgumentParser
import FleetAPI
import FleetClient
import Foundation
import KSMCore

/// Exit codes, after sysexits.h, so scripts can tell what went wrong.
enum ExitStatus {
    /// A bad flag or value, refused before anything was sent.
    static let usage: Int32 = 64
    /// The server refused the request (4xx other than auth).
    static let refused: Int32 = 65
    /// The server could not be reached, or its database cannot serve now (EX_UNAVAILABLE).
    static let unreachable: Int32 = 69
    /// The server failed (5xx) or its reply could not be read.
    static let serverError: Int32 = 70
    /// The server refused the credentials (401/403).
    static let auth: Int32 = 77
}

/// An error the CLI reports as one line on stderr, with the exit code that says its kind.
struct CLIError: Error, CustomStringConvertible {
    var code: Int32
    var message: String

    init(_ code: Int32, _ message: String) {
        self.code = code
        self.message = message
    }

    var description: String { message }

    static func usage(_ message: String) -> CLIError { CLIError(ExitStatus.usage, message) }

    /// Runs a request whose 404 means "nothing has that id": that becomes this refusal, with
    /// where to look; every other failure passes through.
    @discardableResult
    static func notFound<T>(
        _ message: String, _ request: () async throws(ClientError) -> T
    ) async throws -> T {
        do throws(ClientError) {
            return try await request()
        } catch {
            guard error.status == 404 else { throw error }
            throw CLIError(ExitStatus.refused, message)
        }
    }

    /// A config value the server would refuse, caught before sending (same words as the server).
    static func invalid(_ issues: [ValidationIssue]) -> CLIError {
        let text = issues.map { "\($0.field): \($0.message)" }.joined(separator: "; ")
        return .usage("invalid value: \(text)")
    }

    static func invalid(_ error: InputError) -> CLIError {
        .usage("invalid value: \(error.description)")
    }

    /// Maps a client error to what an operator should do about it.
    static func from(_ error: ClientError, server: String) -> CLIError {
        switch error {
        case .invalidURL(let detail):
            return .usage("invalid server URL '\(server)': \(detail); pass --server http(s)://HOST:PORT")
        case .unreachable(let detail):
            return CLIError(
                ExitStatus.unreachable,
                "\(detail); check --server / KSMFLEET_SERVER and that ksmfleet-server is running")
        case .decoding(let detail):
            return CLIError(
                ExitStatus.serverError,
                "the server's reply could not be read (\(detail)); check that --server points at a ksmfleet-server of a matching version"
            )
        case .api(let status, let body, let retryAfter):
            let d = body.error
            let field = d.field.map { " (field \($0))" } ?? ""
            switch status {
            case 401:
                return CLIError(
                    ExitStatus.auth,
                    "authentication failed (401 \(d.code): \(d.message)); check --token / KSMFLEET_TOKEN or token= in the config file"
                )
            case 403:
                return CLIError(
                    ExitStatus.auth,
                    "access denied (403 \(d.code): \(d.message)); use a credential whose role allows this (--token / KSMFLEET_TOKEN)")
            case 503 where d.code == APIErrorCode.databaseUnavailable:
                // Not the server's fault, nor a lasting one: the same request works once the
                // database is back.
                return CLIError(
                    ExitStatus.unreachable,
                    "the server's database is unavailable (503 \(d.code): \(d.message))"
                        + "; a change asked for may or may not have been made: check it (ksmfleet audit, ksmfleet config get NODE) before repeating it")
            case 429:
                let wait = retryAfter.map { "try again in \(Int($0.rounded(.up))) s" } ?? "try again later"
                return CLIError(
                    ExitStatus.refused, "the server asks to slow down (429 \(d.code): \(d.message)); \(wait)")
            case 500...:
                return CLIError(
                    ExitStatus.serverError,
                    "the server failed (\(status) \(d.code): \(d.message)); see the server's log and try again")
            default:
                return CLIError(
                    ExitStatus.refused, "the server refused the request (\(status) \(d.code)\(field)): \(d.message)")
            }
        }
    }
}

func fail(_ error: CLIError) -> Never {
    writeStderr("ksmfleet: error: \(error.message)\n")
    exit(error.code)
}

func writeStderr(_ text: String) {
    FileHandle.standardError.write(Data(text.utf8))
}

/// The value, or the error on stderr and its exit code.
func orExit<T>(_ body: () throws(CLIError) -> T) -> T {
    do throws(CLIError) {
        return try body()
    } catch {
        fail(error)
    }
}
