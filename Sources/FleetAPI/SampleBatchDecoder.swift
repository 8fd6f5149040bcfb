#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import KSMCore

/// A hand-written, single-pass decoder for `SampleBatch`, the one body the server takes in bulk.
///
/// It walks the UTF-8 bytes once and builds the `StatusSample`s directly, with no `Codable`
/// machinery and no intermediate tree. It takes only the plain, well-formed input that agents
/// send; whenever anything is unusual or wrong (an unknown, duplicate or escaped key, a missing
/// field, a wrong type, a bad phase or date, a number it does not parse the same way
/// `JSONDecoder` does, malformed JSON) it gives up and `decode` falls back to `StrictJSON`, which
/// produces the exact result or error (code, field, message) the rest of the API gives.
public enum SampleBatchDecoder {
    /// A decoded batch, and where each sample's JSON object lies in the input (byte offsets
    /// from the start of the data, same order as `batch.samples`); nil when the batch came
    /// through the `StrictJSON` fallback.
    public struct Decoded: Sendable, Equatable {
        public var batch: SampleBatch
        public var sampleRanges: [Range<Int>]?
    }

    /// Decodes a batch as `StrictJSON.decode(SampleBatch.self, from:)` does, fast when the input
    /// is plain.
    public static func decode(_ data: Data) throws(InputError) -> Decoded {
        if let fast = fastDecode(data) { return fast }
        return Decoded(batch: try StrictJSON.decode(SampleBatch.self, from: data), sampleRanges: nil)
    }

    /// One sample object, as `StrictJSON` decodes it, by the same fast path: a node's newest
    /// sample as the store keeps it (the object the agent sent), read for every node in the
    /// fleet's listings and `/metrics`. nil when the fast path cannot decide (the caller then
    /// takes `StrictJSON`).
    public static func fastSample(_ text: String) -> StatusSample? {
        var text = text
        return text.withUTF8 { b -> StatusSample? in
            guard let base = b.baseAddress else { return nil }
            var p = Parser(base, b.count)
            p.ws()
            guard let sample = try? p.sample() else { return nil }
            p.ws()
            return p.i == p.n ? sample : nil
        }
    }

    /// The fast path alone: nil when it cannot decide (the caller then takes `StrictJSON`).
    public static func fastDecode(_ data: Data) -> Decoded? {
        data.withUnsafeBytes { raw -> Decoded? in
            guard let base = raw.baseAddress else { return nil }
            var p = Parser(base.assumingMemoryBound(to: UInt8.self), raw.count)
            return try? p.batch()
        }
    }

    /// The JSON of each sample as received, from `Decoded.sampleRanges`.
    public static func sampleJSON(_ data: Data, _ ranges: [Range<Int>]) -> [String] {
        data.withUnsafeBytes { raw -> [String] in
            let bytes = raw.bindMemory(to: UInt8.self)
            return ranges.map { String(decoding: UnsafeBufferPointer(rebasing: bytes[$0]), as: UTF8.self) }
        }
    }
}

/// Anything the fast path does not take: the caller falls back to `StrictJSON`.
struct Unusual: Error {}

