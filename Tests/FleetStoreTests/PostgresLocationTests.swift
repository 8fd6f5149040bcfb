import Foundation
import Logging
import PostgresNIO
import Synchronization
import TestSupport
import Testing

@testable import FleetStore

/// The database URL as libpq reads it: the TLS modes, the certificate and password files, a unix
/// socket; anything else refused with the parameter named and the password never repeated.
@Suite struct PostgresURLTests {
    static func location(_ url: String) throws -> PostgresLocation { try #require(try PostgresLocation(url: url)) }

    /// The error a URL gets, as the operator reads it.
    static func refusal(_ url: String) -> String? {
        do {
            _ = try PostgresLocation(url: url)
            return nil
        } catch {
            return "\(error)"
        }
    }

    @Test func theModesAreLibpqs() throws {
        #expect(try PostgresLocation(url: "/var/lib/ksmfleet/ksmfleet.sqlite") == nil, "a SQLite path")
        let plain = try Self.location("postgres://ksm:pw@db.example:6432/fleet")
        #expect(plain.tlsMode == .prefer, "libpq's default: TLS when the server offers it")
        #expect(plain.host == "db.example" && plain.port == 6432 && plain.database == "fleet" && plain.password == "pw")
        #expect(plain.tls.use && !plain.tls.required && plain.tls.verification == .none)
        for mode in PostgresLocation.TLSMode.allCases {
            // A CA file: verify-ca and verify-full need one, and it makes every TLS mode check the
            // chain, as in libpq.
            let l = try Self.location("postgresql://ksm@db.example/fleet?sslmode=\(mode.rawValue)&sslrootcert=/etc/ksmfleet/pg-ca.crt")
            #expect(l.tlsMode == mode && l.rootCertificates == "/etc/ksmfleet/pg-ca.crt")
            let tls = l.tls
            switch mode {
            case .disable: #expect(!tls.use)
            case .allow, .prefer: #expect(tls.use && !tls.required && tls.verification == .noHostnameVerification)
            case .require, .verifyCA: #expect(tls.required && tls.verification == .noHostnameVerification)
            case .verifyFull: #expect(tls.required && tls.verification == .fullVerification)
            }
            guard mode != .verifyCA, mode != .verifyFull else { continue }
            let unchecked = try Self.location("postgresql://ksm@db.example/fleet?sslmode=\(mode.rawValue)").tls
            #expect(unchecked.use == (mode != .disable) && unchecked.required == (mode == .require) && unchecked.verification == .none)
        }
        // The system's CAs vouch for anyone's name: only with the name checked, and then by default.
        let system = try Self.location("postgres://ksm@db.example/fleet?sslrootcert=system")
        #expect(system.tlsMode == .verifyFull && system.tls.verification == .fullVerification)
        let v6 = try Self.location("postgres://ksm@[::1]:5433/fleet")
        #expect(v6.host == "::1" && v6.description == "postgres://ksm@[::1]:5433/fleet?sslmode=prefer")
        // What the logs and migrate-data show: the parameters (paths, no secret), not the password.
        let full = try Self.location("postgres://ksm:pw@db.example/fleet?sslmode=verify-full&sslrootcert=/etc/ca.crt&sslcert=/etc/c.crt&sslkey=/etc/c.key")
        #expect(full.description == "postgres://ksm@db.example:5432/fleet?sslmode=verify-full&sslrootcert=/etc/ca.crt&sslcert=/etc/c.crt&sslkey=/etc/c.key")
        #expect(try Self.location("postgres://ksm@/fleet?host=/srv/pg").description == "postgres://ksm@:5432/fleet?host=/srv/pg")
        // The files a SIGHUP reads again: the TLS ones only with TLS; sslrootcert=system is the
        // system's store, not a file, while a client certificate is a file whatever its name.
        #expect(full.files == ["sslrootcert", "sslcert", "sslkey"])
        #expect(system.files.isEmpty)
        #expect(try Self.location("postgres://ksm@db.example/fleet?sslrootcert=system&sslcert=system&sslkey=/etc/c.key").files == ["sslcert", "sslkey"])
        #expect(try Self.location("postgres://ksm@db.example/fleet?sslmode=disable&sslrootcert=/etc/ca.crt").files.isEmpty)
        // It reads back as the same URL (migrate-data prints it to paste), its values encoded:
        // no '&', '#', quote or space a URL or a shell would take for something else.
        for url in [
            "postgres://ksm@db.example:6432/fleet?sslmode=require&sslrootcert=/etc/pg%20ca/it's%26%23.crt",
            "postgres://ksm@:5433/fleet?host=/srv/pg%20sock&passfile=/etc/ksmfleet/pgpass",
            "postgres://ksm@[::1]/fl%40eet?sslmode=disable",
        ] {
            let l = try Self.location(url.contains("passfile") ? url.replacingOccurrences(of: "passfile=/etc/ksmfleet/pgpass", with: "sslmode=prefer") : url)
            let again = try Self.location(l.description)
            #expect(again.description == l.description && again.host == l.host && again.port == l.port && again.database == l.database)
            #expect(again.rootCertificates == l.rootCertificates && again.socketDirectory == l.socketDirectory && again.tlsMode == l.tlsMode)
            #expect(!l.description.contains(" ") && !l.description.contains("'") && !l.description.contains("#"), "\(l.description)")
        }
        #expect(try Self.location("postgres://db.example").database == "postgres" && Self.location("postgres://db.example").username == "postgres")
    }

    @Test func whatTheStoreCannotUseIsRefusedByName() throws {
        let secret = "hunter2"
        let cases: [(String, String)] = [
            ("postgres://ksm:\(secret)@db/fleet?sslmode=requre", "sslmode 'requre' is not one of disable, allow, prefer, require"),
            ("postgres://ksm:\(secret)@db/fleet?ssl=true", "the parameter 'ssl', which this server does not use"),
            ("postgres://ksm:\(secret)@db/fleet?sslmode=require&sslmode=disable", "gives 'sslmode' twice"),
            ("postgres://ksm:\(secret)@db/fleet?sslrootcert=", "'sslrootcert' is empty"),
            ("postgres://ksm:\(secret)@db/fleet?sslcert=/etc/c.crt", "sslcert without sslkey"),
            ("postgres://ksm:\(secret)@db/fleet?sslkey=/etc/c.key", "sslkey without sslcert"),
            ("postgres://ksm:\(secret)@db/fleet?sslmode=verify-ca", "sslmode=verify-ca needs sslrootcert"),
            ("postgres://ksm:\(secret)@db/fleet?sslmode=verify-full", "or sslrootcert=system for the system's CAs"),
            ("postgres://ksm:\(secret)@db/fleet?sslmode=verify-ca&sslrootcert=system", "needs sslmode=verify-full"),
            ("postgres://ksm:\(secret)@db/fleet?sslmode=require&sslrootcert=system", "needs sslmode=verify-full"),
            ("postgres://ksm:\(secret)@/fleet", "has no host"),
            ("postgres://ksm:\(secret)@%2Frun%2Fpostgresql/fleet", "give it as ?host=/directory"),
            ("postgres://ksm:\(secret)@db/fleet?host=run/postgresql", "absolute path of the unix socket's directory"),
            ("postgres://ksm:\(secret)@db/fleet?host=/run/postgresql", "both a host and a unix socket directory"),
            ("postgres://ksm:\(secret)@/fleet?host=/run/postgresql&sslmode=require", "which has no TLS, and sslmode=require"),
            ("postgres://ksm:\(secret)@db:70000/fleet", "port 70000 is not 1-65535"),
            ("postgres://ksm:\(secret)@db:99999999999999999999/fleet", "port is not a number"),
            // A password with a reserved character, not percent-encoded: its rest would read as
            // a parameter, a database or a fragment.
            ("postgres://ksm:?\(secret)@db/fleet", "must be percent-encoded"),
            ("postgres://ksm:12345/\(secret)@db/fleet", "must be percent-encoded"),
            ("postgres://ksm:ab#\(secret)@db/fleet", "must be percent-encoded"),
            ("postgres://ksm:pw@db/fleet?\(secret)-x=1", "has a parameter, which this server does not use"),
        ]
        for (url, words) in cases {
            let refusal = try #require(Self.refusal(url), "\(url) was taken")
            #expect(refusal.contains(words), "\(url): \(refusal)")
            #expect(!refusal.contains(secret), "the refusal repeats the password: \(refusal)")
        }
        #expect(try Self.location("postgres://ksm:ab%2F%3F%23%40%3Acd@db/fleet").password == "ab/?#@:cd", "percent-encoded")
        // The user part ends at the last '@' before the first '/': a password with an '@' and a
        // '/' puts its pieces in the host and the database. Refused, naming none of them.
        for url in ["postgres://ksm:Zq9@Xv7/Wp3@db.example:5432/fleet", "postgres://:Zq9@Xv7/Wp3@db/fleet", "postgres://:Zq9/Wp3@db/fleet?x=1"] {
            let refusal = try #require(Self.refusal(url), "\(url) was taken")
            #expect(refusal.contains("must be percent-encoded"), "\(refusal)")
            #expect(!["Zq9", "Xv7", "Wp3"].contains { refusal.contains($0) }, "\(refusal)")
        }
        // Through the store's entry point and the server's error text alike.
        #expect(throws: StoreError.self) { try FleetDatabase.open("postgres://ksm:\(secret)@db/fleet?sslmode=on") }
        #expect(!"\(try Self.location("postgres://ksm:\(secret)@db/fleet"))".contains(secret))
    }

    /// A file whose contents and mode are `text` and `mode`, in `dir`.
    @discardableResult
    static func file(_ text: String, mode: Int, in dir: URL, _ name: String) throws -> String {
        let path = dir.appending(path: name).path
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: path)
        return path
    }

