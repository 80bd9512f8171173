/// The budget timezone around now, as `lua/reserve_v5.lua` takes it: the UTC offset in force,
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

/// The budget period a call at some instant falls in, as `lua/reserve_v5.lua` takes it from the
/// replica: the day and its month, when they end, and the instants for which Redis, deriving
/// them from TIME, would name the same day. The script uses it only when TIME is inside
/// `validFrom..<validUntil`, so a replica's clock that is off (or a call across midnight) costs
/// the script's own derivation, never a wrong day.
public struct CalendarPeriod: Sendable, Equatable {
    /// `YYYY-MM-DD`; its month is the first seven characters.
    public var day: String
    public var month: Substring { day.prefix(7) }
    public var validFrom: UnixTime
    public var validUntil: UnixTime
    public var dayEnd: UnixTime
    public var monthEnd: UnixTime
}

extension TimezoneSchedule {
    /// The period the script would derive at `time`: the date by the offset in force then, and
    /// the stretch around `time` in which that offset gives the same date (cut at the change).
    public func period(at time: UnixTime) -> CalendarPeriod {
        func floorDiv(_ a: Int64, _ b: Int64) -> Int64 { a >= 0 ? a / b : (a - b + 1) / b }
        let offset = offset(at: time)
        let days = floorDiv(time.seconds + offset, 86_400)
        var from = days * 86_400 - offset, until = (days + 1) * 86_400 - offset
        if time < nextChange { until = min(until, nextChange.seconds) } else { from = max(from, nextChange.seconds) }
        let (y, m, _) = CivilDate.fromDays(days)
        let nextMonth = m == 12 ? CivilDate.days(year: y + 1, month: 1, day: 1) : CivilDate.days(year: y, month: m + 1, day: 1)
        return CalendarPeriod(day: CivilDate.dayString(time, utcOffset: offset), validFrom: UnixTime(seconds: from),
                            validUntil: UnixTime(seconds: until), dayEnd: midnight(localDays: days + 1),
                            monthEnd: midnight(localDays: nextMonth))
    }
}
