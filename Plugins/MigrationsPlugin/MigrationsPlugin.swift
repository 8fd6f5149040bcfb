import Foundation
import PackagePlugin

/// Reads `migrations/*.sql` (SQLite) and `migrations/postgres/*.sql` at the package root and generates `Migrations.generated.swift`
/// in the target that uses the plugin, so the binary carries its schema and never reads the
/// source tree at run time. A new SQL file is picked up by the next build (see below how).
@main
struct MigrationsPlugin: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: any Target) async throws -> [Command] {
        let dir = context.package.directoryURL.appending(path: "migrations")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        let pgDir = dir.appending(path: "postgres")
        let pgNames = (try? FileManager.default.contentsOfDirectory(atPath: pgDir.path)) ?? []
        let inputs = names.filter { $0.hasSuffix(".sql") }.sorted().map { dir.appending(path: $0) }
            + pgNames.filter { $0.hasSuffix(".sql") }.sorted().map { pgDir.appending(path: $0) }
        let dirs = [dir, pgDir].filter { FileManager.default.fileExists(atPath: $0.path) }
        let output = context.pluginWorkDirectoryURL.appending(path: "Migrations.generated.swift")
        // SwiftPM does not evaluate this plugin again when a file is added to the directories
        // (only when the manifest or the plugin changes), so the file list above can be stale.
        // The command therefore gets the directories, which it reads when it runs, and has them
        // as inputs too: adding a file changes the directory, and the command runs again.
        return [
            .buildCommand(
                displayName: "Embedding SQL migrations",
                executable: try context.tool(named: "MigrationsGen").url,
                arguments: [output.path] + dirs.map(\.path),
                inputFiles: inputs + dirs,
                outputFiles: [output])
        ]
    }
}
