import NIOCore
import NIOPosix
import Synchronization
import Testing
import TollgateCore
@testable import TollgateRedis

/// apply_v6 through BudgetTick, on real Redis: operations of one client submitted on one event
/// loop in one tick go as one call, and each is decided exactly as it would be alone, in order.
/// Expected values are worked out by hand from the limits and the estimates.
@Suite("a tick's reserves and settles of one client in one apply_v6 call", .timeLimit(.minutes(2)))
struct ApplyBatchTests {
    /// Runs the bodies as tasks on one event loop, released together in one tick in the order
    /// given, as a replica's request tasks are when their bytes arrive in one wake.
    static func inOneTick<T: Sendable>(_ bodies: [@Sendable () async throws -> T]) async throws -> [T] {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let gate = Gate(count: bodies.count, loop: loop)
        return try await withThrowingTaskGroup(of: (Int, T).self) { group in
            for (i, body) in bodies.enumerated() {
                group.addTask(executorPreference: LoopExecutor(loop)) {
                    await gate.wait(i)
                    return (i, try await body())
                }
            }
            var results = [T?](repeating: nil, count: bodies.count)
            for try await (i, result) in group { results[i] = result }
            return results.map { $0! }
        }
    }

    /// Holds the tasks until all have arrived, then resumes them in one event-loop task, in order.
    final class Gate: Sendable {
        private let waiting = Mutex<[Int: CheckedContinuation<Void, Never>]>([:])
        private let count: Int
        private let loop: any EventLoop

        init(count: Int, loop: any EventLoop) {
            self.count = count
            self.loop = loop
        }

        func wait(_ i: Int) async {
            await withCheckedContinuation { go in
                let all: [Int: CheckedContinuation<Void, Never>]? = waiting.withLock { w in
                    w[i] = go
                    return w.count == count ? w : nil
                }
                if let all { loop.execute { for i in all.keys.sorted() { all[i]!.resume() } } }
            }
        }
    }

    final class LoopExecutor: TaskExecutor {
        let loop: any EventLoop
        init(_ loop: any EventLoop) { self.loop = loop }
        func enqueue(_ job: consuming ExecutorJob) { loop.enqueue(job) }
    }

    static func limit(_ client: ClientID, daily: Int64) async throws {
        _ = try await TestRedis.shared.call(.command(["HSET", RedisKeys(client).limits, "daily", String(daily)]))
    }

    /// 10 000 nano-USD of input plus 100 per output token, 400 tokens asked, at least 16.
    static let clampable = CostEstimate(inputTokenBound: 1, fixedCost: NanoUSD(10_000), perOutputToken: NanoUSD(100),
                                        requestedOutputTokens: 400, minimumOutputTokens: 16)

    @Test("reserves in one tick that together pass the limit are granted, clamped and refused as one after another")
    func reservesAtTheLimit() async throws {
        let client = TestRedis.uniqueClient("apply")
        try await Self.limit(client, daily: 120_000)
        let store = BudgetStore.forTests()
        let outcomes = try await Self.inOneTick((0..<4).map { _ in { try await store.reserve(client, .unique(), estimate: Self.clampable) } })
        #expect(store.tick.batchesSent.load(ordering: .relaxed) == 1)
        // 400 tokens cost 10 000 + 40 000 = 50 000: two fit (100 000), the third gets what the
        // last 20 000 buy (100 tokens), the fourth finds 0 left, less than its input.
        let granted = outcomes.compactMap { if case .granted(let g) = $0 { return g } else { return nil } }
        #expect(granted.map(\.grantedOutputTokens) == [400, 400, 100])
        #expect(granted.map(\.reserved) == [NanoUSD(50_000), NanoUSD(50_000), NanoUSD(20_000)])
        #expect(granted.map(\.remaining) == [NanoUSD(70_000), NanoUSD(20_000), .zero])
        guard case .refused(let refusal) = outcomes[3] else { Issue.record("the fourth is refused: \(outcomes[3])"); return }
        #expect(refusal.period == .daily && refusal.reserved == NanoUSD(120_000) && refusal.spent == .zero)
        let (day, month) = try await TestRedis.periodKeys(client)
        #expect(try await TestRedis.int(day, "reserved") == 120_000)
        #expect(try await TestRedis.int(month, "reserved") == 120_000)
        #expect(try await TestRedis.int(day, "refused") == 1)
        let leases = try await TestRedis.shared.call(.command(["ZCARD", RedisKeys(client).leases]))
        #expect(leases.int == 3)
    }

