import Testing
import TollgateCore
@testable import TollgateRedis

/// Threshold alerts as the scripts fire them (settle_v4, reserve_v4), against a real redis-server.
@Suite("alert thresholds in the scripts", .timeLimit(.minutes(2)))
struct AlertScriptTests {
    /// The client's outbox entries, oldest first, as field maps.
    static func outbox(_ client: ClientID) async throws -> [[String: String]] {
        let reply = try await TestRedis.shared.call(.command(["XRANGE", RedisKeys(client).alerts, "-", "+"]))
        return (reply.array ?? []).map { entry in
            let flat = entry.array?[1].array ?? []
            var fields: [String: String] = [:]
            for i in stride(from: 0, to: flat.count - 1, by: 2) { fields[flat[i].string!] = flat[i + 1].string! }
            return fields
        }
    }

    static func spend(_ store: BudgetStore, _ client: ClientID, _ nano: Int64, model: String = "") async throws {
        let grant = try await store.grant(client, estimate: .fixed(nano))
        _ = try await store.settle(client, grant.lease, actual: NanoUSD(nano), model: model)
    }

    /// A store with a Redis connection of its own: a replica.
    static func replica(dailyUSD: Int64) -> (BudgetStore, RedisConnection) {
        let connection = TestRedis.connection()
        let store = BudgetStore(redis: connection, scripts: TestRedis.scripts, policy: BudgetStore.forTests(dailyUSD: dailyUSD).policy)
        return (store, connection)
    }

