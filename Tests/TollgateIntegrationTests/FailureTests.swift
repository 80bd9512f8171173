import Foundation
import Synchronization
import Testing
import TollgateCore
import TollgateMockProvider
import TollgateRedis

/// Redis failing under a running replica, and bad requests: a clear error and nothing lost.
@Suite("failures and bad input", .timeLimit(.minutes(2)))
struct FailureTests {
    let chatBody = #"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#

    @Test("a frozen Redis answers 503 within the timeout, forwards nothing, and recovers after")
    func frozenRedis() async throws {
        let redis = try SpawnedRedis()
        let mock = try await MockProvider.start()
        // The replica's own account of each request (total_ms): tells a slow replica from a test
        // process too busy to see the answer in time, should the bound below ever fail.
        let accessLog = Mutex<[String]>([])
        let replica = try await Replica.start(upstream: mock.baseURL, redisURL: redis.url, configure: { $0.redis.timeoutMilliseconds = 200 },
                                              accessLog: { line in accessLog.withLock { $0.append(line) } })
        let headers = [("X-Client-ID", "frozen")]
        #expect(await TestClient.shared.post(replica.baseURL + "/v1/chat/completions", chatBody, headers: headers).status == 200)

        let freezer = RedisConnection(endpoint: RedisEndpoint(url: redis.url)!, timeoutMilliseconds: 5_000, scripts: [], logger: TestRedis.logger)
        // CLIENT PAUSE answers at once; from its reply on, every other client waits.
        _ = try await freezer.call(.command(["CLIENT", "PAUSE", "6000", "ALL"]))
        let before = mock.recorder.count
        let started = ContinuousClock.now
        let frozen = await TestClient.shared.post(replica.baseURL + "/v1/chat/completions", chatBody, headers: headers)
        #expect(frozen.status == 503)
        #expect(frozen.json?["error"]?["type"]?.string == "budget_unavailable")
        // Not a speed measurement: Redis stays frozen for 6 s, the answer must not wait for it.
        // Waiting for Redis would take ~5.9 s; the slack is for a 2-core box running every suite.
        #expect(ContinuousClock.now - started < .seconds(3.5),
                "bounded by redis.timeout_ms, not by Redis; the replica logged: \(accessLog.withLock { $0.last ?? "nothing" })")
        #expect(mock.recorder.count == before, "nothing is forwarded unreserved")

