/// Reading back the webhook JSON (`BudgetAlert.json`), as the delivered-alerts list
/// (`SharedRedisKeys.alertsRecent`) holds it, for the dashboard. Amounts come from the
/// `…_nano_usd` integers, never from the USD strings.
extension BudgetAlert {
    public init?(json text: String) {
        guard let v = try? JSONValue.parse(text), v["type"]?.string == "budget.threshold",
              let client = v["client"]?.string.flatMap(ClientID.init), let period = v["period"]?.string.flatMap(BudgetPeriod.init(rawValue:)),
              let window = v["window"]?.string, let threshold = v["threshold_percent"]?.int,
              let limit = v["limit_nano_usd"]?.int, let spent = v["spent_nano_usd"]?.int,
              let cause = v["cause"]?.string.flatMap(Cause.init(rawValue:)),
              let firedAt = v["fired_at"]?.string.flatMap(UnixTime.init(rfc3339:)) else { return nil }
        self.init(client: client, period: period, window: window, thresholdPercent: Int(threshold), limit: NanoUSD(limit),
                  spent: NanoUSD(spent), cause: cause, firedAt: firedAt)
    }
}

extension UnixTime {
    /// The UTC form `rfc3339` writes, `2026-11-24T00:00:00Z`; nil for anything else.
    public init?(rfc3339 text: String) {
        let parts = text.split(separator: "T", omittingEmptySubsequences: false)
        guard parts.count == 2, parts[1].hasSuffix("Z"), let days = CivilDate.parseDay(String(parts[0])) else { return nil }
        let clock = parts[1].dropLast().split(separator: ":", omittingEmptySubsequences: false)
        guard clock.count == 3, clock.allSatisfy({ $0.count == 2 }), let h = Int64(clock[0]), let m = Int64(clock[1]), let s = Int64(clock[2]),
              (0..<24).contains(h), (0..<60).contains(m), (0..<60).contains(s) else { return nil }
        self.init(seconds: days * 86_400 + h * 3600 + m * 60 + s)
    }
}
