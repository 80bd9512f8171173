import Foundation
import Testing
import TollgateCore
import TollgateRedis

/// Day keys in the budget timezone (lua/reserve_v3.lua, v5: the replica's period or TIME's): the date by the offset in force at Redis
/// TIME, and the expiry at the local midnight by the offset in force then. The clock is moved to
/// fixed instants (always in the future, or the keys would expire at once), so every expected
/// date and time below is a literal, worked out by hand in the comments.
@Suite("budget timezone on real Redis", .timeLimit(.minutes(2)))
struct BudgetTimezoneTests {
    struct Case: Sendable, CustomTestStringConvertible {
        let name: String
        let schedule: TimezoneSchedule
        let now: Int64
        let date: String
        let dayEnd: Int64
        let monthEnd: Int64
        var testDescription: String { name }
    }

    static let cases: [Case] = [
        // 2027-01-15T20:00:00Z is 01:30 on the 16th at +05:30; the 17th begins at 2027-01-16T18:30:00Z,
        // February at 2027-01-31T18:30:00Z.
        Case(name: "+05:30", schedule: .fixed(19_800), now: 1_800_043_200, date: "2027-01-16",
             dayEnd: 1_800_124_200, monthEnd: 1_801_420_200),
        // 2027-01-15T05:00:00Z is 21:00 on the 14th at -08:00; the 15th begins at 2027-01-15T08:00:00Z,
        // February at 2027-02-01T08:00:00Z.
        Case(name: "-08:00", schedule: .fixed(-28_800), now: 1_799_989_200, date: "2027-01-14",
             dayEnd: 1_800_000_000, monthEnd: 1_801_468_800),
        // US spring forward: 02:00 PST → 03:00 PDT at 2027-03-14T10:00:00Z (1_805_018_400). At
        // 2027-03-14T08:00:00Z (00:00 PST, the change 2 h ahead) the day is the 14th, and it ends at
        // 00:00 PDT on the 15th = 2027-03-15T07:00:00Z, not 08:00Z; April begins at 2027-04-01T07:00:00Z.
        Case(name: "DST starts today", schedule: springForward, now: 1_805_011_200, date: "2027-03-14",
             dayEnd: 1_805_094_000, monthEnd: 1_806_562_800),
        // After the change, 2027-03-15T07:30:00Z is 00:30 PDT on the 15th (by the old -08:00 it
        // would still be 23:30 on the 14th); the 16th begins at 2027-03-16T07:00:00Z.
        Case(name: "after DST started", schedule: springForward, now: 1_805_095_800, date: "2027-03-15",
             dayEnd: 1_805_180_400, monthEnd: 1_806_562_800),
        // US fall back: 02:00 PDT → 01:00 PST at 2027-11-07T09:00:00Z (1_825_578_000). At
        // 2027-11-07T07:00:00Z (00:00 PDT) the day is the 7th and ends at 00:00 PST on the 8th =
        // 2027-11-08T08:00:00Z; December begins at 2027-12-01T08:00:00Z.
        Case(name: "DST ends today", schedule: fallBack, now: 1_825_570_800, date: "2027-11-07",
             dayEnd: 1_825_660_800, monthEnd: 1_827_648_000),
        // After the change, 2027-11-08T07:30:00Z is 23:30 PST on the 7th (by the old -07:00 it
        // would be 00:30 on the 8th).
        Case(name: "after DST ended", schedule: fallBack, now: 1_825_659_000, date: "2027-11-07",
             dayEnd: 1_825_660_800, monthEnd: 1_827_648_000),
    ]
    static let springForward = TimezoneSchedule(current: -28_800, nextChange: UnixTime(seconds: 1_805_018_400), after: -25_200)
    static let fallBack = TimezoneSchedule(current: -25_200, nextChange: UnixTime(seconds: 1_825_578_000), after: -28_800)

    /// Whether the replica's own clock agrees with Redis: reserve_v5 then takes the period the
    /// replica passed; 40 days off, it derives the period from TIME itself. Both must agree.
    enum ReplicaClock: String, CaseIterable, Sendable { case agrees, wrong }

    @Test("the day key's date, its reset time and its expiry follow the local midnight",
          arguments: cases, ReplicaClock.allCases)
    func dayKeys(c: Case, replica: ReplicaClock) async throws {
        let client = TestRedis.uniqueClient("tz")
        var store = BudgetStore.forTests(timezone: c.schedule).withClock(try await TestRedis.clockOffset(to: c.now))
        if replica == .wrong { store.policy.replicaClock = { UnixTime(seconds: Int64(Date().timeIntervalSince1970) - 40 * 86_400) } }
        let grant = try await store.grant(client, estimate: .fixed(1_000))
        let keys = RedisKeys(client)
        let day = keys.day(c.date), month = keys.month(String(c.date.prefix(7)))
        #expect(grant.lease.member.hasSuffix("|\(day)|\(month)||"))
        #expect(grant.resetsAt == UnixTime(seconds: c.dayEnd), "the daily limit binds: it resets at local midnight")
        #expect(try await TestRedis.int(day, "reserved") == 1_000)
        // forTests: day and month grace 3600 s.
        #expect(try await TestRedis.shared.call(.command(["EXPIRETIME", day])).int == c.dayEnd + 3_600)
        #expect(try await TestRedis.shared.call(.command(["EXPIRETIME", month])).int == c.monthEnd + 3_600)
    }

    @Test("the admin view of a DST-change day names the script's keys and its reset time")
    func adminAgrees() async throws {
        let client = TestRedis.uniqueClient("tz")
        let config = try TollgateConfig.load(yaml: "budget: { timezone: America/Los_Angeles }")
        // 2027-03-14T08:00:00Z, 00:00 PST on the day clocks spring forward (see `cases`).
        let store = BudgetStore.forTests(timezone: config.timezoneSchedule(at: UnixTime(seconds: 1_805_011_200)))
            .withClock(try await TestRedis.clockOffset(to: 1_805_011_200))
        let grant = try await store.grant(client, estimate: .fixed(2_000))
        _ = try await store.settle(client, grant.lease, actual: NanoUSD(1_500))
        let admin = BudgetAdmin(redis: TestRedis.shared, defaultDailyLimit: NanoUSD(10 * NanoUSD.perUSD),
                                defaultMonthlyLimit: NanoUSD(200 * NanoUSD.perUSD), timezone: { config.timezoneSchedule(at: $0) })
        let spend = try await admin.spend(client, date: "2027-03-14")
        #expect(spend.day.spent == NanoUSD(1_500))
        #expect(spend.month.spent == NanoUSD(1_500))
        #expect(spend.day.resetsAt == UnixTime(seconds: 1_805_094_000))   // 2027-03-15T07:00:00Z
        #expect(spend.month.resetsAt == UnixTime(seconds: 1_806_562_800)) // 2027-04-01T07:00:00Z
    }

    @Test("a refusal's reset time is the local midnight by the offset in force then")
    func refusalReset() async throws {
        let client = TestRedis.uniqueClient("tz")
        _ = try await TestRedis.shared.call(.command(["HSET", RedisKeys(client).limits, "daily", "0"]))
        let store = BudgetStore.forTests(timezone: Self.springForward).withClock(try await TestRedis.clockOffset(to: 1_805_011_200))
        guard case .refused(let refusal) = try await store.reserve(client, .unique(), estimate: .fixed(1)) else {
            Issue.record("expected a refusal"); return
        }
        #expect(refusal.period == .daily)
        #expect(refusal.resetsAt == UnixTime(seconds: 1_805_094_000))
    }
}
