#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import FleetAPI
import KSMCore

/// Samples the server has not accepted yet, on disk, so that an outage or an agent restart loses
/// none of them. Append-only segment files (`seg-<first seq>.jsonl`, one JSON sample per line,
/// 0600), oldest first. Bounded by a sample count and a byte size: when full, the oldest samples
/// are dropped and counted (`dropped`, kept in the file `dropped` until a push reports it).
/// Replays read the oldest samples first; `acknowledge(upTo:)` forgets every sample the server
/// holds (its `highestSeq`), so each sample is sent until accepted and then never again.
public struct SampleSpool: Sendable {
    public struct Limits: Sendable, Equatable {
        public var maxSamples: Int
        public var maxBytes: Int
        /// Defaults: 50,000 samples (almost 6 days at one sample per 10 s) or 32 MiB.
        public init(maxSamples: Int = 50_000, maxBytes: Int = 32 << 20) {
            self.maxSamples = max(maxSamples, 1)
            self.maxBytes = max(maxBytes, 1024)
        }
    }

    struct Segment: Sendable {
        var name: String
        var firstSeq: Int64
        var lastSeq: Int64
        var count: Int
        var bytes: Int
    }

    public let directory: String
    public let limits: Limits
    private var segments: [Segment] = []
    /// Samples dropped (oldest first) because the spool was full, not yet reported.
    public private(set) var dropped: Int64 = 0
    private let segmentCapacity: Int

    public init(directory: String, limits: Limits = Limits()) throws(AgentFileError) {
        self.directory = directory
        self.limits = limits
        segmentCapacity = max(1, min(256, limits.maxSamples / 8))
        try StateFiles.ensurePrivateDirectory(directory)
        if let text = try StateFiles.readText(droppedFile), let v = Int64(text.trimmed) { dropped = max(v, 0) }
        for name in try StateFiles.list(directory) where name.hasPrefix("seg-") && name.hasSuffix(".jsonl") {
            let path = directory + "/" + name
            // A line torn by a crash mid-append would swallow the next sample appended after it.
            try StateFiles.trimTornLine(path)
            let samples = try Self.readSegment(path)
            if let first = samples.first, let last = samples.last {
                segments.append(
                    Segment(
                        name: name, firstSeq: first.seq, lastSeq: last.seq, count: samples.count,
                        bytes: StateFiles.fileSize(path)))
            } else {
                StateFiles.remove(path)
            }
            StateFiles.remove(path + ".tmp")
        }
        segments.sort { $0.firstSeq < $1.firstSeq }
    }

    private var droppedFile: String { directory + "/dropped" }

    /// Samples waiting to be replayed.
    public var count: Int { segments.reduce(0) { $0 + $1.count } }
    public var bytes: Int { segments.reduce(0) { $0 + $1.bytes } }
    public var isEmpty: Bool { segments.isEmpty }
    /// The highest sequence number spooled, if any.
    public var lastSeq: Int64? { segments.last?.lastSeq }

    /// Appends samples (in increasing seq order) and enforces the limits by dropping the oldest.
    public mutating func append(_ samples: [StatusSample]) throws(AgentFileError) {
        var rest = samples[...]
        while !rest.isEmpty {
            if segments.isEmpty || segments[segments.count - 1].count >= segmentCapacity
                || segments[segments.count - 1].bytes >= limits.maxBytes / 8
            {
                guard let first = rest.first else { break }
                segments.append(
                    Segment(name: Self.segmentName(first.seq), firstSeq: first.seq, lastSeq: first.seq, count: 0, bytes: 0))
            }
            let i = segments.count - 1
            let room = max(1, segmentCapacity - segments[i].count)
            let chunk = rest.prefix(room)
            rest = rest.dropFirst(chunk.count)
            var data = Data()
            for sample in chunk { data.append(try Self.line(sample)) }
            do {
                try StateFiles.append(directory + "/" + segments[i].name, data)
            } catch {
                // Nothing of the chunk was kept (`append` cuts a short write off): a segment
                // opened for it goes too, or the spool would look non-empty with nothing in it
                // and hold back every push until the outbox filled up.
                if segments[i].count == 0 {
                    StateFiles.remove(directory + "/" + segments[i].name)
                    segments.remove(at: i)
                }
                throw error
            }
            segments[i].count += chunk.count
            segments[i].bytes += data.count
            if let last = chunk.last { segments[i].lastSeq = max(segments[i].lastSeq, last.seq) }
        }
        try enforceLimits()
    }