private let sampleKeys: [StaticString] = [
    "seq", "takenAt", "status", "memory", "pageSize", "ksmdCPUPercent", "ksmdCPUSeconds", "phase",
    "phaseReason", "appliedGeneration", "applyError", "droppedSamples", "agentStopped", "processes",
]
private let processReportKeys: [StaticString] = [
    "perProcessStats", "processesScanned", "mergeableProcesses", "mergingProcesses", "rmapItems",
    "mergingPages", "anonHugePagesKB", "anonymousKB", "transparentHugePages", "truncated", "scanMillis", "groups",
]
private let processGroupKeys: [StaticString] = [
    "kind", "name", "processes", "mergingPages", "zeroPages", "rmapItems", "profitBytes",
]
private let processGroupKinds: [(StaticString, ProcessGroupKind)] = [
    ("vm", .vm), ("container", .container), ("pod", .pod), ("unit", .unit), ("command", .command),
]
private let statusKeys: [StaticString] = [
    "run", "pagesToScan", "sleepMillisecs", "pagesShared", "pagesSharing", "pagesUnshared",
    "pagesVolatile", "fullScans", "mergeAcrossNodes", "maxPageSharing", "stableNodeChains",
    "stableNodeDups", "useZeroPages", "ksmZeroPages", "generalProfit", "pagesScanned", "pagesSkipped",
    "smartScan", "advisorMode", "advisorTargetScanTime", "advisorMinPagesToScan", "advisorMaxPagesToScan",
    "advisorMaxCPU",
]
private let memoryKeys: [StaticString] = [
    "memTotalKB", "memAvailableKB", "memFreeKB", "buffersKB", "cachedKB", "anonPagesKB",
]
private let phases: [(StaticString, KSMPhase)] = [
    ("Stopped", .stopped), ("Running", .running), ("Pruned", .pruned), ("Unmanaged", .unmanaged),
]

private struct Parser {
    let p: UnsafePointer<UInt8>
    let n: Int
    var i = 0

    init(_ p: UnsafePointer<UInt8>, _ n: Int) {
        self.p = p
        self.n = n
    }

    // MARK: structure

    mutating func batch() throws(Unusual) -> SampleBatchDecoder.Decoded {
        ws()
        try expect(0x7B)  // {
        ws()
        try expect(0x22)
        guard try key(["samples"]) == 0 else { throw Unusual() }
        ws()
        try expect(0x3A)
        ws()
        try expect(0x5B)  // [
        var samples: [StatusSample] = []
        var ranges: [Range<Int>] = []
        samples.reserveCapacity(min(n / 256 + 1, SampleBatch.maxSamples + 1))
        ranges.reserveCapacity(min(n / 256 + 1, SampleBatch.maxSamples + 1))
        ws()
        if peek() == 0x5D {
            i += 1
        } else {
            while true {
                ws()
                let start = i
                samples.append(try sample())
                ranges.append(start..<i)
                ws()
                let c = try next()
                if c == 0x5D { break }
                guard c == 0x2C else { throw Unusual() }
            }
        }
        ws()
        try expect(0x7D)  // } : a second key (even a duplicate "samples") is left to StrictJSON
        ws()
        guard i == n else { throw Unusual() }
        return SampleBatchDecoder.Decoded(batch: SampleBatch(samples: samples), sampleRanges: ranges)
    }

    /// Walks the members of an object (at its `{`), calling `member` with the index of each key
    /// in `keys` (the value is next). Unknown, escaped or repeated keys are unusual.
    mutating func object(_ keys: [StaticString], _ member: (inout Parser, Int) throws(Unusual) -> Void) throws(Unusual) {
        try expect(0x7B)
        ws()
        if peek() == 0x7D {
            i += 1
            return
        }
        var seen: UInt32 = 0
        while true {
            ws()
            try expect(0x22)
            let k = try key(keys)
            let bit: UInt32 = 1 << UInt32(k)
            guard seen & bit == 0 else { throw Unusual() }
            seen |= bit
            ws()
            try expect(0x3A)
            ws()
            try member(&self, k)
            ws()
            let c = try next()
            if c == 0x7D { return }
            guard c == 0x2C else { throw Unusual() }
        }
    }

