import Foundation
import NIOSSL
import PostgresNIO

/// Where a PostgreSQL store lives, from a `postgres://user:password@host:port/database` URL and
/// the parameters libpq gives such a URL for TLS and the password, with libpq's meanings
/// (README.md, "Connecting"):
///
/// - `sslmode`: `disable` (plain), `allow` and `prefer` (TLS when the server offers it; the
///   default, as libpq's; `allow` asks for TLS first too), `require` (TLS or no connection),
///   `verify-ca` (and the server's certificate signed by a trusted CA), `verify-full` (and
///   naming the host: its DNS name, or its IP address for an IP host).
/// - `sslrootcert`: a PEM file of the CAs to trust, or `system` (the system's trust store). With
///   it the server's certificate is checked in every mode that uses TLS, as libpq checks it
///   when its root certificate file exists; `verify-ca` and `verify-full` without it trust the
///   system's CAs.
/// - `sslcert` and `sslkey`: a client certificate (PEM) and its key, for PostgreSQL's `cert`
///   authentication; the key file readable by its owner only (0600), or 0640 when root owns it.
/// - `passfile`: a password file in libpq's format (`host:port:database:user:password` lines,
///   `*` matching anything), readable by its owner only, read when the URL has no password.
/// - `host`: a directory holding PostgreSQL's unix socket (`.s.PGSQL.<port>`), for a URL
///   without a host (`postgres://user@/database?host=/var/run/postgresql`). No TLS there.
///
/// Any other parameter, an `sslmode` libpq does not know, or a file that cannot be read is an
/// error naming the parameter (`StoreError.badDatabaseURL`), never a connection made with less
/// protection than the URL asked for. Errors never repeat the URL: it may hold a password.
public struct PostgresLocation: Sendable, CustomStringConvertible {
    /// libpq's `sslmode`.
    public enum TLSMode: String, Sendable, CaseIterable {
        case disable, allow, prefer, require
        case verifyCA = "verify-ca"
        case verifyFull = "verify-full"
    }

    /// The host, or the unix socket's directory (`socketDirectory`).
    public var host: String
    public var port: Int
    /// The directory of PostgreSQL's unix socket when the URL names one (`host=/dir`).
    public var socketDirectory: String?
    public var username: String
    public var password: String?
    public var database: String
    public var tlsMode: TLSMode
    /// `sslrootcert`: a PEM file, or "system".
    public var rootCertificates: String?
    /// `sslcert` and `sslkey`.
    public var clientCertificate: String?
    public var clientKey: String?

    /// The URL parameters the store understands.
    public static let parameters = ["sslmode", "sslrootcert", "sslcert", "sslkey", "passfile", "host"]

    /// Nil when `url` is not a postgres URL (it is then a SQLite path). Throws
    /// `StoreError.badDatabaseURL` for a postgres URL the store cannot use as written.
    public init?(url: String) throws {
        guard url.hasPrefix("postgres://") || url.hasPrefix("postgresql://") else { return nil }
        func bad(_ why: String) -> StoreError { .badDatabaseURL(why) }
        guard let c = URLComponents(string: url) else {
            throw bad("the postgres URL is not a valid URL (a password with reserved characters must be percent-encoded)")
        }
        var query: [String: String] = [:]
        for item in c.queryItems ?? [] {
            guard Self.parameters.contains(item.name) else {
                throw bad(
                    "the postgres URL has the parameter '\(item.name)', which this server does not use; it knows "
                        + Self.parameters.joined(separator: ", "))
            }
            guard query[item.name] == nil else { throw bad("the postgres URL gives '\(item.name)' twice") }
            guard let value = item.value, !value.isEmpty else { throw bad("the postgres URL's '\(item.name)' is empty") }
            query[item.name] = value
        }
        port = c.port ?? 5432
        guard (1...65535).contains(port) else { throw bad("the postgres URL's port \(port) is not 1-65535") }
        if let dir = query["host"] {
            guard dir.hasPrefix("/") else {
                throw bad("the postgres URL's 'host' parameter must be the absolute path of the unix socket's directory")
            }
            guard (c.host ?? "").isEmpty else {
                throw bad("the postgres URL names both a host and a unix socket directory ('host' parameter): give one")
            }
            socketDirectory = dir
            host = dir
        } else {
            guard let h = c.host, !h.isEmpty else {
                throw bad("the postgres URL has no host: give postgres://user:password@host:port/database")
            }
            host = h.hasPrefix("[") && h.hasSuffix("]") ? String(h.dropFirst().dropLast()) : h
        }
        username = c.user ?? "postgres"
        let path = c.path.hasPrefix("/") ? String(c.path.dropFirst()) : c.path
        database = path.isEmpty ? username : path
        if let mode = query["sslmode"] {
            guard let m = TLSMode(rawValue: mode) else {
                throw bad(
                    "the postgres URL's sslmode '\(mode)' is not one of "
                        + TLSMode.allCases.map(\.rawValue).joined(separator: ", "))
            }
            tlsMode = m
        } else {
            tlsMode = .prefer
        }
        rootCertificates = query["sslrootcert"]
        clientCertificate = query["sslcert"]
        clientKey = query["sslkey"]
        guard (clientCertificate == nil) == (clientKey == nil) else {
            throw bad("the postgres URL gives \(clientCertificate == nil ? "sslkey without sslcert" : "sslcert without sslkey"): a client certificate needs both")
        }
        if socketDirectory != nil, tlsMode == .require || tlsMode == .verifyCA || tlsMode == .verifyFull {
            throw bad("the postgres URL names a unix socket ('host' parameter), which has no TLS, and sslmode=\(tlsMode.rawValue)")
        }
        if let p = c.password {
            password = p
        } else if let file = query["passfile"] {
            password = try Self.password(
                inFile: file, host: socketDirectory == nil ? host : "localhost", port: port, database: database, username: username)
        } else {
            password = nil
        }
    }