    static func scratch(_ name: String) throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appending(path: "ksmfleet-\(name)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    @Test func thePasswordFileIsLibpqsAndMustBePrivate() throws {
        let dir = try Self.scratch("passfile")
        defer { try? FileManager.default.removeItem(at: dir) }
        let lines = #"""
            # host:port:database:user:password
            other.example:5432:fleet:ksm:not-this-one
            db.example:5432:other:ksm:nor-this
            \*:5432:fleet:ksm:an-escaped-star-is-a-star
            db.example:*:fleet:ksm:pa\:ss\\word:the-rest-ignored
            /srv/pg:5432:fleet:ksm:by-the-directory
            localhost:5432:fleet:ksm:local-one
            *:*:*:*:the-catch-all
            """#
        let pass = try Self.file(lines, mode: 0o600, in: dir, "pgpass")
        func password(_ url: String) throws -> String? { try Self.location(url + "passfile=\(pass)").password }
        #expect(try password("postgres://ksm@db.example/fleet?") == #"pa:ss\word"#)
        #expect(try password("postgres://ksm@db.example/elsewhere?") == "the-catch-all")
        #expect(try password("postgres://ksm@*/fleet?") == "an-escaped-star-is-a-star")
        #expect(try password("postgres://ksm:given@db.example/fleet?") == "given", "the URL's own wins")
        // A unix socket matches by its directory; the default directories as localhost, as in libpq.
        #expect(try password("postgres://ksm@/fleet?host=/srv/pg&") == "by-the-directory")
        #expect(try password("postgres://ksm@/fleet?host=/var/run/postgresql&") == "local-one")
        let none = try Self.file("other.example:*:*:*:x\n", mode: 0o600, in: dir, "none")
        // No line for the database: refused (libpq would connect without a password).
        #expect(Self.refusal("postgres://ksm@db.example/fleet?passfile=\(none)")?.contains("has no line for db.example:5432:fleet:ksm") == true)
        // An empty password in the URL is none: the file's (libpq's rule).
        #expect(try password("postgres://ksm:@db.example/fleet?") == #"pa:ss\word"#)
        // With a user in the URL, an '@' in a file's path is the path's.
        let at = try Self.file("*:*:*:*:from-the-at-file\\\n", mode: 0o600, in: dir, "team@prod")
        #expect(try Self.location("postgres://ksm@db.example/fleet?passfile=\(at)").password == "from-the-at-file\\", "a lone backslash at the end is kept")
        // Through a symbolic link (as a Kubernetes secret volume mounts it): the file's own mode.
        try FileManager.default.createSymbolicLink(atPath: dir.appending(path: "link").path, withDestinationPath: pass)
        #expect(try Self.location("postgres://ksm@db.example/fleet?passfile=\(dir.path)/link").password == #"pa:ss\word"#)
        // Readable by others, or by the group (root's too): refused, saying how to mend it, without the password.
        for mode in [0o644, 0o640] {
            let open = try Self.file("*:*:*:*:leaked-secret\n", mode: mode, in: dir, "open-\(mode)")
            let refusal = try #require(Self.refusal("postgres://ksm@db.example/fleet?passfile=\(open)"))
            #expect(refusal.contains("has mode \(String(mode, radix: 8))") && refusal.contains("chmod 600"), "\(refusal)")
            #expect(!refusal.contains("leaked-secret"))
        }
        #expect(Self.refusal("postgres://ksm@db.example/fleet?passfile=\(dir.path)/missing")?.contains("cannot be read") == true)
        #expect(Self.refusal("postgres://ksm@db.example/fleet?passfile=\(dir.path)")?.contains("is not a regular file") == true)
    }

    @Test func certificateFilesAreCheckedWhenTheStoreOpens() throws {
        let dir = try Self.scratch("tlsfiles")
        defer { try? FileManager.default.removeItem(at: dir) }
        let (crt, key) = (dir.appending(path: "client.crt").path, dir.appending(path: "client.key").path)
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/openssl") else {
            try Test.cancel("openssl is missing (make test installs it)")
        }
        try TestStore.run(
            "/usr/bin/openssl",
            ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1", "-subj", "/CN=client",
             "-keyout", key, "-out", crt])
        let notPEM = try Self.file("not a certificate\n", mode: 0o644, in: dir, "ca.crt")
        let refusal = { (url: String) -> String? in
            do {
                _ = try Self.location(url).configuration()
                return nil
            } catch {
                return "\(error)"
            }
        }
        #expect(refusal("postgres://ksm@db/fleet?sslrootcert=\(notPEM)")?.contains("sslrootcert \(notPEM) does not hold PEM certificates") == true)
        #expect(refusal("postgres://ksm@db/fleet?sslrootcert=\(dir.path)/none.crt")?.contains("sslrootcert \(dir.path)/none.crt cannot be read") == true)
        #expect(refusal("postgres://ksm@db/fleet?sslrootcert=system") == nil, "the system's CAs")
        #expect(refusal("postgres://ksm@db/fleet?sslrootcert=\(crt)") == nil, "a CA file")
        #expect(refusal("postgres://ksm@db/fleet?sslmode=disable&sslrootcert=\(notPEM)") == nil, "no TLS, nothing read")
        // The client key: its mode checked before it is read, through a link as well.
        let url = "postgres://ksm@db/fleet?sslmode=require&sslcert=\(crt)&sslkey="
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: key)
        #expect(refusal(url + key)?.contains("sslkey \(key) has mode 644") == true, "\(refusal(url + key) ?? "taken")")
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: key)
        #expect(refusal(url + key) == nil)
        try FileManager.default.createSymbolicLink(atPath: dir.appending(path: "key-link").path, withDestinationPath: key)
        #expect(refusal(url + dir.appending(path: "key-link").path) == nil, "a link to a 0600 key")
        #expect(refusal(url + notPEM)?.contains("has mode 644") == true, "the mode first")
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: notPEM)
        #expect(refusal(url + notPEM)?.contains("does not hold a PEM private key") == true)
        // A group may read a key root owns (the service's group), not one another user owns.
        if getuid() == 0 {
            try FileManager.default.setAttributes([.posixPermissions: 0o640], ofItemAtPath: key)
            #expect(refusal(url + key) == nil, "0640, owned by root")
            try FileManager.default.setAttributes([.ownerAccountID: 65534], ofItemAtPath: key)
            #expect(refusal(url + key)?.contains("has mode 640") == true, "0640, owned by nobody")
        }
    }

    /// A server that answers TLS's request with "N" (TLS off) and records what the client sends
    /// next: `require` must give up, `prefer` go on in plain text.
    @Test(arguments: ["require", "prefer"]) func aServerWithoutTLS(mode: String) async throws {
        let server = try NoTLSServer()
        defer { server.stop() }
        let url = "postgres://ksm:pw@127.0.0.1:\(server.port)/fleet?sslmode=\(mode)"
        let engine = try PostgresEngine(location: try Self.location(url), logger: FleetDatabase.quietLogger)
        defer { engine.close() }
        do {
            let c = try engine.connect()
            try? await c.close()
            Issue.record("connected to a server that closes after the startup message")
        } catch let error as FleetStore.PostgresError {
            if mode == "require" {
                #expect(error.message.contains("PostgreSQL does not offer TLS"), "\(error.message)")
            }
        }
        let seen = server.seen()
        #expect(seen.first == "TLS asked", "\(seen)")
        #expect(seen.contains("startup in plain text") == (mode == "prefer"), "\(seen)")
    }
}

/// One connection on 127.0.0.1: reads PostgreSQL's SSLRequest, answers "N", then reads whether
/// a StartupMessage follows, and closes. Its own thread, every wait bounded (5 s).
final class NoTLSServer: Sendable {
    let port: Int
    private let fd: Int32
    private let log = Mutex<[String]>([])
    private let done = DispatchSemaphore(value: 0)

    func seen() -> [String] {
        _ = done.wait(timeout: .now() + 10)
        return log.withLock { $0 }
    }

    init() throws {
        let (fd, port) = try LoopbackSocket.listening(backlog: 1)
        self.fd = fd
        self.port = port
        let thread = Thread { [self] in
            defer { done.signal() }
            var timeout = timeval(tv_sec: 5, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            let c = accept(fd, nil, nil)
            guard c >= 0 else { return }
            defer { close(c) }
            setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            func read8() -> [UInt8]? {
                var buf = [UInt8](repeating: 0, count: 8)
                var got = 0
                while got < 8 {
                    let n = buf.withUnsafeMutableBytes { recv(c, $0.baseAddress! + got, 8 - got, 0) }
                    guard n > 0 else { return nil }
                    got += n
                }
                return buf
            }
            // SSLRequest: length 8, code 80877103.
            guard read8() == [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f] else { return }
            log.withLock { $0.append("TLS asked") }
            _ = send(c, [UInt8(ascii: "N")], 1, 0)
            // StartupMessage: its length, then protocol 3.0.
            if let m = read8(), m[4...] == [0, 3, 0, 0] { log.withLock { $0.append("startup in plain text") } }
        }
        thread.start()
    }

    func stop() {
        shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
    }
}

/// TLS to a real PostgreSQL (the test server speaks it: scripts/postgres-test-server.sh), and
/// its unix socket: each mode connects as libpq's would, or fails saying why.
@Suite struct PostgresTLSTests {
    struct Server {
        let host: String
        let port: Int
        /// The test server's TLS files: ca.crt, other-ca.crt, client.crt, client.key.
        let tls: String
        let url: String
    }

    static func server() throws -> Server {
        guard let url = TestStore.postgresURL else {
            try Test.cancel("PostgreSQL only: runs on the PostgreSQL pass of make test (KSMFLEET_TEST_POSTGRES)")
        }
        guard try TestStore.psql(url, "SHOW ssl").trimmingCharacters(in: .whitespacesAndNewlines) == "on" else {
            try Test.cancel("the test PostgreSQL has TLS off: scripts/postgres-test-server.sh starts one with it on")
        }
        let ca = try TestStore.psql(url, "SHOW ssl_ca_file").trimmingCharacters(in: .whitespacesAndNewlines)
        let c = try #require(URLComponents(string: url))
        return Server(host: try #require(c.host), port: c.port ?? 5432, tls: (ca as NSString).deletingLastPathComponent, url: url)
    }

    /// Whether a connection made from `url` is TLS's, and as whom; or the error it failed with.
    static func connect(_ url: String) async throws -> Result<(ssl: Bool, user: String), FleetStore.PostgresError> {
        let engine = try PostgresEngine(location: try #require(try PostgresLocation(url: url)), logger: FleetDatabase.quietLogger)
        defer { engine.close() }
        return try await connect(engine)
    }

    /// A new connection of `engine`: TLS's or not, and as whom; or the error it failed with.
    static func connect(_ engine: PostgresEngine) async throws -> Result<(ssl: Bool, user: String), FleetStore.PostgresError> {
        let connection: PostgresConnection
        do {
            connection = try engine.connect()
        } catch let error as FleetStore.PostgresError {
            return .failure(error)
        }
        var answer: (Bool, String)?
        let rows = try await connection.query(
            "SELECT COALESCE(s.ssl, false), current_user::text FROM pg_stat_ssl s WHERE s.pid = pg_backend_pid()",
            logger: FleetDatabase.quietLogger)
        for try await row in rows.decode((Bool, String).self) { answer = row }
        try await connection.close()
        let (ssl, user) = try #require(answer)
        return .success((ssl, user))
    }

    @Test func eachModeConnectsAsLibpqWould() async throws {
        let s = try Self.server()
        let ca = "\(s.tls)/ca.crt", other = "\(s.tls)/other-ca.crt"
        func url(_ host: String, _ query: String, user: String = "postgres") -> String {
            "postgres://\(user)@\(host):\(s.port)/postgres" + (query.isEmpty ? "" : "?" + query)
        }
        // The server's certificate names localhost, not 127.0.0.1; its CA is not the system's.
        let cases: [(String, Bool?, String)] = [
            (url(s.host, "sslmode=disable"), false, ""),
            (url(s.host, ""), true, ""),
            (url(s.host, "sslmode=allow"), true, ""),
            (url(s.host, "sslmode=require"), true, ""),
            (url(s.host, "sslmode=require&sslrootcert=\(ca)"), true, ""),
            (url(s.host, "sslmode=verify-ca&sslrootcert=\(ca)"), true, ""),
            (url("localhost", "sslmode=verify-full&sslrootcert=\(ca)"), true, ""),
            (url(s.host, "sslmode=require&sslrootcert=\(other)"), nil, "its certificate did not verify"),
            (url(s.host, "sslmode=prefer&sslrootcert=\(other)"), nil, "its certificate did not verify"),
            (url("localhost", "sslrootcert=system"), nil, "its certificate did not verify"),
            (url(s.host, "sslmode=verify-full&sslrootcert=\(ca)"), nil, "does not name the URL's host"),
        ]
        for (u, ssl, words) in cases {
            switch try await Self.connect(u) {
            case .success(let got):
                #expect(got.ssl == ssl, "\(u): TLS \(got.ssl)")
                #expect(ssl != nil, "\(u) connected; expected: \(words)")
            case .failure(let error):
                #expect(ssl == nil, "\(u): \(error)")
                #expect("\(error.message)".contains(words), "\(u): \(error.message)")
                #expect(error.unavailable != nil, "a connection that cannot be made is an outage to the server's requests")
            }
        }
    }

    /// A role PostgreSQL admits only with a client certificate (`cert` in its pg_hba.conf).
    @Test func aClientCertificateLogsIn() async throws {
        let s = try Self.server()
        try TestStore.psql(
            s.url, "DO $$BEGIN CREATE ROLE ksmfleet_tls_cert LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END$$")
        let base = "postgres://ksmfleet_tls_cert@localhost:\(s.port)/postgres?sslmode=verify-full&sslrootcert=\(s.tls)/ca.crt"
        let withCertificate = base + "&sslcert=\(s.tls)/client.crt&sslkey=\(s.tls)/client.key"
        let got = try await Self.connect(withCertificate).get()
        #expect(got.ssl && got.user == "ksmfleet_tls_cert")
        guard case .failure(let error) = try await Self.connect(base) else {
            Issue.record("logged in without the client certificate")
            return
        }
        #expect(error.message.contains("certificate"), "\(error.message)")
    }

    /// Every connection of a store opened on a verify-full URL is TLS's: the readers', the
    /// writer's, the background work's.
    @Test func aStoresConnectionsAreAllTLS() async throws {
        let s = try Self.server()
        let name = try #require(URLComponents(string: try TestStore.createDatabase(on: s.url))?.path.dropFirst())
        let url = "postgres://postgres@localhost:\(s.port)/\(name)?sslmode=verify-full&sslrootcert=\(s.tls)/ca.crt"
        let db = try FleetDatabase.open(url)
        defer { try? db.close() }
        _ = try await registerNode(db)
        _ = try await db.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM nodes") }
        _ = try await db.rollupCatchUp(now: Date())
        let seen = try TestStore.psql(
            s.url,
            """
            SELECT COUNT(*), COUNT(*) FILTER (WHERE s.ssl), COUNT(DISTINCT a.application_name)
            FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) WHERE a.datname = :'db'
            """, variables: ["db": String(name)]
        ).trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "|").compactMap { Int($0) }
        #expect(seen.count == 3 && seen[0] >= 3 && seen[0] == seen[1], "connections, TLS ones, names: \(seen)")
        #expect(seen.count == 3 && seen[2] >= 3, "the readers', the writer's and another's: \(seen)")
    }

    /// The files the URL names, read again (SIGHUP): a rotated password (`passfile`), a CA
    /// file replaced; a file refused keeps the ones read before.
    @Test func aReloadReadsTheFilesAgain() async throws {
        let s = try Self.server()
        try TestStore.psql(
            s.url,
            """
            DO $$BEGIN CREATE ROLE ksmfleet_password LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END$$;
            ALTER ROLE ksmfleet_password PASSWORD 'first-password';
            """)
        let dir = try PostgresURLTests.scratch("reload")
        defer { try? FileManager.default.removeItem(at: dir) }
        let pass = try PostgresURLTests.file("*:*:*:ksmfleet_password:first-password\n", mode: 0o600, in: dir, "pgpass")
        let ca = dir.appending(path: "ca.crt").path
        try FileManager.default.copyItem(atPath: "\(s.tls)/other-ca.crt", toPath: ca)
        let url = "postgres://ksmfleet_password@\(s.host):\(s.port)/postgres?sslmode=verify-ca&sslrootcert=\(ca)&passfile=\(pass)"
        let engine = try PostgresEngine(location: try #require(try PostgresLocation(url: url)), logger: FleetDatabase.quietLogger)
        defer { engine.close() }
        func failure() async throws -> String? {
            guard case .failure(let e) = try await Self.connect(engine) else { return nil }
            return e.message
        }
        #expect(try await failure()?.contains("its certificate did not verify") == true, "the other CA's file")
        // The database's CA in the file's place: taken at the reload, not before.
        try FileManager.default.removeItem(atPath: ca)
        try FileManager.default.copyItem(atPath: "\(s.tls)/ca.crt", toPath: ca)
        #expect(try engine.reloadConnectionFiles() == ["passfile", "sslrootcert"])
        let first = try await Self.connect(engine).get()
        #expect(first.ssl && first.user == "ksmfleet_password")
        // The password rotated: refused until the file has it and is read again.
        try TestStore.psql(s.url, "ALTER ROLE ksmfleet_password PASSWORD 'second-password'")
        #expect(try await failure()?.contains("password authentication failed") == true)
        try PostgresURLTests.file("*:*:*:ksmfleet_password:second-password\n", mode: 0o600, in: dir, "pgpass")
        try await Task.sleep(for: .milliseconds(1100))  // past the engine's memory of the last failure (1 s)
        #expect(try await failure()?.contains("password authentication failed") == true, "nothing read before the reload")
        try engine.reloadConnectionFiles()
        #expect(try await Self.connect(engine).get().user == "ksmfleet_password")
        // A file refused at the reload, or one without the database's line (half written): the
        // error says which, the files read before stay.
        try PostgresURLTests.file("other.example:*:*:*:x\n", mode: 0o600, in: dir, "pgpass")
        #expect(throws: StoreError.self) { try engine.reloadConnectionFiles() }
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: pass)
        #expect(throws: StoreError.self) { try engine.reloadConnectionFiles() }
        #expect(try await Self.connect(engine).get().user == "ksmfleet_password")
    }

    /// The server's unix socket (`host=/dir`): no TLS, no TCP.
    @Test func aUnixSocketConnects() async throws {
        let s = try Self.server()
        let dir = try TestStore.psql(s.url, "SHOW unix_socket_directories").trimmingCharacters(in: .whitespacesAndNewlines)
        let first = try #require(dir.split(separator: ",").first.map { $0.trimmingCharacters(in: .whitespaces) })
        let url = "postgres://postgres@:\(s.port)/postgres?host=\(first)"
        let l = try #require(try PostgresLocation(url: url))
        #expect(l.socketDirectory == first && l.port == s.port)
        let got = try await Self.connect(url).get()
        #expect(!got.ssl && got.user == "postgres")
    }
}
