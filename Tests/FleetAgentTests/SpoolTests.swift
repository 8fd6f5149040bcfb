import FleetAPI
import FleetTestSupport
import Foundation
import Testing

@testable import FleetAgent

@Suite("Sample spool")
struct SpoolTests {
    func dir() -> String { makeTemporaryDirectory(prefix: "ksmfleet-spool").path + "/spool" }

    @Test("appends and replays in order; acknowledged samples are forgotten exactly")
    func orderAndAck() throws {
        let d = dir()
        var spool = try SampleSpool(directory: d, limits: .init(maxSamples: 100))
        try spool.append((1...30).map(makeSample))
        #expect(spool.count == 30)
        #expect(try spool.oldest(10).map(\.seq) == Array(1...10))
        try spool.acknowledge(upTo: 12)
        #expect(spool.count == 18)
        #expect(try spool.oldest(100).map(\.seq) == Array(13...30))
        try spool.append((31...35).map(makeSample))
        try spool.acknowledge(upTo: 35)
        #expect(spool.isEmpty)
        #expect(try spool.oldest(10).isEmpty)
    }

    @Test("bounded: when full the oldest are dropped and counted")
    func dropOldest() throws {
        let d = dir()
        var spool = try SampleSpool(directory: d, limits: .init(maxSamples: 20))
        try spool.append((1...15).map(makeSample))
        try spool.append((16...27).map(makeSample))
        #expect(spool.count == 20)
        #expect(spool.dropped == 7)
        #expect(try spool.oldest(100).map(\.seq) == Array(8...27))
        try spool.clearDropped(5)
        #expect(spool.dropped == 2)
    }

    @Test("bounded by bytes as well")
    func dropByBytes() throws {
        let d = dir()
        let one = try SampleSpool.line(makeSample(1)).count
        var spool = try SampleSpool(directory: d, limits: .init(maxSamples: 1000, maxBytes: max(one * 40, 1024)))
        for chunk in stride(from: 1, through: 200, by: 10) {
            try spool.append((Int64(chunk)...Int64(chunk + 9)).map(makeSample))
        }
        #expect(spool.bytes <= max(one * 40, 1024))
        #expect(spool.dropped > 0)
        #expect(Int64(spool.count) + spool.dropped == 200)
        let seqs = try spool.oldest(1000).map(\.seq)
        #expect(seqs == seqs.sorted())
        #expect(seqs.last == 200)
    }

