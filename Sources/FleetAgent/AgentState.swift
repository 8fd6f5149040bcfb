#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import FleetAPI
import KSMCore

/// The node's identity on the server, kept in `<state>/node.json` (0600: it holds the node token).
public struct NodeIdentity: Codable, Sendable, Equatable {
    public var nodeId: String
    public var nodeToken: String
    /// The server it was issued by; another server means registering again.
    public var serverURL: String
    public init(nodeId: String, nodeToken: String, serverURL: String) {
        self.nodeId = nodeId
        self.nodeToken = nodeToken
        self.serverURL = serverURL
    }
}

/// The agent's state directory (0700, files 0600):
/// - `node.json`: node id + node token;
/// - `config.json`: the last good config (with its generation and kick counter);
/// - `seq`: the next sequence number reserved on disk (see `reserveSequence`);
/// - `spool/`: samples not yet accepted by the server (see `SampleSpool`);
/// - `initial-settings.json`: the KSM settings found before the agent first wrote to the kernel
///   (see `InitialCapture`).
public struct AgentStateDir: Sendable {
    public let path: String
    public var nodeFile: String { path + "/node.json" }
    public var configFile: String { path + "/config.json" }
    public var seqFile: String { path + "/seq" }
    /// The agent's registration key (0600): sent with every registration, so that a pending
    /// registration an admin accepted is claimed by this agent and no other host.
    public var registrationKeyFile: String { path + "/registration-key" }
    public var spoolDir: String { path + "/spool" }
    public var initialSettingsFile: String { path + "/initial-settings.json" }

    public init(_ path: String) throws(AgentFileError) {
        var p = path
        while p.count > 1 && p.hasSuffix("/") { p.removeLast() }
        self.path = p
        try StateFiles.ensurePrivateDirectory(p)
    }

    public func loadIdentity() throws(AgentFileError) -> NodeIdentity? {
        try loadJSON(NodeIdentity.self, nodeFile)
    }

    public func saveIdentity(_ id: NodeIdentity) throws(AgentFileError) {
        try saveJSON(id, nodeFile)
    }

    /// The registration key, created (random, 0600) on first use.
    public func registrationKey() throws(AgentFileError) -> String {
        if let text = try StateFiles.readText(registrationKeyFile), !text.trimmed.isEmpty { return text.trimmed }
        var bytes = [UInt8](repeating: 0, count: 32)
        var rng = SystemRandomNumberGenerator()
        for i in bytes.indices { bytes[i] = UInt8.random(in: 0...255, using: &rng) }
        let key = "kr_" + bytes.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
        try StateFiles.writeAtomically(registrationKeyFile, Data((key + "\n").utf8))
        return key
    }

    public func forgetIdentity() {
        StateFiles.remove(nodeFile)
    }

    public func loadConfig() throws(AgentFileError) -> NodeConfig? {
        try loadJSON(NodeConfig.self, configFile)
    }

    public func saveConfig(_ config: NodeConfig) throws(AgentFileError) {
        try saveJSON(config, configFile)
    }

    public func loadInitialCapture() throws(AgentFileError) -> InitialCapture? {
        try loadJSON(InitialCapture.self, initialSettingsFile)
    }

    public func saveInitialCapture(_ capture: InitialCapture) throws(AgentFileError) {
        try saveJSON(capture, initialSettingsFile)
    }

    /// The first sequence number this run may use. Sequence numbers are reserved on disk in
    /// blocks (one synced write per `block` samples, not one per sample); a restart continues
    /// after the reserved block, so numbers only ever increase (gaps are fine: the server only
    /// needs them unique and increasing).
    public func loadSequenceStart() throws(AgentFileError) -> Int64 {
        guard let text = try StateFiles.readText(seqFile) else { return 1 }
        guard let v = Int64(text.trimmed), v >= 1 else {
            throw AgentFileError(path: seqFile, message: "not a sequence number: '\(text.trimmed)'")
        }
        return v
    }

    /// Records that numbers below `upTo` may be in use.
    public func reserveSequence(upTo: Int64) throws(AgentFileError) {
        try StateFiles.writeAtomically(seqFile, Data("\(upTo)\n".utf8))
    }

    func loadJSON<T: Decodable>(_ type: T.Type, _ file: String) throws(AgentFileError) -> T? {
        guard let data = try StateFiles.read(file) else { return nil }
        do {
            return try StrictJSON.decoder().decode(T.self, from: data)
        } catch {
            throw AgentFileError(path: file, message: "unreadable (\(error)); delete it to start afresh")
        }
    }

    func saveJSON<T: Encodable>(_ value: T, _ file: String) throws(AgentFileError) {
        let data: Data
        do {
            data = try StrictJSON.encoder(pretty: true).encode(value)
        } catch {
            throw AgentFileError(path: file, message: "cannot encode: \(error)")
        }
        try StateFiles.writeAtomically(file, data)
    }
}
