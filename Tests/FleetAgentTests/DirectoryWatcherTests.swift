import FleetAgent
import FleetTestSupport
import Foundation
import Synchronization
import Testing
import TestSupport

@Suite("Directory watcher (inotify kicks)")
struct DirectoryWatcherTests {
    @Test("new entries (created or moved in) are events; a directory created later is picked up")
    func events() async throws {
        let root = makeTemporaryDirectory(prefix: "ksmfleet-watch").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        let existing = root + "/qemu"
        let later = root + "/sbs"
        try FileManager.default.createDirectory(atPath: existing, withIntermediateDirectories: true)
        let watcher = DirectoryWatcher(paths: [existing, later])
        #expect(watcher.start())
        let seen = Mutex<[DirectoryWatcher.Event]>([])
        let reader = Task {
            for await e in watcher.events { seen.withLock { $0.append(e) } }
        }
        try await Task.sleep(for: .milliseconds(300))
        try Data().write(to: URL(fileURLWithPath: existing + "/vm-1.xml"))
        try Data().write(to: URL(fileURLWithPath: root + "/staged"))
        try FileManager.default.moveItem(atPath: root + "/staged", toPath: existing + "/vm-2.xml")
        let both = await waitUntil(timeout: .seconds(5)) { seen.withLock { $0.count } >= 2 }
        #expect(both)
        #expect(seen.withLock { $0.map(\.name) } == ["vm-1.xml", "vm-2.xml"])

        // The second directory appears after the watcher started (e.g. /run/vc/sbs on first use).
        try FileManager.default.createDirectory(atPath: later, withIntermediateDirectories: true)
        let picked = await waitUntil(timeout: .seconds(10), poll: .milliseconds(200)) {
            try? Data().write(to: URL(fileURLWithPath: later + "/sandbox-\(UUID().uuidString.prefix(4))"))
            return seen.withLock { $0.contains { $0.directory == later } }
        }
        #expect(picked, "a directory created after start was not watched")
        watcher.stop()
        _ = await reader.value  // the stream ends once the thread stops
    }
}
