import Foundation

/// Alert thresholds as the limits hash (`alerts`) and the scripts hold them: ascending percents,
/// comma-separated, or `none`. The scripts read only the digits, so this is the one place that
/// decides what may be written there.
public enum AlertThresholds {
    /// Each threshold is a percent of the budget; above 100 only `on_limit: warn` can reach it.
    public static let range = 1...1_000
    public static let rule = "comma-separated percents from 1 to 1000 such as 50,80,100, or none"

    /// The field's value for `thresholds` (`none` when empty).
    public static func field(_ thresholds: [Int]) -> String {
        thresholds.isEmpty ? "none" : thresholds.map(String.init).joined(separator: ",")
    }

    /// Sorted and unique; nil when any part is not a percent in `range`.
    public static func validated(_ text: String) -> [Int]? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if trimmed == "none" || trimmed.isEmpty { return [] }
        var out: Set<Int> = []
        for part in trimmed.split(separator: ",", omittingEmptySubsequences: false) {
            guard let n = Int(part.trimmingCharacters(in: .whitespaces)), range.contains(n) else { return nil }
            out.insert(n)
        }
        return out.sorted()
    }

    /// What the scripts would read from a stored field: its numbers, in order.
    static func parse(_ text: String) -> [Int] {
        text.split(whereSeparator: { !$0.isNumber }).compactMap { Int($0) }.sorted()
    }
}
