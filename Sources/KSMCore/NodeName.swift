/// Node names are DNS host names (RFC 1123): labels of 1–63 characters from `a-z`, `0-9` and
/// `-`, not starting or ending with `-`, joined by dots, 253 characters at most. Names are
/// case-insensitive like DNS: they are stored and compared in lower case (`Web-1` is `web-1`);
/// one trailing dot (a fully qualified form) is dropped.
public enum NodeName {
    public static let maxLength = 253
    public static let maxLabelLength = 63

    /// The name in its stored form, or why it is not a host name (in words, for an API error).
    public static func normalize(_ raw: String) -> Result<String, NodeNameError> {
        var name = raw.lowercased()
        if name.hasSuffix(".") { name.removeLast() }
        if name.isEmpty { return .failure(NodeNameError("must not be empty")) }
        if name.utf8.count > maxLength {
            return .failure(NodeNameError("is \(name.utf8.count) characters long; a host name has at most \(maxLength)"))
        }
        for label in name.split(separator: ".", omittingEmptySubsequences: false) {
            if label.isEmpty { return .failure(NodeNameError("has an empty label (two dots in a row, or a leading dot)")) }
            if label.utf8.count > maxLabelLength {
                return .failure(NodeNameError("has a label of \(label.utf8.count) characters; at most \(maxLabelLength) are allowed"))
            }
            for byte in label.utf8 where !isAllowed(byte) {
                return .failure(
                    NodeNameError(
                        "contains \(describe(byte)); a host name has only letters a-z, digits 0-9, '-' and dots between labels"))
            }
            if label.utf8.first == UInt8(ascii: "-") || label.utf8.last == UInt8(ascii: "-") {
                return .failure(NodeNameError("has a label that starts or ends with '-'"))
            }
        }
        return .success(name)
    }

    /// `name` with `-N` appended to its first label (shortened to fit 63 characters), for the
    /// second, third, … live node that asks for a taken name.
    public static func withSuffix(_ name: String, _ n: Int) -> String {
        let suffix = "-\(n)"
        var labels = name.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard var first = labels.first else { return name + suffix }
        while first.utf8.count + suffix.utf8.count > maxLabelLength || (name.utf8.count - labels[0].utf8.count + first.utf8.count + suffix.utf8.count) > maxLength {
            first.removeLast()
        }
        while first.hasSuffix("-") { first.removeLast() }
        labels[0] = (first.isEmpty ? "node" : first) + suffix
        return labels.joined(separator: ".")
    }

    static func isAllowed(_ b: UInt8) -> Bool {
        (b >= UInt8(ascii: "a") && b <= UInt8(ascii: "z")) || (b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9"))
            || b == UInt8(ascii: "-")
    }

    static func describe(_ b: UInt8) -> String {
        if b >= 0x21 && b < 0x7f { return "'\(Character(Unicode.Scalar(b)))'" }
        if b == 0x20 { return "a space" }
        if b < 0x20 || b == 0x7f { return "a control character" }
        return "a non-ASCII character"
    }
}

public struct NodeNameError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
