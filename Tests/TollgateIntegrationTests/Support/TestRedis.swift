import Foundation
import Logging
import TollgateCore
import TollgateRedis

/// The real redis-server `make test` starts (TOLLGATE_TEST_REDIS_URL). Tests never mock Redis;
/// each test uses its own client ids, so tests run in parallel against one server.
enum TestRedis {
    static let url = ProcessInfo.processInfo.environment["TOLLGATE_TEST_REDIS_URL"] ?? "redis://127.0.0.1:6379/0"
    static let endpoint = RedisEndpoint(url: url)!
    static let logger: Logger = {
        var l = Logger(label: "test")
        l.logLevel = .warning
        return l
    }()
    static let scripts = try! BudgetScripts.load()

    static func connection() -> RedisConnection {
        RedisConnection(endpoint: endpoint, timeoutMilliseconds: 2_000, scripts: scripts.all, logger: logger)
    }

    static let shared = connection()

    /// A connection of its own to a spawned server.
    static func connection(to redis: SpawnedRedis) -> RedisConnection {
        RedisConnection(endpoint: RedisEndpoint(url: redis.url)!, timeoutMilliseconds: 2_000, scripts: scripts.all, logger: logger)
    }

    static func hash(_ key: String) async throws -> [String: String] {
        try await shared.call(.command(["HGETALL", key])).hash
    }

    static func int(_ key: String, _ field: String) async throws -> Int64 {
        Int64(try await hash(key)[field] ?? "0") ?? 0
    }

    static func uniqueClient(_ label: String = "t") -> ClientID {
        ClientID("\(label)-\(UUID().uuidString.prefix(13))")!
    }

    /// The clock offset that puts the scripts' Redis TIME at `target` (seconds since the epoch).
    /// Only into the future: keys of a moment in the past would expire at once.
    static func clockOffset(to target: Int64) async throws -> Int64 {
        target - (try await shared.call(.command(["TIME"])).array![0].int!)
    }

    /// Today's day and month keys as the scripts name them (UTC, Redis TIME plus an offset).
    static func periodKeys(_ client: ClientID, clockOffset: Int64 = 0) async throws -> (day: String, month: String) {
        let time = try await shared.call(.command(["TIME"])).array!
        let now = UnixTime(seconds: time[0].int! + clockOffset)
        let day = CivilDate.dayString(now, utcOffset: 0)
        let keys = RedisKeys(client)
        return (keys.day(day), keys.month(String(day.prefix(7))))
    }
}

extension BudgetStore {
    static func forTests(dailyUSD: Int64 = 10, monthlyUSD: Int64 = 200, leaseSeconds: Int = 600, clockOffset: Int64 = 0,
                         timezone: TimezoneSchedule = .utc, redis: RedisConnection = TestRedis.shared) -> BudgetStore {
        var policy = Policy(
            defaultDailyLimit: NanoUSD(dailyUSD * NanoUSD.perUSD), defaultMonthlyLimit: NanoUSD(monthlyUSD * NanoUSD.perUSD),
            leaseSeconds: leaseSeconds, dayGraceSeconds: 3600, monthGraceSeconds: 3600, timezone: { timezone })
        policy.clockOffsetSeconds = clockOffset
        return BudgetStore(redis: redis, scripts: TestRedis.scripts, policy: policy)
    }

    /// Reserves and expects a grant: the lease that settle and renew take.
    func grant(_ client: ClientID, estimate: CostEstimate) async throws -> BudgetGrant {
        let outcome = try await reserve(client, .unique(), estimate: estimate)
        guard case .granted(let grant) = outcome else { throw ExpectedGrant(outcome: outcome) }
        return grant
    }

    func withClock(_ offset: Int64) -> BudgetStore {
        var copy = self
        copy.policy.clockOffsetSeconds = offset
        return copy
    }
}

extension CostEstimate {
    /// A fixed-price request: `nano` nano-USD, no output tokens to clamp.
    static func fixed(_ nano: Int64) -> CostEstimate {
        CostEstimate(inputTokenBound: 1, fixedCost: NanoUSD(nano), perOutputToken: .zero, requestedOutputTokens: 0, minimumOutputTokens: 0)
    }
}

struct ExpectedGrant: Error, CustomStringConvertible {
    let outcome: ReserveOutcome
    var description: String { "expected a grant, got \(outcome)" }
}
