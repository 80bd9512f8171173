/// The budget timezone around now, as `lua/reserve_v4.lua` takes it: the UTC offset in force,
/// when it next changes, and the offset after that. One known change is enough: a script call
/// looks at most to the end of the month, and zones change at most twice a year.
///
/// The script, not the replica, decides which offset is in force (by Redis TIME), so replicas
/// with skewed clocks agree on the date even at a DST change. The arithmetic here is the same
/// as the script's, for the admin API and the CLI, which name days and their resets without it.
public struct TimezoneSchedule: Sendable, Equatable {
    /// UTC offset in force before `nextChange`, seconds.
    public var current: Int64
    /// When the offset changes next; `TimezoneSchedule.never` when it does not.
    public var nextChange: UnixTime
    /// UTC offset from `nextChange` on, seconds.
    public var after: Int64

    public init(current: Int64, nextChange: UnixTime, after: Int64) {
        self.current = current
        self.nextChange = nextChange
        self.after = after
    }

    /// 10000-01-01T00:00:00Z: far enough to mean "no change", exact as a Lua number.
    public static let never = UnixTime(seconds: 253_402_300_800)

    /// A zone without changes, such as UTC.
    public static func fixed(_ offset: Int64) -> TimezoneSchedule {
        TimezoneSchedule(current: offset, nextChange: never, after: offset)
    }

    public static let utc = fixed(0)

    public func offset(at time: UnixTime) -> Int64 { time < nextChange ? current : after }

    /// `YYYY-MM-DD` of the local day containing `time`.
    public func day(at time: UnixTime) -> String { CivilDate.dayString(time, utcOffset: offset(at: time)) }

    /// The instant local day `localDays` (days since 1970-01-01) begins: its midnight in the
    /// offset in force then, or the change itself when clocks jump over that midnight.
    public func midnight(localDays: Int64) -> UnixTime {
        let before = localDays * 86_400 - current
        if before < nextChange.seconds { return UnixTime(seconds: before) }
        return UnixTime(seconds: max(nextChange.seconds, localDays * 86_400 - after))
    }

    /// When the day `YYYY-MM-DD` and its month end; nil for a date that is not one.
    public func periodEnds(day: String) -> (dayEnd: UnixTime, monthEnd: UnixTime)? {
        guard let days = CivilDate.parseDay(day) else { return nil }
        let (y, m, _) = CivilDate.fromDays(days)
        let nextMonth = m == 12 ? CivilDate.days(year: y + 1, month: 1, day: 1) : CivilDate.days(year: y, month: m + 1, day: 1)
        return (midnight(localDays: days + 1), midnight(localDays: nextMonth))
    }
}
