import Testing
import TollgateCore
@testable import TollgateRedis

/// The Lua scripts against a real redis-server.
@Suite("budget scripts on real Redis", .timeLimit(.minutes(2)))
struct BudgetScriptTests {
    @Test("concurrent reservations never exceed the limit")
    func concurrentReservations() async throws {
        let client = TestRedis.uniqueClient()
        let store = BudgetStore.forTests(dailyUSD: 1)
        // 1 USD fits exactly 40 reservations of 0.025 USD; 200 race for them.
        let granted = try await withThrowingTaskGroup(of: Bool.self) { group in
            for _ in 0..<200 {
                group.addTask {
                    if case .granted = try await store.reserve(client, .unique(), estimate: .fixed(25_000_000)) { return true }
                    return false
                }
            }
            return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        #expect(granted == 40)
        let (day, month) = try await TestRedis.periodKeys(client)
        #expect(try await TestRedis.int(day, "reserved") == 1_000_000_000)
        #expect(try await TestRedis.int(month, "reserved") == 1_000_000_000)
        #expect(try await TestRedis.int(day, "refused") == 160)
    }

    @Test("a refusal names the binding limit, its size, the spend and the reset time")
    func refusalDetails() async throws {
        let client = TestRedis.uniqueClient()
        let store = BudgetStore.forTests(dailyUSD: 1)
        let first = try await store.grant(client, estimate: .fixed(600_000_000))
        _ = try await store.settle(client, first.lease, actual: NanoUSD(700_000_000))
        let outcome = try await store.reserve(client, .unique(), estimate: .fixed(400_000_000))
        guard case .refused(let refusal) = outcome else { Issue.record("expected refusal, got \(outcome)"); return }
        #expect(refusal.period == .daily)
        #expect(refusal.limit == NanoUSD(1_000_000_000))
        #expect(refusal.spent == NanoUSD(700_000_000))
        #expect(refusal.resetsAt!.seconds % 86_400 == 0)
        #expect(refusal.resetsAt!.rfc3339.hasSuffix("T00:00:00Z"))
    }

    @Test("a refusal reply naming no known period is a contract mismatch, not a daily refusal")
    func unknownPeriod() async throws {
        let fake = RedisScript(name: "reserve_fake", source: "return {0, 'weekly', 100, 50, 1800000000, 2, 0, 'block', 0}")
        let connection = RedisConnection(endpoint: TestRedis.endpoint, timeoutMilliseconds: 2_000, scripts: [fake], logger: TestRedis.logger)
        defer { connection.shutdown() }
        let scripts = BudgetScripts(reserve: fake, settle: TestRedis.scripts.settle, renew: TestRedis.scripts.renew)
        let store = BudgetStore(redis: connection, scripts: scripts, policy: BudgetStore.forTests().policy)
        let error = await #expect(throws: RedisError.self) {
            _ = try await store.reserve(TestRedis.uniqueClient(), .unique(), estimate: .fixed(1))
        }
        guard case .unexpectedReply(let what)? = error else { Issue.record("expected unexpectedReply, got \(String(describing: error))"); return }
        #expect(what.contains("weekly"))
    }

    @Test("day and month limits are both enforced, and midnight starts a new day")
    func dayAndMonth() async throws {
        let client = TestRedis.uniqueClient()
        // Move the clock forward to the 1st of next month so both days stay inside one month.
        // (Only forward: keys of a day in the past would expire at once.)
        let time = try await TestRedis.shared.call(.command(["TIME"])).array![0].int!
        var days = time / 86_400
        let thisMonth = CivilDate.fromDays(days).month
        while CivilDate.fromDays(days).month == thisMonth { days += 1 }
        let toFirst = days * 86_400 + 3_600 - time
        let store = BudgetStore.forTests(dailyUSD: 1, monthlyUSD: 2).withClock(toFirst)
        func spend(_ s: BudgetStore, _ nano: Int64) async throws -> ReserveOutcome {
            let outcome = try await s.reserve(client, .unique(), estimate: .fixed(nano))
            if case .granted(let g) = outcome { _ = try await s.settle(client, g.lease, actual: NanoUSD(nano)) }
            return outcome
        }
        #expect(try await spend(store, 900_000_000).isGranted)
        guard case .refused(let daily) = try await spend(store, 200_000_000) else { Issue.record("day limit not enforced"); return }
        #expect(daily.period == .daily)

        let nextDay = store.withClock(toFirst + 86_400)
        #expect(try await spend(nextDay, 900_000_000).isGranted, "a new day has a fresh daily budget")
        // Day three: a fresh day, but only 0.2 USD left in the month.
        guard case .refused(let monthly) = try await spend(store.withClock(toFirst + 2 * 86_400), 300_000_000) else {
            Issue.record("month limit not enforced"); return
        }
        #expect(monthly.period == .monthly)
        #expect(monthly.spent == NanoUSD(1_800_000_000))

        let (day10, month) = try await TestRedis.periodKeys(client, clockOffset: toFirst)
        let (day11, _) = try await TestRedis.periodKeys(client, clockOffset: toFirst + 86_400)
        #expect(day10 != day11)
        #expect(try await TestRedis.int(day10, "spent") == 900_000_000)
        #expect(try await TestRedis.int(day11, "spent") == 900_000_000)
        #expect(try await TestRedis.int(month, "spent") == 1_800_000_000)
        let ttl = try await TestRedis.shared.call(.command(["TTL", day10])).int!
        #expect(ttl > 0, "day keys expire")
    }

