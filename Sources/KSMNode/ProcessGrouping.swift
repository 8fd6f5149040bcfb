import KSMCore

/// Parsers for the per-process files the KSM attribution reads, and the rule that names a
/// process's group. Pure, so tests feed them fixture text.
public enum ProcessGrouping {
    /// `/proc/PID/ksm_stat` (6.1+): "ksm_rmap_items 12\n…ksm_merge_any: no\nksm_mergeable: yes".
    /// Nil when no known line is found.
    public static func ksmStat(_ text: String) -> ProcessKSMStat? {
        var text = text
        return text.withUTF8 { ksmStat(bytes: UnsafeRawBufferPointer($0)) }
    }

    /// `ksmStat` on the file's bytes, without building strings (the scan reads one per process).
    public static func ksmStat(bytes: UnsafeRawBufferPointer) -> ProcessKSMStat? {
        var stat = ProcessKSMStat()
        var found = false
        var i = 0
        let n = bytes.count
        while i < n {
            // The key: up to ':' or ' '.
            let keyStart = i
            while i < n, bytes[i] != 0x3A, bytes[i] != 0x20, bytes[i] != 0x0A { i += 1 }
            let keyEnd = i
            while i < n, bytes[i] == 0x3A || bytes[i] == 0x20 || bytes[i] == 0x09 { i += 1 }
            var value: Int64 = 0
            var digits = 0
            var yes = false
            if i < n, bytes[i] == 0x79 { yes = true }  // 'y'
            let negative = i < n && bytes[i] == 0x2D  // '-': ksm_process_profit may be below zero
            if negative { i += 1 }
            while i < n, bytes[i] >= 0x30, bytes[i] <= 0x39, digits < 18 {
                value = value * 10 + Int64(bytes[i] - 0x30)
                digits += 1
                i += 1
            }
            if negative { value = -value }
            while i < n, bytes[i] != 0x0A { i += 1 }
            i += 1
            let key = UnsafeRawBufferPointer(rebasing: bytes[keyStart..<keyEnd])
            func isKey(_ name: StaticString) -> Bool {
                guard key.count == name.utf8CodeUnitCount else { return false }
                let p = name.utf8Start
                for k in 0..<key.count where key[k] != p[k] { return false }
                return true
            }
            if isKey("ksm_rmap_items") {
                stat.rmapItems = value
            } else if isKey("ksm_zero_pages") {
                stat.zeroPages = value
            } else if isKey("ksm_merging_pages") {
                stat.mergingPages = value
            } else if isKey("ksm_process_profit") {
                stat.profitBytes = digits > 0 ? value : nil
            } else if isKey("ksm_merge_any") {
                stat.mergeAny = yes
            } else if isKey("ksm_mergeable") {
                stat.mergeable = yes
            } else {
                continue
            }
            found = true
        }
        return found ? stat : nil
    }

    /// `/proc/PID/cmdline`: NUL-separated arguments.
    public static func arguments(_ cmdline: String) -> [String] {
        cmdline.split(separator: "\0", omittingEmptySubsequences: false).map(String.init).filter { !$0.isEmpty }
    }

    /// A QEMU guest's name from its arguments: `-name guest=NAME,debug-threads=on` (libvirt),
    /// `-name NAME` or `-name NAME,process=…`; `,,` is QEMU's escaped comma. Nil when the
    /// program is not QEMU or has no `-name`.
    public static func qemuGuestName(_ args: [String]) -> String? {
        guard let program = args.first?.split(separator: "/").last, program.hasPrefix("qemu") else { return nil }
        var i = 1
        while i < args.count {
            let a = args[i]
            var value: String?
            if a == "-name" || a == "--name" {
                value = i + 1 < args.count ? args[i + 1] : nil
                i += 1
            } else if a.hasPrefix("-name=") || a.hasPrefix("--name=") {
                value = String(a.drop(while: { $0 != "=" }).dropFirst())
            }
            if let value, let name = guestName(option: value) { return name }
            i += 1
        }
        return nil
    }

    /// The guest name in the value of `-name`.
    static func guestName(option: String) -> String? {
        // Split at single commas; ",," stands for a literal comma.
        var parts: [String] = []
        var current = ""
        var chars = option[...]
        while let c = chars.first {
            chars = chars.dropFirst()
            if c == "," {
                if chars.first == "," {
                    current.append(",")
                    chars = chars.dropFirst()
                } else {
                    parts.append(current)
                    current = ""
                }
            } else {
                current.append(c)
            }
        }
        parts.append(current)
        for part in parts where part.hasPrefix("guest=") {
            let name = String(part.dropFirst("guest=".count))
            return name.isEmpty ? nil : name
        }
        // The first part is the guest name when it is not a key=value option.
        if let first = parts.first, !first.isEmpty, !first.contains("=") { return first }
        return nil
    }

