import Foundation
import Synchronization
import Testing
import TollgateCore
import TollgateMockProvider
import TollgateRedis
import TollgateServer

/// Budget policies (README, "Budget policies"), each across two replicas on one Redis: the
/// decision is the reserve script's, so it holds whichever replica a request lands on.
@Suite("budget policies across replicas", .timeLimit(.minutes(3)))
struct PolicyTests {
    /// Two replicas and one mock provider; the access logs of both are kept.
    struct Pair: Sendable {
        let replicas: [Replica]
        let mock: RunningMockProvider
        let log: Lines
        func url(_ i: Int, _ path: String = "/v1/chat/completions") -> String { replicas[i % replicas.count].baseURL + path }
    }

    final class Lines: Sendable {
        private let lines = Mutex<[String]>([])
        func append(_ line: String) { lines.withLock { $0.append(line) } }
        func json(client: ClientID) -> [JSONValue] {
            lines.withLock { $0 }.compactMap { try? JSONValue.parse(Array($0.utf8)) }.filter { $0["client"]?.string == client.rawValue }
        }
    }

    func withPair(configure: @escaping @Sendable (inout TollgateConfig) -> Void = { _ in }, _ body: (Pair) async throws -> Void) async throws {
        let mock = try await MockProvider.start()
        let log = Lines()
        var replicas: [Replica] = []
        for _ in 0..<2 {
            replicas.append(try await Replica.start(upstream: mock.baseURL, configure: configure, accessLog: { log.append($0) }))
        }
        let pair = Pair(replicas: replicas, mock: mock, log: log)
        do { try await body(pair) } catch {
            for r in replicas { await r.stop() }
            await mock.stop()
            throw error
        }
        for r in replicas { await r.stop() }
        await mock.stop()
    }

    func setPolicy(_ client: ClientID, _ fields: [String]) async throws {
        _ = try await TestRedis.shared.call(.command(["HSET", RedisKeys(client).limits] + fields))
    }

    func day(_ client: ClientID) async throws -> [String: String] {
        let (day, _) = try await TestRedis.periodKeys(client)
        return try await TestRedis.hash(day)
    }

    /// Sends `count` requests at once, alternating replicas.
    func race(_ pair: Pair, _ count: Int, path: String = "/v1/chat/completions", body: @escaping @Sendable (Int) -> String,
              headers: @escaping @Sendable (Int) -> [(String, String)]) async -> [TestClient.Reply] {
        await withTaskGroup(of: TestClient.Reply.self) { group in
            for i in 0..<count {
                group.addTask { await TestClient.shared.post(pair.url(i, path), body(i), headers: headers(i)) }
            }
            return await group.reduce(into: []) { $0.append($1) }
        }
    }

    /// `race` for `client`, with every answer held at the mock (`X-Mock-Hold`) until all `count`
    /// requests have reached it: all are in flight at once however loaded the box is.
    func raceHeld(_ pair: Pair, _ count: Int, client: ClientID, body: @escaping @Sendable (Int) -> String) async -> [TestClient.Reply] {
        let gate = client.rawValue
        let opener = Task {
            _ = try? await eventually { pair.mock.recorder.count >= count }
            pair.mock.recorder.release(gate)
        }
        defer { opener.cancel() }
        return await race(pair, count, body: body, headers: { _ in [("X-Client-ID", gate), (MockHeader.hold, gate)] })
    }

    static let chat = #"{"model":"gpt-4o-mini","max_tokens":50,"messages":[{"role":"user","content":"hi"}]}"#

    // MARK: on_limit

