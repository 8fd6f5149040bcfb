import FleetTestSupport
import Foundation
import KSMCore
import KSMNode
import TestSupport
import Testing

@testable import FleetAgent

/// The KSM settings found before the agent first wrote (throttle's idle level, `--restore-on-exit`)
/// are kept in the state directory, so that a restart does not take the agent's own for the host's.
@Suite("Initial KSM settings kept across restarts")
struct InitialCaptureTests {
    static let throttle = KSMConfig(run: .run, mode: .throttle)

    func stateDir() throws -> AgentStateDir {
        try AgentStateDir(makeTemporaryDirectory(prefix: "ksmfleet-capture").path + "/state")
    }

    /// A host whose own settings differ from the kernel defaults and from every throttle level.
    func kernel() -> FakeKSMKernel {
        let k = FakeKSMKernel()
        k.update {
            $0.pagesToScan = 321
            $0.sleepMillisecs = 42
        }
        return k
    }

    @Test("a restart after a kick keeps the first capture: the idle level and a restore put the host's settings back")
    func restartAfterAKick() async throws {
        let k = kernel()
        let original = try k.readStatus().tunables
        let dir = try stateDir()

        let first = try NodeEngine(kernel: k, clock: ManualClock(), logger: quietLogger(), stateDir: dir)
        await first.setConfig(Self.throttle, generation: 1)
        await first.kick(source: "test")
        let kicked = try k.readStatus()
        #expect(kicked.run == 1 && kicked.sleepMillisecs == 1 && kicked.pagesToScan != 321)
        #expect(StateFiles.mode(dir.initialSettingsFile) == 0o600)

        // The process ends without restoring (the default); a new one starts on the kicked kernel.
        let capture = LogCapture()
        let second = try NodeEngine(kernel: k, clock: ManualClock(), logger: capture.logger(), stateDir: dir)
        #expect(second.initialSettings == original)
        #expect(second.initialCaptureFile == dir.initialSettingsFile)
        #expect(second.initialCapture == first.initialCapture)
        let said = try #require(capture.messages(containing: "kept from an earlier start").first)
        #expect(said.metadata["file"] == dir.initialSettingsFile)
        #expect(said.metadata["captured"]?.contains("pages_to_scan=321 sleep_millisecs=42") == true)
        #expect(said.metadata["captured_at"] == "\(first.initialCapture.capturedAt)")

        // Idle (no kick in this process): the host's settings are back.
        let outcome = await second.setConfig(Self.throttle, generation: 1)
        #expect(outcome.applyError == nil)
        #expect(try k.readStatus().tunables == original)

        // And --restore-on-exit after another kick puts back the same.
        await second.kick(source: "test")
        #expect(try k.readStatus().tunables != original)
        try await second.restoreInitial()
        #expect(try k.readStatus().tunables == original)
    }

    @Test("after a reboot (another boot id) the kernel's settings are captured again and kept in place of the old ones")
    func rebootRecaptures() async throws {
        let k = kernel()
        let dir = try stateDir()
        let first = try NodeEngine(kernel: k, clock: ManualClock(), logger: quietLogger(), stateDir: dir)
        await first.setConfig(Self.throttle, generation: 1)
        await first.kick(source: "test")
        #expect(try dir.loadInitialCapture()?.bootID == "boot-1")
        // The host reboots: the kernel starts from its own settings (changed by the operator since).
        k.setBootID("boot-2")
        k.update {
            $0.run = 0
            $0.pagesToScan = 555
            $0.sleepMillisecs = 30
        }
        let booted = try k.readStatus().tunables
        let capture = LogCapture()
        let second = try NodeEngine(kernel: k, clock: ManualClock(), logger: capture.logger(), stateDir: dir)
        #expect(second.initialSettings == booted)
        #expect(second.initialCaptureFile == nil)
        #expect(!capture.messages(containing: "the host rebooted since the KSM settings were kept").isEmpty)
        await second.setConfig(Self.throttle, generation: 1)
        #expect(try dir.loadInitialCapture()?.bootID == "boot-2")
        #expect(try dir.loadInitialCapture()?.settings == booted)
        // The same boot again: the kept capture holds.
        let third = try NodeEngine(kernel: k, clock: ManualClock(), logger: quietLogger(), stateDir: dir)
        #expect(third.initialSettings == booted && third.initialCaptureFile == dir.initialSettingsFile)
    }

    @Test("deleting the file makes the next start capture the kernel's settings again")
    func deletingRecaptures() async throws {
        let k = kernel()
        let dir = try stateDir()
        let first = try NodeEngine(kernel: k, clock: ManualClock(), logger: quietLogger(), stateDir: dir)
        await first.setConfig(Self.throttle, generation: 1)
        k.update { $0.sleepMillisecs = 77 }  // the operator's new choice
        StateFiles.remove(dir.initialSettingsFile)
        let second = try NodeEngine(kernel: k, clock: ManualClock(), logger: quietLogger(), stateDir: dir)
        #expect(second.initialCaptureFile == nil)
        #expect(second.initialSettings.sleepMillisecs == 77)
        await second.setConfig(Self.throttle, generation: 1)
        #expect(try dir.loadInitialCapture()?.settings.sleepMillisecs == 77)
    }

    @Test(
        "a corrupt or unusable file: a warning naming it, this start's kernel settings, the file left alone",
        arguments: ["{not json", #"{"capturedAt": "2026-12-07T10:00:00Z", "settings": {"pagesToScan": 100}}"#])
    func corruptFile(content: String) async throws {
        let k = kernel()
        let dir = try stateDir()
        try StateFiles.writeAtomically(dir.initialSettingsFile, Data(content.utf8))
        let capture = LogCapture()
        let engine = try NodeEngine(kernel: k, clock: ManualClock(), logger: capture.logger(), stateDir: dir)
        #expect(engine.initialSettings == (try k.readStatus().tunables))
        #expect(engine.initialCaptureFile == nil)
        let warning = try #require(capture.all.first { $0.level == .warning })
        #expect(warning.metadata["file"] == dir.initialSettingsFile)
        #expect(warning.message.contains("delete the file"))
        let outcome = await engine.setConfig(Self.throttle, generation: 1)
        #expect(outcome.applyError == nil)
        #expect(try StateFiles.readText(dir.initialSettingsFile) == content)
    }

    @Test("unmanaged: nothing written to the kernel, nothing kept, and no restore")
    func unmanaged() async throws {
        let k = kernel()
        let dir = try stateDir()
        let engine = try NodeEngine(kernel: k, clock: ManualClock(), logger: quietLogger(), stateDir: dir)
        await engine.setConfig(KSMConfig(run: .unmanaged), generation: 1)
        await engine.kick(source: "test")
        k.update { $0.sleepMillisecs = 5 }  // the operator's own change
        try await engine.restoreInitial()
        #expect(k.writes.isEmpty)
        #expect(try k.readStatus().sleepMillisecs == 5)
        #expect(!StateFiles.exists(dir.initialSettingsFile))
    }
}
