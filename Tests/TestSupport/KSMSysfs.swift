import KSMCore
import KSMNode

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Whether the real KSM sysfs can be written here, and if not, why.
public struct SysfsAccess: Sendable {
    public var writable: Bool
    public var reason: String
}

/// Checks that `/sys/kernel/mm/ksm` exists and takes a write (of the value it already holds).
public func sysfsWritable(root: String = "/sys/kernel/mm/ksm") -> SysfsAccess {
    let kernel = LinuxKSMKernel(root: root)
    let status: KSMStatus
    do {
        status = try kernel.readStatus()
    } catch {
        return SysfsAccess(writable: false, reason: "KSM is not readable here (\(error))")
    }
    do {
        try kernel.write(.sleepMillisecs, status.sleepMillisecs)
    } catch {
        return SysfsAccess(
            writable: false, reason: "\(root) is not writable here (\(error)); run as root on a KSM kernel")
    }
    return SysfsAccess(writable: true, reason: "\(root) is writable")
}

/// The real KSM settings at one moment, and a restore that leaves nothing of a test behind:
/// run=2 (unmerge everything the test merged), wait for pages_shared 0, then the tunables
/// (merge_across_nodes and max_page_sharing first, while nothing is shared) and run last.
public struct KSMSysfsSnapshot: Sendable {
    public let root: String
    public let settings: KernelSettings
    public let advisorMode: String?

    public static func capture(root: String = "/sys/kernel/mm/ksm") throws -> KSMSysfsSnapshot {
        let kernel = LinuxKSMKernel(root: root)
        let status = try kernel.readStatus()
        return KSMSysfsSnapshot(root: root, settings: status.tunables, advisorMode: status.advisorMode)
    }

    public func restore(unmergeTimeout: Duration = .seconds(60)) async throws {
        let kernel = LinuxKSMKernel(root: root)
        try kernel.write(.run, 2)
        let unmerged = await waitUntil(timeout: unmergeTimeout, poll: .milliseconds(50)) {
            ((try? kernel.readStatus().pagesShared) ?? 1) == 0
        }
        if !unmerged {
            throw MergeableBufferError(description: "restore: pages_shared did not reach 0 within \(unmergeTimeout)")
        }
        let status = try kernel.readStatus()
        if let mode = advisorMode, status.advisorMode != mode { try kernel.writeRaw("advisor_mode", mode) }
        let s = settings
        func put(_ t: KSMTunable, _ target: Int?, _ current: Int?) throws {
            if let target, target != current { try kernel.write(t, target) }
        }
        try put(.mergeAcrossNodes, s.mergeAcrossNodes, status.mergeAcrossNodes)
        try put(.maxPageSharing, s.maxPageSharing, status.maxPageSharing)
        try put(.pagesToScan, s.pagesToScan, status.pagesToScan)
        try put(.sleepMillisecs, s.sleepMillisecs, status.sleepMillisecs)
        try put(.useZeroPages, s.useZeroPages, status.useZeroPages)
        try put(.smartScan, s.smartScan, status.smartScan)
        try put(.run, s.run, 2)
    }

    /// Whether the kernel's tunables are the captured ones now.
    public func matchesKernel() throws -> Bool {
        try LinuxKSMKernel(root: root).readStatus().tunables == settings
    }
}
