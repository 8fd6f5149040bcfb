/// A Prometheus text exposition read back for tests: the value of each series (`name{labels}`
/// as written) and the declared type of each family.
struct MetricsText {
    var values: [String: Double] = [:]
    var types: [String: String] = [:]

    init(_ text: String) {
        for line in text.split(separator: "\n") {
            if line.hasPrefix("# TYPE ") {
                let parts = line.split(separator: " ")
                if parts.count == 4 { types[String(parts[2])] = String(parts[3]) }
                continue
            }
            guard !line.hasPrefix("#"), let space = line.lastIndex(of: " ") else { continue }
            values[String(line[..<space])] = Double(line[line.index(after: space)...])
        }
    }

    /// The series of a node, as the server labels them.
    func node(_ name: String, id: String, node: String) -> Double? {
        values["\(name){node_id=\"\(id)\",node=\"\(node)\"}"]
    }
}