    @Test("on_limit warn: over the limit the request is forwarded, marked X-Budget-Exceeded, and counted in over_limit_spent")
    func warn() async throws {
        try await withPair { pair in
            let client = TestRedis.uniqueClient("warn")
            // Room for about one request (a reservation is ~34,500 nano-USD).
            try await setPolicy(client, ["daily", "40000", "on_limit", "warn"])
            // Held answers keep all eight in flight at once, so only the first fits.
            let replies = await raceHeld(pair, 8, client: client, body: { _ in Self.chat })
            #expect(replies.allSatisfy { $0.status == 200 }, "warn never refuses")
            let marked = replies.filter { $0.header("X-Budget-Exceeded") == "true" }
            #expect(marked.count >= 6 && marked.count <= 7, "all but the one or two that fit")
            #expect(marked.allSatisfy { $0.header("X-Budget-On-Limit") == "warn" })
            _ = try await eventually { Int(try await day(client)["requests"] ?? "0") == 8 }
            let counters = try await day(client)
            #expect(Int(counters["over_limit_requests"] ?? "0") == marked.count)
            let spent = Int64(counters["spent"] ?? "0")!, over = Int64(counters["over_limit_spent"] ?? "0")!
            #expect(spent > 40_000, "warn gives up the guarantee, deliberately")
            #expect(over > 0 && over < spent)
            #expect(pair.mock.recorder.count == 8)
        }
    }

    @Test("on_limit stop: a 200 completion in the route's shape says the budget is exhausted; nothing is sent or charged")
    func stop() async throws {
        try await withPair { pair in
            let client = TestRedis.uniqueClient("stop")
            try await setPolicy(client, ["daily", "1000", "on_limit", "stop"])
            let reply = await TestClient.shared.post(pair.url(0), Self.chat, headers: [("X-Client-ID", client.rawValue)])
            #expect(reply.status == 200)
            #expect(reply.header("X-Budget-Exceeded") == "true")
            #expect(reply.header("X-Budget-On-Limit") == "stop")
            guard case .array(let choices)? = reply.json?["choices"] else { Issue.record("no choices: \(reply.text)"); return }
            let text = try #require(choices.first?["message"]?["content"]?.string)
            #expect(text.contains("daily budget") && text.contains("resets at"))
            let streamed = await TestClient.shared.post(pair.url(1, "/v1/messages"),
                #"{"model":"claude-haiku-4-5","max_tokens":50,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#,
                headers: [("X-Client-ID", client.rawValue)])
            #expect(streamed.status == 200)
            #expect(streamed.header("content-type")?.hasPrefix("text/event-stream") == true)
            #expect(streamed.text.contains("event: message_stop"))
            #expect(pair.mock.recorder.count == 0)
            let counters = try await day(client)
            #expect(counters["spent"] == nil && (counters["reserved"] ?? "0") == "0")
        }
    }

    @Test("on_limit stop: the official openai and anthropic SDKs parse the answers, streamed and not")
    func stopWithSDKs() async throws {
        try await withPair { pair in
            let client = TestRedis.uniqueClient("sdk")
            try await setPolicy(client, ["daily", "1000", "on_limit", "stop"])
            let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../sdk/stop_answers.py").standardized
            let (status, output) = try await ChildProcess.run("python3", [script.path, pair.replicas[0].baseURL, client.rawValue])
            #expect(status == 0, "\(output)")
            #expect(output.contains("all 6 SDK calls parsed a stop answer"), "\(output)")
            #expect(pair.mock.recorder.count == 0)
        }
    }

    @Test("clients.defaults.on_limit applies to clients without their own policy")
    func defaultPolicy() async throws {
        try await withPair(configure: { $0.clients.defaults.onLimit = .stop }) { pair in
            let client = TestRedis.uniqueClient("dflt")
            try await setPolicy(client, ["daily", "1000"])
            let reply = await TestClient.shared.post(pair.url(1), Self.chat, headers: [("X-Client-ID", client.rawValue)])
            #expect(reply.status == 200)
            #expect(reply.header("X-Budget-On-Limit") == "stop")
        }
    }

    // MARK: downgrade

