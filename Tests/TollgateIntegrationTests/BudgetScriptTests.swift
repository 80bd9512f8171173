import Testing
import TollgateCore
import TollgateRedis

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
                    if case .granted = try await store.reserve(client, .random(), estimate: .fixed(25_000_000)) { return true }
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
        let r1 = ReservationID.random()
        guard case .granted = try await store.reserve(client, r1, estimate: .fixed(600_000_000)) else { Issue.record("not granted"); return }
        _ = try await store.settle(client, r1, actual: NanoUSD(700_000_000))
        let outcome = try await store.reserve(client, .random(), estimate: .fixed(400_000_000))
        guard case .refused(let refusal) = outcome else { Issue.record("expected refusal, got \(outcome)"); return }
        #expect(refusal.period == .daily)
        #expect(refusal.limit == NanoUSD(1_000_000_000))
        #expect(refusal.spent == NanoUSD(700_000_000))
        #expect(refusal.resetsAt.seconds % 86_400 == 0)
        #expect(refusal.resetsAt.rfc3339.hasSuffix("T00:00:00Z"))
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
            let id = ReservationID.random()
            let outcome = try await s.reserve(client, id, estimate: .fixed(nano))
            if case .granted = outcome { _ = try await s.settle(client, id, actual: NanoUSD(nano)) }
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
        #expect(try await store.reserve(client, .random(), estimate: .fixed(100)).isGranted)
        #expect(!(try await store.reserve(client, .random(), estimate: .fixed(1)).isGranted))
    }

    @Test("strict clamping grants fewer output tokens when only that many fit")
    func clamping() async throws {
        let client = TestRedis.uniqueClient()
        _ = try await TestRedis.shared.call(.command(["HSET", RedisKeys(client).limits, "daily", "10000"]))
        let store = BudgetStore.forTests()
        let estimate = CostEstimate(inputTokenBound: 10, fixedCost: NanoUSD(1_000), perOutputToken: NanoUSD(10),
                                    requestedOutputTokens: 5_000, minimumOutputTokens: 16)
        guard case .granted(let g) = try await store.reserve(client, .random(), estimate: estimate) else { Issue.record("refused"); return }
        #expect(g.grantedOutputTokens == 900)
        #expect(g.reserved == NanoUSD(10_000))
        #expect(g.remaining == .zero)
        #expect(!(try await store.reserve(client, .random(), estimate: estimate).isGranted), "not even the minimum fits now")
    }

    @Test("settle is idempotent per reservation")
    func idempotentSettle() async throws {
        let client = TestRedis.uniqueClient()
        let store = BudgetStore.forTests()
        let id = ReservationID.random()
        _ = try await store.reserve(client, id, estimate: .fixed(5_000))
        #expect(try await store.settle(client, id, actual: NanoUSD(3_000)) == .settled)
        #expect(try await store.settle(client, id, actual: NanoUSD(3_000)) == .unknownReservation)
        let (day, _) = try await TestRedis.periodKeys(client)
        #expect(try await TestRedis.int(day, "spent") == 3_000)
        #expect(try await TestRedis.int(day, "reserved") == 0)
        #expect(try await TestRedis.int(day, "requests") == 1)
    }

    @Test("an expired lease is reaped, and a settle after the reap charges exactly once")
    func reaping() async throws {
        let client = TestRedis.uniqueClient()
        let store = BudgetStore.forTests(leaseSeconds: 60)
        let crashed = ReservationID.random()
        _ = try await store.reserve(client, crashed, estimate: .fixed(50_000))
        // 61 seconds later another request arrives and reaps the dead lease.
        let later = store.withClock(61)
        guard case .granted(let g) = try await later.reserve(client, .random(), estimate: .fixed(1)) else { Issue.record("refused"); return }
        #expect(g.leasesReaped == 1)
        let (day, _) = try await TestRedis.periodKeys(client)
        #expect(try await TestRedis.int(day, "reserved") == 1)
        #expect(try await TestRedis.int(day, "leases_reaped") == 1)
        #expect(try await later.settle(client, crashed, actual: NanoUSD(40_000)) == .settledAfterReap)
        #expect(try await later.settle(client, crashed, actual: NanoUSD(40_000)) == .unknownReservation)
        #expect(try await TestRedis.int(day, "spent") == 40_000)
        #expect(try await TestRedis.int(day, "reserved") == 1)
    }

    @Test("a renewed lease is not reaped")
    func renewal() async throws {
        let client = TestRedis.uniqueClient()
        let store = BudgetStore.forTests(leaseSeconds: 60)
        let streaming = ReservationID.random()
        _ = try await store.reserve(client, streaming, estimate: .fixed(50_000))
        #expect(try await store.withClock(50).renew(client, streaming))
        guard case .granted(let g) = try await store.withClock(70).reserve(client, .random(), estimate: .fixed(1)) else { Issue.record("refused"); return }
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
        #expect(try await store.reserve(client, .random(), estimate: .fixed(1)).isGranted)
        _ = try await connection.call(.command(["SCRIPT", "FLUSH"]))
        #expect(try await store.reserve(client, .random(), estimate: .fixed(1)).isGranted)
    }

    @Test("an unreachable Redis fails fast as unavailable, never as a grant")
    func unreachable() async throws {
        let connection = RedisConnection(endpoint: RedisEndpoint(url: "redis://127.0.0.1:1/0")!, timeoutMilliseconds: 200,
                                         scripts: TestRedis.scripts.all, logger: TestRedis.logger)
        defer { connection.shutdown() }
        let store = BudgetStore(redis: connection, scripts: TestRedis.scripts, policy: BudgetStore.forTests().policy)
        await #expect(throws: RedisError.self) {
            _ = try await store.reserve(TestRedis.uniqueClient(), .random(), estimate: .fixed(1))
        }
    }
}

extension ReserveOutcome {
    var isGranted: Bool {
        if case .granted = self { return true }
        return false
    }
}