    /// The oldest `max` samples, in order (they stay spooled until acknowledged).
    public func oldest(_ max: Int) throws(AgentFileError) -> [StatusSample] {
        var out: [StatusSample] = []
        for segment in segments where out.count < max {
            let samples = try Self.readSegment(directory + "/" + segment.name)
            out.append(contentsOf: samples.prefix(max - out.count))
        }
        return out
    }

    /// Forgets every sample with `seq <= highestSeq` (the server has it).
    public mutating func acknowledge(upTo highestSeq: Int64) throws(AgentFileError) {
        while let first = segments.first, first.firstSeq <= highestSeq {
            let path = directory + "/" + first.name
            if first.lastSeq <= highestSeq {
                StateFiles.remove(path)
                segments.removeFirst()
                continue
            }
            let keep = try Self.readSegment(path).filter { $0.seq > highestSeq }
            try rewriteFirst(keep)
            break
        }
    }

    /// `reported` dropped samples were reported to the server (more may have been dropped since).
    public mutating func clearDropped(_ reported: Int64) throws(AgentFileError) {
        guard reported > 0 else { return }
        dropped = max(0, dropped - reported)
        if dropped == 0 {
            StateFiles.remove(droppedFile)
        } else {
            try StateFiles.writeAtomically(droppedFile, Data("\(dropped)\n".utf8))
        }
    }

    /// Counts samples lost outside the spool (e.g. refused by the server) with the dropped ones.
    public mutating func countDropped(_ n: Int) throws(AgentFileError) {
        guard n > 0 else { return }
        dropped += Int64(n)
        try StateFiles.writeAtomically(droppedFile, Data("\(dropped)\n".utf8))
    }

    private mutating func enforceLimits() throws(AgentFileError) {
        var droppedNow = 0
        while count > limits.maxSamples, let first = segments.first {
            let excess = count - limits.maxSamples
            if first.count <= excess {
                StateFiles.remove(directory + "/" + first.name)
                segments.removeFirst()
                droppedNow += first.count
            } else {
                let keep = Array(try Self.readSegment(directory + "/" + first.name).dropFirst(excess))
                try rewriteFirst(keep)
                droppedNow += excess
            }
        }
        while bytes > limits.maxBytes, segments.count > 1 {
            let first = segments.removeFirst()
            StateFiles.remove(directory + "/" + first.name)
            droppedNow += first.count
        }
        try countDropped(droppedNow)
    }

    /// Replaces the oldest segment with `samples` (a suffix of it), under a new name.
    private mutating func rewriteFirst(_ samples: [StatusSample]) throws(AgentFileError) {
        guard let old = segments.first else { return }
        let oldPath = directory + "/" + old.name
        guard let first = samples.first, let last = samples.last else {
            StateFiles.remove(oldPath)
            segments.removeFirst()
            return
        }
        var data = Data()
        for sample in samples { data.append(try Self.line(sample)) }
        let name = Self.segmentName(first.seq)
        try StateFiles.writeAtomically(directory + "/" + name, data)
        if name != old.name { StateFiles.remove(oldPath) }
        segments[0] = Segment(name: name, firstSeq: first.seq, lastSeq: last.seq, count: samples.count, bytes: data.count)
    }

    static func segmentName(_ seq: Int64) -> String {
        let digits = String(seq)
        return "seg-" + String(repeating: "0", count: max(0, 20 - digits.count)) + digits + ".jsonl"
    }

    static func line(_ sample: StatusSample) throws(AgentFileError) -> Data {
        do {
            var data = try StrictJSON.encoder().encode(sample)
            data.append(UInt8(ascii: "\n"))
            return data
        } catch {
            throw AgentFileError(path: "spool", message: "cannot encode sample \(sample.seq): \(error)")
        }
    }

    /// The samples of one segment; a torn last line (a crash mid-append) is skipped.
    static func readSegment(_ path: String) throws(AgentFileError) -> [StatusSample] {
        guard let data = try StateFiles.read(path) else { return [] }
        let decoder = StrictJSON.decoder()
        var out: [StatusSample] = []
        for line in data.split(separator: UInt8(ascii: "\n")) where !line.isEmpty {
            if let sample = try? decoder.decode(StatusSample.self, from: Data(line)) { out.append(sample) }
        }
        return out
    }
}
