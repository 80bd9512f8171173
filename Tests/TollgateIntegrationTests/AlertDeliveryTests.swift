import Foundation
import Testing
import TollgateCore
import TollgateMockProvider
import TollgateRedis
import TollgateServer

/// Threshold alerts end to end: replicas proxy real requests, the scripts fire crossings into the
/// outbox, each replica's sender drains it into a webhook receiver over real HTTP. Each test has
/// a Redis of its own: senders serve every client of their Redis, so tests sharing one would
/// deliver each other's alerts.
@Suite("alert delivery across replicas", .timeLimit(.minutes(3)))
struct AlertDeliveryTests {
    static let secret = "whsec-test-3f9a"

    /// Starts `count` replicas, each running its alert sender against `hook`.
    func withReplicas(_ count: Int, hook: String, _ body: ([Replica], RedisConnection) async throws -> Void) async throws {
        let redis = try SpawnedRedis()
        let connection = RedisConnection(endpoint: RedisEndpoint(url: redis.url)!, timeoutMilliseconds: 2_000,
                                         scripts: TestRedis.scripts.all, logger: TestRedis.logger)
        defer { connection.shutdown(); redis.stop() }
        let mock = try await MockProvider.start()
        var replicas: [Replica] = []
        var senders: [Task<Void, any Error>] = []
        for _ in 0..<count {
            let replica = try await Replica.start(upstream: mock.baseURL, redisURL: redis.url) {
                $0.alerts.webhook = .init(url: hook, secret: Secret(Self.secret))
                $0.alerts.pollIntervalMilliseconds = 50
                $0.alerts.initialBackoffMilliseconds = 50
            }
            let sender = try #require(replica.tollgate.alertSender())
            senders.append(Task { try await sender.run() })
            replicas.append(replica)
        }
        defer { for s in senders { s.cancel() } }
        do { try await body(replicas, connection) } catch {
            for r in replicas { await r.stop() }
            await mock.stop()
            throw error
        }
        for r in replicas { await r.stop() }
        await mock.stop()
    }

    /// The alert bodies the receiver accepted for `client`, parsed.
    func alerts(_ hook: HookReceiver, _ client: ClientID, path: String = "/status/200") -> [JSONValue] {
        hook.requests.filter { $0.path == path }.compactMap { try? JSONValue.parse($0.body) }
            .filter { $0["client"]?.string == client.rawValue }
    }