    @Test("per-client limits in Redis override the defaults for every replica")
    func perClientLimits() async throws {
        let client = TestRedis.uniqueClient()
        _ = try await TestRedis.shared.call(.command(["HSET", RedisKeys(client).limits, "daily", "100"]))
        let store = BudgetStore.forTests(dailyUSD: 10)
        #expect(try await store.reserve(client, .unique(), estimate: .fixed(100)).isGranted)
        #expect(!(try await store.reserve(client, .unique(), estimate: .fixed(1)).isGranted))
    }

    @Test("strict clamping grants fewer output tokens when only that many fit")
    func clamping() async throws {
        let client = TestRedis.uniqueClient()
        _ = try await TestRedis.shared.call(.command(["HSET", RedisKeys(client).limits, "daily", "10000"]))
        let store = BudgetStore.forTests()
        let estimate = CostEstimate(inputTokenBound: 10, fixedCost: NanoUSD(1_000), perOutputToken: NanoUSD(10),
                                    requestedOutputTokens: 5_000, minimumOutputTokens: 16)
        guard case .granted(let g) = try await store.reserve(client, .unique(), estimate: estimate) else { Issue.record("refused"); return }
        #expect(g.grantedOutputTokens == 900)
        #expect(g.reserved == NanoUSD(10_000))
        #expect(g.remaining == .zero)
        #expect(!(try await store.reserve(client, .unique(), estimate: estimate).isGranted), "not even the minimum fits now")
    }

    @Test("settle is idempotent per lease")
    func idempotentSettle() async throws {
        let client = TestRedis.uniqueClient()
        let store = BudgetStore.forTests()
        let g = try await store.grant(client, estimate: .fixed(5_000))
        #expect(try await store.settle(client, g.lease, actual: NanoUSD(3_000)) == .settled)
        #expect(try await store.settle(client, g.lease, actual: NanoUSD(3_000)) == .unknownLease)
        let (day, month) = try await TestRedis.periodKeys(client)
        for key in [day, month] {
            #expect(try await TestRedis.int(key, "spent") == 3_000)
            #expect(try await TestRedis.int(key, "reserved") == 0)
            #expect(try await TestRedis.int(key, "requests") == 1)
        }
        #expect(try await TestRedis.shared.call(.command(["EXISTS", RedisKeys(client).leases])).int == 0, "no lease is left behind")
    }

