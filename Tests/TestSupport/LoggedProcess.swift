import Foundation

/// Starts a built executable in the background with its standard error in `logPath` (standard
/// output discarded); the caller stops it (SIGTERM to test a clean stop, SIGKILL at the end).
public func startLogged(_ executable: String, _ arguments: [String], logPath: String) throws -> Process {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = arguments
    _ = FileManager.default.createFile(atPath: logPath, contents: nil)
    p.standardError = FileHandle(forWritingAtPath: logPath)
    p.standardOutput = FileHandle.nullDevice
    try p.run()
    return p
}

/// A text file's content, trimmed; "" when it cannot be read (a log not written yet).
public func readText(_ path: String) -> String {
    ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
}

/// Runs a built executable to its end (a minimal PATH, standard output discarded) and returns
/// its exit status and standard error. Blocks: call it off the cooperative pool.
public func runToEnd(_ executable: String, _ arguments: [String]) throws -> (status: Int32, stderr: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = arguments
    p.environment = ["PATH": "/usr/bin:/bin"]
    let err = Pipe()
    p.standardError = err
    p.standardOutput = FileHandle.nullDevice
    try p.run()
    let data = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: data, as: UTF8.self))
}
