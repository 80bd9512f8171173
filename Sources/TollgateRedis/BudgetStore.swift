import Logging
import TollgateCore

/// The budget's Redis side: reserve → (renew) → settle, each one EVALSHA of a script in `lua/`.
/// The decision itself lives in `lua/reserve_v3.lua`; this type only frames the call.
public struct BudgetStore: Sendable {
    public struct Policy: Sendable {
        public var defaultDailyLimit: NanoUSD
        public var defaultMonthlyLimit: NanoUSD
        public var leaseSeconds: Int
        public var dayGraceSeconds: Int
        public var monthGraceSeconds: Int
        /// How long a reaped lease is remembered so a late settle still charges once.
        public var reapedRetentionSeconds = 86_400
        /// The budget timezone's offsets around now, asked per call; the script picks the one
        /// in force by Redis TIME (`TollgateConfig.timezoneScheduleForScripts`).
        public var timezone: @Sendable () -> TimezoneSchedule
        /// Shifts Redis TIME inside the scripts. Production: 0. Tests use it to cross midnight.
        public var clockOffsetSeconds: Int64 = 0

        public init(defaultDailyLimit: NanoUSD, defaultMonthlyLimit: NanoUSD, leaseSeconds: Int,
                    dayGraceSeconds: Int, monthGraceSeconds: Int, timezone: @escaping @Sendable () -> TimezoneSchedule) {
            self.defaultDailyLimit = defaultDailyLimit
            self.defaultMonthlyLimit = defaultMonthlyLimit
            self.leaseSeconds = leaseSeconds
            self.dayGraceSeconds = dayGraceSeconds
            self.monthGraceSeconds = monthGraceSeconds
            self.timezone = timezone
        }
    }

    public let redis: RedisConnection
    public let scripts: BudgetScripts
    public var policy: Policy

    public init(redis: RedisConnection, scripts: BudgetScripts, policy: Policy) {
        self.redis = redis
        self.scripts = scripts
        self.policy = policy
    }

    /// Reserves the estimate (possibly with fewer output tokens, when the estimate allows it)
    /// or says which limit refuses it.
    public func reserve(_ client: ClientID, _ reservation: ReservationID, estimate: CostEstimate) async throws -> ReserveOutcome {
        let keys = RedisKeys(client)
        let zone = policy.timezone()
        let args = [
            keys.base, String(policy.clockOffsetSeconds),
            String(zone.current), String(zone.nextChange.seconds), String(zone.after), reservation.rawValue,
            String(estimate.fixedCost.value), String(estimate.perOutputToken.value),
            String(estimate.requestedOutputTokens), String(estimate.minimumOutputTokens),
            String(policy.defaultDailyLimit.value), String(policy.defaultMonthlyLimit.value),
            String(policy.leaseSeconds * 1000), String(policy.dayGraceSeconds), String(policy.monthGraceSeconds),
            String(policy.reapedRetentionSeconds),
        ]
        let reply = try await redis.call(.script(scripts.reserve, keys: [keys.limits, keys.leases], args: args))
        guard let r = reply.array, let flag = r.first?.int, r.count == (flag == 1 ? 8 : 7) else {
            throw RedisError.unexpectedReply("\(scripts.reserve.name): \(reply)")
        }
        func int(_ i: Int) throws -> Int64 {
            guard let v = r[i].int else { throw RedisError.unexpectedReply("\(scripts.reserve.name) field \(i): \(r[i])") }
            return v
        }
        if flag == 1 {
            guard let member = r[7].string else { throw RedisError.unexpectedReply("\(scripts.reserve.name) lease: \(r[7])") }
            return .granted(BudgetGrant(
                lease: Lease(reservation: reservation, member: member), grantedOutputTokens: try int(1), reserved: NanoUSD(try int(2)),
                limit: NanoUSD(try int(3)), remaining: NanoUSD(try int(4)), resetsAt: UnixTime(seconds: try int(5)),
                leasesReaped: Int(try int(6))))
        }
        guard let period = r[1].string.flatMap(BudgetPeriod.init(rawValue:)) else {
            throw RedisError.unexpectedReply("\(scripts.reserve.name) period: \(r[1].string.map { "'\($0)'" } ?? "\(r[1])")")
        }
        return .refused(BudgetRefusal(
            period: period, limit: NanoUSD(try int(2)),
            spent: NanoUSD(try int(3)), reserved: NanoUSD(try int(6)), resetsAt: UnixTime(seconds: try int(4)),
            leasesReaped: Int(try int(5))))
    }

    /// Charges the real cost and releases the lease's reservation. Safe to retry: a second call
    /// charges nothing, and neither does a lease this client does not hold.
    public func settle(_ client: ClientID, _ lease: Lease, actual: NanoUSD) async throws -> SettleOutcome {
        let reply = try await redis.call(.script(scripts.settle, keys: [RedisKeys(client).leases],
                                                 args: [lease.member, String(max(0, actual.value))]))
        guard let status = reply.array?.first?.int, let outcome = SettleOutcome(rawValue: Int(status)) else {
            throw RedisError.unexpectedReply("\(scripts.settle.name): \(reply)")
        }
        return outcome
    }

    /// Extends a live lease (long streams). False when it was already settled or reaped.
    public func renew(_ client: ClientID, _ lease: Lease) async throws -> Bool {
        let reply = try await redis.call(.script(scripts.renew, keys: [RedisKeys(client).leases],
                                                 args: [lease.member, String(policy.leaseSeconds * 1000), String(policy.clockOffsetSeconds)]))
        return reply.int == 1
    }
}
