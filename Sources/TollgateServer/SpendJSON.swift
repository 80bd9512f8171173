import TollgateCore
import TollgateRedis

/// The JSON of spend over time, shared by the admin API (`GET /v1/spend/{client}`,
/// `GET /v1/spend/top`) and `tollgate spend --by … --json`. Every amount appears twice: exact
/// nano-USD as an integer (`…_nano_usd`) and USD as a decimal string (`…_usd`), so no reader
/// has to take money through a float.
public enum SpendJSON {
    public typealias Members = [(key: String, value: JSONValue)]

    public static func amount(_ name: String, _ value: NanoUSD) -> Members {
        [(key: name + "_nano_usd", value: .number(String(value.value))), (key: name + "_usd", value: .string(value.usdString))]
    }

    static func count(_ name: String, _ value: Int64) -> Members { [(key: name, value: .number(String(value)))] }

    /// `from`, `to`, a row per day, the totals per model (highest first) and the total.
    public static func history(_ days: [DaySpend], _ range: DateRange) -> Members {
        var total = SpendCounters()
        for day in days { total += day.counters }
        return [
            (key: "from", value: .string(range.from)), (key: "to", value: .string(range.to)),
            (key: "days", value: .array(days.map(day))),
            (key: "models", value: models(total)),
            (key: "total", value: .object(amount("spent", total.spent) + activity(total))),
        ]
    }

    static func day(_ d: DaySpend) -> JSONValue {
        let models = d.counters.modelsBySpend.map { (key: $0.model, value: JSONValue.number(String($0.spent.value))) }
        return .object([(key: "date", value: .string(d.date))] + amount("spent", d.counters.spent) + activity(d.counters)
            + [(key: "models", value: .object(models))])
    }

    /// Spend per model, highest first: `[{"model","spent_nano_usd","spent_usd"}]`.
    public static func models(_ c: SpendCounters) -> JSONValue {
        .array(c.modelsBySpend.map { .object([(key: "model", value: .string($0.model))] + amount("spent", $0.spent)) })
    }

    static func activity(_ c: SpendCounters) -> Members {
        count("requests", c.requests) + count("refused", c.refused) + count("downgrades", c.downgrades) + count("loop_trips", c.loopTrips)
    }

    /// One row of `GET /v1/spend/top`: the period's counters from the client's hash, and its limit.
    static func top(_ t: SpendAnalytics.TopClient) -> JSONValue {
        .object([(key: "client_id", value: .string(t.client.rawValue))] + amount("spent", t.counters.spent) + amount("reserved", t.counters.reserved)
            + activity(t.counters) + amount("limit", t.limit)
            + [(key: "limit_is_default", value: .bool(t.limitIsDefault)),
               (key: "used_percent", value: .number(NanoUSD.formatDecimal(t.permille, scale: 1)))])
    }
}
