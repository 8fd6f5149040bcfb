/// JSON string escapes (RFC 8259 §7) for the hand-written readers of hot paths (the server's
/// sample batches, `SampleBatchDecoder`; the store's config notices, `NoticeScanner`): one
/// decoding of `\"` `\\` `\/` `\b` `\f` `\n` `\r` `\t` and `\uXXXX` with surrogate pairs, so
/// that both read an escaped string as `JSONDecoder` does. Their tests compare them with
/// `JSONDecoder` on random and broken text.
public enum JSONEscapes {
    /// Reads the rest of a string, from `i` (inside it) to its closing quote, appending its bytes
    /// with every escape decoded to `out`; `i` ends past the closing quote. false (`i`
    /// anywhere) for a control character, an unknown escape, a bad or lone surrogate, or no
    /// closing quote before `count`. UTF-8 outside escapes is copied as it is.
    public static func readRest(
        _ p: UnsafePointer<UInt8>, count n: Int, at i: inout Int, into out: inout [UInt8]
    ) -> Bool {
        while i < n {
            let c = p[i]
            i += 1
            if c == 0x22 { return true }
            if c < 0x20 { return false }
            if c != 0x5C {
                out.append(c)
                continue
            }
            guard i < n else { return false }
            let e = p[i]
            i += 1
            switch e {
            case 0x22, 0x5C, 0x2F: out.append(e)
            case 0x62: out.append(0x08)
            case 0x66: out.append(0x0C)
            case 0x6E: out.append(0x0A)
            case 0x72: out.append(0x0D)
            case 0x74: out.append(0x09)
            case 0x75:
                guard var scalar = hex4(p, count: n, at: &i) else { return false }
                if scalar >= 0xD800 && scalar < 0xDC00 {
                    guard n - i >= 6, p[i] == 0x5C, p[i + 1] == 0x75 else { return false }
                    i += 2
                    guard let low = hex4(p, count: n, at: &i), low >= 0xDC00, low < 0xE000 else { return false }
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                }
                // nil for a lone low surrogate.
                guard let u = Unicode.Scalar(scalar) else { return false }
                UTF8.encode(u) { out.append($0) }
            default:
                return false
            }
        }
        return false
    }

    /// Four hex digits, either case.
    private static func hex4(_ p: UnsafePointer<UInt8>, count n: Int, at i: inout Int) -> UInt32? {
        guard n - i >= 4 else { return nil }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = p[i]
            let d: UInt32
            switch c {
            case 0x30...0x39: d = UInt32(c - 0x30)
            case 0x41...0x46: d = UInt32(c - 0x41 + 10)
            case 0x61...0x66: d = UInt32(c - 0x61 + 10)
            default: return nil
            }
            v = v << 4 | d
            i += 1
        }
        return v
    }
}
