/// What a feedback policy sees of the kernel at one tuning step, besides `/proc/meminfo`.
/// KSMNode reads it; the policies only compare it with what they saw before.
public struct KernelObservation: Sendable, Equatable {
    /// Everything `/sys/kernel/mm/ksm` reports now.
    public var status: KSMStatus
    /// ksmd's cumulative utime + stime in seconds; nil when no ksmd thread was found.
    public var ksmdCPUSeconds: Double?
    /// Pages of anonymous memory of the processes marked mergeable (`ksm_mergeable: yes` in
    /// `/proc/PID/ksm_stat`, kernels 6.10+); nil when unknown, and AnonPages stands in.
    public var mergeablePages: Int64?
    /// `/proc/pressure/memory` "some avg10" in percent; nil where PSI is missing.
    public var memoryPressureSomeAvg10: Double?

    public init(
        status: KSMStatus, ksmdCPUSeconds: Double?, mergeablePages: Int64? = nil,
        memoryPressureSomeAvg10: Double? = nil
    ) {
        self.status = status
        self.ksmdCPUSeconds = ksmdCPUSeconds
        self.mergeablePages = mergeablePages
        self.memoryPressureSomeAvg10 = memoryPressureSomeAvg10
    }

    /// Pages KSM tracks (its rmap items): shared + sharing + unshared + volatile, which is how
    /// the kernel itself derives pages_volatile.
    public var trackedPages: Int64 {
        status.pagesShared + status.pagesSharing + status.pagesUnshared + status.pagesVolatile
    }
}
