/// A run of calendar days, `from` through `to` inclusive, as the day keys name them
/// (`tollgate:{C}:day:YYYY-MM-DD`). Analytics read one hash per day and client, so a range is
/// bounded: `maxDays` keeps one call to a few hundred reads per client.
public struct DateRange: Sendable, Equatable {
    public let from: String
    public let to: String
    /// Every day of the range, oldest first.
    public let days: [String]

    /// A little more than a year: a year-over-year look fits, an unbounded scan does not.
    public static let maxDays = 400

    /// Why a range was refused; the message names the parameter and shows a valid value.
    public enum Problem: Error, Equatable, CustomStringConvertible {
        case notADate(name: String, value: String)
        case notAMonth(name: String, value: String)
        case reversed(from: String, to: String)
        case tooLong(days: Int64)

        public var description: String {
            switch self {
            case .notADate(let name, let value): return "\(name) must be a calendar date YYYY-MM-DD, e.g. 2026-11-30 (got \(value.prefix(40)))."
            case .notAMonth(let name, let value): return "\(name) must be a month YYYY-MM, e.g. 2026-11 (got \(value.prefix(40)))."
            case .reversed(let from, let to): return "from (\(from)) is after to (\(to)): give the earlier day as from."
            case .tooLong(let days): return "the range has \(days) days; at most \(DateRange.maxDays) can be read at once. Narrow from/to."
            }
        }
    }

    public init(from: String, to: String) throws(Problem) {
        let first = try Self.day(from, name: "from"), last = try Self.day(to, name: "to")
        guard first <= last else { throw .reversed(from: from, to: to) }
        guard last - first < Int64(Self.maxDays) else { throw .tooLong(days: last - first + 1) }
        self.from = from
        self.to = to
        days = (first...last).map(Self.name)
    }

    /// The `count` days ending with `to` (today, for "the last 30 days").
    public static func last(_ count: Int, endingOn to: String) throws(Problem) -> DateRange {
        let last = try day(to, name: "to")
        return try DateRange(from: name(last - Int64(max(count, 1)) + 1), to: to)
    }

    /// The month of `day` from its first day through `day` (month-to-date).
    public static func monthToDate(_ day: String) throws(Problem) -> DateRange {
        try DateRange(from: String(day.prefix(7)) + "-01", to: day)
    }

    /// Days since 1970-01-01 of a `YYYY-MM-DD`, or the problem naming the parameter.
    public static func day(_ text: String, name: String) throws(Problem) -> Int64 {
        guard let days = CivilDate.parseDay(text) else { throw .notADate(name: name, value: text) }
        return days
    }

    /// Checks a `YYYY-MM` month name.
    public static func month(_ text: String, name: String) throws(Problem) -> String {
        guard text.utf8.count == 7, CivilDate.parseDay(text + "-01") != nil else { throw .notAMonth(name: name, value: text) }
        return text
    }

    /// `YYYY-MM-DD` of a day number.
    public static func name(_ days: Int64) -> String { CivilDate.dayString(UnixTime(seconds: days * 86_400), utcOffset: 0) }
}
