import Foundation

/// Where the dashboard may send a browser after sign-in: a path on this origin, nothing else.
///
/// Browsers are lenient with a `Location`: they drop tabs and newlines anywhere in it (so
/// `/\t/evil.example` becomes `//evil.example`, another host), treat `\` as `/` (`/\evil.example`),
/// and follow schemes (`javascript:`, `https:`). So the target is first normalised (percent
/// decoding repeated until it stops changing, at most a few rounds, so that `%2509` cannot hide a
/// tab either), and refused when any form of it has a control character, whitespace or a
/// backslash, does not start with exactly one `/`, or parses as a URL with a scheme or a host.
enum SafeRedirect {
    /// The longest target kept (anything longer is refused).
    static let maxLength = 2048

    /// `target` when it is a path on this origin, else `fallback`.
    static func path(_ target: String?, fallback: String = "/") -> String {
        guard let target, isSameOriginPath(target) else { return fallback }
        return target
    }

    static func isSameOriginPath(_ target: String) -> Bool {
        guard !target.isEmpty, target.utf8.count <= maxLength else { return false }
        var forms = [target]
        var current = target
        for _ in 0..<4 {
            guard let decoded = current.removingPercentEncoding else { return false }
            if decoded == current { break }
            forms.append(decoded)
            current = decoded
        }
        // Still changing after four rounds: refuse rather than guess.
        if let last = forms.last, last.removingPercentEncoding != last { return false }
        for form in forms {
            guard form.hasPrefix("/"), !form.hasPrefix("//") else { return false }
            for scalar in form.unicodeScalars {
                if scalar == "\\" { return false }
                if scalar.properties.generalCategory == .control || scalar.properties.isWhitespace { return false }
                // Invisible format characters (zero-width space, bidi overrides) have no place in a path.
                if scalar.properties.generalCategory == .format { return false }
            }
        }
        guard let components = URLComponents(string: target), components.scheme == nil, components.host == nil,
            components.user == nil, components.path.hasPrefix("/")
        else { return false }
        return true
    }
}