    @Test("survives a restart: the same samples, the dropped count, private files")
    func restart() throws {
        let d = dir()
        do {
            var spool = try SampleSpool(directory: d, limits: .init(maxSamples: 10))
            try spool.append((1...14).map(makeSample))
            try spool.acknowledge(upTo: 6)
        }
        let reopened = try SampleSpool(directory: d, limits: .init(maxSamples: 10))
        #expect(reopened.dropped == 4)
        #expect(try reopened.oldest(100).map(\.seq) == Array(7...14))
        #expect(reopened.lastSeq == 14)
        #expect(StateFiles.mode(d) == 0o700)
        for name in try StateFiles.list(d) { #expect(StateFiles.mode(d + "/" + name) == 0o600, "\(name)") }
    }

    @Test("a torn last line (crash during append) is skipped, the rest kept")
    func tornLine() throws {
        let d = dir()
        do {
            var spool = try SampleSpool(directory: d)
            try spool.append((1...3).map(makeSample))
        }
        let seg = try #require(try StateFiles.list(d).first { $0.hasPrefix("seg-") })
        try StateFiles.append(d + "/" + seg, Data("{\"seq\": 4, \"takenAt".utf8))
        var reopened = try SampleSpool(directory: d)
        #expect(try reopened.oldest(10).map(\.seq) == [1, 2, 3])
        // The torn line is cut at the start: the next sample is not glued onto it and lost.
        try reopened.append([makeSample(5)])
        #expect(try reopened.oldest(10).map(\.seq) == [1, 2, 3, 5])
        #expect(try SampleSpool(directory: d).oldest(10).map(\.seq) == [1, 2, 3, 5])
    }

    /// A full disk (here: a directory where the segment file goes) fails the append: the segment
    /// opened for it must not stay, empty, making the spool look non-empty with nothing to push.
    @Test func aFailedAppendLeavesNoEmptySegment() throws {
        let d = dir()
        var spool = try SampleSpool(directory: d)
        try FileManager.default.createDirectory(
            atPath: d + "/" + SampleSpool.segmentName(1), withIntermediateDirectories: false)
        #expect(throws: AgentFileError.self) { try spool.append([makeSample(1)]) }
        #expect(spool.isEmpty && spool.count == 0)
        // Once it can be written again, nothing is in the way.
        try FileManager.default.removeItem(atPath: d + "/" + SampleSpool.segmentName(1))
        try spool.append([makeSample(1), makeSample(2)])
        #expect(try spool.oldest(10).map(\.seq) == [1, 2])
    }
}

@Suite("Agent state directory and settings")
struct AgentStateTests {
    @Test("identity, config and sequence files are 0600 in a 0700 directory and read back")
    func stateFiles() throws {
        let path = makeTemporaryDirectory(prefix: "ksmfleet-state").path + "/state"
        let dir = try AgentStateDir(path)
        try dir.saveIdentity(NodeIdentity(nodeId: "n1", nodeToken: "secret", serverURL: "http://x"))
        try dir.saveConfig(NodeConfig(generation: 4, kickCounter: 2, config: .standardDefault))
        try dir.reserveSequence(upTo: 300)
        let again = try AgentStateDir(path)
        #expect(try again.loadIdentity()?.nodeToken == "secret")
        #expect(try again.loadConfig()?.generation == 4)
        #expect(try again.loadSequenceStart() == 300)
        #expect(StateFiles.mode(path) == 0o700)
        for f in [dir.nodeFile, dir.configFile, dir.seqFile] { #expect(StateFiles.mode(f) == 0o600, "\(f)") }
    }

    @Test("settings: flags over environment over file; file accepts both spellings")
    func resolve() throws {
        let tmp = makeTemporaryDirectory(prefix: "ksmfleet-conf").path
        let tokenFile = tmp + "/token"
        try "tok-from-file\n".write(toFile: tokenFile, atomically: true, encoding: .utf8)
        let conf = tmp + "/agent.conf"
        try """
            # comment
            KSMFLEET_SERVER=http://file:1
            enroll-token-file=\(tokenFile)
            sample-interval = 20
            KSMFLEET_WATCH="/run/a,/run/b"
            restore-on-exit=yes
            """.write(toFile: conf, atomically: true, encoding: .utf8)
        let o = try AgentOptions.resolve(
            flags: ["tune-interval": ["5"]], environment: ["KSMFLEET_SAMPLE_INTERVAL": "15"], configFile: conf)
        #expect(o.serverURL == "http://file:1")
        #expect(o.enrollToken == "tok-from-file")
        #expect(o.sampleInterval == 15)
        #expect(o.tuneInterval == 5)
        #expect(o.watchPaths == ["/run/a", "/run/b"])
        #expect(o.restoreOnExit)
        let o2 = try AgentOptions.resolve(flags: ["server": ["http://flag:2"]], environment: [:], configFile: conf)
        #expect(o2.serverURL == "http://flag:2")
    }

    /// agent/install.sh --enroll-token-file F on a host first installed with --enroll-token T
    /// leaves `enroll-token=T` in the file: the flag's file must win, as every flag does.
    @Test("settings: the enrollment token and its file are one setting, from the first source naming either")
    func enrollmentTokenSources() throws {
        let tmp = makeTemporaryDirectory(prefix: "ksmfleet-conf").path
        let tokenFile = tmp + "/token"
        try "ke_from_flag_file\n".write(toFile: tokenFile, atomically: true, encoding: .utf8)
        let conf = tmp + "/agent.conf"
        try "server=http://x:1\nenroll-token=ke_old_in_file\n".write(toFile: conf, atomically: true, encoding: .utf8)
        let flagFile = try AgentOptions.resolve(
            flags: ["enroll-token-file": [tokenFile]], environment: [:], configFile: conf)
        #expect(flagFile.enrollToken == "ke_from_flag_file")
        let envFile = try AgentOptions.resolve(
            flags: [:], environment: ["KSMFLEET_ENROLL_TOKEN_FILE": tokenFile], configFile: conf)
        #expect(envFile.enrollToken == "ke_from_flag_file")
        let fileOnly = try AgentOptions.resolve(flags: [:], environment: [:], configFile: conf)
        #expect(fileOnly.enrollToken == "ke_old_in_file")
        // An empty token (agent.conf.example ships `enroll-token=`) gives way to the file beside it.
        try "server=http://x:1\nenroll-token=\nenroll-token-file=\(tokenFile)\n".write(
            toFile: conf, atomically: true, encoding: .utf8)
        #expect(try AgentOptions.resolve(flags: [:], environment: [:], configFile: conf).enrollToken == "ke_from_flag_file")
        #expect(
            try AgentOptions.resolve(flags: ["enroll-token": ["ke_flag"]], environment: [:], configFile: conf).enrollToken
                == "ke_flag")
    }