    @Test("downgrade: racing clients never reserve the expensive model once spent + reserved reaches the threshold")
    func downgradeRace() async throws {
        try await withPair { pair in
            let client = TestRedis.uniqueClient("down")
            // $0.05 a day; at 50 % gpt-4o moves to gpt-4o-mini.
            try await setPolicy(client, ["daily", "50000000", "downgrade_at", "50", "downgrade:gpt-4o", "gpt-4o-mini"])
            let body = #"{"model":"gpt-4o","max_tokens":400,"messages":[{"role":"user","content":"hi"}]}"#
            // Held answers keep every reservation in flight, so spent + reserved only grows while
            // the race runs (a settle would shrink it to the real, much smaller cost).
            let replies = await raceHeld(pair, 40, client: client, body: { _ in body })
            _ = try await eventually { pair.log.json(client: client).count == 40 }
            #expect(replies.allSatisfy { $0.status == 200 })
            let lines = pair.log.json(client: client).filter { $0["outcome"]?.string == "forwarded" }
            func nano(_ line: JSONValue) -> Int64 { NanoUSD(usd: line["estimate_usd"]?.serialized ?? "0")?.value ?? 0 }
            let expensive = lines.filter { $0["model"]?.string == "gpt-4o" }
            let cheap = lines.filter { $0["downgraded_from"]?.string == "gpt-4o" }
            #expect(!cheap.isEmpty, "the threshold was crossed")
            #expect(cheap.allSatisfy { $0["model"]?.string == "gpt-4o-mini" })
            // Every gpt-4o reservation was made below the threshold, so together they end before
            // it, plus at most the one that crossed it.
            let largest = expensive.map(nano).max() ?? 0
            #expect(expensive.map(nano).reduce(0, +) <= 25_000_000 + largest)
            #expect(replies.filter { $0.header("X-Budget-Downgraded-From") == "gpt-4o" }.count == cheap.count)
            // The provider saw the cheaper model in the body of every downgraded request.
            let sent = pair.mock.recorder.requests().compactMap { $0.json?["model"]?.string }
            #expect(sent.filter { $0 == "gpt-4o-mini" }.count == cheap.count)
        }
    }

    @Test("downgrade: a cheaper model only the client's own policy names is priced and used")
    func downgradeClientOnlyModel() async throws {
        try await withPair { pair in
            let client = TestRedis.uniqueClient("down2")
            try await setPolicy(client, ["daily", "50000000", "downgrade_at", "1", "downgrade:gpt-4o", "gpt-4.1-nano"])
            _ = try await TestRedis.shared.call(.command(["HSET", (try await TestRedis.periodKeys(client)).day, "spent", "1000000"]))
            let reply = await TestClient.shared.post(pair.url(0), #"{"model":"gpt-4o","max_tokens":20,"messages":[{"role":"user","content":"hi"}]}"#,
                                                     headers: [("X-Client-ID", client.rawValue)])
            #expect(reply.status == 200)
            #expect(reply.header("X-Budget-Downgraded-From") == "gpt-4o")
            #expect(pair.mock.recorder.requests().last?.json?["model"]?.string == "gpt-4.1-nano")
        }
    }

    // MARK: loop breaker

    @Test("loop breaker: exactly N identical requests are admitted per window across replicas; the rest get 429 loop_detected")
    func loopBreaker() async throws {
        try await withPair { pair in
            let client = TestRedis.uniqueClient("loop")
            try await setPolicy(client, ["loop_max", "5", "loop_window", "60"])
            // Fields that vary between retries do not make a request different.
            let replies = await race(pair, 20, body: { i in
                #"{"model":"gpt-4o-mini","temperature":0.\#(i % 10),"seed":\#(i),"max_tokens":20,"messages":[{"role":"user","content":"again"}]}"#
            }, headers: { _ in [("X-Client-ID", client.rawValue)] })
            #expect(replies.filter { $0.status == 200 }.count == 5)
            let tripped = replies.filter { $0.status == 429 }
            #expect(tripped.count == 15)
            #expect(tripped.allSatisfy { $0.json?["error"]?["type"]?.string == "loop_detected" })
            #expect(tripped.allSatisfy { ($0.header("Retry-After").flatMap(Int.init) ?? 0) >= 1 })
            let error = try #require(tripped.first?.json?["error"])
            #expect(error["max_repeats"]?.int == 5 && error["window_seconds"]?.int == 60)
            #expect(try await day(client)["loop_trips"] == "15")
            // A different request is not a repeat.
            let other = await TestClient.shared.post(pair.url(0), Self.chat, headers: [("X-Client-ID", client.rawValue)])
            #expect(other.status == 200)
        }
    }

