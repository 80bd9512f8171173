/// A budget threshold crossing: "client alice has spent 80 % of her daily budget".
///
/// The scripts decide crossings atomically (`lua/settle_v5.lua` for spend, `lua/reserve_v5.lua`
/// for the wall: a refusal at 100 %) and append them to the client's outbox stream
/// (`tollgate:{C}:alerts`); a sender in each replica drains it into the configured sinks.
/// `id` is the same for every replica and every retry, so a receiver de-duplicates on it.
public struct BudgetAlert: Sendable, Equatable {
    /// Why the threshold was crossed.
    public enum Cause: String, Sendable {
        /// Settled spend reached the threshold.
        case spent
        /// A request was refused at the limit (the 100 % alert fires before spend reaches it).
        case refused
    }

    public var client: ClientID
    public var period: BudgetPeriod
    /// The period's name: `2026-11-30`, `2026-11`, or the workflow run id.
    public var window: String
    public var thresholdPercent: Int
    public var limit: NanoUSD
    public var spent: NanoUSD
    public var cause: Cause
    /// Redis TIME when the script fired it.
    public var firedAt: UnixTime

    public init(client: ClientID, period: BudgetPeriod, window: String, thresholdPercent: Int, limit: NanoUSD,
                spent: NanoUSD, cause: Cause, firedAt: UnixTime) {
        self.client = client
        self.period = period
        self.window = window
        self.thresholdPercent = thresholdPercent
        self.limit = limit
        self.spent = spent
        self.cause = cause
        self.firedAt = firedAt
    }

    /// Stable across replicas and retries: one alert per client, period window and threshold.
    public var id: String { "\(client.rawValue)|\(period.rawValue)|\(window)|\(thresholdPercent)" }

    /// The outbox entry's fields as the scripts write them (`XADD … client … period …`).
    public init?(streamFields f: [String: String]) {
        guard let client = f["client"].flatMap(ClientID.init), let period = f["period"].flatMap(BudgetPeriod.init(rawValue:)),
              let window = f["window"], let threshold = f["threshold"].flatMap(Int.init),
              let limit = f["limit"].flatMap(Int64.init), let spent = f["spent"].flatMap(Int64.init),
              let cause = f["cause"].flatMap(Cause.init(rawValue:)), let at = f["at"].flatMap(Int64.init) else { return nil }
        self.init(client: client, period: period, window: window, thresholdPercent: threshold, limit: NanoUSD(limit),
                  spent: NanoUSD(spent), cause: cause, firedAt: UnixTime(seconds: at))
    }

    /// The webhook body (README, "Alerts": payload schema). Keys in a fixed order, so the bytes
    /// that are signed are the bytes a test can predict.
    public var json: String {
        "{\"type\":\"budget.threshold\",\"id\":\(jsonQuoted(id)),\"client\":\(jsonQuoted(client.rawValue))"
            + ",\"period\":\"\(period.rawValue)\",\"window\":\(jsonQuoted(window)),\"threshold_percent\":\(thresholdPercent)"
            + ",\"limit_usd\":\"\(limit.usdString)\",\"spent_usd\":\"\(spent.usdString)\""
            + ",\"limit_nano_usd\":\(limit.value),\"spent_nano_usd\":\(spent.value)"
            + ",\"cause\":\"\(cause.rawValue)\",\"fired_at\":\"\(firedAt.rfc3339)\"}"
    }

    /// One line for humans (Slack, e-mail subject).
    public var summary: String {
        let what = period == .run ? "run \(window)" : "\(period.rawValue) budget (\(window))"
        let how = cause == .refused ? "a request was refused at the limit" : "spent \(spent) of \(limit)"
        return "Tollgate: client \(client.rawValue) reached \(thresholdPercent)% of its \(what): \(how)"
    }
}

/// Redis keys shared by every client (outside any `{client}` slot), one place for their names.
public enum SharedRedisKeys {
    /// zset client → first time it had undelivered alerts: where senders look first.
    public static let alertsPending = RedisKeys.namespace + ":alerts:pending"
    /// list of the last delivered alerts' JSON, newest first (dashboard).
    public static let alertsRecent = RedisKeys.namespace + ":alerts:recent"
    /// zset client → nano-USD spent that day / month: top clients without SCAN.
    public static func topDay(_ date: String) -> String { RedisKeys.namespace + ":top:day:" + date }
    public static func topMonth(_ yearMonth: String) -> String { RedisKeys.namespace + ":top:month:" + yearMonth }
}

extension RedisKeys {
    /// The client's alert outbox, a stream in the client's slot so the scripts append atomically.
    public var alerts: String { base + ":alerts" }
}
