import Foundation
import Logging
import PostgresNIO
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
            let l = try Self.location("postgresql://ksm@db.example/fleet?sslmode=\(mode.rawValue)")
            #expect(l.tlsMode == mode)
            let tls = l.tls
            switch mode {
            case .disable: #expect(!tls.use)
            case .allow, .prefer: #expect(tls.use && !tls.required && tls.verification == .none)
            case .require: #expect(tls.required && tls.verification == .none)
            case .verifyCA: #expect(tls.required && tls.verification == .noHostnameVerification)
            case .verifyFull: #expect(tls.required && tls.verification == .fullVerification)
            }
        }
        // A root certificate file makes every TLS mode check the chain, as in libpq.
        for mode in ["prefer", "require"] {
            let l = try Self.location("postgres://ksm@db.example/fleet?sslmode=\(mode)&sslrootcert=/etc/ksmfleet/pg-ca.crt")
            #expect(l.tls.verification == .noHostnameVerification && l.rootCertificates == "/etc/ksmfleet/pg-ca.crt")
        }
        let v6 = try Self.location("postgres://ksm@[::1]:5433/fleet")
        #expect(v6.host == "::1" && v6.description == "postgres://ksm@[::1]:5433/fleet")
        #expect(try Self.location("postgres://db.example").database == "postgres" && Self.location("postgres://db.example").username == "postgres")
    }

    @Test func whatTheStoreCannotUseIsRefusedByName() throws {
        let secret = "s3cret-Pa55"
        let cases: [(String, String)] = [
            ("postgres://ksm:\(secret)@db/fleet?sslmode=requre", "sslmode 'requre' is not one of disable, allow, prefer, require"),
            ("postgres://ksm:\(secret)@db/fleet?ssl=true", "the parameter 'ssl', which this server does not use"),
            ("postgres://ksm:\(secret)@db/fleet?sslmode=require&sslmode=disable", "gives 'sslmode' twice"),
            ("postgres://ksm:\(secret)@db/fleet?sslrootcert=", "'sslrootcert' is empty"),
            ("postgres://ksm:\(secret)@db/fleet?sslcert=/etc/c.crt", "sslcert without sslkey"),
            ("postgres://ksm:\(secret)@db/fleet?sslkey=/etc/c.key", "sslkey without sslcert"),
            ("postgres://ksm:\(secret)@/fleet", "has no host"),
            ("postgres://ksm:\(secret)@db/fleet?host=run/postgresql", "absolute path of the unix socket's directory"),
            ("postgres://ksm:\(secret)@db/fleet?host=/run/postgresql", "both a host and a unix socket directory"),
            ("postgres://ksm:\(secret)@/fleet?host=/run/postgresql&sslmode=verify-full", "which has no TLS, and sslmode=verify-full"),
            ("postgres://ksm:\(secret)@db:70000/fleet", "port 70000 is not 1-65535"),
        ]
        for (url, words) in cases {
            let refusal = try #require(Self.refusal(url), "\(url) was taken")
            #expect(refusal.contains(words), "\(url): \(refusal)")
            #expect(!refusal.contains(secret), "the refusal repeats the password: \(refusal)")
        }
        // Through the store's entry point and the server's error text alike.
        #expect(throws: StoreError.self) { try FleetDatabase.open("postgres://ksm:\(secret)@db/fleet?sslmode=on") }
        #expect(!"\(try Self.location("postgres://ksm:\(secret)@db/fleet"))".contains(secret))
    }

    /// A file whose contents and mode are `text` and `mode`, in a directory removed at the end.
    static func file(_ text: String, mode: Int, in dir: URL, _ name: String) throws -> String {
        let path = dir.appending(path: name).path
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: path)
        return path
    }

    @Test func thePasswordFileIsLibpqsAndMustBePrivate() throws {
        let dir = FileManager.default.temporaryDirectory.appending(path: "ksmfleet-passfile-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let lines = """
            # host:port:database:user:password
            other.example:5432:fleet:ksm:not-this-one
            db.example:5432:other:ksm:nor-this
            db.example:*:fleet:ksm:pa\\:ss\\\\word:with:colons
            *:*:*:*:the-catch-all
            """
        let pass = try Self.file(lines, mode: 0o600, in: dir, "pgpass")
        #expect(try Self.location("postgres://ksm@db.example/fleet?passfile=\(pass)").password == "pa:ss\\word:with:colons")
        #expect(try Self.location("postgres://ksm@db.example/elsewhere?passfile=\(pass)").password == "the-catch-all")
        #expect(try Self.location("postgres://ksm:given@db.example/fleet?passfile=\(pass)").password == "given", "the URL's own wins")
        // A unix socket matches as localhost, as in libpq.
        let local = try Self.file("localhost:5432:fleet:ksm:local-one\n", mode: 0o600, in: dir, "local")
        #expect(try Self.location("postgres://ksm@/fleet?host=/run/postgresql&passfile=\(local)").password == "local-one")
        #expect(try Self.location("postgres://ksm@db.example/fleet?passfile=\(local)").password == nil, "no line matches")
        // Readable by others: refused, saying how to mend it, without the password.
        let open = try Self.file("*:*:*:*:leaked-secret\n", mode: 0o644, in: dir, "open")
        let refusal = try #require(Self.refusal("postgres://ksm@db.example/fleet?passfile=\(open)"))
        #expect(refusal.contains("has mode 644") && refusal.contains("chmod 600"), "\(refusal)")
        #expect(!refusal.contains("leaked-secret"))
        #expect(Self.refusal("postgres://ksm@db.example/fleet?passfile=\(dir.path)/missing")?.contains("cannot be read") == true)
    }

    @Test func certificateFilesAreCheckedWhenTheStoreOpens() throws {
        let dir = FileManager.default.temporaryDirectory.appending(path: "ksmfleet-tlsfiles-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let notPEM = try Self.file("not a certificate\n", mode: 0o644, in: dir, "ca.crt")
        let refusal = { (url: String) -> String? in
            do {
                _ = try Self.location(url).configuration()
                return nil
            } catch {
                return "\(error)"
            }
        }
        #expect(refusal("postgres://ksm@db/fleet?sslrootcert=\(notPEM)")?.contains("sslrootcert \(notPEM) is not a PEM file") == true)
        #expect(refusal("postgres://ksm@db/fleet?sslrootcert=\(dir.path)/none.crt")?.contains("sslrootcert \(dir.path)/none.crt cannot be read") == true)
        #expect(refusal("postgres://ksm@db/fleet?sslrootcert=system") == nil, "the system's CAs")
        #expect(refusal("postgres://ksm@db/fleet?sslmode=disable&sslrootcert=\(notPEM)") == nil, "no TLS, nothing read")
        // A client key others may read is refused before it is read.
        let key = try Self.file("-----BEGIN PRIVATE KEY-----\n", mode: 0o644, in: dir, "client.key")
        let keyRefusal = refusal("postgres://ksm@db/fleet?sslmode=require&sslcert=\(notPEM)&sslkey=\(key)")
        #expect(keyRefusal?.contains("is not a PEM file") == true, "the certificate is read first: \(keyRefusal ?? "")")
        #expect(throws: StoreError.self) { try PostgresLocation.checkKeyFileMode(key) }
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: key)
        try PostgresLocation.checkKeyFileMode(key)
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
            (url(s.host, "sslmode=require&sslrootcert=\(other)"), nil, "not signed by a CA this server trusts"),
            (url(s.host, "sslmode=prefer&sslrootcert=\(other)"), nil, "not signed by a CA this server trusts"),
            (url("localhost", "sslmode=verify-full"), nil, "not signed by a CA this server trusts"),
            (url("localhost", "sslmode=verify-ca&sslrootcert=system"), nil, "not signed by a CA this server trusts"),
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