    @Test("settings: log-level and machine-id from flags, environment or file; a bad level refused naming it")
    func logLevelAndMachineId() throws {
        let conf = makeTemporaryDirectory(prefix: "ksmfleet-conf").path + "/agent.conf"
        try "server=http://x:1\nlog-level=debug\nmachine-id=clone-b\n".write(toFile: conf, atomically: true, encoding: .utf8)
        let file = try AgentOptions.resolve(flags: [:], environment: [:], configFile: conf)
        #expect(file.logLevel == .debug)
        #expect(file.machineId == "clone-b")
        let env = try AgentOptions.resolve(
            flags: [:], environment: ["KSMFLEET_LOG_LEVEL": "warning", "KSMFLEET_MACHINE_ID": "env-id"], configFile: conf)
        #expect(env.logLevel == .warning)
        #expect(env.machineId == "env-id")
        let flags = try AgentOptions.resolve(flags: ["log-level": ["error"]], environment: [:], configFile: conf)
        #expect(flags.logLevel == .error)
        #expect(try AgentOptions.resolve(flags: ["server": ["http://x:1"]], environment: [:], configFile: nil).logLevel == .info)
        #expect(throws: AgentOptionsError.self) {
            try AgentOptions.resolve(flags: ["server": ["http://x:1"], "log-level": ["loud"]], environment: [:], configFile: nil)
        }
        do {
            _ = try AgentOptions.resolve(flags: ["server": ["http://x:1"], "log-level": ["loud"]], environment: [:], configFile: nil)
        } catch {
            #expect(error.description.contains("log-level") && error.description.contains("'loud'"), "\(error)")
        }
    }

    @Test("settings: unknown keys, bad numbers and a missing server are refused with the reason")
    func refuse() throws {
        let tmp = makeTemporaryDirectory(prefix: "ksmfleet-conf").path
        let conf = tmp + "/agent.conf"
        try "server=http://x\nsevrer=typo\n".write(toFile: conf, atomically: true, encoding: .utf8)
        #expect(throws: AgentOptionsError.self) { try AgentOptions.resolve(flags: [:], environment: [:], configFile: conf) }
        do {
            _ = try AgentOptions.resolve(flags: [:], environment: [:], configFile: conf)
        } catch {
            #expect(error.description.contains("sevrer"))
            #expect(error.description.contains(":2"))
        }
        #expect(throws: AgentOptionsError.self) {
            try AgentOptions.resolve(flags: ["server": ["http://x"], "sample-interval": ["0"]], environment: [:], configFile: nil)
        }
        #expect(throws: AgentOptionsError.self) { try AgentOptions.resolve(flags: [:], environment: [:], configFile: nil) }
    }

    @Test("backoff grows, stays under the cap, resets")
    func backoff() {
        var b = Backoff(base: 1, cap: 8)
        let waits = (0..<10).map { _ in b.next() }
        #expect(waits.allSatisfy { $0 <= 8 && $0 > 0 })
        #expect(waits[0] <= 1)
        #expect(waits[9] >= 4)
        b.reset()
        #expect(b.next() <= 1)
    }
}
