import TollgateCore
import TollgateRedis

/// The dashboard template's context, built from one `SpendOverview`. Values are plain text that
/// the template escapes (`{{ }}`): client ids, model names and everything else. Amounts are
/// shown as exact USD and carried as nano-USD in `<data value>` / `<meter>` for machines.
struct DashboardPage {
    struct Client {
        let id: String
        let spent: String, spentNano: String
        let limit: String, limitNano: String, limitIsDefault: Bool
        /// Where the budget bar turns yellow (80 %) and red (95 %).
        let warnNano: String, alarmNano: String
        let used: String
        let requests: String, refused: String, loopTrips: String, downgrades: String
        let chart: Chart?
    }
    struct Model { let name: String, spent: String, spentNano: String, share: String }
    struct Alert { let firedAt: String, firedAtShort: String, client: String, what: String, spent: String, limit: String, refused: Bool }
    struct Totals { let spent: String, spentNano: String, requests: String, refused: String, loopTrips: String, downgrades: String }

    let today: String, month: String, asOf: String, timezone: String
    let signOut: Bool
    let refreshSeconds: String
    let todayClients: [Client], monthClients: [Client]
    let todayModels: [Model], monthModels: [Model]
    let todayTotals: Totals
    let alerts: [Alert]

    static let modelsShown = 10

    init(_ o: SpendOverview, timezone: String, signOut: Bool, refreshSeconds: Int) {
        today = o.today
        month = o.month
        asOf = o.now.rfc3339
        self.timezone = timezone
        self.signOut = signOut
        self.refreshSeconds = String(refreshSeconds)
        todayClients = o.todayTop.map { Self.client($0, chart: o.charts[$0.client]) }
        monthClients = o.monthTop.map { Self.client($0, chart: nil) }
        todayModels = Self.models(o.todayTotals)
        monthModels = Self.models(o.monthTotals)
        let t = o.todayTotals
        todayTotals = Totals(spent: Self.money(t.spent), spentNano: String(t.spent.value), requests: String(t.requests), refused: String(t.refused),
                             loopTrips: String(t.loopTrips), downgrades: String(t.downgrades))
        alerts = o.alerts.map(Self.alert)
    }

    static func client(_ t: SpendAnalytics.TopClient, chart days: [DaySpend]?) -> Client {
        let c = t.counters, limit = t.limit.value
        return Client(id: t.client.rawValue, spent: money(c.spent), spentNano: String(c.spent.value),
                      limit: money(t.limit), limitNano: String(limit), limitIsDefault: t.limitIsDefault,
                      warnNano: String(limit / 10 * 8), alarmNano: String(limit / 100 * 95),
                      used: NanoUSD.formatDecimal(t.permille, scale: 1),
                      requests: String(c.requests), refused: String(c.refused), loopTrips: String(c.loopTrips), downgrades: String(c.downgrades),
                      chart: days.map { Chart($0, client: t.client.rawValue) })
    }

    static func models(_ totals: SpendCounters) -> [Model] {
        totals.modelsBySpend.prefix(modelsShown).map {
            Model(name: $0.model, spent: money($0.spent), spentNano: String($0.spent.value),
                  share: NanoUSD.formatDecimal(permille($0.spent, of: totals.spent), scale: 1))
        }
    }

    static func alert(_ a: BudgetAlert) -> Alert {
        let what = a.period == .run ? "run \(a.window)" : "\(a.period.rawValue) budget \(a.window)"
        // `2026-11-30 22:30Z`: the minute is enough beside the alert, the full time is in `datetime`.
        let time = a.firedAt.rfc3339
        let short = time.prefix(10) + " " + time.dropFirst(11).prefix(5) + "Z"
        return Alert(firedAt: time, firedAtShort: String(short), client: a.client.rawValue, what: "\(a.thresholdPercent)% of its \(what)",
                     spent: money(a.spent), limit: money(a.limit), refused: a.cause == .refused)
    }

    /// USD for people: rounded to the cent (half up, in integers), thousands grouped, and a
    /// non-zero amount under half a cent shown as such rather than as $0.00. The exact nano-USD
    /// stay in the page's `<data value>`.
    static func money(_ amount: NanoUSD) -> String {
        let sign = amount.value < 0 ? "-" : "", nano = amount.value.magnitude
        if nano > 0 && nano < 5_000_000 { return sign + "<$0.01" }
        let cents = (nano + 5_000_000) / 10_000_000
        var whole = String(cents / 100), grouped = ""
        while whole.count > 3 {
            grouped = "," + whole.suffix(3) + grouped
            whole.removeLast(3)
        }
        let fraction = cents % 100
        return sign + "$" + whole + grouped + "." + (fraction < 10 ? "0" : "") + String(fraction)
    }
}

/// A client's last days as an inline SVG bar chart, drawn on the server: one bar per day,
/// the busiest day full height. Heights use integer arithmetic on nano-USD.
struct Chart {
    struct Bar { let x: String, y: String, height: String, date: String, spent: String }
    static let height: Int64 = 32, step: Int64 = 5, barWidth = "4"
    let label: String
    let width: String, viewHeight: String, barWidth: String
    let peak: String
    let bars: [Bar]

    init(_ days: [DaySpend], client: String) {
        let peak = days.map(\.counters.spent.value).max() ?? 0
        let top = Self.height - 2
        bars = days.enumerated().map { i, day in
            let spent = max(day.counters.spent.value, 0)
            // A day with any spend gets at least one unit, so it never looks like a day without.
            let h = peak > 0 ? max(Int64(Int128(spent) * Int128(top) / Int128(peak)), spent > 0 ? 1 : 0) : 0
            return Bar(x: String(Int64(i) * Self.step), y: String(top - h), height: String(h), date: day.date,
                       spent: DashboardPage.money(day.counters.spent))
        }
        width = String(Int64(days.count) * Self.step)
        viewHeight = String(Self.height)
        barWidth = Self.barWidth
        self.peak = DashboardPage.money(NanoUSD(peak))
        label = "\(client): spend per day over the last \(days.count) days, highest \(self.peak)"
    }
}