    @Test("a forged, foreign or garbled lease charges nothing and leaves the real lease intact")
    func forgedLease() async throws {
        let client = TestRedis.uniqueClient(), other = TestRedis.uniqueClient()
        let store = BudgetStore.forTests()
        let real = try await store.grant(client, estimate: .fixed(5_000))
        let theirs = try await store.grant(other, estimate: .fixed(7_000))
        let parts = real.lease.member.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
        // A|<id>|<cost>|<day>|<month>|<run>|<flags>
        try #require(parts.count == 7 && parts[0] == "A" && parts[1] == real.lease.reservation.rawValue && parts[2] == "5000")
        let forgeries = [
            ["A", parts[1], "1", parts[3], parts[4], "", ""],                          // the real id with a smaller cost
            ["A", ReservationID.unique().rawValue, parts[2], parts[3], parts[4], "", ""], // an id never reserved
            ["R", parts[1], parts[2], parts[3], parts[4], "", ""],                      // posing as reaped
            ["A", parts[1], parts[2], parts[3], parts[4]],                              // the v2 form of the real one
        ].map { $0.joined(separator: "|") } + [theirs.lease.member, "A|x|1", "", "garbage"]
        for member in forgeries {
            let forged = Lease(reservation: real.lease.reservation, member: member)
            #expect(try await store.settle(client, forged, actual: NanoUSD(1_000_000)) == .unknownLease, "\(member)")
            #expect(!(try await store.renew(client, forged)), "\(member)")
        }
        let (day, otherDay) = (try await TestRedis.periodKeys(client).day, try await TestRedis.periodKeys(other).day)
        for key in [day, otherDay] {
            #expect(try await TestRedis.int(key, "spent") == 0, "\(key)")
            #expect(try await TestRedis.int(key, "requests") == 0, "\(key)")
        }
        #expect(try await TestRedis.int(day, "reserved") == 5_000)
        #expect(try await store.settle(client, real.lease, actual: NanoUSD(4_000)) == .settled)
        #expect(try await TestRedis.int(day, "spent") == 4_000)
        #expect(try await TestRedis.int(day, "reserved") == 0)
        #expect(try await TestRedis.int(otherDay, "reserved") == 7_000, "the other client's lease is untouched")
    }

    @Test("amounts of a million dollars and more are written as plain integers, never 1e+15")
    func largeAmounts() async throws {
        let client = TestRedis.uniqueClient()
        _ = try await TestRedis.shared.call(.command(["HSET", RedisKeys(client).limits, "daily", "3000000000000000", "monthly", "3000000000000000"]))
        let store = BudgetStore.forTests()
        let g = try await store.grant(client, estimate: .fixed(1_000_000_000_000_000))
        #expect(g.reserved == NanoUSD(1_000_000_000_000_000))
        #expect(g.remaining == NanoUSD(2_000_000_000_000_000))
        #expect(g.lease.member.contains("|1000000000000000|"))
        let (day, month) = try await TestRedis.periodKeys(client)
        #expect(try await TestRedis.hash(day)["reserved"] == "1000000000000000")
        #expect(try await store.settle(client, g.lease, actual: NanoUSD(2_000_000_000_000_000)) == .settled)
        #expect(try await TestRedis.hash(month)["spent"] == "2000000000000000")
        #expect(try await TestRedis.hash(month)["reserved"] == "0")
    }

