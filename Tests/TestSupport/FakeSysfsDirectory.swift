import Foundation

/// A KSM sysfs directory of regular files, for running the real agent without touching the
/// kernel (`--sysfs DIR`). Values as a 6.x kernel shows them with KSM off.
public enum FakeSysfsDirectory {
    public static func create(at dir: String) throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let values: [String: String] = [
            "run": "0", "pages_to_scan": "100", "sleep_millisecs": "20", "pages_shared": "0", "pages_sharing": "0",
            "pages_unshared": "0", "pages_volatile": "0", "full_scans": "0", "merge_across_nodes": "1",
            "max_page_sharing": "256", "stable_node_chains": "0", "stable_node_dups": "0", "use_zero_pages": "0",
        ]
        for (name, value) in values { try write(dir, name, value) }
    }

    /// Sets one file, as the kernel would change a counter.
    public static func write(_ dir: String, _ name: String, _ value: String) throws {
        try "\(value)\n".write(toFile: "\(dir)/\(name)", atomically: false, encoding: .utf8)
    }

    public static func read(_ dir: String, _ name: String) -> String {
        ((try? String(contentsOfFile: "\(dir)/\(name)", encoding: .utf8)) ?? "").trimmingCharacters(
            in: .whitespacesAndNewlines)
    }
}