        try await Task.sleep(nanoseconds: 6_000_000_000)
        #expect(try await eventually {
            await TestClient.shared.post(replica.baseURL + "/v1/chat/completions", chatBody, headers: headers).status == 200
        }, "the replica reconnects once Redis answers again")
        freezer.shutdown()
        await replica.stop()
        await mock.stop()
    }

    @Test("a client that hangs up while its budget is being reserved is not forwarded and is charged nothing")
    func goneBeforeForwarding() async throws {
        let redis = try SpawnedRedis()
        let mock = try await MockProvider.start()
        let replica = try await Replica.start(upstream: mock.baseURL, redisURL: redis.url) { $0.redis.timeoutMilliseconds = 10_000 }
        let client = TestRedis.uniqueClient("gone")
        // Warm the connection (scripts loaded), then hold every Redis client for 5 s: the client
        // hangs up 0.4 s in, and the replica has the rest to notice (HTTPEdge's probe) however
        // busy the box is. 1.5 s was not always enough on a 2-core box running every suite.
        #expect(await TestClient.shared.post(replica.baseURL + "/v1/chat/completions", chatBody, headers: [("X-Client-ID", "warm")]).status == 200)
        let pauser = RedisConnection(endpoint: RedisEndpoint(url: redis.url)!, timeoutMilliseconds: 5_000, scripts: [], logger: TestRedis.logger)
        _ = try await pauser.call(.command(["CLIENT", "PAUSE", "5000", "ALL"]))
        let transfer = TestClient.shared.start(replica.baseURL + "/v1/chat/completions", chatBody, headers: [("X-Client-ID", client.rawValue)])
        try await Task.sleep(for: .milliseconds(400))
        transfer.cancel()
        let before = mock.recorder.count
        let keys = RedisKeys(client)
        let probe = RedisConnection(endpoint: RedisEndpoint(url: redis.url)!, timeoutMilliseconds: 10_000, scripts: [], logger: TestRedis.logger)
        func requests() async throws -> Int64 {
            let time = try await probe.call(.command(["TIME"])).array![0].int!
            let day = keys.day(CivilDate.dayString(UnixTime(seconds: time), utcOffset: 0))
            return Int64(try await probe.call(.command(["HGET", day, "requests"])).string ?? "0") ?? 0
        }
        #expect(try await eventually { try await requests() == 1 }, "the reservation was settled")
        let time = try await probe.call(.command(["TIME"])).array![0].int!
        let day = keys.day(CivilDate.dayString(UnixTime(seconds: time), utcOffset: 0))
        #expect(try await probe.call(.command(["HGET", day, "spent"])).string == "0")
        #expect(try await probe.call(.command(["HGET", day, "reserved"])).string == "0")
        #expect(mock.recorder.count == before, "nothing was forwarded for a client that had left")
        pauser.shutdown()
        probe.shutdown()
        await replica.stop()
        await mock.stop()
    }

    @Test("a Redis restart (empty script cache) is survived: scripts reload on reconnect")
    func redisRestart() async throws {
        let redis = try SpawnedRedis()
        let mock = try await MockProvider.start()
        let replica = try await Replica.start(upstream: mock.baseURL, redisURL: redis.url)
        let headers = [("X-Client-ID", "restart")]
        #expect(await TestClient.shared.post(replica.baseURL + "/v1/chat/completions", chatBody, headers: headers).status == 200)
        redis.stop()
        #expect(await TestClient.shared.post(replica.baseURL + "/v1/chat/completions", chatBody, headers: headers).status == 503)
        #expect(await TestClient.shared.get(replica.baseURL + "/readyz").status == 503)
        try redis.start()
        #expect(try await eventually {
            await TestClient.shared.post(replica.baseURL + "/v1/chat/completions", chatBody, headers: headers).status == 200
        })
        // Each event loop has its own connection, each on its own retry pace: the one /readyz
        // lands on may still be backing off for a moment after another has reconnected.
        #expect(try await eventually { await TestClient.shared.get(replica.baseURL + "/readyz").status == 200 })
        await replica.stop()
        await mock.stop()
    }

    static let badRequests: [(path: String, body: String, headers: [String: String], status: Int, code: String)] = [
        ("/v1/chat/completions", "{not json", [:], 400, "invalid_request"),
        ("/v1/chat/completions", "", [:], 400, "invalid_request"),
        ("/v1/chat/completions", "[1,2]", [:], 400, "invalid_request"),
        ("/v1/chat/completions", #"{"messages":[]}"#, [:], 400, "invalid_request"),
        ("/v1/chat/completions", #"{"model":"gpt-4o-mini","max_tokens":-5,"messages":[]}"#, [:], 400, "invalid_request"),
        ("/v1/chat/completions", #"{"model":"gpt-4o-mini","stream":"yes","messages":[]}"#, [:], 400, "invalid_request"),
        ("/v1/chat/completions", #"{"model":"gpt-4o-mini","n":0,"messages":[]}"#, [:], 400, "invalid_request"),
        ("/v1/chat/completions", #"{"model":"no-such-model","messages":[]}"#, [:], 400, "unknown_model"),
        ("/v1/messages", "{", [:], 400, "invalid_request"),
        ("/v1/messages", #"{"model":"claude-9","max_tokens":5,"messages":[]}"#, [:], 400, "unknown_model"),
        ("/v1/chat/completions", #"{"model":"gpt-4o-mini","messages":[]}"#, ["X-Client-ID": "bad id with spaces"], 400, "invalid_client_id"),
        ("/v1/chat/completions", #"{"model":"gpt-4o-mini","messages":[]}"#, ["X-Client-ID": "{tag}"], 400, "invalid_client_id"),
        ("/v1/chat/completions", #"{"model":"gpt-4o-mini","messages":[]}"#, ["X-Client-ID": "caf\u{e9}"], 400, "invalid_client_id"),
        ("/v1/chat/completions", #"{"model":"gpt-4o-mini","messages":[]}"#, ["X-Client-ID": String(repeating: "a", count: 129)], 400, "invalid_client_id"),
        ("/v1/chat/completions", #"{"model":"gpt-4o-mini","messages":[]}"#, ["X-Client-ID": "-"], 0, "missing_client_id"),
        ("/v1/nonsense", "{}", [:], 404, "not_found_error"),
    ]

    @Test("bad requests get a 4xx in their API family's shape, reach no provider and reserve nothing", arguments: 0..<badRequests.count)
    func badRequest(index: Int) async throws {
        let bad = Self.badRequests[index]
        let mock = try await MockProvider.start()
        let replica = try await Replica.start(upstream: mock.baseURL)
        let client = TestRedis.uniqueClient("bad")
        var headers = [("X-Client-ID", client.rawValue)]
        if let id = bad.headers["X-Client-ID"] { headers = id == "-" ? [] : [("X-Client-ID", id)] }
        let reply = await TestClient.shared.post(replica.baseURL + bad.path, bad.body, headers: headers)
        #expect(reply.status == (bad.status == 0 ? 400 : bad.status))
        let error = bad.path == "/v1/messages" ? reply.json?["error"] : reply.json?["error"]
        if bad.path == "/v1/messages" { #expect(reply.json?["type"]?.string == "error") }
        #expect(error?["code"]?.string == bad.code, "\(reply.text)")
        #expect((error?["message"]?.string?.count ?? 0) > 40, "the message says how to fix it")
        #expect(mock.recorder.count == 0)
        let (day, _) = try await TestRedis.periodKeys(client)
        #expect(try await TestRedis.int(day, "reserved") == 0)
        await replica.stop()
        await mock.stop()
    }

    @Test("the unknown-model error names the model and the pricing file")
    func unknownModelMessage() async throws {
        let mock = try await MockProvider.start()
        let replica = try await Replica.start(upstream: mock.baseURL)
        let reply = await TestClient.shared.post(replica.baseURL + "/v1/chat/completions", #"{"model":"gpt-17","messages":[]}"#,
                                                 headers: [("X-Client-ID", "m")])
        let message = try #require(reply.json?["error"]?["message"]?.string)
        #expect(message.contains("gpt-17"))
        #expect(message.contains("pricing.yaml"))
        await replica.stop()
        await mock.stop()
    }

    @Test("clients.unknown: default charges requests without the header to the default client")
    func defaultClient() async throws {
        let mock = try await MockProvider.start()
        let fallback = TestRedis.uniqueClient("fallback")
        let replica = try await Replica.start(upstream: mock.baseURL) {
            $0.clients.unknown = .default
            $0.clients.defaultClient = fallback
        }
        let reply = await TestClient.shared.post(replica.baseURL + "/v1/chat/completions", chatBody)
        #expect(reply.status == 200)
        let (day, _) = try await TestRedis.periodKeys(fallback)
        #expect(try await eventually { try await TestRedis.int(day, "requests") == 1 })
        await replica.stop()
        await mock.stop()
    }
}
