import Testing
@testable import TollgateCore

@Suite("analytics: date ranges, counters, alerts read back")
struct AnalyticsTests {
    @Test("a range lists every day from from through to, across month and leap-year ends")
    func rangeDays() throws {
        let r = try DateRange(from: "2024-02-27", to: "2024-03-02")
        #expect(r.days == ["2024-02-27", "2024-02-28", "2024-02-29", "2024-03-01", "2024-03-02"])
        #expect(try DateRange.last(3, endingOn: "2026-01-01").days == ["2025-12-30", "2025-12-31", "2026-01-01"])
        #expect(try DateRange.monthToDate("2026-11-03").days == ["2026-11-01", "2026-11-02", "2026-11-03"])
        #expect(try DateRange(from: "2026-11-30", to: "2026-11-30").days == ["2026-11-30"])
        #expect(try DateRange(from: "2025-01-01", to: "2026-02-04").days.count == 400)
    }

    @Test("bad ranges are refused with the parameter's name", arguments: [
        ("2026-02-29", "2026-03-01", DateRange.Problem.notADate(name: "from", value: "2026-02-29")),
        ("2026-03-01", "26-03-02", .notADate(name: "to", value: "26-03-02")),
        ("2026-03-02", "2026-03-01", .reversed(from: "2026-03-02", to: "2026-03-01")),
        ("2025-01-01", "2026-02-05", .tooLong(days: 401)),
    ])
    func badRange(from: String, to: String, problem: DateRange.Problem) {
        #expect(throws: problem) { try DateRange(from: from, to: to) }
    }

    @Test("months are YYYY-MM", arguments: [("2026-11", true), ("2026-13", false), ("2026-1", false), ("2026-11-01", false), ("", false)])
    func month(text: String, valid: Bool) {
        #expect(((try? DateRange.month(text, name: "month")) != nil) == valid)
    }

    @Test("a day hash's counters, including spend per model; malformed fields count as zero")
    func counters() {
        let c = SpendCounters(hash: ["spent": "1500", "reserved": "20", "requests": "3", "refused": "x", "loop_trips": "2", "downgrades": "1",
                                     "model:gpt-4o": "1000", "model:a:b": "500", "model:": "7", "over_limit_spent": "9"])
        #expect(c.spent == NanoUSD(1500) && c.reserved == NanoUSD(20) && c.requests == 3 && c.refused == 0)
        #expect(c.loopTrips == 2 && c.downgrades == 1)
        #expect(c.models == ["gpt-4o": NanoUSD(1000), "a:b": NanoUSD(500)])
        var sum = c
        sum += SpendCounters(hash: ["spent": "1", "model:a:b": "600"])
        #expect(sum.spent == NanoUSD(1501) && sum.modelsBySpend.map(\.model) == ["a:b", "gpt-4o"])
    }

    @Test("share of a limit in tenths of a percent, rounded down, without floating point", arguments: [
        (Int64(4_210_000_000), Int64(5_000_000_000), Int64(842)), (600_000_000, 500_000_000, 1200), (1, 3, 333), (0, 0, 0), (5, 0, 1000),
        (9_007_199_254_740_991, 9_007_199_254_740_991, 1000),
    ])
    func share(spent: Int64, limit: Int64, expected: Int64) {
        #expect(permille(NanoUSD(spent), of: NanoUSD(limit)) == expected)
    }

    @Test("an alert's webhook JSON reads back into the same alert")
    func alertRoundTrip() throws {
        let alert = BudgetAlert(client: ClientID("search-agent")!, period: .monthly, window: "2026-11", thresholdPercent: 90,
                                limit: NanoUSD(200_000_000_000), spent: NanoUSD(180_000_000_001), cause: .spent, firedAt: UnixTime(seconds: 1_795_478_399))
        #expect(BudgetAlert(json: alert.json) == alert)
        #expect(BudgetAlert(json: #"{"type":"budget.threshold","client":"<b>x</b>"}"#) == nil)
        #expect(BudgetAlert(json: "not json") == nil)
        #expect(UnixTime(rfc3339: "2026-11-23T23:59:59Z") == UnixTime(seconds: 1_795_478_399))
        #expect(UnixTime(rfc3339: "2026-11-23T24:00:00Z") == nil && UnixTime(rfc3339: "2026-11-23 10:00:00Z") == nil)
    }
}
