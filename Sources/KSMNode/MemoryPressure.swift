import KSMCore

/// Memory pressure stall information (PSI, `/proc/pressure/memory`, kernels 4.20+).
extension ProcParsing {
    /// The "some avg10" figure in percent: "some avg10=1.50 avg60=… total=…" → 1.5.
    public static func pressureSomeAvg10(_ text: String) -> Double? {
        for line in text.split(separator: "\n") where line.hasPrefix("some ") {
            for field in line.split(separator: " ") where field.hasPrefix("avg10=") {
                return Double(field.dropFirst("avg10=".count))
            }
        }
        return nil
    }
}

extension LinuxKSMKernel {
    /// `/proc/pressure/memory` some avg10 in percent; nil where PSI is off or missing.
    public func memoryPressureSomeAvg10() -> Double? {
        guard let text = try? FileIO.read(proc + "/pressure/memory") else { return nil }
        return ProcParsing.pressureSomeAvg10(text)
    }
}
