import Foundation
import NIOSSL
import PostgresNIO

#if canImport(Glibc)
    import Glibc
#endif

/// Where a PostgreSQL store lives, from a `postgres://user:password@host:port/database` URL and
/// the parameters libpq gives such a URL for TLS and the password (README.md, "Connecting"):
///
/// - `sslmode`: `disable` (plain), `allow` and `prefer` (TLS when the server offers it; `prefer`
///   is the default, as libpq's; `allow` asks for TLS first too), `require` (TLS or no
///   connection), `verify-ca` (and the server's certificate signed by a CA of `sslrootcert`),
///   `verify-full` (and naming the host: its DNS name, or its IP address for an IP host). Unlike
///   libpq, `allow` and `prefer` never fall back to a plain connection after a failed TLS one.
/// - `sslrootcert`: a PEM file of the CAs to trust, or `system` (the system's trust store, with
///   `verify-full` only, its default then: any CA of the system's would vouch for anyone in the
///   other modes, as libpq 16 rules). With a file the server's certificate is checked in every
///   mode that uses TLS, as libpq checks it when it has a root certificate. `verify-ca` and
///   `verify-full` need it (libpq's `~/.postgresql/root.crt` is not read).
/// - `sslcert` and `sslkey`: a client certificate (PEM) and its key, for PostgreSQL's `cert`
///   authentication; the key file readable by its owner only (0600), or 0640 when root owns it.
/// - `passfile`: a password file in libpq's format (`host:port:database:user:password` lines,
///   `*` matching anything), readable by its owner only, read when the URL has no password.
/// - `host`: a directory holding PostgreSQL's unix socket (`.s.PGSQL.<port>`), for a URL
///   without a host (`postgres://user@/database?host=/var/run/postgresql`). No TLS there: a
///   mode that requires it is refused rather than ignored as libpq ignores it.
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
    /// `passfile`, when the URL has no password of its own.
    public var passwordFile: String?

    /// Whether `location` names a PostgreSQL database (else it is a SQLite path).
    public static func isPostgres(_ location: String) -> Bool {
        location.hasPrefix("postgres://") || location.hasPrefix("postgresql://")
    }

    /// The URL parameters the store understands.
    public static let parameters = ["sslmode", "sslrootcert", "sslcert", "sslkey", "passfile", "host"]

    /// Nil when `url` is not a postgres URL (it is then a SQLite path). Throws
    /// `StoreError.badDatabaseURL` for a postgres URL the store cannot use as written.
    public init?(url: String) throws {
        guard Self.isPostgres(url) else { return nil }
        func bad(_ why: String) -> StoreError { .badDatabaseURL(why) }
        let encodePassword = "a password with reserved characters (/ ? # @) must be percent-encoded"
        guard let c = URLComponents(string: url) else { throw bad("the postgres URL is not a valid URL (\(encodePassword))") }
        // An '@' after the host: the user part ended early, at a reserved character of the
        // password (the user part ends at the last '@' before the first '/', '?' or '#'), whose
        // rest is now read as the host, the path, the query or the fragment. Said without any of
        // them, since they hold the password. Only in a parameter's value (a file path), and
        // with a user in the URL, is an '@' what it seems; a database name writes it as %40.
        let hasUser = !(c.user ?? "").isEmpty
        guard !c.percentEncodedPath.contains("@"), !(c.percentEncodedFragment ?? "").contains("@"),
            hasUser || !(c.percentEncodedQuery ?? "").contains("@")
        else { throw bad("the postgres URL has an '@' after its host (\(encodePassword); an '@' in a database name as %40)") }
        guard c.fragment == nil else { throw bad("the postgres URL has a fragment ('#'): \(encodePassword)") }
        var query: [String: String] = [:]
        for item in c.queryItems ?? [] {
            guard Self.parameters.contains(item.name) else {
                // A parameter's name is said (a misspelling); anything else is not repeated.
                let named = item.name.count <= 40 && item.name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }
                throw bad(
                    "the postgres URL has \(named ? "the parameter '\(item.name)'" : "a parameter"), which this server does not use; it knows "
                        + Self.parameters.joined(separator: ", "))
            }
            guard query[item.name] == nil else { throw bad("the postgres URL gives '\(item.name)' twice") }
            guard let value = item.value, !value.isEmpty else { throw bad("the postgres URL's '\(item.name)' is empty") }
            query[item.name] = value
        }
        // (The range is in the URL as parsed, which may have percent-encoded characters of `url`.)
        if c.port == nil, let range = c.rangeOfPort, let parsed = c.string, !parsed[range].isEmpty {
            throw bad("the postgres URL's port is not a number of 1-65535 (\(encodePassword))")
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
            guard !h.hasPrefix("/"), c.percentEncodedHost?.lowercased().hasPrefix("%2f") != true else {
                throw bad("the postgres URL names a unix socket directory as its host: give it as ?host=/directory")
            }
            host = h.hasPrefix("[") && h.hasSuffix("]") ? String(h.dropFirst().dropLast()) : h
        }
        username = c.user ?? "postgres"
        let path = c.path.hasPrefix("/") ? String(c.path.dropFirst()) : c.path
        database = path.isEmpty ? username : path
        rootCertificates = query["sslrootcert"]
        if let mode = query["sslmode"] {
            guard let m = TLSMode(rawValue: mode) else {
                throw bad(
                    "the postgres URL's sslmode '\(mode)' is not one of "
                        + TLSMode.allCases.map(\.rawValue).joined(separator: ", "))
            }
            tlsMode = m
        } else {
            tlsMode = rootCertificates == "system" ? .verifyFull : .prefer
        }
        if rootCertificates == "system", tlsMode != .verifyFull {
            throw bad(
                "the postgres URL's sslrootcert=system trusts every CA of the system's, so it needs sslmode=verify-full "
                    + "(the name checked too), not \(tlsMode.rawValue); give the database's own CA file to check a certificate without its name")
        }
        if rootCertificates == nil, tlsMode == .verifyCA || tlsMode == .verifyFull {
            throw bad(
                "the postgres URL's sslmode=\(tlsMode.rawValue) needs sslrootcert: the CA file that signed the database's certificate"
                    + (tlsMode == .verifyFull ? ", or sslrootcert=system for the system's CAs" : ""))
        }
        clientCertificate = query["sslcert"]
        clientKey = query["sslkey"]
        guard (clientCertificate == nil) == (clientKey == nil) else {
            throw bad("the postgres URL gives \(clientCertificate == nil ? "sslkey without sslcert" : "sslcert without sslkey"): a client certificate needs both")
        }
        if socketDirectory != nil, tlsMode == .require || tlsMode == .verifyCA || tlsMode == .verifyFull {
            throw bad("the postgres URL names a unix socket ('host' parameter), which has no TLS, and sslmode=\(tlsMode.rawValue)")
        }
        // An empty password is none, as in libpq: the password file is read then.
        password = c.password.flatMap { $0.isEmpty ? nil : $0 }
        if password == nil, let file = query["passfile"] {
            passwordFile = file
            self = try rereadingPassword()
        }
    }

    /// The URL's parameters that name files, with their values.
    private var fileParameters: [(name: String, value: String)] {
        [("passfile", passwordFile), ("sslrootcert", rootCertificates), ("sslcert", clientCertificate), ("sslkey", clientKey)]
            .compactMap { name, value in value.map { (name, $0) } }
    }

    /// The parameters naming files read when connections are made from this location: the TLS
    /// ones only when TLS is used, `sslrootcert` not when it is `system`.
    public var files: [String] {
        let usesTLS = socketDirectory == nil && tls.use
        return fileParameters.filter { p in
            p.name == "passfile" || (usesTLS && !(p.name == "sslrootcert" && p.value == "system"))
        }.map(\.name)
    }

    /// The host a password file's line names for this location: the host, or for a unix socket
    /// its directory, or `localhost` for the default directories (Debian's libpq's and
    /// PostgreSQL's own), as libpq matches them.
    var passwordFileHost: String {
        guard let socketDirectory else { return host }
        return ["/var/run/postgresql", "/tmp"].contains(socketDirectory) ? "localhost" : socketDirectory
    }

    /// This location with the password read again from `passwordFile` (itself when it has none).
    /// A file with no line for this database is refused (libpq would connect without a
    /// password): at a reload, a file being rewritten must not take the password away.
    func rereadingPassword() throws -> PostgresLocation {
        guard let passwordFile else { return self }
        var l = self
        guard
            let password = try Self.password(
                inFile: passwordFile, host: passwordFileHost, port: port, database: database, username: username)
        else {
            throw StoreError.badDatabaseURL(
                "the postgres URL's passfile \(passwordFile) has no line for \(passwordFileHost):\(port):\(database):\(username)")
        }
        l.password = password
        return l
    }

    /// Where the store is and how it is reached, without the password (for logs, and to give
    /// again: the parameters are file paths and modes, no secret). `sslmode` always over TCP,
    /// so that a log says whether the connection is checked.
    public var description: String {
        let files = fileParameters.map { "\($0.name)=\(Self.encoded($0.value))" }
        let (user, db) = (Self.encoded(username), Self.encoded(database))
        if let socketDirectory {  // (no TLS on a socket: no sslmode)
            return "postgres://\(user)@:\(port)/\(db)?" + (["host=\(Self.encoded(socketDirectory))"] + files).joined(separator: "&")
        }
        let h = host.contains(":") ? "[\(host)]" : host
        return "postgres://\(user)@\(h):\(port)/\(db)?" + (["sslmode=\(tlsMode.rawValue)"] + files).joined(separator: "&")
    }

    /// `text` percent-encoded but for the characters a path needs (letters, digits, `-._~/`):
    /// the description reads back as the same URL, and holds no `&`, `#`, `'` or space that a
    /// URL or a shell would take for something else.
    static func encoded(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: Self.plain) ?? text
    }
    private static let plain = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~/")

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
                config.trustRoots = .certificates(
                    try Self.read("sslrootcert", file, as: "PEM certificates") { try NIOSSLCertificate.fromPEMFile($0) })
            }
            if let clientCertificate, let clientKey {
                config.certificateChain = try Self.read("sslcert", clientCertificate, as: "PEM certificates") {
                    try NIOSSLCertificate.fromPEMFile($0)
                }.map { .certificate($0) }
                try Self.checkSecretFile(clientKey, parameter: "sslkey", rootGroupMayRead: true)
                config.privateKey = .privateKey(
                    try Self.read("sslkey", clientKey, as: "a PEM private key") { try NIOSSLPrivateKey(file: $0, format: .pem) })
            }
            let context: NIOSSLContext
            do {
                context = try NIOSSLContext(configuration: config)
            } catch {
                throw StoreError.badDatabaseURL(
                    "TLS for the postgres URL's sslmode=\(tlsMode.rawValue) could not be set up (\(error))"
                        + (rootCertificates == "system" ? ": the system's CA certificates may be missing (apt-get install ca-certificates)" : ""))
            }
            mode = tls.required ? .require(context) : .prefer(context)
        }
        return PostgresConnection.Configuration(
            host: host, port: port, username: username, password: password, database: database, tls: mode)
    }

    /// `load(file)`, its failure said as the parameter's.
    static func read<T>(_ parameter: String, _ file: String, as what: String, _ load: (String) throws -> T) throws -> T {
        guard FileManager.default.isReadableFile(atPath: file) else {
            throw StoreError.badDatabaseURL("the postgres URL's \(parameter) \(file) cannot be read")
        }
        do {
            let value = try load(file)
            if let list = value as? [Any], list.isEmpty {
                throw StoreError.badDatabaseURL("the postgres URL's \(parameter) \(file) holds no \(what)")
            }
            return value
        } catch let error as StoreError {
            throw error
        } catch {
            throw StoreError.badDatabaseURL("the postgres URL's \(parameter) \(file) does not hold \(what) this server can read (\(error))")
        }
    }

    /// libpq's rule for a file holding a secret: a regular file (a symbolic link is followed),
    /// with no access for the group or others, but for a group read of a key file root owns
    /// (`rootGroupMayRead`: a key shared with the service's group).
    static func checkSecretFile(_ file: String, parameter: String, rootGroupMayRead: Bool) throws {
        var st = stat()
        guard stat(file, &st) == 0 else { throw StoreError.badDatabaseURL("the postgres URL's \(parameter) \(file) cannot be read") }
        guard st.st_mode & S_IFMT == S_IFREG else {
            throw StoreError.badDatabaseURL("the postgres URL's \(parameter) \(file) is not a regular file")
        }
        let mode = Int(st.st_mode & 0o777)
        let groupRead = rootGroupMayRead && st.st_uid == 0
        let allowed = groupRead ? 0o740 : 0o700
        guard mode & ~allowed == 0 else {
            throw StoreError.badDatabaseURL(
                "the postgres URL's \(parameter) \(file) has mode \(String(mode, radix: 8)): it holds a secret and must be 0600"
                    + (groupRead ? " (or 0640, owned by root)" : "") + "; chmod 600 it")
        }
    }

    /// The password of the first line of `file` (libpq's password file) that matches, or nil.
    static func password(inFile file: String, host: String, port: Int, database: String, username: String) throws -> String? {
        try checkSecretFile(file, parameter: "passfile", rootGroupMayRead: false)
        let text = try read("passfile", file, as: "UTF-8 text") { try String(contentsOfFile: $0, encoding: .utf8) }
        let wanted = [host, String(port), database, username]
        for line in text.split(whereSeparator: \.isNewline) where !line.hasPrefix("#") {
            let fields = passfileFields(Substring(line))
            guard fields.count == 5 else { continue }
            if zip(fields.prefix(4), wanted).allSatisfy({ $0.any || $0.text == $1 }) { return fields[4].text }
        }
        return nil
    }

    /// A password file line's fields as libpq reads them: split at each `:` not escaped by a
    /// backslash (`\:` and `\\` are the characters), the password ending at the fifth field's
    /// end like the others; `any`: the field is a lone `*`, not escaped.
    static func passfileFields(_ line: Substring) -> [(text: String, any: Bool)] {
        var fields: [(text: String, any: Bool)] = []
        var current = ""
        var escapedAny = false
        var escaped = false
        for ch in line {
            if escaped {
                current.append(ch)
                escapedAny = true
                escaped = false
            } else if ch == "\\" {
                escaped = true
            } else if ch == ":" {
                fields.append((current, current == "*" && !escapedAny))
                if fields.count == 5 { return fields }
                current = ""
                escapedAny = false
            } else {
                current.append(ch)
            }
        }
        if escaped { current.append("\\") }  // a lone backslash at the end is kept, as by libpq
        fields.append((current, current == "*" && !escapedAny))
        return fields
    }
}
