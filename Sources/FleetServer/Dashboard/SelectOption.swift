/// One `<option>` of a select (`option.mustache`).
struct SelectOption: Sendable, Equatable {
    var value: String
    var label: String
    var selected: Bool

    /// Options from (value, label) pairs, the one equal to `current` selected.
    static func list(_ pairs: [(String, String)], current: String) -> [SelectOption] {
        pairs.map { SelectOption(value: $0.0, label: $0.1, selected: $0.0 == current) }
    }
}