    /// The process's cgroup path from `/proc/PID/cgroup`: the unified (v2) line `0::PATH`, else
    /// the v1 `name=systemd` hierarchy, else the memory controller's.
    public static func cgroupPath(_ text: String) -> String? {
        var v2: String?
        var systemd: String?
        var memory: String?
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard fields.count == 3 else { continue }
            let path = String(fields[2])
            if fields[0] == "0" && fields[1].isEmpty {
                v2 = path
            } else if fields[1] == "name=systemd" {
                systemd = path
            } else if fields[1].split(separator: ",").contains("memory") {
                memory = path
            }
        }
        // A hybrid host has "0::/" next to the real v1 paths: prefer whichever says something.
        for candidate in [v2, systemd, memory] {
            if let c = candidate, c != "/" && !c.isEmpty { return c }
        }
        return v2 ?? systemd ?? memory
    }

    /// The group a cgroup path names, or nil when it names nothing an operator would recognise
    /// (the root, a user session, an unknown hierarchy).
    public static func group(cgroup path: String) -> ProcessGroupKey? {
        let parts = path.split(separator: "/").map { unescapeSystemd(String($0)) }
        // Kubernetes: a pod's cgroup, systemd (kubepods-burstable-pod<uid>.slice) or cgroupfs
        // (kubepods/burstable/pod<uid>) driver.
        if parts.contains(where: { $0.hasPrefix("kubepods") }) {
            for p in parts.reversed() {
                if let range = p.firstRange(of: "-pod"), p.hasSuffix(".slice") {
                    let uid = p[range.upperBound...].dropLast(".slice".count)
                    return ProcessGroupKey(kind: .pod, name: uid.replacingUnderscores())
                }
                if p.hasPrefix("pod") && p.count > 3 {
                    return ProcessGroupKey(kind: .pod, name: String(p.dropFirst(3)).replacingUnderscores())
                }
            }
        }
        for p in parts.reversed() {
            // libvirt's guests: machine-qemu-1-web.scope (after unescaping \x2d).
            if p.hasPrefix("machine-qemu-"), p.hasSuffix(".scope") {
                let rest = p.dropFirst("machine-qemu-".count).dropLast(".scope".count)
                // "<id>-<name>": the id is a number.
                if let dash = rest.firstIndex(of: "-"), Int(rest[..<dash]) != nil {
                    return ProcessGroupKey(kind: .vm, name: String(rest[rest.index(after: dash)...]))
                }
                return ProcessGroupKey(kind: .vm, name: String(rest))
            }
            for (prefix, runtime) in containerScopes where p.hasPrefix(prefix) && p.hasSuffix(".scope") {
                let id = p.dropFirst(prefix.count).dropLast(".scope".count)
                return ProcessGroupKey(kind: .container, name: "\(runtime):\(id.prefix(12))")
            }
            if p.hasPrefix("machine-"), p.hasSuffix(".scope") {
                return ProcessGroupKey(kind: .container, name: String(p.dropFirst("machine-".count).dropLast(".scope".count)))
            }
            if p.hasPrefix("lxc.payload.") {
                return ProcessGroupKey(kind: .container, name: "lxc:" + p.dropFirst("lxc.payload.".count))
            }
        }
        // cgroupfs drivers: /docker/<id>, /lxc/<name>, /libpod_parent/libpod-<id>.
        if parts.count >= 2 {
            let parent = parts[parts.count - 2]
            let leaf = parts[parts.count - 1]
            if parent == "docker" && leaf.count >= 12 && leaf.allSatisfy(\.isHexDigit) {
                return ProcessGroupKey(kind: .container, name: "docker:\(leaf.prefix(12))")
            }
            if parent == "lxc" { return ProcessGroupKey(kind: .container, name: "lxc:" + leaf) }
        }
        // A system service (the deepest .service: user@1000.service/app.slice/foo.service → foo).
        if let unit = parts.last(where: { $0.hasSuffix(".service") }), !unit.hasPrefix("user@") {
            return ProcessGroupKey(kind: .unit, name: unit)
        }
        return nil
    }

    /// The scope prefixes of the container runtimes under systemd, and the runtime's short name.
    static let containerScopes: [(String, String)] = [
        ("docker-", "docker"), ("cri-containerd-", "containerd"), ("crio-", "crio"), ("libpod-", "podman"),
    ]

    /// The group of one process: a QEMU guest by its name, else a container, pod or unit by its
    /// cgroup, else its command.
    public static func group(arguments: [String], cgroup: String?, command: String) -> ProcessGroupKey {
        if let guest = qemuGuestName(arguments) { return ProcessGroupKey(kind: .vm, name: guest) }
        if let path = cgroup, let g = group(cgroup: path) { return g }
        if !command.isEmpty { return ProcessGroupKey(kind: .command, name: command) }
        let program = arguments.first.flatMap { $0.split(separator: "/").last.map(String.init) } ?? "?"
        return ProcessGroupKey(kind: .command, name: program)
    }

    /// systemd's escaping in unit names: `\x2d` is '-'.
    static func unescapeSystemd(_ s: String) -> String {
        guard s.contains("\\x") else { return s }
        var out = ""
        var rest = s[...]
        while let r = rest.firstRange(of: "\\x") {
            out += rest[..<r.lowerBound]
            let hex = rest[r.upperBound...].prefix(2)
            if hex.count == 2, let v = UInt8(hex, radix: 16) {
                out.append(Character(Unicode.Scalar(v)))
                rest = rest[rest.index(r.upperBound, offsetBy: 2)...]
            } else {
                out += "\\x"
                rest = rest[r.upperBound...]
            }
        }
        return out + rest
    }

    /// `AnonHugePages:` and `Anonymous:` (kB) of `/proc/PID/smaps_rollup`.
    public static func anonymousAndHuge(smapsRollup text: String) -> (anonymousKB: Int64, anonHugeKB: Int64) {
        var anon: Int64 = 0
        var huge: Int64 = 0
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 2, let v = Int64(fields[1]) else { continue }
            if fields[0] == "Anonymous:" { anon = v }
            if fields[0] == "AnonHugePages:" { huge = v }
        }
        return (anon, huge)
    }
}

extension StringProtocol {
    fileprivate func replacingUnderscores() -> String { String(map { $0 == "_" ? "-" : $0 }) }
}