    @Test("a reservation id that would break the lease member is rejected before anything is written")
    func reservationIDWithSeparator() async throws {
        let client = TestRedis.uniqueClient()
        await #expect(throws: RedisError.self) {
            _ = try await BudgetStore.forTests().reserve(client, ReservationID(rawValue: "a|b"), estimate: .fixed(1))
        }
        let (day, _) = try await TestRedis.periodKeys(client)
        #expect(try await TestRedis.shared.call(.command(["EXISTS", day, RedisKeys(client).leases])).int == 0)
    }

    @Test("a settle whose day key has expired charges the month and does not recreate the day")
    func settleIntoExpiredDay() async throws {
        let client = TestRedis.uniqueClient()
        let store = BudgetStore.forTests()
        let g = try await store.grant(client, estimate: .fixed(5_000))
        let (day, month) = try await TestRedis.periodKeys(client)
        _ = try await TestRedis.shared.call(.command(["DEL", day]))
        #expect(try await store.settle(client, g.lease, actual: NanoUSD(3_000)) == .settled)
        #expect(try await TestRedis.shared.call(.command(["EXISTS", day])).int == 0)
        #expect(try await TestRedis.int(month, "spent") == 3_000)
        #expect(try await TestRedis.int(month, "reserved") == 0)
    }

    @Test("period keys get their expiry whether the first request is granted or refused")
    func periodKeysExpire() async throws {
        let refusedFirst = TestRedis.uniqueClient(), grantedFirst = TestRedis.uniqueClient()
        _ = try await TestRedis.shared.call(.command(["HSET", RedisKeys(refusedFirst).limits, "daily", "0"]))
        let store = BudgetStore.forTests()
        #expect(!(try await store.reserve(refusedFirst, .unique(), estimate: .fixed(1)).isGranted))
        #expect(try await store.reserve(grantedFirst, .unique(), estimate: .fixed(1)).isGranted)
        for client in [refusedFirst, grantedFirst] {
            let (day, month) = try await TestRedis.periodKeys(client)
            for key in [day, month] {
                #expect(try await TestRedis.shared.call(.command(["TTL", key])).int ?? -1 > 0, "\(key)")
            }
        }
    }

    @Test("an expired lease is reaped and charged, and a settle after the reap corrects the charge once")
    func reaping() async throws {
        let client = TestRedis.uniqueClient()
        let store = BudgetStore.forTests(leaseSeconds: 60)
        let crashed = try await store.grant(client, estimate: .fixed(50_000))
        // 61 seconds later another request arrives and reaps the dead lease.
        let later = store.withClock(61)
        guard case .granted(let g) = try await later.reserve(client, .unique(), estimate: .fixed(1)) else { Issue.record("refused"); return }
        #expect(g.leasesReaped == 1)
        let (day, _) = try await TestRedis.periodKeys(client)
        #expect(try await TestRedis.int(day, "reserved") == 1)
        #expect(try await TestRedis.int(day, "spent") == 50_000, "reaped means charged: the provider may have billed it")
        #expect(try await TestRedis.int(day, "leases_reaped") == 1)
        #expect(!(try await later.renew(client, crashed.lease)), "a reaped lease cannot be renewed")
        #expect(try await later.settle(client, crashed.lease, actual: NanoUSD(40_000)) == .settledAfterReap)
        #expect(try await later.settle(client, crashed.lease, actual: NanoUSD(40_000)) == .unknownLease)
        #expect(try await TestRedis.int(day, "spent") == 40_000)
        #expect(try await TestRedis.int(day, "reserved") == 1)
        #expect(try await TestRedis.int(day, "requests") == 1)
    }

    @Test("a renewed lease is not reaped")
    func renewal() async throws {
        let client = TestRedis.uniqueClient()
        let store = BudgetStore.forTests(leaseSeconds: 60)
        let streaming = try await store.grant(client, estimate: .fixed(50_000)).lease
        #expect(try await store.withClock(50).renew(client, streaming))
        guard case .granted(let g) = try await store.withClock(70).reserve(client, .unique(), estimate: .fixed(1)) else { Issue.record("refused"); return }
        #expect(g.leasesReaped == 0)
        #expect(try await store.settle(client, streaming, actual: NanoUSD(10)) == .settled)
        #expect(!(try await store.renew(client, streaming)), "a settled lease cannot be renewed")
    }

    @Test("after SCRIPT FLUSH the scripts are reloaded transparently (NOSCRIPT)")
    func noscriptReload() async throws {
        let connection = TestRedis.connection()
        defer { connection.shutdown() }
        let store = BudgetStore(redis: connection, scripts: TestRedis.scripts, policy: BudgetStore.forTests().policy)
        let client = TestRedis.uniqueClient()
        #expect(try await store.reserve(client, .unique(), estimate: .fixed(1)).isGranted)
        _ = try await connection.call(.command(["SCRIPT", "FLUSH"]))
        #expect(try await store.reserve(client, .unique(), estimate: .fixed(1)).isGranted)
    }

    @Test("after SCRIPT FLUSH many callers at once all get through on one reload")
    func noscriptStampede() async throws {
        let connection = TestRedis.connection()
        defer { connection.shutdown() }
        let store = BudgetStore(redis: connection, scripts: TestRedis.scripts, policy: BudgetStore.forTests().policy)
        let client = TestRedis.uniqueClient()
        _ = try await connection.call(.command(["SCRIPT", "FLUSH"]))
        let granted = try await withThrowingTaskGroup(of: Bool.self) { group in
            for _ in 0..<50 { group.addTask { try await store.reserve(client, .unique(), estimate: .fixed(1)).isGranted } }
            return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        #expect(granted == 50)
    }

    @Test("an unreachable Redis fails fast as unavailable, never as a grant")
    func unreachable() async throws {
        let connection = RedisConnection(endpoint: RedisEndpoint(url: "redis://127.0.0.1:1/0")!, timeoutMilliseconds: 200,
                                         scripts: TestRedis.scripts.all, logger: TestRedis.logger)
        defer { connection.shutdown() }
        let store = BudgetStore(redis: connection, scripts: TestRedis.scripts, policy: BudgetStore.forTests().policy)
        await #expect(throws: RedisError.self) {
            _ = try await store.reserve(TestRedis.uniqueClient(), .unique(), estimate: .fixed(1))
        }
    }
}

extension ReserveOutcome {
    var isGranted: Bool {
        if case .granted = self { return true }
        return false
    }
}
