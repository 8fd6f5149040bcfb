import KSMCore

/// One UTC hour of raw samples, every node's (`taken_at` in [hour, hour + 1 h)), in one blob
/// (`raw_hour_pack`, migrations/0047_raw_hour_pack.sql): what a report reads for a partial edge
/// hour in one row instead of one row per sample (about 60,000 rows an hour for 1,000 nodes at
/// the agent's 60 s, each 0.7 µs on SQLite and more through postgres-nio). The rollup service
/// writes it from the rows it reads anyway for the hour's peaks; it holds exactly what a read of
/// the hour's rows gives (`FleetDatabase.rawSamples`), in the same order, and is used only
/// while its hour's `peak_version` is the one it was made from (see `FleetDatabase.packPieces`).
/// Ten-minute slices of the hour under way use the same format (`FleetDatabase.slicePackPass`).
///
/// Per node: the id (length, UTF-8), the sample count, the byte length of its samples (a node a
/// report does not want is skipped whole), then per sample: the milliseconds since the previous
/// one (the first: since the hour's start), a flag byte (end of data; which optional columns are
/// present; the phase), the saving and the full scans as zigzag deltas, the CPU seconds and
/// percent as their 8 bytes when present, the profit as a zigzag delta when present. Integers
/// are LEB128 varints; deltas wrap, so every Int64 comes back as it went in. On the bench fill
/// 21.8 bytes a sample, against 164 for a row of `samples` with its indexes (docs/benchmarks.md).
enum RawHourPack {
    static let format: UInt8 = 1

    struct Malformed: Error, CustomStringConvertible {
        var what: String
        var description: String { "raw hour pack: \(what)" }
    }

    private static let phases = KSMPhase.allCases

    /// The pack of the samples of `nodes` (each node's in read order) taken in [fromMs, toMs).
    static func encode(_ nodes: [(String, [ReportSample])], fromMs: Int64, toMs: Int64) -> [UInt8] {
        var out: [UInt8] = [format]
        var body: [UInt8] = []
        for (id, samples) in nodes {
            body.removeAll(keepingCapacity: true)
            var count = 0
            var (lastMs, lastSaved, lastScans, lastProfit) = (fromMs, Int64(0), Int64(0), Int64(0))
            for s in samples {
                let ms = Int64((s.at * 1000).rounded())
                guard ms >= fromMs, ms < toMs else { continue }
                count += 1
                putVarint(&body, UInt64(bitPattern: ms &- lastMs))
                lastMs = ms
                var flags = UInt8(phases.firstIndex(of: s.phase) ?? 0) << 4
                if s.endsData { flags |= 1 }
                if s.cpuSeconds != nil { flags |= 2 }
                if s.cpuPercent != nil { flags |= 4 }
                if s.netProfit != nil { flags |= 8 }
                body.append(flags)
                putZigzag(&body, s.savedBytes &- lastSaved)
                lastSaved = s.savedBytes
                putZigzag(&body, s.fullScans &- lastScans)
                lastScans = s.fullScans
                if let c = s.cpuSeconds { putFixed(&body, c.bitPattern) }
                if let p = s.cpuPercent { putFixed(&body, p.bitPattern) }
                if let p = s.netProfit {
                    putZigzag(&body, p &- lastProfit)
                    lastProfit = p
                }
            }
            guard count > 0 else { continue }
            let idBytes = Array(id.utf8)
            putVarint(&out, UInt64(idBytes.count))
            out.append(contentsOf: idBytes)
            putVarint(&out, UInt64(count))
            putVarint(&out, UInt64(body.count))
            out.append(contentsOf: body)
        }
        return out
    }

