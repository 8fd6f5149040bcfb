import ArgumentParser
import FleetStore
import Foundation

/// `ksmfleet-server migrate-data --from sqlite:PATH --to postgres://…`: copies a SQLite
/// installation's data into an empty PostgreSQL database and says what it copied.
struct MigrateData: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate-data",
        abstract: "Copy a SQLite store's data into an empty PostgreSQL database.",
        discussion: """
            Reads every table of the SQLite store in one snapshot (the server may keep running: \
            what it stores after the snapshot is not copied, so stop it first for a final move; \
            its agents spool meanwhile) and writes it into the PostgreSQL database in one \
            transaction, after bringing both schemas up to date. Refuses a database that \
            already holds data. Then start the server with --database and the same --data-dir \
            (the admin token, credentials and node tokens come along).
            """)

    @Option(
        help: ArgumentHelp(
            "The SQLite store: sqlite:PATH, the file's path, or the server's data directory.", valueName: "store"))
    var from: String

    @Option(
        help: ArgumentHelp(
            "The PostgreSQL database, empty (its schema is applied here): postgres://user:password@host:port/database. Default: KSMFLEET_DATABASE (keeps the password out of the process list).",
            valueName: "url"))
    var to: String?

    /// `--to`, else KSMFLEET_DATABASE (as the server reads it).
    var targetURL: String? {
        if let to { return to }
        let env = ProcessInfo.processInfo.environment["KSMFLEET_DATABASE"] ?? ""
        return env.isEmpty ? nil : env
    }

    func validate() throws {
        guard let url = targetURL else {
            throw ValidationError("name the PostgreSQL database with --to or KSMFLEET_DATABASE")
        }
        let location: PostgresLocation?
        do {
            location = try PostgresLocation(url: url)
        } catch {
            // Why, without the URL: it may hold a password.
            throw ValidationError("--to (or KSMFLEET_DATABASE): \(error)")
        }
        guard location != nil else {
            throw ValidationError(
                "--to (or KSMFLEET_DATABASE) must be a postgres://user:password@host:port/database URL")
        }
    }

    /// The SQLite file `--from` names.
    var sourcePath: String {
        let path = from.hasPrefix("sqlite:") ? String(from.dropFirst("sqlite:".count)) : from
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
            return URL(fileURLWithPath: path).appending(path: "ksmfleet.sqlite").path
        }
        return path
    }

    func run() async throws {
        let path = sourcePath
        // Checked by validate().
        guard let url = targetURL else { throw ExitCode.validationFailure }
        // Opening a missing file would create an empty store and copy nothing.
        guard FileManager.default.fileExists(atPath: path) else {
            fail("no SQLite database at \(path)")
        }
        let started = ContinuousClock.now
        let copies: [TableCopy]
        let location: String
        do {
            let source = try FleetDatabase.open("sqlite:" + path)
            defer { try? source.close() }
            let target = try FleetDatabase.open(url)
            defer { try? target.close() }
            location = target.path  // the URL without its password
            standardError("copying sqlite:\(path) to \(location) …\n")
            copies = try await FleetDatabase.copyData(from: source, to: target) { table, rows in
                standardError("  \(table): \(rows) \(rows == 1 ? "row" : "rows")\n")
            }
            standardError("gathering the planner's statistics of the copied tables (ANALYZE) …\n")
            try await target.analyze()
        } catch {
            fail(FleetDatabase.describe(error))
        }
        let elapsed = ContinuousClock.now - started
        print(Self.summary(copies, source: path, target: location, elapsed: elapsed))
    }

    /// The table of rows copied, the total, the time, and how to start the server on the copy.
    static func summary(_ copies: [TableCopy], source: String, target: String, elapsed: Duration) -> String {
        let width = max(24, (copies.map(\.table.count).max() ?? 0) + 2)
        let total = copies.reduce(0) { $0 + $1.rows }
        func line(_ name: String, _ rows: String) -> String {
            name.padding(toLength: width, withPad: " ", startingAt: 0)
                + String(repeating: " ", count: max(0, 12 - rows.count))
                + rows
        }
        var lines = ["copied sqlite:\(source) to \(target)", "", line("table", "rows")]
        for c in copies.sorted(by: { $0.table < $1.table }) { lines.append(line(c.table, "\(c.rows)")) }
        lines.append(line("total (\(copies.count) tables)", "\(total)"))
        lines.append(
            "not copied: \(FleetDatabase.tablesRemadeAfterCopy.joined(separator: ", ")) (the rollup service makes them again)")
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        lines.append("")
        lines.append("took \(String(format: "%.1f", seconds)) s")
        let dataDir = URL(fileURLWithPath: source).deletingLastPathComponent().path
        lines.append("The server can now run on PostgreSQL:")
        lines.append("  ksmfleet-server --data-dir \(dataDir) --database '\(target)'")
        lines.append(
            "A password in the URL is not printed: pass the URL you gave here, or set KSMFLEET_DATABASE instead of --database.")
        return lines.joined(separator: "\n")
    }

    private func fail(_ message: String) -> Never {
        standardError("ksmfleet-server migrate-data: \(message)\n")
        Foundation.exit(1)
    }
}

private func standardError(_ text: String) {
    FileHandle.standardError.write(Data(text.utf8))
}
