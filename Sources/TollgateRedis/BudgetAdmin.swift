import TollgateCore

/// What operators read and set: limits, policies, spend, virtual keys. Used by the admin API, the CLI
/// (which talks to Redis directly, so it works with no replica up) and a client's own `GET /v1/budget`.
public struct BudgetAdmin: Sendable {
    public let redis: RedisConnection
    public let defaultDailyLimit: NanoUSD
    public let defaultMonthlyLimit: NanoUSD
    /// `clients.defaults`: what a client's own policy fields fall back to.
    public let defaultPolicy: ClientPolicy
    /// The budget timezone as of a moment (`TollgateConfig.timezoneSchedule(at:)`): days and
    /// their resets are named with the same arithmetic as `lua/reserve_v5.lua`.
    public let timezone: @Sendable (UnixTime) -> TimezoneSchedule

    public init(redis: RedisConnection, defaultDailyLimit: NanoUSD, defaultMonthlyLimit: NanoUSD,
                defaultPolicy: ClientPolicy = ClientPolicy(), timezone: @escaping @Sendable (UnixTime) -> TimezoneSchedule) {
        self.redis = redis
        self.defaultDailyLimit = defaultDailyLimit
        self.defaultMonthlyLimit = defaultMonthlyLimit
        self.defaultPolicy = defaultPolicy
        self.timezone = timezone
    }

    public struct Limits: Sendable, Equatable {
        public var daily: NanoUSD
        public var monthly: NanoUSD
        public var dailyIsDefault: Bool
        public var monthlyIsDefault: Bool
    }

    public func limits(_ client: ClientID) async throws -> Limits {
        try await budget(client).limits
    }

    /// Limits and policy back to the defaults.
    public func reset(_ client: ClientID) async throws -> (limits: Limits, policy: EffectivePolicy) {
        _ = try await redis.call(.command(["DEL", RedisKeys(client).limits]))
        return try await budget(client)
    }

    public struct PeriodSpend: Sendable, Equatable {
        public var period: String
        public var spent: NanoUSD
        public var reserved: NanoUSD
        public var requests: Int64
        public var refused: Int64
        public var limit: NanoUSD
        public var resetsAt: UnixTime
        public var remaining: NanoUSD { max(.zero, limit - spent - reserved) }
    }

    public struct ClientSpend: Sendable, Equatable {
        public var client: ClientID
        public var day: PeriodSpend
        public var month: PeriodSpend
    }

    /// Redis TIME: the one clock the scripts and every replica share.
    public func now() async throws -> UnixTime {
        UnixTime(seconds: try await redis.call(.command(["TIME"])).array?.first?.int ?? 0)
    }

    /// Today in the budget timezone, by Redis TIME: the same clock the scripts use.
    public func today() async throws -> String {
        let now = try await now()
        return timezone(now).day(at: now)
    }

    public func spend(_ client: ClientID, date: String) async throws -> ClientSpend {
        // The schedule as of a day before the date's UTC midnight knows any change from before
        // the local day begins (offsets span -12 h to +14 h) to the end of its month.
        guard let days = CivilDate.parseDay(date),
              let ends = timezone(UnixTime(seconds: (days - 1) * 86_400)).periodEnds(day: date) else {
            throw RedisError.unexpectedReply("date must be YYYY-MM-DD, got \(date)")
        }
        let keys = RedisKeys(client)
        async let limits = self.limits(client)
        async let day = redis.call(.command(["HGETALL", keys.day(date)]))
        async let month = redis.call(.command(["HGETALL", keys.month(String(date.prefix(7)))]))
        let (l, d, m) = try await (limits, day.hash, month.hash)
        func period(_ name: String, _ h: [String: String], _ limit: NanoUSD, _ end: UnixTime) -> PeriodSpend {
            let c = SpendCounters(hash: h)
            return PeriodSpend(period: name, spent: c.spent, reserved: c.reserved, requests: c.requests, refused: c.refused, limit: limit, resetsAt: end)
        }
        return ClientSpend(client: client, day: period(date, d, l.daily, ends.dayEnd),
                           month: period(String(date.prefix(7)), m, l.monthly, ends.monthEnd))
    }

    /// Every client with counters on `date`, found with SCAN (never KEYS), highest spend first.
    public func allSpend(date: String) async throws -> [ClientSpend] {
        guard CivilDate.parseDay(date) != nil else { throw RedisError.unexpectedReply("date must be YYYY-MM-DD, got \(date)") }
        var clients: Set<ClientID> = []
        let suffix = "}:day:" + date
        for k in try await redis.scan(match: "\(RedisKeys.namespace):{*\(suffix)") {
            guard k.hasSuffix(suffix), let open = k.firstIndex(of: "{") else { continue }
            let name = k[k.index(after: open)..<k.index(k.endIndex, offsetBy: -suffix.count)]
            if let id = ClientID(String(name)) { clients.insert(id) }
        }
        var result: [ClientSpend] = []
        for client in clients { result.append(try await spend(client, date: date)) }
        return result.sorted { ($0.day.spent, $1.client.rawValue) > ($1.day.spent, $0.client.rawValue) }
    }
}