    mutating func sample() throws(Unusual) -> StatusSample {
        var seq: Int64?
        var takenAt: Date?
        var status: KSMStatus?
        var memory: MemorySnapshot?
        var pageSize: Int?
        var cpuPercent: Double?
        var cpuSeconds: Double?
        var phase: KSMPhase?
        var phaseReason: String?
        var appliedGeneration: Int64?
        var applyError: String?
        var dropped: Int64?
        var agentStopped: Bool?
        var processes: ProcessReport?
        try object(sampleKeys) { (q: inout Parser, k: Int) throws(Unusual) in
            switch k {
            case 0: seq = try q.int()
            case 1: takenAt = try q.date()
            case 2: status = try q.status()
            case 3: memory = try q.memory()
            case 4: pageSize = Int(try q.int())
            case 5: cpuPercent = try q.optional { (r: inout Parser) throws(Unusual) in try r.double() }
            case 6: cpuSeconds = try q.optional { (r: inout Parser) throws(Unusual) in try r.double() }
            case 7: phase = try q.phase()
            case 8: phaseReason = try q.string()
            case 9: appliedGeneration = try q.optional { (r: inout Parser) throws(Unusual) in try r.int() }
            case 10: applyError = try q.optional { (r: inout Parser) throws(Unusual) in try r.string() }
            case 11: dropped = try q.optional { (r: inout Parser) throws(Unusual) in try r.int() }
            case 12: agentStopped = try q.optional { (r: inout Parser) throws(Unusual) in try r.bool() }
            default: processes = try q.optional { (r: inout Parser) throws(Unusual) in try r.processReport() }
            }
        }
        guard let seq, let takenAt, let status, let memory, let pageSize, let phase, let phaseReason else {
            throw Unusual()
        }
        return StatusSample(
            seq: seq, takenAt: takenAt, status: status, memory: memory, pageSize: pageSize,
            ksmdCPUPercent: cpuPercent, ksmdCPUSeconds: cpuSeconds, phase: phase, phaseReason: phaseReason,
            appliedGeneration: appliedGeneration, applyError: applyError, droppedSamples: dropped,
            agentStopped: agentStopped, processes: processes)
    }

    mutating func status() throws(Unusual) -> KSMStatus {
        var s = KSMStatus()
        var required: UInt32 = 0
        try object(statusKeys) { (q: inout Parser, k: Int) throws(Unusual) in
            func opt(_ q: inout Parser) throws(Unusual) -> Int64? {
                try q.optional { (r: inout Parser) throws(Unusual) in try r.int() }
            }
            switch k {
            case 0: s.run = Int(try q.int())
            case 1: s.pagesToScan = Int(try q.int())
            case 2: s.sleepMillisecs = Int(try q.int())
            case 3: s.pagesShared = try q.int()
            case 4: s.pagesSharing = try q.int()
            case 5: s.pagesUnshared = try q.int()
            case 6: s.pagesVolatile = try q.int()
            case 7: s.fullScans = try q.int()
            case 8: s.mergeAcrossNodes = try opt(&q).map { Int($0) }
            case 9: s.maxPageSharing = try opt(&q).map { Int($0) }
            case 10: s.stableNodeChains = try opt(&q)
            case 11: s.stableNodeDups = try opt(&q)
            case 12: s.useZeroPages = try opt(&q).map { Int($0) }
            case 13: s.ksmZeroPages = try opt(&q)
            case 14: s.generalProfit = try opt(&q)
            case 15: s.pagesScanned = try opt(&q)
            case 16: s.pagesSkipped = try opt(&q)
            case 17: s.smartScan = try opt(&q).map { Int($0) }
            case 18: s.advisorMode = try q.optional { (r: inout Parser) throws(Unusual) in try r.string() }
            case 19: s.advisorTargetScanTime = try opt(&q)
            case 20: s.advisorMinPagesToScan = try opt(&q)
            case 21: s.advisorMaxPagesToScan = try opt(&q)
            default: s.advisorMaxCPU = try opt(&q)
            }
            if k < 8 { required |= 1 << UInt32(k) }
        }
        guard required == 0xFF else { throw Unusual() }
        return s
    }

