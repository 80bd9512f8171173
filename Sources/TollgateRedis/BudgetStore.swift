import Foundation
import Logging
import Synchronization
import TollgateCore

/// The budget's Redis side: reserve → (renew) → settle, each one EVALSHA of a script in `lua/`.
/// The decision itself lives in `lua/reserve_v5.lua`; this type only frames the call (arguments:
/// BudgetStore+Arguments.swift).
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
        /// The replica's guess at Redis TIME, for the period keys it passes reserve (which
        /// checks them against TIME). Tests set a wrong one to make the script derive its own.
        public var replicaClock: @Sendable () -> UnixTime = { UnixTime(seconds: Int64(Date().timeIntervalSince1970)) }
        /// The policy of clients without their own fields in Redis (`clients.defaults`).
        public var clientDefaults = ClientPolicy()
        /// `alerts.outbox_max_length`: the bound of each client's outbox stream.
        public var outboxMaxLength = 10_000
        /// How long the top-spender sets are kept after their day or month (analytics retention).
        public var topSpendRetentionSeconds = 35 * 86_400

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
    /// A copy given another policy gets a tick of its own: one apply_v6 call shares its
    /// period and defaults among all its operations.
    public var policy: Policy { didSet { (tick, periodCache) = (BudgetTick(), PeriodArgumentsCache()) } }
    private let topKeysExpiring = KeysSeen()
    private let topSpend: TopSpendTally
    var tick = BudgetTick() // settable by tests, for a longer settle window
    /// The arguments every call shares, made once per period (BudgetStore+Arguments.swift).
    private(set) var periodCache = PeriodArgumentsCache()

    public init(redis: RedisConnection, scripts: BudgetScripts, policy: Policy) {
        self.redis = redis
        self.scripts = scripts
        self.policy = policy
        topSpend = TopSpendTally(redis: redis)
    }

    /// Reserves the estimate (possibly with fewer output tokens, when the estimate allows it),
    /// applying the client's policy, or says why not.
    public func reserve(_ client: ClientID, _ reservation: ReservationID, estimate: CostEstimate,
                        options: ReserveOptions = ReserveOptions()) async throws -> ReserveOutcome {
        let call = reserveCall(client, reservation, estimate: estimate, options: options)
        return try reserveOutcome(try await tick.send(client, .reserve(call), via: self), client, reservation)
    }

    /// reserve_v5's reply (apply_v6 answers each reserve with the same).
    package func reserveOutcome(_ reply: RedisReply, _ client: ClientID, _ reservation: ReservationID) throws -> ReserveOutcome {
        let name = scripts.reserve.name
        guard let r = reply.array, let flag = r.first?.int, r.count == [0: 9, 1: 11, 2: 2][flag] else {
            throw RedisError.unexpectedReply("\(name): \(reply)")
        }
        func int(_ i: Int) throws -> Int64 {
            guard let v = r[i].int else { throw RedisError.unexpectedReply("\(name) field \(i): \(r[i])") }
            return v
        }
        func string(_ i: Int) throws -> String {
            guard let v = r[i].string else { throw RedisError.unexpectedReply("\(name) field \(i): \(r[i])") }
            return v
        }
        func period(_ i: Int) throws -> BudgetPeriod {
            guard let p = r[i].string.flatMap(BudgetPeriod.init(rawValue:)) else {
                throw RedisError.unexpectedReply("\(name) period: \(r[i].string.map { "'\($0)'" } ?? "\(r[i])")")
            }
            return p
        }
        /// A run has no reset time: the script sends 0.
        func resetsAt(_ i: Int) throws -> UnixTime? { try int(i) > 0 ? UnixTime(seconds: try int(i)) : nil }
        switch flag {
        case 2:
            return .priceFallback(model: try string(1))
        case 1:
            var grant = BudgetGrant(
                lease: Lease(reservation: reservation, member: try string(7)), grantedOutputTokens: try int(1),
                reserved: NanoUSD(try int(2)), limit: NanoUSD(try int(3)), remaining: NanoUSD(try int(4)),
                resetsAt: try resetsAt(5), leasesReaped: Int(try int(6)))
            grant.overLimit = try int(8) == 1
            let downgraded = try string(9)
            grant.downgradedTo = downgraded.isEmpty ? nil : downgraded
            grant.period = try period(10)
            return .granted(grant)
        default:
            if r[1].string == "loop" {
                return .loopDetected(LoopTrip(maxRepeats: Int(try int(2)), seen: Int(try int(3)), windowSeconds: Int(try int(6)),
                                              retryAt: UnixTime(seconds: try int(4)), leasesReaped: Int(try int(5))))
            }
            var refusal = BudgetRefusal(
                period: try period(1), limit: NanoUSD(try int(2)), spent: NanoUSD(try int(3)), reserved: NanoUSD(try int(6)),
                resetsAt: try resetsAt(4), leasesReaped: Int(try int(5)))
            refusal.action = try string(7) == "stop" ? .stop : .block
            if try int(8) == 1 { alertsFired(client) }
            return .refused(refusal)
        }
    }

    /// Charges the real cost and releases the lease's reservation. Safe to retry: a second call
    /// charges nothing, and neither does a lease this client does not hold.
    /// `model` is the model billed: the day's spend per model counts it (analytics).
    /// `mayWait`: the answer has gone out, so the settle may wait a moment to share a call with
    /// the client's next reserve (`BudgetTick.settleWindow`).
    public func settle(_ client: ClientID, _ lease: Lease, actual: NanoUSD, model: String = "", mayWait: Bool = false) async throws -> SettleOutcome {
        let call = settleCall(client, lease, actual: actual, model: model)
        return try settleOutcome(try await tick.send(client, .settle(call), mayWait: mayWait, via: self), client, lease)
    }

    /// settle_v5's reply (apply_v6 answers each settle with the same).
    package func settleOutcome(_ reply: RedisReply, _ client: ClientID, _ lease: Lease) throws -> SettleOutcome {
        guard let r = reply.array, r.count == 4, let status = r[0].int, let outcome = SettleOutcome(rawValue: Int(status)),
              let charged = r[2].int, let fired = r[3].int else {
            throw RedisError.unexpectedReply("\(scripts.settle.name): \(reply)")
        }
        if outcome != .unknownLease { recordTopSpend(client, lease, charged: charged) }
        if fired > 0 { alertsFired(client) }
        return outcome
    }

    /// The top-spender sets rank clients for a day and a month without a SCAN. Not part of the
    /// budget: posted after the settle, no reply awaited, so they cost no round trip, and summed
    /// per event loop over 50 ms (TopSpendTally); a reaped lease's charge is missing from them (numbers shown are
    /// read from the period hashes).
    private func recordTopSpend(_ client: ClientID, _ lease: Lease, charged: Int64) {
        guard charged > 0, let (day, month) = lease.periods else { return }
        for key in [SharedRedisKeys.topDay(day), SharedRedisKeys.topMonth(month)] {
            let expiry = topKeysExpiring.firstSight(of: key) ? policy.topSpendRetentionSeconds + 32 * 86_400 : nil
            topSpend.add(charged, to: key, for: client, thenExpireIn: expiry)
        }
    }

    /// Sends the top-spender increments still being summed (`TopSpendTally.window`) and waits
    /// for Redis to take them: called once no request can settle any more, before Redis closes.
    public func flushBookkeeping() async { await topSpend.flush() }

    /// The client's outbox has new alerts: tell the senders where to look (they also rescan).
    private func alertsFired(_ client: ClientID) {
        redis.post(.command(["ZADD", SharedRedisKeys.alertsPending, "NX", "0", client.rawValue]))
    }

    /// Extends a live lease (long streams). False when it was already settled or reaped.
    public func renew(_ client: ClientID, _ lease: Lease) async throws -> Bool {
        let reply = try await redis.call(.script(scripts.renew, keys: [RedisKeys(client).leases],
                                                 args: [lease.member, String(policy.leaseSeconds * 1000), String(policy.clockOffsetSeconds)]))
        return reply.int == 1
    }
}