    @Test("settles in one tick charge exactly, and a lease settled twice in it charges once")
    func settlesCharge() async throws {
        let client = TestRedis.uniqueClient("apply")
        let store = BudgetStore.forTests()
        let leases = [try await store.grant(client, estimate: .fixed(30_000)).lease, try await store.grant(client, estimate: .fixed(40_000)).lease]
        let actuals: [Int64] = [11_000, 22_000, 22_000]
        let settling = [leases[0], leases[1], leases[1]]
        let outcomes = try await Self.inOneTick((0..<3).map { i in
            { try await store.settle(client, settling[i], actual: NanoUSD(actuals[i]), model: "gpt-4o-mini") }
        })
        #expect(store.tick.batchesSent.load(ordering: .relaxed) == 1)
        #expect(outcomes == [.settled, .settled, .unknownLease])
        let (day, month) = try await TestRedis.periodKeys(client)
        for key in [day, month] {
            #expect(try await TestRedis.int(key, "spent") == 33_000, "\(key)")
            #expect(try await TestRedis.int(key, "reserved") == 0, "\(key)")
            #expect(try await TestRedis.int(key, "requests") == 2, "\(key)")
        }
        #expect(try await TestRedis.int(day, "model:gpt-4o-mini") == 33_000)
    }

    @Test("a tick's settles of a client reach the top-spender sets summed, with an expiry")
    func topSpendSummed() async throws {
        let client = TestRedis.uniqueClient("apply")
        let store = BudgetStore.forTests()
        let leases = [try await store.grant(client, estimate: .fixed(9_000)).lease, try await store.grant(client, estimate: .fixed(9_000)).lease]
        _ = try await Self.inOneTick(leases.map { lease in { try await store.settle(client, lease, actual: NanoUSD(4_000)) } })
        let (day, month) = try await TestRedis.periodKeys(client)
        for key in [SharedRedisKeys.topDay(String(day.suffix(10))), SharedRedisKeys.topMonth(String(month.suffix(7)))] {
            #expect(try await eventually { try await TestRedis.shared.call(.command(["ZSCORE", key, client.rawValue])).int == 8_000 }, "\(key)")
            #expect(try await TestRedis.shared.call(.command(["TTL", key])).int ?? -1 > 0, "\(key) expires")
        }
    }

    @Test("a reserve after a settle in the same tick sees what the settle freed")
    func settleThenReserve() async throws {
        let client = TestRedis.uniqueClient("apply")
        try await Self.limit(client, daily: 100_000)
        let store = BudgetStore.forTests()
        let lease = try await store.grant(client, estimate: .fixed(80_000)).lease
        let bodies: [@Sendable () async throws -> Step] = [
            { .reserved(try await store.reserve(client, .unique(), estimate: .fixed(30_000)).isGranted) },
            { .settled(try await store.settle(client, lease, actual: NanoUSD(10_000))) },
            { .reserved(try await store.reserve(client, .unique(), estimate: .fixed(85_000)).isGranted) },
        ]
        let steps = try await Self.inOneTick(bodies)
        // 80 000 reserved leaves 20 000: 30 000 is refused. The settle leaves 10 000 spent, so
        // 85 000 fits (90 000 left).
        #expect(steps == [.reserved(false), .settled(.settled), .reserved(true)])
        let (day, _) = try await TestRedis.periodKeys(client)
        #expect(try await TestRedis.int(day, "spent") == 10_000)
        #expect(try await TestRedis.int(day, "reserved") == 85_000)
    }