    @Test("three replicas racing over 50, 80 and 100 % fire each threshold exactly once")
    func raceFiresOnce() async throws {
        let client = TestRedis.uniqueClient("race")
        let replicas = (0..<3).map { _ in Self.replica(dailyUSD: 1) }
        defer { for (_, c) in replicas { c.shutdown() } }
        // 100 requests of 0.01 USD fill the 1 USD day exactly, 34 per replica at once.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<100 {
                let store = replicas[i % 3].0
                group.addTask { try await Self.spend(store, client, 10_000_000) }
            }
            try await group.waitForAll()
        }
        let entries = try await Self.outbox(client)
        #expect(entries.map { $0["threshold"] } == ["50", "80", "100"])
        let (day, _) = try await TestRedis.periodKeys(client)
        for entry in entries {
            #expect(entry["client"] == client.rawValue)
            #expect(entry["period"] == "daily")
            #expect(entry["window"] == String(day.suffix(10)))
            #expect(entry["limit"] == "1000000000")
            #expect(entry["cause"] == "spent")
            let spent = Int64(entry["spent"]!)!
            let threshold = Int64(entry["threshold"]!)!
            // Fired by the settle that crossed it: within one request (0.01 USD) past the mark.
            #expect(spent >= threshold * 10_000_000 && spent < threshold * 10_000_000 + 10_000_000 * 3, "\(entry)")
            #expect(BudgetAlert(streamFields: entry) != nil)
        }
        // The day is full: the next request is refused, and that fires no second 100 % alert.
        guard case .refused = try await replicas[0].0.reserve(client, .unique(), estimate: .fixed(10_000_000)) else {
            Issue.record("expected a refusal"); return
        }
        #expect(try await Self.outbox(client).count == 3)
    }

    @Test("a refusal at the limit fires the 100 % alert once, before spend reaches it")
    func wallAlert() async throws {
        let client = TestRedis.uniqueClient("wall")
        let store = BudgetStore.forTests(dailyUSD: 1)
        try await Self.spend(store, client, 950_000_000)
        #expect(try await Self.outbox(client).map { $0["threshold"] } == ["50", "80"])
        for _ in 0..<3 {
            guard case .refused = try await store.reserve(client, .unique(), estimate: .fixed(100_000_000)) else {
                Issue.record("expected a refusal"); return
            }
        }
        let entries = try await Self.outbox(client)
        #expect(entries.map { $0["threshold"] } == ["50", "80", "100"])
        #expect(entries.last?["cause"] == "refused")
        #expect(entries.last?["spent"] == "950000000")
        // Spend reaching 100 % later does not fire it a second time.
        try await Self.spend(store, client, 50_000_000)
        #expect(try await Self.outbox(client).count == 3)
    }

    @Test("a refusal under a request's header cap is not the client's wall and fires nothing")
    func headerCapFiresNothing() async throws {
        let client = TestRedis.uniqueClient("cap")
        let store = BudgetStore.forTests(dailyUSD: 10)
        let options = ReserveOptions(dailyCap: NanoUSD(100_000_000))
        guard case .refused = try await store.reserve(client, .unique(), estimate: .fixed(200_000_000), options: options) else {
            Issue.record("expected a refusal under the header cap"); return
        }
        #expect(try await Self.outbox(client).isEmpty)
    }

    @Test("a client's own thresholds win over the defaults, and none turns alerts off")
    func ownThresholds() async throws {
        let store = BudgetStore.forTests(dailyUSD: 1)
        let own = TestRedis.uniqueClient("own")
        _ = try await TestRedis.shared.call(.command(["HSET", RedisKeys(own).limits, "alerts", "30,90"]))
        let off = TestRedis.uniqueClient("off")
        _ = try await TestRedis.shared.call(.command(["HSET", RedisKeys(off).limits, "alerts", "none"]))
        for _ in 0..<10 {
            try await Self.spend(store, own, 100_000_000)
            try await Self.spend(store, off, 100_000_000)
        }
        #expect(try await Self.outbox(own).map { $0["threshold"] } == ["30", "90"])
        #expect(try await Self.outbox(off).isEmpty)
        _ = try? await store.reserve(off, .unique(), estimate: .fixed(1))
        #expect(try await Self.outbox(off).isEmpty, "no wall alert either")
    }

    @Test("one settle crossing several thresholds fires each of them")
    func jumpFiresEach() async throws {
        let client = TestRedis.uniqueClient("jump")
        let store = BudgetStore.forTests(dailyUSD: 1)
        try await Self.spend(store, client, 850_000_000)
        let entries = try await Self.outbox(client)
        #expect(entries.map { $0["threshold"] } == ["50", "80"])
        #expect(entries.allSatisfy { $0["spent"] == "850000000" })
    }

    @Test("a raised limit moves the next alert; a threshold already fired in the window stays fired")
    func raisedLimit() async throws {
        let client = TestRedis.uniqueClient("raise")
        let store = BudgetStore.forTests(dailyUSD: 1)
        try await Self.spend(store, client, 600_000_000) // 60 % of 1 USD: fires 50
        _ = try await TestRedis.shared.call(.command(["HSET", RedisKeys(client).limits, "daily", "2000000000"]))
        try await Self.spend(store, client, 300_000_000) // 0.9 of 2 USD = 45 %: nothing
        #expect(try await Self.outbox(client).map { $0["threshold"] } == ["50"])
        try await Self.spend(store, client, 700_000_000) // 1.6 of 2 USD = 80 %
        let entries = try await Self.outbox(client)
        #expect(entries.map { $0["threshold"] } == ["50", "80"])
        #expect(entries.last?["limit"] == "2000000000")
    }

    @Test("a workflow run's budget fires its own thresholds, named by the run")
    func runThresholds() async throws {
        let client = TestRedis.uniqueClient("run")
        let store = BudgetStore.forTests(dailyUSD: 100)
        let options = ReserveOptions(run: .init(id: "nightly-42", cap: NanoUSD(1_000_000_000)))
        for _ in 0..<6 {
            guard case .granted(let g) = try await store.reserve(client, .unique(), estimate: .fixed(100_000_000), options: options) else {
                Issue.record("expected a grant"); return
            }
            _ = try await store.settle(client, g.lease, actual: NanoUSD(100_000_000))
        }
        let entries = try await Self.outbox(client)
        #expect(entries.map { $0["period"] } == ["run"])
        #expect(entries.first?["window"] == "nightly-42")
        #expect(entries.first?["threshold"] == "50")
        #expect(entries.first?["limit"] == "1000000000")
    }

    @Test("settle counts the day's spend per model; the top-spender sets rank the client")
    func perModelSpend() async throws {
        let client = TestRedis.uniqueClient("model")
        let store = BudgetStore.forTests(dailyUSD: 10)
        try await Self.spend(store, client, 1_500, model: "gpt-4o-mini")
        try await Self.spend(store, client, 2_500, model: "gpt-4o-mini")
        try await Self.spend(store, client, 7_000, model: "claude-sonnet-4-5")
        let (day, month) = try await TestRedis.periodKeys(client)
        #expect(try await TestRedis.int(day, "model:gpt-4o-mini") == 4_000)
        #expect(try await TestRedis.int(day, "model:claude-sonnet-4-5") == 7_000)
        #expect(try await TestRedis.int(day, "spent") == 11_000)
        // Posted without waiting: give the pipeline a moment.
        #expect(try await eventually {
            let score = try await TestRedis.shared.call(.command(["ZSCORE", SharedRedisKeys.topDay(String(day.suffix(10))), client.rawValue]))
            return score.string == "11000"
        })
        let monthly = try await TestRedis.shared.call(.command(["ZSCORE", SharedRedisKeys.topMonth(String(month.suffix(7))), client.rawValue]))
        #expect(monthly.string == "11000")
    }

    @Test("an auto-downgraded request is counted in the day's downgrades")
    func downgradesCounted() async throws {
        let client = TestRedis.uniqueClient("down")
        var store = BudgetStore.forTests(dailyUSD: 1)
        store.policy.clientDefaults.downgrade = .init(atPercent: 50, models: ["gpt-4o": "gpt-4o-mini"])
        try await Self.spend(store, client, 600_000_000)
        let cheap = ReserveOptions.Fallback(model: "gpt-4o-mini", estimate: .fixed(1_000))
        let outcome = try await store.reserve(client, .unique(), estimate: .fixed(100_000_000),
                                              options: ReserveOptions(model: "gpt-4o", fallback: cheap))
        guard case .granted(let g) = outcome, g.downgradedTo == "gpt-4o-mini" else { Issue.record("expected a downgrade, got \(outcome)"); return }
        let (day, _) = try await TestRedis.periodKeys(client)
        #expect(try await TestRedis.int(day, "downgrades") == 1)
    }
}
