import FleetAgent
import KSMCore
import KSMNode
import TestSupport
import Testing

/// Runs `body` against the real KSM sysfs: skipped (visibly, with the reason) where it is not
/// writable; otherwise under the kernel test lock, with the settings captured before and
/// restored after (unmerging whatever the test merged), even when the body fails.
func withRealKSM(_ body: (KSMSysfsSnapshot) async throws -> Void) async throws {
    let access = sysfsWritable()
    guard access.writable else {
        print("⚠️  SKIPPED real-kernel test: \(access.reason)")
        try Test.cancel("real KSM not usable here: \(access.reason)")
    }
    try await KernelTestLock.withLock {
        let snapshot = try KSMSysfsSnapshot.capture()
        var failure: (any Error)?
        do {
            try await body(snapshot)
        } catch {
            failure = error
        }
        try await snapshot.restore()
        if let failure { throw failure }
    }
}

/// A config that makes ksmd merge a small test buffer within seconds.
let fastMerge = KSMConfig(
    run: .run, mode: .customized, thresCoef: 100,
    parameters: TunerParameters(boost: 0, decay: 0, minPages: 5000, maxPages: 5000, sleepMsec: 10))

/// The real kernel's status, or a failure that says why it could not be read.
func realStatus() throws -> KSMStatus {
    try LinuxKSMKernel().readStatus()
}

/// Waits until at least `pages` more sharers than `baseline` exist (ksmd merged the buffer).
func waitForMerge(above baseline: Int64, pages: Int64, timeout: Duration = .seconds(20)) async -> Bool {
    await waitUntil(timeout: timeout, poll: .milliseconds(200)) {
        ((try? realStatus().pagesSharing) ?? 0) >= baseline + pages
    }
}

/// The real kernel's status for failure messages.
func statusText() -> String {
    (try? realStatus()).map { "\($0)" } ?? "(status unreadable)"
}
