import Testing
import TollgateCore

/// The arithmetic `lua/reserve_v3.lua` does, mirrored for the admin API. Times written out:
/// US clocks spring forward at 2027-03-14T10:00:00Z (02:00 PST → 03:00 PDT) and fall back at
/// 2026-11-01T09:00:00Z (02:00 PDT → 01:00 PST).
@Suite("TimezoneSchedule: days and their ends across an offset change")
struct TimezoneScheduleTests {
    static let springForward = TimezoneSchedule(current: -28_800, nextChange: UnixTime(seconds: 1_805_018_400), after: -25_200)
    static let fallBack = TimezoneSchedule(current: -25_200, nextChange: UnixTime(seconds: 1_793_523_600), after: -28_800)

    @Test("the date follows the offset in force at that moment", arguments: [
        (springForward, Int64(1_805_018_399), "2027-03-14"), // 01:59:59 PST
        (springForward, 1_805_011_199, "2027-03-13"),         // 23:59:59 PST
        (springForward, 1_805_093_999, "2027-03-14"),         // 23:59:59 PDT
        (springForward, 1_805_094_000, "2027-03-15"),         // 00:00:00 PDT; with -8 h it would still be the 14th
        (fallBack, 1_793_523_599, "2026-11-01"),              // 01:59:59 PDT
        (fallBack, 1_793_606_399, "2026-11-01"),              // 23:59:59 PST
        (fallBack, 1_793_606_400, "2026-11-02"),
    ])
    func day(schedule: TimezoneSchedule, seconds: Int64, date: String) {
        #expect(schedule.day(at: UnixTime(seconds: seconds)) == date)
    }

    @Test("a period ends at the local midnight in the offset in force at that midnight")
    func periodEnds() throws {
        // The change day ends at 2027-03-15T00:00 PDT = 07:00Z, not 08:00Z.
        let changeDay = try #require(Self.springForward.periodEnds(day: "2027-03-14"))
        #expect(changeDay.dayEnd == UnixTime(seconds: 1_805_094_000))
        #expect(changeDay.monthEnd == UnixTime(seconds: 1_806_562_800)) // 2027-04-01T07:00:00Z
        // The day before still ends in PST: 2027-03-14T08:00:00Z.
        #expect(Self.springForward.periodEnds(day: "2027-03-13")?.dayEnd == UnixTime(seconds: 1_805_011_200))
        // Falling back: 2026-11-02T00:00 PST = 08:00Z, and December begins at 08:00Z too.
        let fallDay = try #require(Self.fallBack.periodEnds(day: "2026-11-01"))
        #expect(fallDay.dayEnd == UnixTime(seconds: 1_793_606_400))
        #expect(fallDay.monthEnd == UnixTime(seconds: 1_796_112_000))
        #expect(Self.fallBack.periodEnds(day: "2026-11-31") == nil)
    }

    @Test("the period a replica passes reserve_v5 holds exactly while the script would name the same day", arguments: [
        // 2027-03-14T09:00:00Z is 01:00 PST on the spring-forward day: the day began at 08:00Z,
        // and by -8 h it lasts until the change at 10:00Z; from then on the script uses -7 h.
        (springForward, Int64(1_805_014_800), "2027-03-14", Int64(1_805_011_200), Int64(1_805_018_400), Int64(1_805_094_000)),
        // 2027-03-14T12:00:00Z, after the change: from the change to 00:00 PDT on the 15th (07:00Z).
        (springForward, 1_805_025_600, "2027-03-14", 1_805_018_400, 1_805_094_000, 1_805_094_000),
        // 2026-11-01T20:00:00Z, 12:00 PST after falling back: by -8 h the 1st began at 08:00Z,
        // but only instants from the change (09:00Z) on use -8 h.
        (fallBack, 1_793_563_200, "2026-11-01", 1_793_523_600, 1_793_606_400, 1_793_606_400),
        // UTC, 2026-12-01T12:00:00Z: the whole day.
        (TimezoneSchedule.utc, 1_796_126_400, "2026-12-01", 1_796_083_200, 1_796_169_600, 1_796_169_600),
    ])
    func replicaPeriod(schedule: TimezoneSchedule, seconds: Int64, day: String, from: Int64, until: Int64, dayEnd: Int64) throws {
        let period = schedule.period(at: UnixTime(seconds: seconds))
        #expect(period.day == day)
        #expect(period.validFrom == UnixTime(seconds: from))
        #expect(period.validUntil == UnixTime(seconds: until))
        #expect(period.dayEnd == UnixTime(seconds: dayEnd))
        #expect(period.monthEnd == schedule.periodEnds(day: day)?.monthEnd)
        // Every instant of the window names the same day, and the instants just outside do not.
        for t in [from, until - 1] { #expect(schedule.day(at: UnixTime(seconds: t)) == day) }
        #expect(schedule.day(at: UnixTime(seconds: from - 1)) != day || from == schedule.nextChange.seconds)
    }

    @Test("a midnight the clocks jump over begins the day at the jump")
    func skippedMidnight() {
        // +02:00 → +03:00 at local 00:00: 2027-03-14 begins at 2027-03-13T22:00:00Z = 1_804_975_200.
        let schedule = TimezoneSchedule(current: 7_200, nextChange: UnixTime(seconds: 1_804_975_200), after: 10_800)
        #expect(schedule.midnight(localDays: 20_891) == UnixTime(seconds: 1_804_975_200))
        #expect(schedule.day(at: UnixTime(seconds: 1_804_975_199)) == "2027-03-13")
        #expect(schedule.day(at: UnixTime(seconds: 1_804_975_200)) == "2027-03-14")
    }

    @Test("a fixed offset never changes")
    func fixed() {
        // 2026-11-30T00:00:00Z at +05:30 is 05:30 on the 30th; the day ends at 2026-11-30T18:30:00Z.
        let india = TimezoneSchedule.fixed(19_800)
        #expect(india.day(at: UnixTime(seconds: 1_795_996_800)) == "2026-11-30")
        #expect(india.periodEnds(day: "2026-11-30")?.dayEnd == UnixTime(seconds: 1_796_063_400))
        #expect(TimezoneSchedule.utc.offset(at: UnixTime(seconds: 1_795_996_800)) == 0)
    }
}