    /// Where the store is, without the password (for logs).
    public var description: String {
        if let socketDirectory { return "postgres://\(username)@/\(database)?host=\(socketDirectory)&port=\(port)" }
        let h = host.contains(":") ? "[\(host)]" : host
        return "postgres://\(username)@\(h):\(port)/\(database)"
    }

    /// Whether the connection is TLS's, and which certificates are checked (sslmode).
    var tls: (use: Bool, required: Bool, verification: CertificateVerification) {
        switch tlsMode {
        case .disable: return (false, false, .none)
        case .allow, .prefer, .require:
            return (true, tlsMode == .require, rootCertificates == nil ? .none : .noHostnameVerification)
        case .verifyCA: return (true, true, .noHostnameVerification)
        case .verifyFull: return (true, true, .fullVerification)
        }
    }

    func configuration() throws -> PostgresConnection.Configuration {
        if let socketDirectory {
            let socket = (socketDirectory as NSString).appendingPathComponent(".s.PGSQL.\(port)")
            return PostgresConnection.Configuration(
                unixSocketPath: socket, username: username, password: password, database: database)
        }
        let tls = self.tls
        var mode = PostgresConnection.Configuration.TLS.disable
        if tls.use {
            var config = TLSConfiguration.makeClientConfiguration()
            config.certificateVerification = tls.verification
            switch rootCertificates {
            case nil, "system": config.trustRoots = .default
            case let file?:
                config.trustRoots = .certificates(try Self.read("sslrootcert", file) { try NIOSSLCertificate.fromPEMFile($0) })
            }
            if let clientCertificate, let clientKey {
                config.certificateChain = try Self.read("sslcert", clientCertificate) { try NIOSSLCertificate.fromPEMFile($0) }
                    .map { .certificate($0) }
                try Self.checkKeyFileMode(clientKey)
                config.privateKey = .privateKey(try Self.read("sslkey", clientKey) { try NIOSSLPrivateKey(file: $0, format: .pem) })
            }
            let context = try NIOSSLContext(configuration: config)
            mode = tls.required ? .require(context) : .prefer(context)
        }
        return PostgresConnection.Configuration(
            host: host, port: port, username: username, password: password, database: database, tls: mode)
    }

    /// `load(file)`, its failure said as the parameter's.
    static func read<T>(_ parameter: String, _ file: String, _ load: (String) throws -> T) throws -> T {
        guard FileManager.default.isReadableFile(atPath: file) else {
            throw StoreError.badDatabaseURL("the postgres URL's \(parameter) \(file) cannot be read")
        }
        do {
            let value = try load(file)
            if let list = value as? [Any], list.isEmpty {
                throw StoreError.badDatabaseURL("the postgres URL's \(parameter) \(file) holds no PEM certificate")
            }
            return value
        } catch let error as StoreError {
            throw error
        } catch {
            throw StoreError.badDatabaseURL("the postgres URL's \(parameter) \(file) is not a PEM file this server can read (\(error))")
        }
    }

    /// libpq's rule for a secret file: no access for others or the group, but for a group read
    /// when root owns it (a file shared with the service's group).
    static func checkKeyFileMode(_ file: String, parameter: String = "sslkey") throws {
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: file),
            let mode = (attributes[.posixPermissions] as? NSNumber)?.intValue
        else { throw StoreError.badDatabaseURL("the postgres URL's \(parameter) \(file) cannot be read") }
        let owner = (attributes[.ownerAccountID] as? NSNumber)?.intValue
        let allowed = owner == 0 ? 0o640 : 0o600
        guard mode & 0o777 & ~allowed == 0 else {
            throw StoreError.badDatabaseURL(
                "the postgres URL's \(parameter) \(file) has mode \(String(mode & 0o777, radix: 8)): it holds a secret and must be 0600"
                    + (owner == 0 ? " (or 0640, owned by root)" : "") + "; chmod 600 it")
        }
    }

    /// The password of the first line of `file` (libpq's password file) that matches, or nil.
    static func password(inFile file: String, host: String, port: Int, database: String, username: String) throws -> String? {
        try checkKeyFileMode(file, parameter: "passfile")
        let text = try read("passfile", file) { try String(contentsOfFile: $0, encoding: .utf8) }
        for line in text.split(whereSeparator: \.isNewline) where !line.hasPrefix("#") {
            let fields = passfileFields(Substring(line))
            guard fields.count == 5 else { continue }
            let wanted = [host, String(port), database, username]
            if zip(fields.prefix(4), wanted).allSatisfy({ $0 == "*" || $0 == $1 }) { return fields[4] }
        }
        return nil
    }

    /// A password file line's fields: split at `:`, with `\:` and `\\` taken as the characters.
    static func passfileFields(_ line: Substring) -> [String] {
        var fields: [String] = []
        var current = ""
        var escaped = false
        for ch in line {
            if escaped {
                current.append(ch)
                escaped = false
            } else if ch == "\\" {
                escaped = true
            } else if ch == ":" && fields.count < 4 {
                fields.append(current)
                current = ""
            } else {
                current.append(ch)
            }
        }
        fields.append(current)
        return fields
    }
}