    @Test("a settle that may wait rides with the client's next reserve on its loop, first, so the reserve sees what it gave back")
    func waitingSettleRidesWithReserve() async throws {
        let client = TestRedis.uniqueClient("apply")
        try await Self.limit(client, daily: 100_000)
        var store = BudgetStore.forTests()
        store.tick = BudgetTick(settleWindow: .seconds(30)) // far longer than the test: only the reserve can send it
        let lease = try await store.grant(client, estimate: .fixed(80_000)).lease
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let settle = Task(executorPreference: LoopExecutor(loop)) { [store] in
            try await store.settle(client, lease, actual: NanoUSD(10_000), mayWait: true)
        }
        // Parked, not sent: the counters still hold the reservation.
        try await Task.sleep(for: .milliseconds(300))
        let (day, _) = try await TestRedis.periodKeys(client)
        #expect(try await TestRedis.int(day, "reserved") == 80_000)
        // A later reserve on the same loop takes it along, first: 80 000 reserved would leave
        // 20 000, but settled at 10 000 it leaves 90 000, so 85 000 fits.
        let granted = try await Task(executorPreference: LoopExecutor(loop)) { [store] in
            try await store.reserve(client, .unique(), estimate: .fixed(85_000)).isGranted
        }.value
        #expect(granted)
        #expect(try await settle.value == .settled, "the settle is answered with the reserve, not at the window's end")
        #expect(store.tick.batchesSent.load(ordering: .relaxed) == 1)
        #expect(try await TestRedis.int(day, "spent") == 10_000)
        #expect(try await TestRedis.int(day, "reserved") == 85_000)
    }

    @Test("settles that may wait and meet no reserve are sent when the window ends: one alone as v5, several in one call")
    func waitingSettlesWithoutReserve() async throws {
        let client = TestRedis.uniqueClient("apply")
        let store = BudgetStore.forTests()
        let leases = [try await store.grant(client, estimate: .fixed(30_000)).lease, try await store.grant(client, estimate: .fixed(40_000)).lease,
                      try await store.grant(client, estimate: .fixed(50_000)).lease]
        let first: @Sendable () async throws -> SettleOutcome = { try await store.settle(client, leases[0], actual: NanoUSD(1_000), mayWait: true) }
        let alone = try await Self.inOneTick([first])
        #expect(alone == [.settled])
        #expect(store.tick.batchesSent.load(ordering: .relaxed) == 0)
        let pair = try await Self.inOneTick(leases[1...].map { lease in { try await store.settle(client, lease, actual: NanoUSD(2_000), mayWait: true) } })
        #expect(pair == [.settled, .settled])
        #expect(store.tick.batchesSent.load(ordering: .relaxed) == 1)
        let (day, _) = try await TestRedis.periodKeys(client)
        #expect(try await TestRedis.int(day, "spent") == 5_000)
        #expect(try await TestRedis.int(day, "reserved") == 0)
        #expect(try await TestRedis.int(day, "requests") == 3)
    }

    @Test("a tick mixing clients sends one call per client and answers each caller its own")
    func mixedClients() async throws {
        let a = TestRedis.uniqueClient("apply-a"), b = TestRedis.uniqueClient("apply-b")
        try await Self.limit(a, daily: 100_000)
        try await Self.limit(b, daily: 100_000)
        let store = BudgetStore.forTests()
        let plan: [(ClientID, Int64)] = [(a, 60_000), (b, 60_000), (a, 60_000), (b, 30_000)]
        let granted = try await Self.inOneTick(plan.map { client, cost in
            { try await store.reserve(client, .unique(), estimate: .fixed(cost)).isGranted }
        })
        #expect(store.tick.batchesSent.load(ordering: .relaxed) == 2)
        #expect(granted == [true, true, false, true])
        #expect(try await TestRedis.int(try await TestRedis.periodKeys(a).day, "reserved") == 60_000)
        #expect(try await TestRedis.int(try await TestRedis.periodKeys(b).day, "reserved") == 90_000)
    }

    @Test("thresholds crossed inside one tick fire as settles one after another would, and the wall once")
    func alertsInATick() async throws {
        let client = TestRedis.uniqueClient("apply")
        try await Self.limit(client, daily: 100_000)
        let store = BudgetStore.forTests()
        var leases: [Lease] = []
        for _ in 0..<3 { leases.append(try await store.grant(client, estimate: .fixed(30_000)).lease) }
        _ = try await Self.inOneTick(leases.map { lease in { try await store.settle(client, lease, actual: NanoUSD(30_000)) } })
        // Spend 30 000, 60 000 (50 % crossed), 90 000 (80 % crossed).
        let refusals = try await Self.inOneTick((0..<2).map { _ in { try await store.reserve(client, .unique(), estimate: .fixed(20_000)) } })
        #expect(store.tick.batchesSent.load(ordering: .relaxed) == 2)
        #expect(refusals.allSatisfy { !$0.isGranted })
        let outbox = try await AlertScriptTests.outbox(client)
        #expect(outbox.map { $0["threshold"] } == ["50", "80", "100"])
        #expect(outbox.map { $0["spent"] } == ["60000", "90000", "90000"])
        #expect(outbox.map { $0["cause"] } == ["spent", "spent", "refused"])
    }

