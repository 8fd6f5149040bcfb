import KSMCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Facts about the host that the agent reports when it registers.
public struct HostFacts: Sendable, Equatable {
    public var hostname: String
    public var machineId: String
    public var kernelRelease: String
    public var numaNodes: Int

    public init(hostname: String, machineId: String, kernelRelease: String, numaNodes: Int) {
        self.hostname = hostname
        self.machineId = machineId
        self.kernelRelease = kernelRelease
        self.numaNodes = numaNodes
    }
}

public enum HostInfo {
    /// Everything at once, from the real system (paths overridable for tests).
    public static func current(
        nodeRoot: String = "/sys/devices/system/node",
        machineIdPaths: [String] = ["/etc/machine-id", "/var/lib/dbus/machine-id"]
    ) -> HostFacts {
        HostFacts(
            hostname: hostname(), machineId: machineId(paths: machineIdPaths) ?? "",
            kernelRelease: kernelRelease(), numaNodes: numaNodeCount(root: nodeRoot))
    }

    /// NUMA nodes: the `node<N>` entries of `/sys/devices/system/node`; 1 when there are none
    /// (a kernel without NUMA support still has one node).
    public static func numaNodeCount(root: String = "/sys/devices/system/node") -> Int {
        guard let names = try? FileIO.list(root) else { return 1 }
        let count = names.filter { name in
            name.hasPrefix("node") && name.count > 4 && name.dropFirst(4).allSatisfy(\.isASCIIDigit)
        }.count
        return max(count, 1)
    }

    /// The first non-empty machine id among `paths`.
    public static func machineId(paths: [String] = ["/etc/machine-id", "/var/lib/dbus/machine-id"]) -> String? {
        for p in paths {
            if let text = try? FileIO.read(p), !text.trimmed.isEmpty { return text.trimmed }
        }
        return nil
    }

    public static func hostname() -> String {
        var buf = [CChar](repeating: 0, count: 256)
        guard gethostname(&buf, buf.count - 1) == 0 else { return "" }
        return String(decoding: buf.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// `uname -r`.
    public static func kernelRelease() -> String {
        var u = utsname()
        guard uname(&u) == 0 else { return "" }
        return withUnsafePointer(to: u.release) { ptr in
            ptr.withMemoryRebound(to: CChar.self, capacity: MemoryLayout.size(ofValue: u.release)) {
                String(cString: $0)
            }
        }
    }
}

extension Character {
    var isASCIIDigit: Bool { ("0"..."9").contains(self) }
}
