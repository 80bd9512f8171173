import Synchronization
import Testing
import TollgateCore
@testable import TollgateRedis

/// The arguments every budget call shares (the period, the timezone, the defaults) are made once
/// per period (`BudgetStore.periodArguments`), not per call: they must still be the ones a call
/// at that instant would have made, and be made again once the clock leaves their period or
/// passes the timezone's next change. Expected values are literals: 2026-12-02T00:00:00Z is
/// 1796169600.
@Suite("the period arguments are made once per period")
struct PeriodArgumentsTests {
    /// A clock and a timezone the test moves, and how often the timezone was asked.
    final class Knobs: Sendable {
        let now = Mutex<Int64>(0)
        let zone = Mutex<TimezoneSchedule>(.utc)
        let zoneAsked = Atomic<Int>(0)
    }

    func store(_ knobs: Knobs) -> BudgetStore {
        var store = BudgetStore.forTests(dailyUSD: 10, monthlyUSD: 200)
        store.policy.timezone = { knobs.zoneAsked.add(1, ordering: .relaxed); return knobs.zone.withLock { $0 } }
        store.policy.replicaClock = { UnixTime(seconds: knobs.now.withLock { $0 }) }
        return store
    }

    @Test("a day's calls share one set of arguments; the next day's are made anew, with its keys")
    func madeOncePerDay() {
        let knobs = Knobs()
        let store = store(knobs)
        let client = ClientID("period-args")!
        knobs.now.withLock { $0 = 1_796_169_600 + 3_600 } // 2026-12-02T01:00Z
        let first = store.periodCall(client)
        knobs.now.withLock { $0 = 1_796_169_600 + 86_399 } // 23:59:59, the same day
        let second = store.periodCall(client)
        #expect(knobs.zoneAsked.load(ordering: .relaxed) == 1)
        #expect(first.keys == ["tollgate:{period-args}:limits", "tollgate:{period-args}:leases",
                               "tollgate:{period-args}:day:2026-12-02", "tollgate:{period-args}:month:2026-12"])
        #expect(second.keys == first.keys && second.args == first.args)
        // from, until, day end, month end (2027-01-01 is 1798761600), offset, the two default
        // limits, the lease in ms, the reaped retention, loop_max, downgrade_at.
        #expect(Array(first.args[0..<11]) == ["1796169600", "1796256000", "1796256000", "1798761600", "0",
                                              "10000000000", "200000000000", "600000", "86400", "0", "0"])
        #expect(first.args[11].hasPrefix("0 253402300800 0 3600 3600 "))

        knobs.now.withLock { $0 = 1_796_169_600 + 86_400 } // 2026-12-03T00:00Z
        let next = store.periodCall(client)
        #expect(knobs.zoneAsked.load(ordering: .relaxed) == 2)
        #expect(next.keys[2] == "tollgate:{period-args}:day:2026-12-03")
        #expect(Array(next.args[0..<3]) == ["1796256000", "1796342400", "1796342400"])
    }

    @Test("past the timezone's next change, the timezone is asked on every call until it names a later one")
    func askedAgainPastAChange() {
        let knobs = Knobs()
        let store = store(knobs)
        let client = ClientID("period-zone")!
        // A schedule as of five minutes ago (what replicas pass): its change, at 01:00Z, has passed.
        knobs.zone.withLock { $0 = TimezoneSchedule(current: 3_600, nextChange: UnixTime(seconds: 1_796_169_600 + 3_600), after: 7_200) }
        knobs.now.withLock { $0 = 1_796_169_600 + 3_700 }
        _ = store.periodCall(client)
        _ = store.periodCall(client)
        #expect(knobs.zoneAsked.load(ordering: .relaxed) == 2)
        // The next schedule: UTC+2 from now on, no change ahead.
        knobs.zone.withLock { $0 = .fixed(7_200) }
        let after = store.periodCall(client)
        _ = store.periodCall(client)
        #expect(knobs.zoneAsked.load(ordering: .relaxed) == 3)
        #expect(after.args[11].hasPrefix("7200 253402300800 7200 "))
        // 01:01:40Z is 03:01:40 at UTC+2: still 2026-12-02, from 2026-12-01T22:00Z (1796162400).
        #expect(after.keys[2] == "tollgate:{period-zone}:day:2026-12-02")
        #expect(Array(after.args[0..<2]) == ["1796162400", "1796248800"])
    }

    @Test("a new policy (a moved test clock) gets arguments of its own")
    func newPolicyNewArguments() {
        let knobs = Knobs()
        var store = store(knobs)
        let client = ClientID("period-offset")!
        knobs.now.withLock { $0 = 1_796_169_600 + 3_600 }
        let before = store.periodCall(client)
        store.policy.clockOffsetSeconds = 86_400
        let moved = store.periodCall(client)
        #expect(before.keys[2] == "tollgate:{period-offset}:day:2026-12-02")
        #expect(moved.keys[2] == "tollgate:{period-offset}:day:2026-12-03")
        #expect(moved.args[4] == "86400")
    }

}

/// `Lease.periods`, read on the member's bytes: the day and month a settle adds to the top-spender sets.
@Suite("a lease member's periods")
struct LeasePeriodsTests {
    @Test("a lease member names the day and month it is charged to (for the top-spender sets)", arguments: [
        ("A|r1|135000|tollgate:{team:a}:day:2026-12-02|tollgate:{team:a}:month:2026-12||", "2026-12-02", "2026-12"),
        ("A|r2|0|tollgate:{ü}:day:2026-12-31|tollgate:{ü}:month:2026-12|tollgate:{ü}:run:x|w", "2026-12-31", "2026-12"),
        ("A|r3|5|tollgate:{c}:day:2027-01-01|tollgate:{c}:month:2027-01", "2027-01-01", "2027-01"), // v4's, without run and flags
    ])
    func leasePeriods(member: String, day: String, month: String) throws {
        let periods = try #require(Lease(reservation: ReservationID(rawValue: "r"), member: member).periods)
        #expect(periods.day == day && periods.month == month)
    }

    @Test("a member without its period keys names none")
    func leaseWithoutPeriods() {
        #expect(Lease(reservation: ReservationID(rawValue: "r"), member: "A|r|100").periods == nil)
        #expect(Lease(reservation: ReservationID(rawValue: "r"), member: "A|r|100|tollgate:{c}:day:2027-01-01").periods == nil)
    }
}
