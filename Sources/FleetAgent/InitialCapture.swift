#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import KSMCore

/// The KSM settings found before the agent first wrote to the kernel: what throttle's idle level
/// and `--restore-on-exit` put back. Kept in the state directory (`initial-settings.json`) so
/// that a restart, which finds the kernel at the agent's own settings, does not take those for
/// the host's.
public struct InitialCapture: Codable, Sendable, Equatable {
    /// Every tunable the kernel had (`KSMStatus.tunables`): run, pages_to_scan, sleep_millisecs,
    /// the knobs and the advisor's mode and settings.
    public var settings: KernelSettings
    /// When they were read from the kernel.
    public var capturedAt: Date
    /// The boot they were read in (`/proc/sys/kernel/random/boot_id`): after a reboot the kernel
    /// has its own settings again, and those are captured afresh. nil where unknown.
    public var bootID: String?

    public init(settings: KernelSettings, capturedAt: Date, bootID: String? = nil) {
        self.settings = settings
        self.capturedAt = capturedAt
        self.bootID = bootID
    }

    /// Why a stored capture cannot be used (a file edited by hand or cut short), nil when it can.
    public var problem: String? {
        guard let run = settings.run, (0...2).contains(run) else { return "run is missing or not 0, 1 or 2" }
        guard (settings.pagesToScan ?? -1) >= 0 else { return "pagesToScan is missing or negative" }
        guard (settings.sleepMillisecs ?? -1) >= 0 else { return "sleepMillisecs is missing or negative" }
        if let mode = settings.advisorMode, mode != "none" && mode != "scan-time" {
            return "advisorMode is '\(mode)', not none or scan-time"
        }
        return nil
    }

    /// The three values an operator looks at first, for logs.
    public var summary: String {
        var text =
            "run=\(settings.run ?? -1) pages_to_scan=\(settings.pagesToScan ?? -1) sleep_millisecs=\(settings.sleepMillisecs ?? -1)"
        if let mode = settings.advisorMode { text += " advisor_mode=\(mode)" }
        return text
    }
}