    @Test("three replicas race over 50, 80 and 100 %: exactly one signed webhook per threshold arrives")
    func raceDeliversOnce() async throws {
        let hook = try await HookReceiver.start()
        defer { Task { await hook.stop() } }
        try await withReplicas(3, hook: hook.url("/status/200")) { replicas, redis in
            let client = TestRedis.uniqueClient("hook")
            // 0.2 milli-USD a day: a few small gpt-4o-mini requests fill it.
            _ = try await redis.call(.command(["HSET", RedisKeys(client).limits, "daily", "200000"]))
            let chat = #"{"model":"gpt-4o-mini","max_tokens":20,"messages":[{"role":"user","content":"hi"}]}"#
            // Waves of 12 at once until a whole wave is refused: the wall is hit by reservations
            // first, and spend keeps filling the day behind it, past 80 %.
            var refused = 0
            for wave in 0..<20 where refused < 12 {
                let statuses = await withTaskGroup(of: Int.self) { group in
                    for i in 0..<12 {
                        group.addTask {
                            await TestClient.shared.post(replicas[(wave + i) % 3].baseURL + "/v1/chat/completions", chat,
                                                         headers: [("X-Client-ID", client.rawValue)]).status
                        }
                    }
                    return await group.reduce(into: [Int]()) { $0.append($1) }
                }
                refused = statuses.filter { $0 == 402 }.count
            }
            #expect(refused == 12, "the day filled up")
            #expect(try await eventually { alerts(hook, client).count >= 3 })
            // Every sender polls every 50 ms: a second copy would have arrived by now.
            try await Task.sleep(for: .seconds(1))
            let delivered = alerts(hook, client)
            let thresholds = delivered.compactMap { $0["threshold_percent"]?.int }
            #expect(thresholds.sorted() == [50, 80, 100], "\(delivered.map(\.serialized))")
            #expect(Set(delivered.compactMap { $0["id"]?.string }).count == delivered.count, "one delivery per alert id")
            #expect(delivered.allSatisfy { $0["period"]?.string == "daily" && $0["limit_nano_usd"]?.int == 200_000 })

            // Signed: HMAC-SHA256 of "<timestamp>.<body>" with the shared secret.
            for request in hook.requests where request.path == "/status/200" {
                let stamp = try #require(request.header(AlertSignature.timestampHeader).flatMap { Int64($0) })
                let signature = try #require(request.header(AlertSignature.signatureHeader))
                #expect(AlertSignature.verify(body: request.body, timestamp: UnixTime(seconds: stamp), signature: signature,
                                              secret: Self.secret, now: UnixTime(seconds: Int64(Date().timeIntervalSince1970))))
                #expect(!AlertSignature.verify(body: request.body + [0x20], timestamp: UnixTime(seconds: stamp), signature: signature,
                                               secret: Self.secret, now: UnixTime(seconds: Int64(Date().timeIntervalSince1970))),
                        "a changed body fails")
            }
            // Delivered alerts leave the outbox and head the dashboard's recent list.
            #expect(try await eventually {
                try await redis.call(.command(["XLEN", RedisKeys(client).alerts])).int == 0
            })
            let recent = try await redis.call(.command(["LRANGE", SharedRedisKeys.alertsRecent, "0", "-1"])).array ?? []
            #expect(recent.filter { $0.string?.contains("\"client\":\"\(client.rawValue)\"") == true }.count == 3)
        }
    }

    @Test("a receiver that fails 3 times still gets the alert, once")
    func retriedUntilDelivered() async throws {
        let hook = try await HookReceiver.start()
        defer { Task { await hook.stop() } }
        let path = "/flaky/3"
        try await withReplicas(2, hook: hook.url(path)) { _, redis in
            let client = TestRedis.uniqueClient("flaky")
            // 60 % of a 1 USD day fires the 50 % alert, with no request through the proxy.
            let store = BudgetStore(redis: redis, scripts: TestRedis.scripts, policy: BudgetStore.forTests(dailyUSD: 1).policy)
            try await AlertScriptTests.spend(store, client, 600_000_000)
            #expect(try await eventually { hook.requests.filter { $0.path == path }.count >= 4 })
            try await Task.sleep(for: .seconds(1))
            let attempts = hook.requests.filter { $0.path == path }.compactMap { try? JSONValue.parse($0.body) }
                .filter { $0["client"]?.string == client.rawValue }
            #expect(attempts.count == 4, "three failures, then one success, then nothing")
            #expect(Set(attempts.compactMap { $0["id"]?.string }).count == 1, "the same alert id every time")
            #expect(try await eventually {
                try await redis.call(.command(["XLEN", RedisKeys(client).alerts])).int == 0
            })
        }
    }

    @Test("thresholds crossed by one settle reach the receiver in order: 50 % before 80 %")
    func deliveredInOrder() async throws {
        let hook = try await HookReceiver.start()
        defer { Task { await hook.stop() } }
        try await withReplicas(1, hook: hook.url("/status/200")) { _, redis in
            let client = TestRedis.uniqueClient("order")
            let store = BudgetStore(redis: redis, scripts: TestRedis.scripts, policy: BudgetStore.forTests(dailyUSD: 1).policy)
            try await AlertScriptTests.spend(store, client, 850_000_000)
            #expect(try await eventually { alerts(hook, client).count >= 2 })
            #expect(alerts(hook, client).compactMap { $0["threshold_percent"]?.int } == [50, 80])
        }
    }
}