    /// Appends to `byNode` the pack's samples taken in [fromMs, toMs) of the nodes `wanted`
    /// (with every column when `full`, else what a raw read without them gives: time, saving,
    /// end of data). `hourMs`: the start of the pack's hour, its first sample's base.
    static func decode(
        _ pack: UnsafeRawBufferPointer, hourMs: Int64, fromMs: Int64, toMs: Int64, full: Bool,
        wanted: (String) -> Bool, into byNode: inout SamplesByNode
    ) throws {
        var r = Reader(bytes: pack)
        guard try r.byte() == format else { throw Malformed(what: "an unknown format") }
        while !r.atEnd {
            let id = try r.take(try r.count())
            let count = try r.count()
            let length = try r.count()
            // A sample takes at least 4 bytes: a count that cannot fit is refused before room is
            // made for it.
            guard count <= length / 4, length <= r.left else { throw Malformed(what: "a node's count or length") }
            let start = r.offset
            let slot = byNode.slot(utf8: id.baseAddress, count: id.count, if: wanted)
            guard let slot else {
                _ = try r.take(length)
                continue
            }
            // Room for them at once, at least doubling as appends would: a list read from
            // several packs in a row is not copied once per pack.
            let need = byNode.lists[slot].count + count
            if byNode.lists[slot].capacity < need {
                byNode.lists[slot].reserveCapacity(max(need, 2 * byNode.lists[slot].capacity))
            }
            var (ms, saved, scans, profit) = (hourMs, Int64(0), Int64(0), Int64(0))
            for _ in 0..<count {
                ms = ms &+ Int64(bitPattern: try r.varint())
                let flags = try r.byte()
                saved = saved &+ (try r.zigzag())
                scans = scans &+ (try r.zigzag())
                let cpuSeconds = flags & 2 != 0 ? Double(bitPattern: try r.fixed()) : nil
                let cpuPercent = flags & 4 != 0 ? Double(bitPattern: try r.fixed()) : nil
                var netProfit: Int64?
                if flags & 8 != 0 {
                    profit = profit &+ (try r.zigzag())
                    netProfit = profit
                }
                guard ms >= fromMs, ms < toMs else { continue }
                var sample = ReportSample(at: Double(ms) / 1000, savedBytes: saved, endsData: flags & 1 != 0)
                if full {
                    let phase = Int(flags >> 4)
                    guard phase < phases.count else { throw Malformed(what: "phase \(phase)") }
                    sample.cpuSeconds = cpuSeconds
                    sample.cpuPercent = cpuPercent
                    sample.fullScans = scans
                    sample.phase = phases[phase]
                    sample.netProfit = netProfit
                }
                byNode.lists[slot].append(sample)
            }
            guard r.offset - start == length else { throw Malformed(what: "a node's samples of the wrong length") }
        }
    }

    private static func putVarint(_ out: inout [UInt8], _ value: UInt64) {
        var v = value
        while v >= 0x80 {
            out.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        out.append(UInt8(v))
    }

    private static func putZigzag(_ out: inout [UInt8], _ value: Int64) {
        putVarint(&out, UInt64(bitPattern: (value << 1) ^ (value >> 63)))
    }

    private static func putFixed(_ out: inout [UInt8], _ value: UInt64) {
        withUnsafeBytes(of: value.littleEndian) { out.append(contentsOf: $0) }
    }

    private struct Reader {
        let bytes: UnsafeRawBufferPointer
        var offset = 0
        var atEnd: Bool { offset >= bytes.count }
        var left: Int { bytes.count - offset }

        mutating func byte() throws -> UInt8 {
            guard offset < bytes.count else { throw Malformed(what: "cut short") }
            defer { offset += 1 }
            return bytes[offset]
        }

        mutating func varint() throws -> UInt64 {
            var value: UInt64 = 0
            var shift: UInt64 = 0
            while true {
                let b = try byte()
                // The tenth byte holds the 64th bit only.
                guard shift < 63 || (shift == 63 && b <= 1) else { throw Malformed(what: "a varint too long") }
                value |= UInt64(b & 0x7f) << shift
                if b < 0x80 { return value }
                shift += 7
            }
        }

        /// A varint that counts something in the pack (a length, a number of samples).
        mutating func count() throws -> Int {
            guard let n = Int(exactly: try varint()), n <= bytes.count else { throw Malformed(what: "a count too large") }
            return n
        }

        mutating func zigzag() throws -> Int64 {
            let v = try varint()
            return Int64(bitPattern: (v >> 1) ^ (0 &- (v & 1)))
        }

        mutating func fixed() throws -> UInt64 {
            guard bytes.count - offset >= 8 else { throw Malformed(what: "cut short") }
            defer { offset += 8 }
            return UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
        }

        mutating func take(_ n: Int) throws -> UnsafeBufferPointer<UInt8> {
            guard n >= 0, bytes.count - offset >= n else { throw Malformed(what: "cut short") }
            defer { offset += n }
            let base = bytes.baseAddress.map { $0.advanced(by: offset).assumingMemoryBound(to: UInt8.self) }
            return UnsafeBufferPointer(start: base, count: n)
        }
    }
}