    /// A `ProcessReport` (sent with every Nth sample).
    mutating func processReport() throws(Unusual) -> ProcessReport {
        var r = ProcessReport(perProcessStats: false)
        var required: UInt32 = 0
        try object(processReportKeys) { (q: inout Parser, k: Int) throws(Unusual) in
            switch k {
            case 0: r.perProcessStats = try q.bool()
            case 1: r.processesScanned = Int(try q.int())
            case 2: r.mergeableProcesses = Int(try q.int())
            case 3: r.mergingProcesses = Int(try q.int())
            case 4: r.rmapItems = try q.int()
            case 5: r.mergingPages = try q.int()
            case 6: r.anonHugePagesKB = try q.optional { (x: inout Parser) throws(Unusual) in try x.int() }
            case 7: r.anonymousKB = try q.optional { (x: inout Parser) throws(Unusual) in try x.int() }
            case 8: r.transparentHugePages = try q.optional { (x: inout Parser) throws(Unusual) in try x.string() }
            case 9: r.truncated = try q.bool()
            case 10: r.scanMillis = try q.double()
            default: r.groups = try q.array { (x: inout Parser) throws(Unusual) in try x.processGroup() }
            }
            if k != 6 && k != 7 && k != 8 { required |= 1 << UInt32(k) }
        }
        guard required == 0xE3F else { throw Unusual() }
        return r
    }

    mutating func processGroup() throws(Unusual) -> ProcessGroupSavings {
        var g = ProcessGroupSavings(
            kind: .command, name: "", processes: 0, mergingPages: 0, zeroPages: 0, rmapItems: 0, profitBytes: nil)
        var required: UInt32 = 0
        try object(processGroupKeys) { (q: inout Parser, k: Int) throws(Unusual) in
            switch k {
            case 0:
                try q.expect(0x22)
                let (start, length) = try q.plainStringBody()
                guard let kind = processGroupKinds.first(where: { $0.0.utf8CodeUnitCount == length && q.same(start, $0.0) })
                else { throw Unusual() }
                g.kind = kind.1
            case 1: g.name = try q.string()
            case 2: g.processes = Int(try q.int())
            case 3: g.mergingPages = try q.int()
            case 4: g.zeroPages = try q.int()
            case 5: g.rmapItems = try q.int()
            default: g.profitBytes = try q.optional { (x: inout Parser) throws(Unusual) in try x.int() }
            }
            if k < 6 { required |= 1 << UInt32(k) }
        }
        guard required == 0x3F else { throw Unusual() }
        return g
    }

    /// A JSON array of values read by `element`.
    mutating func array<T>(_ element: (inout Parser) throws(Unusual) -> T) throws(Unusual) -> [T] {
        try expect(0x5B)
        ws()
        var out: [T] = []
        if peek() == 0x5D {
            i += 1
            return out
        }
        while true {
            ws()
            out.append(try element(&self))
            ws()
            let c = try next()
            if c == 0x5D { return out }
            guard c == 0x2C else { throw Unusual() }
        }
    }

    mutating func memory() throws(Unusual) -> MemorySnapshot {
        var m = MemorySnapshot(memTotalKB: 0, memAvailableKB: 0)
        var required: UInt32 = 0
        try object(memoryKeys) { (q: inout Parser, k: Int) throws(Unusual) in
            let v = try q.int()
            switch k {
            case 0: m.memTotalKB = v
            case 1: m.memAvailableKB = v
            case 2: m.memFreeKB = v
            case 3: m.buffersKB = v
            case 4: m.cachedKB = v
            default: m.anonPagesKB = v
            }
            required |= 1 << UInt32(k)
        }
        guard required == 0x3F else { throw Unusual() }
        return m
    }

    // MARK: tokens

    @inline(__always) func peek() -> UInt8 { i < n ? p[i] : 0 }

    @inline(__always) mutating func next() throws(Unusual) -> UInt8 {
        guard i < n else { throw Unusual() }
        defer { i += 1 }
        return p[i]
    }

    @inline(__always) mutating func expect(_ c: UInt8) throws(Unusual) {
        guard i < n, p[i] == c else { throw Unusual() }
        i += 1
    }

