import TollgateCore

/// Everything the dashboard shows, as of one Redis TIME.
public struct SpendOverview: Sendable {
    public var now: UnixTime
    public var today: String
    public var month: String
    /// Today's top clients (day hash and daily limit) and this month's (month hash, monthly limit).
    public var todayTop: [SpendAnalytics.TopClient]
    public var monthTop: [SpendAnalytics.TopClient]
    /// The last `chartDays` days of every client shown, oldest first.
    public var charts: [ClientID: [DaySpend]]
    /// Today's counters summed over today's clients shown.
    public var todayTotals: SpendCounters
    /// This month's days summed over this month's clients shown (spend per model lives in the
    /// day hashes only).
    public var monthTotals: SpendCounters
    public var alerts: [BudgetAlert]
}

extension SpendAnalytics {
    /// Three rounds of pipelined reads: the clock; the two top sets and the alerts, then the
    /// shown clients' period hashes and limits; then their days for the charts and the month.
    public func overview(clients count: Int, chartDays: Int = 30, alerts alertCount: Int = 20) async throws -> SpendOverview {
        let now = try await admin.now()
        let today = admin.timezone(now).day(at: now), month = String(today.prefix(7))
        async let todayTop = top(.day(today), count: count)
        async let monthTop = top(.month(month), count: count)
        async let alerts = recentAlerts(count: alertCount)
        let (dayList, monthList) = try await (todayTop, monthTop)

        let chart = try DateRange.last(chartDays, endingOn: today), monthToDate = try DateRange.monthToDate(today)
        let range = try DateRange(from: min(chart.from, monthToDate.from), to: today)
        let days = try await perClientDays(dayList.map(\.client) + monthList.map(\.client), range)

        var todayTotals = SpendCounters(), monthTotals = SpendCounters()
        for row in dayList { todayTotals += row.counters }
        for row in monthList {
            for day in days[row.client] ?? [] where day.date >= monthToDate.from { monthTotals += day.counters }
        }
        let charts = days.mapValues { Array($0.suffix(chart.days.count)) }
        return SpendOverview(now: now, today: today, month: month, todayTop: dayList, monthTop: monthList, charts: charts,
                             todayTotals: todayTotals, monthTotals: monthTotals, alerts: try await alerts)
    }
}
