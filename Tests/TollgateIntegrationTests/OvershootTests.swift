import Synchronization
import Testing
import TollgateCore
import TollgateMockProvider
import TollgateRedis

/// The product's promise, raced: three replicas on one Redis, 64 concurrent callers, one client.
@Suite("multi-replica overshoot", .timeLimit(.minutes(2)))
struct OvershootTests {
    @Test("strict mode: 3 replicas and 64 concurrent clients never overshoot, and refusals start only when the budget is used up")
    func noOvershoot() async throws {
        let mock = try await MockProvider.start()
        var started: [Replica] = []
        for _ in 0..<3 { started.append(try await Replica.start(upstream: mock.baseURL)) }
        let replicas = started
        let client = TestRedis.uniqueClient("race")
        // About 100 mixed requests' worth (gpt-4o-mini ≈ 0.00007 USD, claude-haiku-4-5 ≈ 0.00055 USD each).
        let limit = NanoUSD(23_000_000)
        _ = try await TestRedis.shared.call(.command(["HSET", RedisKeys(client).limits, "daily", String(limit.value)]))

        let requests: [(path: String, body: String)] = [
            ("/v1/chat/completions", #"{"model":"gpt-4o-mini","max_tokens":100,"messages":[{"role":"user","content":"race"}]}"#),
            ("/v1/chat/completions", #"{"model":"gpt-4o-mini","max_tokens":100,"stream":true,"messages":[{"role":"user","content":"race"}]}"#),
            ("/v1/messages", #"{"model":"claude-haiku-4-5","max_tokens":100,"stream":true,"messages":[{"role":"user","content":"race"}]}"#),
        ]
        let firstRefusal = FirstRefusal()
        let served = try await withThrowingTaskGroup(of: Int.self) { group in
            for worker in 0..<64 {
                group.addTask {
                    var ok = 0
                    for i in 0..<1_000 {
                        let replica = replicas[(worker + i) % replicas.count]
                        let r = requests[(worker + i) % requests.count]
                        let reply = await TestClient.shared.post(replica.baseURL + r.path, r.body, headers: [
                            ("X-Client-ID", client.rawValue), ("X-Mock-Completion-Tokens", "100"),
                        ])
                        if reply.status == 402 {
                            let error = reply.json?["error"]
                            let used = (error?["spent_usd"]?.usd ?? .zero) + (error?["reserved_usd"]?.usd ?? .zero)
                            firstRefusal.record(used)
                            break
                        }
                        #expect(reply.status == 200, "\(reply.text)")
                        ok += 1
                    }
                    return ok
                }
            }
            return try await group.reduce(0, +)
        }
        let (day, _) = try await TestRedis.periodKeys(client)
        #expect(try await eventually { try await TestRedis.int(day, "reserved") == 0 })
        let spent = NanoUSD(try await TestRedis.int(day, "spent"))
        let settledRequests = try await TestRedis.int(day, "requests")
        let used = try #require(firstRefusal.used)
        print("overshoot: limit \(limit) spent \(spent) (\(spent.value * 1000 / limit.value) ‰) over \(settledRequests) settled requests, \(served) served; first refusal at \(used.value * 1000 / limit.value) ‰ used")

        #expect(spent <= limit, "settled spend never exceeds the limit")
        #expect(settledRequests == Int64(served))
        #expect(used.value * 100 >= limit.value * 95, "refusals start only once ≥ 95 % of the budget is spent or reserved")
        #expect(served >= 60)
        for r in replicas { await r.stop() }
        await mock.stop()
    }
}

/// What the first 402 reported as used (spent + reserved), whichever worker saw it.
final class FirstRefusal: Sendable {
    private let value = Mutex<NanoUSD?>(nil)
    func record(_ used: NanoUSD) { value.withLock { if $0 == nil { $0 = used } } }
    var used: NanoUSD? { value.withLock { $0 } }
}

extension JSONValue {
    /// A USD amount as Tollgate writes it (a JSON number), read exactly.
    var usd: NanoUSD? {
        if case .number(let text) = self { return NanoUSD(usd: text) }
        return nil
    }
}