    @inline(__always) mutating func ws() {
        while i < n {
            let c = p[i]
            guard c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 else { return }
            i += 1
        }
    }

    /// A key (after its opening quote) as its index in `keys`; escapes and unknown keys are
    /// unusual.
    mutating func key(_ keys: [StaticString]) throws(Unusual) -> Int {
        let (start, length) = try plainStringBody()
        for (k, name) in keys.enumerated() where name.utf8CodeUnitCount == length {
            if same(start, name) { return k }
        }
        throw Unusual()
    }

    /// The bytes of a string without escapes, after its opening quote, as (start, length);
    /// leaves `i` after the closing quote. An escape is unusual.
    @inline(__always) mutating func plainStringBody() throws(Unusual) -> (Int, Int) {
        let start = i
        while i < n, p[i] != 0x22 {
            guard p[i] != 0x5C else { throw Unusual() }
            i += 1
        }
        guard i < n else { throw Unusual() }
        i += 1
        return (start, i - 1 - start)
    }

    /// Whether the bytes at `start` are `name` (whose length the caller checked).
    @inline(__always) func same(_ start: Int, _ name: StaticString) -> Bool {
        let q = name.utf8Start
        for k in 0..<name.utf8CodeUnitCount where p[start + k] != q[k] { return false }
        return true
    }

    /// `null` (nil) or a value read by `read`.
    @inline(__always) mutating func optional<T>(_ read: (inout Parser) throws(Unusual) -> T) throws(Unusual) -> T? {
        if peek() == 0x6E {  // n
            guard i + 4 <= n, p[i + 1] == 0x75, p[i + 2] == 0x6C, p[i + 3] == 0x6C else { throw Unusual() }
            i += 4
            return nil
        }
        return try read(&self)
    }

    /// `true` or `false`.
    mutating func bool() throws(Unusual) -> Bool {
        if i + 4 <= n, p[i] == 0x74, p[i + 1] == 0x72, p[i + 2] == 0x75, p[i + 3] == 0x65, endsValue(i + 4) {
            i += 4
            return true
        }
        if i + 5 <= n, p[i] == 0x66, p[i + 1] == 0x61, p[i + 2] == 0x6C, p[i + 3] == 0x73, p[i + 4] == 0x65,
            endsValue(i + 5)
        {
            i += 5
            return false
        }
        throw Unusual()
    }

    /// The end of a number token; what follows must end the value.
    @inline(__always) func endsValue(_ j: Int) -> Bool {
        guard j < n else { return true }
        let c = p[j]
        return c == 0x2C || c == 0x7D || c == 0x5D || c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09
    }

    /// An integer written as one (`-?(0|[1-9][0-9]*)`), within Int64. Fractions, exponents,
    /// `-0` and overflow are unusual.
    mutating func int() throws(Unusual) -> Int64 {
        var j = i
        let negative = j < n && p[j] == 0x2D
        if negative { j += 1 }
        guard j < n else { throw Unusual() }
        let first = p[j] &- 0x30
        guard first <= 9 else { throw Unusual() }
        j += 1
        var v = -Int64(first)  // accumulated negatively: Int64.min fits
        if first == 0 {
            if negative { throw Unusual() }
        } else {
            while j < n {
                let d = p[j] &- 0x30
                guard d <= 9 else { break }
                let (m, o1) = v.multipliedReportingOverflow(by: 10)
                let (s, o2) = m.subtractingReportingOverflow(Int64(d))
                guard !o1, !o2 else { throw Unusual() }
                v = s
                j += 1
            }
        }
        guard endsValue(j) else { throw Unusual() }
        i = j
        if negative { return v }
        guard v != Int64.min else { throw Unusual() }
        return -v
    }

