import TollgateCore

/// Changes to a client's limits hash (its limits and its own policy fields): values to set and fields to
/// remove (the default applies again). Built by the admin API and the CLI after validation.
public struct BudgetEdit: Sendable, Equatable {
    public var values: [String: String] = [:]
    public var remove: Set<String> = []
    /// Removes every `downgrade:<model>` field the client has.
    public var removeAllDowngrades = false

    public init() {}

    public var isEmpty: Bool { values.isEmpty && remove.isEmpty && !removeAllDowngrades }

    /// nil removes the field.
    public mutating func put(_ field: String, _ value: String?) {
        if let value {
            values[field] = value
            remove.remove(field)
        } else {
            remove.insert(field)
            values[field] = nil
        }
    }
}

extension BudgetAdmin {
    /// A client's limits and the policy in force, from one read of its limits hash.
    public func budget(_ client: ClientID) async throws -> (limits: Limits, policy: EffectivePolicy) {
        let hash = try await redis.call(.command(["HGETALL", RedisKeys(client).limits])).hash
        return (limits(limitsHash: hash), EffectivePolicy(own: OwnPolicy(hash: hash), defaults: defaultPolicy))
    }

    /// The limits in a client's limits hash (`tollgate:{C}:limits`), an absent field the default.
    public func limits(limitsHash hash: [String: String]) -> Limits {
        let daily = hash["daily"].flatMap { Int64($0) }, monthly = hash["monthly"].flatMap { Int64($0) }
        return Limits(daily: daily.map(NanoUSD.init) ?? defaultDailyLimit, monthly: monthly.map(NanoUSD.init) ?? defaultMonthlyLimit,
                      dailyIsDefault: daily == nil, monthlyIsDefault: monthly == nil)
    }

    /// Applies `edit` with one HSET and one HDEL; every replica's next reservation sees it.
    public func edit(_ client: ClientID, _ edit: BudgetEdit) async throws {
        let key = RedisKeys(client).limits
        var remove = edit.remove
        if edit.removeAllDowngrades {
            let fields = try await redis.call(.command(["HKEYS", key])).array?.compactMap(\.string) ?? []
            remove.formUnion(fields.filter { $0.hasPrefix(ClientPolicy.Field.downgradePrefix) && edit.values[$0] == nil })
        }
        if !edit.values.isEmpty {
            _ = try await redis.call(.command(["HSET", key] + edit.values.sorted { $0.key < $1.key }.flatMap { [$0.key, $0.value] }))
        }
        if !remove.isEmpty { _ = try await redis.call(.command(["HDEL", key] + remove.sorted())) }
        // settle_v4/v5 check a period's alerts only once spend reaches the mark it computed from the
        // old limit; forget that mark so a lowered limit or new thresholds apply on the next settle.
        let alertInputs: Set<String> = ["daily", "monthly", ClientPolicy.Field.alerts]
        if !alertInputs.isDisjoint(with: Set(edit.values.keys).union(remove)) {
            let date = try await today()
            let keys = RedisKeys(client)
            _ = try await redis.call(.command(["HDEL", keys.day(date), "alert_next"]))
            _ = try await redis.call(.command(["HDEL", keys.month(String(date.prefix(7))), "alert_next"]))
        }
    }

    /// A workflow run's counters (`tollgate:{C}:run:<id>`): zero for a run not started yet.
    public func runSpend(_ client: ClientID, run: RunID) async throws -> (spent: NanoUSD, reserved: NanoUSD, requests: Int64) {
        let h = try await redis.call(.command(["HGETALL", RedisKeys(client).run(run)])).hash
        return (NanoUSD(Int64(h["spent"] ?? "") ?? 0), NanoUSD(Int64(h["reserved"] ?? "") ?? 0), Int64(h["requests"] ?? "") ?? 0)
    }
}