/// Which shared keys this process has already given an expiry (once per key, not per request).
final class KeysSeen: Sendable {
    private let seen = Mutex<Set<String>>([])

    func firstSight(of key: String) -> Bool {
        seen.withLock { set in
            if set.count > 64 { set.removeAll() } // a few keys a day; forget old days
            return set.insert(key).inserted
        }
    }
}

extension Lease {
    /// The day (`YYYY-MM-DD`) and month (`YYYY-MM`) this lease is charged to, from its member
    /// (`A|id|amount|…:day:2026-12-02|…:month:2026-12|…`). Read on the member's bytes without
    /// splitting it into arrays: every settle asks (split by `Character`, it was ~2 % of
    /// Tollgate's CPU per request; split into arrays of bytes, 0.7 %).
    var periods: (day: String, month: String)? {
        let bar = UInt8(ascii: "|"), colon = UInt8(ascii: ":")
        var rest = member.utf8[...]
        for _ in 0..<3 {
            guard let end = rest.firstIndex(of: bar) else { return nil }
            rest = rest[rest.index(after: end)...]
        }
        guard let dayEnd = rest.firstIndex(of: bar) else { return nil }
        let dayField = rest[..<dayEnd]
        let afterDay = rest[rest.index(after: dayEnd)...]
        let monthField = afterDay[..<(afterDay.firstIndex(of: bar) ?? afterDay.endIndex)]
        func lastPart(_ field: Substring.UTF8View) -> String {
            String(decoding: field[(field.lastIndex(of: colon).map(field.index(after:)) ?? field.startIndex)...], as: UTF8.self)
        }
        return (lastPart(dayField), lastPart(monthField))
    }
}
