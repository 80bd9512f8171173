import Foundation
import TollgateCore
import TollgateRedis

/// Three clients' counters for today, the last 30 days and this month, their top sets, limits
/// and two delivered alerts, as the scripts and the alert senders would have written them.
/// Two model names carry markup: what a client sends as `model` ends up in the day hash.
enum DashboardSeed {
    struct Days { let today: String, yesterday: String, day29: String }

    static func write(on redis: RedisConnection) async throws -> Days {
        let now = try await redis.call(.command(["TIME"])).array![0].int!
        let t = now / 86_400
        let today = dayName(t), month = String(today.prefix(7))
        let (search, support, batch) = (ClientID("search-agent")!, ClientID("support-bot@eu")!, ClientID("batch:nightly")!)
        func day(_ c: ClientID, _ offset: Int64, _ fields: [String: Int64]) async throws {
            try await Seed.hash(RedisKeys(c).day(dayName(t - offset)), fields, on: redis)
        }
        try await day(search, 0, ["spent": 4_210_000_000, "requests": 182, "downgrades": 12,
                                  "model:gpt-4o": 3_100_000_000, "model:gpt-4o-mini": 1_110_000_000])
        try await day(support, 0, ["spent": 1_250_000_000, "requests": 96, "refused": 7, "loop_trips": 1,
                                   "model:claude-sonnet-4-5": 1_000_000_000, "model:<b>x</b>": 250_000_000])
        try await day(batch, 0, ["spent": 600_000_000, "requests": 12, "refused": 3, "model:<script>window.__xss=true</script>": 600_000_000])
        // Earlier days carry no model fields, so this month's models are today's whatever the date.
        for (offset, spent) in [(1, 3_000_000_000), (5, 2_000_000_000), (12, 2_500_000_000), (29, 1_000_000_000), (30, 9_999_000_000_000)] as [(Int64, Int64)] {
            try await day(search, offset, ["spent": spent, "requests": 100])
        }
        for offset: Int64 in 1...20 { try await day(support, offset, ["spent": 400_000_000 + offset * 30_000_000, "requests": 40]) }

        try await Seed.hash(RedisKeys(search).month(month), ["spent": 40_000_000_000, "requests": 1500], on: redis)
        try await Seed.hash(RedisKeys(support).month(month), ["spent": 12_500_000_000, "requests": 700, "refused": 7], on: redis)
        try await Seed.hash(RedisKeys(batch).month(month), ["spent": 600_000_000, "requests": 12, "refused": 3], on: redis)
        try await Seed.hash(RedisKeys(search).limits, ["daily": 5_000_000_000], on: redis)
        try await Seed.hash(RedisKeys(support).limits, ["monthly": 50_000_000_000], on: redis)
        try await Seed.hash(RedisKeys(batch).limits, ["daily": 500_000_000], on: redis)
        try await Seed.top(SharedRedisKeys.topDay(today), [(search.rawValue, 4_210_000_000), (support.rawValue, 1_250_000_000), (batch.rawValue, 600_000_000)], on: redis)
        try await Seed.top(SharedRedisKeys.topMonth(month), [(search.rawValue, 40_000_000_000), (support.rawValue, 12_500_000_000), (batch.rawValue, 600_000_000)], on: redis)

        // Oldest first: LPUSH leaves the newest at the head, as the senders do.
        let alerts = [
            BudgetAlert(client: search, period: .daily, window: today, thresholdPercent: 80, limit: NanoUSD(5_000_000_000),
                        spent: NanoUSD(4_000_000_000), cause: .spent, firedAt: UnixTime(seconds: now - 600)),
            BudgetAlert(client: batch, period: .daily, window: today, thresholdPercent: 100, limit: NanoUSD(500_000_000),
                        spent: NanoUSD(600_000_000), cause: .refused, firedAt: UnixTime(seconds: now - 60)),
        ]
        for alert in alerts { _ = try await redis.call(.command(["LPUSH", SharedRedisKeys.alertsRecent, alert.json])) }
        return Days(today: today, yesterday: dayName(t - 1), day29: dayName(t - 29))
    }
}
