#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// The directory holding the test binary: `.build/debug` for
/// `.build/debug/ksmfleetPackageTests.xctest` (a plain executable on Linux), and the directory
/// around an `.xctest` bundle (`…/X.xctest/Contents/MacOS/X`) elsewhere.
public func productsDirectory() -> String? {
    var buf = [CChar](repeating: 0, count: 4096)
    let n = readlink("/proc/self/exe", &buf, buf.count - 1)
    guard n > 0 else { return nil }
    let exe = String(decoding: buf.prefix(n).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    var parts = exe.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
    if let bundle = parts.lastIndex(where: { $0.hasSuffix(".xctest") }), bundle < parts.count - 1 {
        parts = Array(parts[..<bundle])  // inside a bundle: the directory that holds it
    } else {
        parts.removeLast()  // the executable itself
    }
    let dir = parts.joined(separator: "/")
    return dir.isEmpty ? "/" : dir
}

/// The path of an executable built next to the test binary (e.g. "ksmfleet-agent"), nil when it
/// is not there (build it with `swift build --build-tests`, which builds every product).
public func builtProduct(_ name: String) -> String? {
    guard let dir = productsDirectory() else { return nil }
    let path = dir + "/" + name
    return access(path, X_OK) == 0 ? path : nil
}