    /// A JSON number as a finite Double (the grammar checked here, the value converted by the
    /// standard library's correctly rounded parser, as `JSONDecoder` does).
    mutating func double() throws(Unusual) -> Double {
        let start = i
        var j = i
        if j < n, p[j] == 0x2D { j += 1 }
        func digits(_ j: inout Int) -> Int {
            let s = j
            while j < n, p[j] &- 0x30 <= 9 { j += 1 }
            return j - s
        }
        let intStart = j
        let intDigits = digits(&j)
        guard intDigits > 0, !(intDigits > 1 && p[intStart] == 0x30) else { throw Unusual() }
        var plain = true
        if j < n, p[j] == 0x2E {
            j += 1
            guard digits(&j) > 0 else { throw Unusual() }
            plain = false
        }
        if j < n, p[j] == 0x65 || p[j] == 0x45 {
            j += 1
            if j < n, p[j] == 0x2B || p[j] == 0x2D { j += 1 }
            guard digits(&j) > 0 else { throw Unusual() }
            plain = false
        }
        guard endsValue(j) else { throw Unusual() }
        i = j
        if plain, intDigits <= 15 {
            // Exact: fewer than 2^53.
            var v: Int64 = 0
            for k in intStart..<j { v = v * 10 + Int64(p[k] &- 0x30) }
            let d = Double(v)
            return p[start] == 0x2D ? -d : d
        }
        let text = String(decoding: UnsafeBufferPointer(start: p + start, count: j - start), as: UTF8.self)
        guard let d = Double(text), d.isFinite else { throw Unusual() }
        return d
    }

    /// A string value; escapes are decoded, invalid UTF-8, control characters and lone
    /// surrogates are unusual.
    mutating func string() throws(Unusual) -> String {
        try expect(0x22)
        let start = i
        while i < n {
            let c = p[i]
            if c == 0x22 {
                let bytes = UnsafeBufferPointer(start: p + start, count: i - start)
                i += 1
                guard let s = String(validating: bytes, as: UTF8.self) else { throw Unusual() }
                return s
            }
            if c == 0x5C { return try escapedString(start) }
            guard c >= 0x20 else { throw Unusual() }
            i += 1
        }
        throw Unusual()
    }

    /// A string with escapes, from its first byte `start` (`i` at its first backslash).
    mutating func escapedString(_ start: Int) throws(Unusual) -> String {
        var out: [UInt8] = Array(UnsafeBufferPointer(start: p + start, count: i - start))
        guard JSONEscapes.readRest(p, count: n, at: &i, into: &out),
            let s = String(validating: out, as: UTF8.self)
        else { throw Unusual() }
        return s
    }

    mutating func phase() throws(Unusual) -> KSMPhase {
        try expect(0x22)
        let (start, length) = try plainStringBody()
        for (name, phase) in phases where name.utf8CodeUnitCount == length {
            if same(start, name) { return phase }
        }
        throw Unusual()
    }

    /// `YYYY-MM-DDTHH:MM:SS[.f{1,9}](Z|±HH:MM)` (`Timestamp`'s `.rfc3339` form), as
    /// `JSONDecoder`'s `.iso8601` reads it, for years 1900–9999, offsets up to ±18:00 and valid
    /// calendar values; anything else (leap seconds, 24:00, other forms it may or may not take)
    /// is unusual.
    mutating func date() throws(Unusual) -> Date {
        try expect(0x22)
        let (start, length) = try plainStringBody()
        guard let t = Timestamp.parse(UnsafeBufferPointer(start: p + start, count: length), form: .rfc3339),
            (1900...9999).contains(t.year), abs(t.offsetSeconds) <= 18 * 3600
        else { throw Unusual() }
        // The same arithmetic as Foundation's parser: whole seconds since 2001 plus the fraction.
        let sinceReference = Double(t.unixSeconds - 978_307_200) + Double(t.nanoseconds) / 1e9
        return Date(timeIntervalSinceReferenceDate: sinceReference)
    }
}