    @Test("an operation the script rejects fails alone; the rest of its batch is done")
    func oneBadOperation() async throws {
        let client = TestRedis.uniqueClient("apply")
        let store = BudgetStore.forTests()
        let bodies: [@Sendable () async throws -> Bool?] = [
            { try? await store.reserve(client, .unique(), estimate: .fixed(5_000)).isGranted },
            { try? await store.reserve(client, ReservationID(rawValue: "a|b"), estimate: .fixed(7_000)).isGranted },
        ]
        let results = try await Self.inOneTick(bodies)
        #expect(store.tick.batchesSent.load(ordering: .relaxed) == 1)
        #expect(results == [true, nil])
        #expect(try await TestRedis.int(try await TestRedis.periodKeys(client).day, "reserved") == 5_000)
    }

    @Test("operations of a client that arrive while its call is in flight, from any loop and tick, go together as its next call, in arrival order")
    func queuedBehindTheCallInFlight() async throws {
        let redis = try SpawnedRedis()
        let connection = RedisConnection(endpoint: RedisEndpoint(url: redis.url)!, timeoutMilliseconds: 20_000,
                                         scripts: TestRedis.scripts.all, logger: TestRedis.logger)
        let store = BudgetStore(redis: connection, scripts: TestRedis.scripts, policy: BudgetStore.forTests().policy)
        let client = TestRedis.uniqueClient("flight")
        // Room for two of the four 10 000 nano-USD reserves.
        _ = try await connection.call(.command(["HSET", RedisKeys(client).limits, "daily", "25000"]))
        // Redis holds every write until told: the first reserve's call stays in flight.
        _ = try await connection.call(.command(["CLIENT", "PAUSE", "20000", "WRITE"]))
        let loops = [MultiThreadedEventLoopGroup.singleton.next(), MultiThreadedEventLoopGroup.singleton.next()]
        let started = StartCount()
        let granted = try await withThrowingTaskGroup(of: (Int, Bool).self) { group in
            for i in 0..<4 {
                // One by one, each in a tick of its own, and well queued before the next starts.
                group.addTask(executorPreference: LoopExecutor(loops[i % 2])) {
                    started.value.add(1, ordering: .relaxed)
                    return (i, try await store.reserve(client, .unique(), estimate: .fixed(10_000)).isGranted)
                }
                while started.value.load(ordering: .relaxed) <= i { try await Task.sleep(for: .milliseconds(5)) }
                try await Task.sleep(for: .milliseconds(150))
            }
            _ = try await TestRedis.connection(to: redis).call(.command(["CLIENT", "UNPAUSE"]))
            var granted = [Bool](repeating: false, count: 4)
            for try await (i, g) in group { granted[i] = g }
            return granted
        }
        #expect(granted == [true, true, false, false], "decided in arrival order")
        #expect(store.tick.batchesSent.load(ordering: .relaxed) == 1, "the first alone (v5), the three behind it in one call")
        let stats = try await connection.call(.command(["INFO", "commandstats"])).string ?? ""
        #expect(stats.contains("cmdstat_evalsha:calls=2,"), "two calls reached Redis: \(stats)")
    }

    final class StartCount: Sendable { let value = Atomic<Int>(0) }

    @Test("an operation alone in its tick is sent as its v5 call")
    func aloneIsV5() async throws {
        let client = TestRedis.uniqueClient("apply")
        let store = BudgetStore.forTests()
        let body: @Sendable () async throws -> Bool = { try await store.reserve(client, .unique(), estimate: .fixed(5_000)).isGranted }
        let granted = try await Self.inOneTick([body])
        #expect(granted == [true])
        #expect(store.tick.batchesSent.load(ordering: .relaxed) == 0)
    }
}

private enum Step: Sendable, Equatable {
    case settled(SettleOutcome)
    case reserved(Bool)
}
