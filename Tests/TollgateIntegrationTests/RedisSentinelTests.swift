import Foundation
import Testing
import TollgateCore
import TollgateMockProvider
@testable import TollgateRedis

extension HeavySuites {
/// Tollgate finding its master through Redis Sentinel: 1 master, 1 replica and 3 sentinels
/// started by the test; the master is SIGKILLed and Tollgate must follow the promoted replica.
@Suite("Redis Sentinel", .timeLimit(.minutes(2)))
struct RedisSentinelTests {
    @Test("Tollgate asks the sentinels for the master, follows a failover after SIGKILL, and the counters stay exact")
    func followsFailover() async throws {
        let master = try SpawnedRedis()
        let replica = try SpawnedRedis(["--replicaof", "127.0.0.1", String(master.port)])
        let name = "tollgate-\(UUID().uuidString.prefix(6))"
        let sentinels = try (0..<3).map { _ in try SpawnedSentinel(master: name, masterPort: master.port) }
        defer { sentinels.forEach { $0.stop() } }
        let addresses = sentinels.map { RedisAddress(host: "127.0.0.1", port: $0.port) }
        try await waitForReplication(replica)

        let mock = try await MockProvider.start()
        let tollgate = try await Replica.start(upstream: mock.baseURL) { config in
            config.redis.mode = .sentinel
            config.redis.sentinels = addresses
            config.redis.sentinelMaster = name
            config.redis.timeoutMilliseconds = 1_000
        }
        let client = TestRedis.uniqueClient("sentinel")
        let body = #"{"model":"gpt-4o-mini","max_tokens":20,"messages":[{"role":"user","content":"sentinel"}]}"#
        func ask() async -> TestClient.Reply {
            await TestClient.shared.post(tollgate.baseURL + "/v1/chat/completions", body, headers: [("X-Client-ID", client.rawValue)])
        }
        var served = 0
        var cost: Int64 = 0
        let price = try #require(bundledPrices.price(for: "gpt-4o-mini"))
        func count(_ reply: TestClient.Reply) {
            guard reply.status == 200, let usage = reply.json.flatMap({ ProxyRoute.chatCompletions.usage(inResponse: $0) }) else { return }
            served += 1
            cost += price.cost(of: usage).value
        }
        for _ in 0..<10 { count(await ask()) }
        #expect(served == 10)

        master.stop() // SIGKILL
        var refusedDuringFailover = 0
        let start = ContinuousClock.now
        while ContinuousClock.now - start < .seconds(30) {
            let reply = await ask()
            count(reply)
            if reply.status == 200 { break }
            #expect(reply.status == 503, "\(reply.text)")
            refusedDuringFailover += 1
            try await Task.sleep(for: .milliseconds(200))
        }
        for _ in 0..<10 { count(await ask()) }
        print("sentinel failover: \(refusedDuringFailover) requests refused while the replica was promoted; \(served) served")
        #expect(served == 21, "Tollgate serves again once the replica is promoted")

        // The promoted replica holds every charge, exactly.
        let promoted = RedisConnection(endpoint: RedisEndpoint(url: replica.url)!, timeoutMilliseconds: 2_000, scripts: [], logger: TestRedis.quietLogger)
        defer { promoted.shutdown() }
        #expect(try await promoted.call(.command(["ROLE"])).array?.first?.string == "master")
        let now = try await promoted.call(.command(["TIME"])).array![0].int!
        let day = RedisKeys(client).day(CivilDate.dayString(UnixTime(seconds: now), utcOffset: 0))
        #expect(try await eventually { try await promoted.call(.command(["HGET", day, "reserved"])).string == "0" })
        let counters = try await promoted.call(.command(["HGETALL", day])).hash
        #expect(counters["spent"] == String(cost), "spent equals what the provider billed for the \(served) served requests")
        #expect(counters["requests"] == String(served))
        await tollgate.stop()
        await mock.stop()
    }

    private func waitForReplication(_ replica: SpawnedRedis) async throws {
        for _ in 0..<100 {
            if try await SpawnedCluster.cli(["-p", String(replica.port), "INFO", "replication"]).output.contains("master_link_status:up") { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw SpawnedCluster.Failure(description: "the replica never synced")
    }
}
}
