import TollgateCore

/// Spend over time, read from the counters the scripts keep (docs/redis.md): clients' days over
/// a range (with spend per model), the top clients of a day or a month, and the alerts delivered
/// lately. Read-only; used by the admin API, the CLI and the dashboard.
///
/// Never KEYS or SCAN: who to read comes from the shared sorted sets (`tollgate:top:…`), what
/// to show from the clients' own hashes, each batch of reads pipelined.
public struct SpendAnalytics: Sendable {
    public let admin: BudgetAdmin
    var redis: RedisConnection { admin.redis }

    public init(admin: BudgetAdmin) { self.admin = admin }

    // MARK: days

    /// One client's days, oldest first. A day without counters (none yet, or expired after
    /// `analytics.retention_days`) is all zeros.
    public func days(_ client: ClientID, _ range: DateRange) async throws -> [DaySpend] {
        try await perClientDays([client], range)[client] ?? []
    }

    /// Several clients' days summed per day, oldest first.
    public func days(_ clients: [ClientID], _ range: DateRange) async throws -> [DaySpend] {
        let perClient = try await perClientDays(clients, range)
        return range.days.indices.map { i in
            var sum = SpendCounters()
            for rows in perClient.values { sum += rows[i].counters }
            return DaySpend(date: range.days[i], counters: sum)
        }
    }

    /// Each client's days, read in one pipelined batch (clients × days HGETALLs).
    public func perClientDays(_ clients: [ClientID], _ range: DateRange) async throws -> [ClientID: [DaySpend]] {
        let unique = Array(Set(clients))
        let hashes = try await redis.hashes(unique.flatMap { client in range.days.map { RedisKeys(client).day($0) } })
        var out: [ClientID: [DaySpend]] = [:]
        for (i, client) in unique.enumerated() {
            out[client] = range.days.enumerated().map { j, day in
                DaySpend(date: day, counters: SpendCounters(hash: hashes[i * range.days.count + j]))
            }
        }
        return out
    }

    /// Clients with settled spend on some day of the range, from the daily top sets. A client
    /// whose only charges that day came from lease reaping, or that was only refused, is not in them.
    public func clients(spendingIn range: DateRange) async throws -> [ClientID] {
        let members = try await redis.calls(range.days.map { .command(["ZRANGE", SharedRedisKeys.topDay($0), "0", "-1"]) })
        let ids = Set(members.flatMap { $0.array ?? [] }.compactMap { $0.string.flatMap(ClientID.init) })
        return ids.sorted { $0.rawValue < $1.rawValue }
    }

    // MARK: top clients

    /// A day (`YYYY-MM-DD`) or a month (`YYYY-MM`) and the keys that hold it.
    public enum Period: Sendable, Equatable {
        case day(String)
        case month(String)

        public var name: String {
            switch self {
            case .day(let d): return d
            case .month(let m): return m
            }
        }
        var topKey: String {
            switch self {
            case .day(let d): return SharedRedisKeys.topDay(d)
            case .month(let m): return SharedRedisKeys.topMonth(m)
            }
        }
        func key(_ client: ClientID) -> String {
            switch self {
            case .day(let d): return RedisKeys(client).day(d)
            case .month(let m): return RedisKeys(client).month(m)
            }
        }
    }

    /// A client's counters for the period and the limit that applies to it.
    public struct TopClient: Sendable, Equatable {
        public var client: ClientID
        public var counters: SpendCounters
        public var limit: NanoUSD
        public var limitIsDefault: Bool
        /// Tenths of a percent of the limit spent.
        public var permille: Int64 { TollgateCore.permille(counters.spent, of: limit) }
    }

    /// The `count` clients that spent most in the period, highest first. The sorted set picks
    /// them (its scores are not read); the numbers come from the clients' hashes, which also hold
    /// spend charged by lease reaping that the set can miss, and the order follows those numbers.
    public func top(_ period: Period, count: Int) async throws -> [TopClient] {
        guard count > 0 else { return [] }
        let ranked = try await redis.call(.command(["ZREVRANGE", period.topKey, "0", String(count - 1)])).array ?? []
        // Members are ids the scripts validated; anything else cannot name a client's keys.
        var clients: [ClientID] = []
        for id in ranked.compactMap({ $0.string.flatMap(ClientID.init) }) where !clients.contains(id) { clients.append(id) }
        let hashes = try await redis.hashes(clients.map(period.key) + clients.map { RedisKeys($0).limits })
        let rows = clients.enumerated().map { i, client in
            let limits = admin.limits(limitsHash: hashes[clients.count + i])
            let isDay = if case .day = period { true } else { false }
            return TopClient(client: client, counters: SpendCounters(hash: hashes[i]), limit: isDay ? limits.daily : limits.monthly,
                             limitIsDefault: isDay ? limits.dailyIsDefault : limits.monthlyIsDefault)
        }
        return rows.sorted { ($0.counters.spent, $1.client.rawValue) > ($1.counters.spent, $0.client.rawValue) }
    }

    // MARK: alerts

    /// The last delivered alerts, newest first (the senders keep the list short). Entries that
    /// are not an alert's JSON are skipped.
    public func recentAlerts(count: Int) async throws -> [BudgetAlert] {
        guard count > 0 else { return [] }
        let items = try await redis.call(.command(["LRANGE", SharedRedisKeys.alertsRecent, "0", String(count - 1)])).array ?? []
        return items.compactMap { $0.string.flatMap(BudgetAlert.init(json:)) }
    }
}
