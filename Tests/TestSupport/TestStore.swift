import Foundation

/// Which engine the store and server suites run on. `make test` runs them twice, at the same
/// time: on SQLite, and in two halves with `KSMFLEET_TEST_POSTGRES` naming each half's own
/// throwaway PostgreSQL, which `scripts/postgres-pass.sh` started (each data directory then gets
/// a database of its own in it).
public enum TestStore {
    /// The PostgreSQL server of this run, or nil (SQLite).
    public static let postgresURL: String? = {
        let v = ProcessInfo.processInfo.environment["KSMFLEET_TEST_POSTGRES"] ?? ""
        return v.isEmpty ? nil : v
    }()

    public static var isPostgres: Bool { postgresURL != nil }

    /// The store of a data directory: its SQLite file, or on PostgreSQL a database of its own,
    /// created on first use and remembered in `<dataDir>/test-database-url` (a server restarted
    /// on the same directory finds its data again).
    public static func location(for dataDir: URL) throws -> String {
        guard let postgresURL else { return dataDir.appending(path: "ksmfleet.sqlite").path }
        let file = dataDir.appending(path: "test-database-url")
        if let url = try? String(contentsOf: file, encoding: .utf8) {
            return url.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        try FileManager.default.createDirectory(at: dataDir, withIntermediateDirectories: true)
        let url = try createDatabase(on: postgresURL)
        try Data(url.utf8).write(to: file)
        return url
    }

    /// A new empty database on the server of `serverURL`; returns its URL.
    public static func createDatabase(on serverURL: String) throws -> String {
        let name = "ksmfleet_test_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(16).lowercased()
        try psql(serverURL, "CREATE DATABASE \(name)")
        guard var c = URLComponents(string: serverURL) else { throw TestStoreError(message: "bad URL \(serverURL)") }
        c.path = "/" + name
        return c.string!
    }

    /// Everything a data directory's store holds, as bytes to search for secrets: the SQLite
    /// file and its WAL, or a `pg_dump` of the PostgreSQL database.
    public static func storedBytes(of dataDir: URL) throws -> Data {
        guard isPostgres else {
            let file = dataDir.appending(path: "ksmfleet.sqlite")
            let wal = dataDir.appending(path: "ksmfleet.sqlite-wal")
            return try Data(contentsOf: file) + ((try? Data(contentsOf: wal)) ?? Data())
        }
        let bin = try FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql").sorted().last
            .map { "/usr/lib/postgresql/\($0)/bin/pg_dump" } ?? "/usr/bin/pg_dump"
        return Data(try run(bin, [try location(for: dataDir)]).utf8)
    }

    /// Runs SQL on a data directory's store with psql (PostgreSQL), `variables` bound as psql
    /// variables (`:'name'` in the SQL quotes one as a literal). Killed after `psqlLimit`
    /// seconds: a PostgreSQL frozen by an outage test (SIGSTOP) answers nothing, and a psql
    /// waiting on it would hold its thread for good (the longest legitimate call here holds a
    /// table lock for 12 s).
    @discardableResult
    public static func psql(_ url: String, _ sql: String, variables: [String: String] = [:]) throws -> String {
        var arguments = [url, "-v", "ON_ERROR_STOP=1", "-qtA"]
        for (k, v) in variables.sorted(by: { $0.key < $1.key }) { arguments += ["-v", "\(k)=\(v)"] }
        // -c does not expand variables; the SQL goes in on standard input.
        return try run("/usr/bin/psql", arguments, input: sql, limit: psqlLimit)
    }

    static let psqlLimit = 120

    /// Runs `binary`; with `limit`, under /usr/bin/timeout, killed after that many seconds.
    /// Returns its standard output; throws with its standard error when it fails.
    @discardableResult
    public static func run(_ binary: String, _ arguments: [String], input: String? = nil, limit: Int? = nil) throws -> String {
        let p = Process()
        if let limit {
            p.executableURL = URL(fileURLWithPath: "/usr/bin/timeout")
            p.arguments = ["-k", "5", "\(limit)", binary] + arguments
        } else {
            p.executableURL = URL(fileURLWithPath: binary)
            p.arguments = arguments
        }
        let inPipe = Pipe()
        p.standardInput = input == nil ? FileHandle.nullDevice : inPipe
        let out = Pipe()
        let err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        if let input {
            inPipe.fileHandleForWriting.write(Data(input.utf8))
            try? inPipe.fileHandleForWriting.close()
        }
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let errText = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        if let limit, p.terminationStatus == 124 || p.terminationStatus == 137 {
            throw TestStoreError(message: "\(binary) gave no answer within \(limit) s on \(arguments.dropFirst()) \(input ?? "")")
        }
        guard p.terminationStatus == 0 else {
            throw TestStoreError(message: "\(binary) failed (\(p.terminationStatus)) on \(arguments.dropFirst()) \(input ?? ""): \(errText)")
        }
        return text.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

public struct TestStoreError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

extension TestStore {
    /// PostgreSQL's postmaster, found as the parent of one of its backends (`/proc/PID/stat`):
    /// nil when it is not a process of this machine, or not PostgreSQL's.
    public static func postmasterPID(ofBackend pid: pid_t) -> pid_t? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            // "pid (comm) state ppid ...": comm may hold spaces, so from the last ")".
            let ppid = stat.split(separator: ")").last?.split(separator: " ").dropFirst().first.flatMap({ pid_t($0) }),
            (try? String(contentsOfFile: "/proc/\(ppid)/comm", encoding: .utf8))?.hasPrefix("postgres") == true
        else { return nil }
        return ppid
    }
}