    @Test("loop breaker: a client with loop_max 0 opts out of the configured default")
    func loopOptOut() async throws {
        try await withPair(configure: { $0.clients.defaults.loopBreaker = .init(maxRepeats: 2, windowSeconds: 60) }) { pair in
            let optedOut = TestRedis.uniqueClient("noloop"), guarded = TestRedis.uniqueClient("guarded")
            try await setPolicy(optedOut, ["loop_max", "0"])
            for client in [optedOut, guarded] {
                let replies = await race(pair, 4, body: { _ in Self.chat }, headers: { _ in [("X-Client-ID", client.rawValue)] })
                #expect(replies.filter { $0.status == 200 }.count == (client == optedOut ? 4 : 2))
            }
        }
    }

    // MARK: runs and header budgets

    @Test("run budgets: racing requests of one run never spend past its cap; the 402 says limit_type run")
    func runBudget() async throws {
        try await withPair { pair in
            let client = TestRedis.uniqueClient("run")
            let replies = await race(pair, 24, body: { _ in Self.chat }, headers: { _ in
                [("X-Client-ID", client.rawValue), ("X-Budget-Run", "research-42"), ("X-Budget-Run-USD", "0.0001")]
            })
            let refused = replies.filter { $0.status == 402 }
            #expect(!refused.isEmpty)
            #expect(refused.allSatisfy { $0.json?["error"]?["limit_type"]?.string == "run" })
            let runKey = RedisKeys(client).base + ":run:research-42"
            _ = try await eventually { (try await TestRedis.int(runKey, "reserved")) == 0 }
            let spent = try await TestRedis.int(runKey, "spent")
            #expect(spent > 0 && spent <= 100_000)
            let ttl = try await TestRedis.shared.call(.command(["TTL", runKey])).int ?? -1
            #expect(ttl > 0, "a run's counters expire")
            // Tollgate's own headers never reach the provider.
            #expect(pair.mock.recorder.requests().allSatisfy { $0.header("X-Budget-Run") == nil && $0.header("X-Budget-Run-USD") == nil })
        }
    }

    @Test("header budgets lower the limit for one request and can never raise it")
    func headerBudgets() async throws {
        try await withPair { pair in
            let client = TestRedis.uniqueClient("hdr")
            try await setPolicy(client, ["daily", "100000"])
            let lowered = await TestClient.shared.post(pair.url(0), Self.chat, headers: [("X-Client-ID", client.rawValue), ("X-Budget-Daily-USD", "0.00001")])
            #expect(lowered.status == 402)
            #expect(lowered.json?["error"]?["limit_usd"] == .number("0.00001"))
            let raised = await TestClient.shared.post(pair.url(1), Self.chat, headers: [("X-Client-ID", client.rawValue), ("X-Budget-Daily-USD", "1000")])
            #expect(raised.status == 200)
            #expect(raised.header("X-Budget-Limit-USD") == "0.0001", "the configured limit still binds")
            #expect(pair.mock.recorder.requests().allSatisfy { $0.header("X-Budget-Daily-USD") == nil })
        }
    }

    @Test("a malformed budget header gets a 400 in the family's shape that shows a valid value", arguments: [
        ("X-Budget-Daily-USD", "three dollars"), ("X-Budget-Monthly-USD", "-1"), ("X-Budget-Run", "bad id!"), ("X-Budget-Run-USD", "5"),
    ])
    func malformedHeader(header: String, value: String) async throws {
        try await withPair { pair in
            let client = TestRedis.uniqueClient("bad")
            let reply = await TestClient.shared.post(pair.url(0, "/v1/messages"),
                #"{"model":"claude-haiku-4-5","max_tokens":20,"messages":[{"role":"user","content":"hi"}]}"#,
                headers: [("X-Client-ID", client.rawValue), (header, value)])
            #expect(reply.status == 400)
            #expect(reply.json?["type"]?.string == "error")
            let message = try #require(reply.json?["error"]?["message"]?.string)
            #expect(message.contains(header == "X-Budget-Run-USD" ? "X-Budget-Run" : header))
            #expect(message.contains("e.g.") || message.contains("like"), "\(message)")
            #expect(pair.mock.recorder.count == 0)
        }
    }
}
