import Foundation
import Testing
import TollgateCore
import TollgateMockProvider
import TollgateRedis
import TollgateServer

/// End to end: client → Tollgate (real HTTP) → mock provider (real HTTP), real Redis.
@Suite("proxy end to end", .timeLimit(.minutes(2)))
struct ProxyTests {
    let chatBody = #"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello to the budget."}]}"#

    func withProxy(environment: [String: String] = [:], configure: (inout TollgateConfig) -> Void = { _ in },
                   _ body: (Replica, RunningMockProvider) async throws -> Void) async throws {
        let mock = try await MockProvider.start()
        let replica = try await Replica.start(upstream: mock.baseURL, environment: environment, configure: configure)
        do {
            try await body(replica, mock)
        } catch {
            await replica.stop(); await mock.stop(); throw error
        }
        await replica.stop()
        await mock.stop()
    }

    func spent(_ client: ClientID) async throws -> (spent: Int64, reserved: Int64, requests: Int64) {
        let (day, _) = try await TestRedis.periodKeys(client)
        let h = try await TestRedis.hash(day)
        return (Int64(h["spent"] ?? "0")!, Int64(h["reserved"] ?? "0")!, Int64(h["requests"] ?? "0")!)
    }

    func settled(_ client: ClientID, requests: Int64 = 1) async throws -> (spent: Int64, reserved: Int64, requests: Int64) {
        _ = try await eventually { try await spent(client).requests >= requests }
        return try await spent(client)
    }

    @Test("a non-streamed chat completion is forwarded, priced from its usage and settled")
    func chatCompletion() async throws {
        try await withProxy(environment: ["OPENAI_API_KEY": "sk-provider"]) { replica, mock in
            let client = TestRedis.uniqueClient()
            let reply = await TestClient.shared.post(replica.baseURL + "/v1/chat/completions", chatBody,
                                                     headers: [("X-Client-ID", client.rawValue), ("Authorization", "Bearer sk-client")])
            #expect(reply.status == 200)
            let usage = try #require(reply.json.flatMap { ProxyRoute.chatCompletions.usage(inResponse: $0) })
            let price = try #require(bundledPrices.price(for: "gpt-4o-mini"))
            let totals = try await settled(client)
            #expect(totals.spent == price.cost(of: usage).value)
            #expect(totals.spent > 0)
            #expect(totals.reserved == 0)
            #expect(reply.header("X-Budget-Limit-USD") == "10")
            #expect(reply.header("X-Budget-Resets-At")?.hasSuffix("T00:00:00Z") == true)
            #expect(reply.header("X-Budget-Remaining-USD").flatMap { NanoUSD(usd: $0) }.map { $0 < NanoUSD(10 * NanoUSD.perUSD) } == true)

            let forwarded = try #require(mock.recorder.last)
            #expect(forwarded.header("X-Client-ID") == nil, "the identity header is not sent to the provider")
            #expect(forwarded.header("Authorization") == "Bearer sk-provider", "the configured provider key replaces the client's")
            #expect(forwarded.json?["max_completion_tokens"]?.int == price.maxOutputTokens, "strict mode caps the reply it reserved for")
            #expect(forwarded.json?["messages"] == (try JSONValue.parse(chatBody))["messages"])
        }
    }

    @Test("without a configured provider key the client's own key is passed through")
    func passThroughKey() async throws {
        try await withProxy(configure: { $0.openAI.apiKeyEnv = nil }) { replica, mock in
            let client = TestRedis.uniqueClient()
            _ = await TestClient.shared.post(replica.baseURL + "/v1/chat/completions", chatBody,
                                             headers: [("X-Client-ID", client.rawValue), ("Authorization", "Bearer sk-client")])
            #expect(mock.recorder.last?.header("Authorization") == "Bearer sk-client")
        }
    }

    @Test("a stream without include_usage reaches the client exactly as the provider would send it, and is settled")
    func streamWithoutUsage() async throws {
        try await withProxy { replica, mock in
            let client = TestRedis.uniqueClient()
            let body = #"{"model":"gpt-4o-mini","stream":true,"max_tokens":7,"messages":[{"role":"user","content":"count"}]}"#
            let reply = await TestClient.shared.post(replica.baseURL + "/v1/chat/completions", body, headers: [("X-Client-ID", client.rawValue)])
            #expect(reply.status == 200)
            #expect(reply.header("content-type")?.hasPrefix("text/event-stream") == true)
            #expect(!reply.text.contains("\"usage\""), "neither the usage chunk nor usage:null leaks to a client that did not ask")
            #expect(reply.text.hasSuffix("data: [DONE]\n\n"))
            #expect(reply.text.components(separatedBy: "\"content\":\"tok \"").count - 1 == 7)
            let sent = try #require(mock.recorder.last?.json)
            #expect(sent["stream_options"]?["include_usage"]?.bool == true)
            let price = try #require(bundledPrices.price(for: "gpt-4o-mini"))
            let totals = try await settled(client)
            #expect(totals.reserved == 0)
            #expect(totals.spent == price.cost(of: TokenUsage(input: 1, output: 7)).value
                    || totals.spent >= price.output.cost(ofTokens: 7).value)
        }
    }

    @Test("a stream with include_usage keeps the usage chunk, and the spend equals it")
    func streamWithUsage() async throws {
        try await withProxy { replica, _ in
            let client = TestRedis.uniqueClient()
            let body = #"{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}"#
            let reply = await TestClient.shared.post(replica.baseURL + "/v1/chat/completions", body, headers: [("X-Client-ID", client.rawValue)])
            var parser = SSEParser()
            let usageChunk = parser.feed(reply.body).compactMap { try? JSONValue.parse($0.data) }.first { $0["usage"]?.isNull == false }
            let usage = try #require(usageChunk.flatMap { ProxyRoute.chatCompletions.usage(inResponse: $0) })
            let price = try #require(bundledPrices.price(for: "gpt-4o-mini"))
            #expect(try await settled(client).spent == price.cost(of: usage).value)
        }
    }

    @Test("an Anthropic stream is settled from message_start and message_delta usage")
    func anthropicStream() async throws {
        try await withProxy(environment: ["ANTHROPIC_API_KEY": "sk-ant"]) { replica, mock in
            let client = TestRedis.uniqueClient()
            let body = #"{"model":"claude-sonnet-4-5","max_tokens":20,"stream":true,"messages":[{"role":"user","content":"Write a haiku about budgets."}]}"#
            let reply = await TestClient.shared.post(replica.baseURL + "/v1/messages", body,
                                                     headers: [("X-Client-ID", client.rawValue), ("x-api-key", "client-key"), ("anthropic-version", "2023-06-01")])
            #expect(reply.status == 200)
            var parser = SSEParser()
            var tracker = StreamUsageTracker(route: .messages, hideInjectedUsage: false)
            for event in parser.feed(reply.body) { _ = tracker.observe(event) }
            let usage = try #require(tracker.usage)
            #expect(usage.output == 12)
            let price = try #require(bundledPrices.price(for: "claude-sonnet-4-5"))
            #expect(try await settled(client).spent == price.cost(of: usage).value)
            #expect(mock.recorder.last?.header("x-api-key") == "sk-ant")
            #expect(mock.recorder.last?.header("anthropic-version") == "2023-06-01")
        }
    }

    @Test("embeddings and the Responses API are priced from their own usage shapes")
    func embeddingsAndResponses() async throws {
        try await withProxy { replica, _ in
            let client = TestRedis.uniqueClient()
            let e = await TestClient.shared.post(replica.baseURL + "/v1/embeddings", #"{"model":"text-embedding-3-small","input":["one two three","four"]}"#,
                                                 headers: [("X-Client-ID", client.rawValue)])
            #expect(e.status == 200)
            let eUsage = try #require(e.json.flatMap { ProxyRoute.embeddings.usage(inResponse: $0) })
            let ePrice = try #require(bundledPrices.price(for: "text-embedding-3-small"))
            #expect(try await settled(client).spent == ePrice.cost(of: eUsage).value)

            let r = await TestClient.shared.post(replica.baseURL + "/v1/responses", #"{"model":"gpt-4.1","input":"Tell me a joke","max_output_tokens":50}"#,
                                                 headers: [("X-Client-ID", client.rawValue)])
            #expect(r.status == 200)
            let rUsage = try #require(r.json.flatMap { ProxyRoute.responses.usage(inResponse: $0) })
            let rPrice = try #require(bundledPrices.price(for: "gpt-4.1"))
            #expect(try await settled(client, requests: 2).spent == ePrice.cost(of: eUsage).value + rPrice.cost(of: rUsage).value)
        }
    }

    @Test("an upstream 500 passes through and releases the reservation without charge")
    func upstreamError() async throws {
        try await withProxy { replica, _ in
            let client = TestRedis.uniqueClient()
            let reply = await TestClient.shared.post(replica.baseURL + "/v1/chat/completions", chatBody,
                                                     headers: [("X-Client-ID", client.rawValue), ("X-Mock-Status", "500")])
            #expect(reply.status == 500)
            #expect(reply.json?["error"]?["type"]?.string == "server_error")
            let totals = try await settled(client)
            #expect(totals == (0, 0, 1))
        }
    }

    @Test("GET /v1/models passes through whole in the caller's family, at no cost; an unreachable provider is a 502 in that family's shape")
    func modelsPassThrough() async throws {
        try await withProxy { replica, _ throws in
            let client = TestRedis.uniqueClient()
            let openAI = await TestClient.shared.get(replica.baseURL + "/v1/models", headers: [("X-Client-ID", client.rawValue)])
            #expect(openAI.status == 200)
            #expect(openAI.json?["object"]?.string == "list")
            guard case .array(let models)? = openAI.json?["data"] else { Issue.record("no model list: \(openAI.text)"); return }
            #expect(models.first?["object"]?.string == "model")
            let anthropic = await TestClient.shared.get(replica.baseURL + "/v1/models", headers: [
                ("X-Client-ID", client.rawValue), ("anthropic-version", "2023-06-01"),
            ])
            #expect(anthropic.status == 200)
            #expect(anthropic.json?["has_more"] == .bool(false))
            #expect(try await spent(client) == (0, 0, 0), "nothing reserved, charged or counted")
        }
        let replica = try await Replica.start(upstream: "http://127.0.0.1:1")
        defer { Task { await replica.stop() } }
        let down = await TestClient.shared.get(replica.baseURL + "/v1/models", headers: [("anthropic-version", "2023-06-01")])
        #expect(down.status == 502)
        #expect(down.json?["type"]?.string == "error", "Anthropic's error shape: \(down.text)")
    }

    @Test("an unreachable provider gives 502 and releases the reservation")
    func providerDown() async throws {
        let replica = try await Replica.start(upstream: "http://127.0.0.1:1")
        defer { Task { await replica.stop() } }
        let client = TestRedis.uniqueClient()
        let reply = await TestClient.shared.post(replica.baseURL + "/v1/chat/completions", chatBody, headers: [("X-Client-ID", client.rawValue)])
        #expect(reply.status == 502)
        #expect(reply.json?["error"]?["type"]?.string == "upstream_unavailable")
        #expect(try await eventually { try await spent(client).requests == 1 })
        #expect(try await spent(client) == (0, 0, 1))
    }

    @Test("a stream that outlives its lease keeps it renewed: a reaping pass mid-stream leaves it alone")
    func longStreamKeepsItsLease() async throws {
        try await withProxy(configure: { $0.budget.leaseSeconds = 6 }) { replica, _ in
            let client = TestRedis.uniqueClient()
            let body = #"{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"slow story"}]}"#
            // 8 tokens at 1 event per second: ~11 s, nearly twice the 6 s lease (renewed every 2 s).
            async let stream = TestClient.shared.post(replica.baseURL + "/v1/chat/completions", body, headers: [
                ("X-Client-ID", client.rawValue), ("X-Mock-Completion-Tokens", "8"), ("X-Mock-Chunk-Delay-Ms", "1000"),
            ])
            try await Task.sleep(for: .seconds(8))
            // Every reserve reaps the client's expired leases; the stream's must not be among them.
            let probe = await TestClient.shared.post(replica.baseURL + "/v1/chat/completions", chatBody, headers: [("X-Client-ID", client.rawValue)])
            #expect(probe.status == 200)
            let streamed = await stream
            #expect(streamed.status == 200)
            #expect(streamed.text.contains("[DONE]"))
            let totals = try await settled(client, requests: 2)
            let (day, _) = try await TestRedis.periodKeys(client)
            #expect(try await TestRedis.hash(day)["leases_reaped"] == nil, "the open stream's lease was renewed, not reaped")
            #expect(totals.reserved == 0)
        }
    }

    @Test("a client that hangs up mid-stream cancels the upstream (after reading on for a moment) and is charged for what was streamed")
    func clientDisconnect() async throws {
        try await withProxy { replica, _ in
            let client = TestRedis.uniqueClient()
            let body = #"{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"long story"}]}"#
            // 1,000 tokens at one per 30 ms: 30 s, far longer than the hang-up plus the read-on second,
            // even when the test's own task waits seconds for a thread (CI once stalled it ~10 s
            // at the start of the run, and a 10 s stream ran to its end before the hang-up).
            let transfer = TestClient.shared.start(replica.baseURL + "/v1/chat/completions", body, headers: [
                ("X-Client-ID", client.rawValue), ("X-Mock-Completion-Tokens", "1000"), ("X-Mock-Chunk-Delay-Ms", "30"),
            ])
            var received = 0
            for await part in transfer.parts {
                if case .body(let b) = part { received += b.count }
                if received > 1_000 { break }
            }
            transfer.cancel()
            let totals = try await settled(client)
            let price = try #require(bundledPrices.price(for: "gpt-4o-mini"))
            #expect(totals.reserved == 0, "the reservation is released at once, not left for the reaper")
            #expect(totals.spent > 0, "a partial stream is never free")
            #expect(totals.spent < price.output.cost(ofTokens: 1000).value, "charged for what was streamed, not the whole reply")
        }
    }

    @Test("a client that hangs up on a non-streamed request whose answer does not come within the time it is read on for is charged its reservation, since the provider may still bill it")
    func clientDisconnectNonStream() async throws {
        try await withProxy { replica, mock in
            let client = TestRedis.uniqueClient()
            // The mock holds the answer until the request has settled: it cannot come within
            // upstream.drain_after_hangup_ms, however loaded the machine (an answer that does
            // come is charged its usage, rightly: ExactnessTests).
            let transfer = TestClient.shared.start(replica.baseURL + "/v1/chat/completions", chatBody, headers: [
                ("X-Client-ID", client.rawValue), (MockHeader.hold, client.rawValue),
            ])
            // Hang up once the request has reached the provider (before that, nothing is charged).
            #expect(try await eventually { mock.recorder.count == 1 })
            transfer.cancel()
            let totals = try await settled(client)
            mock.recorder.release(client.rawValue)
            #expect(totals.requests == 1)
            #expect(totals.reserved == 0)
            let price = try #require(bundledPrices.price(for: "gpt-4o-mini"))
            #expect(totals.spent > price.output.cost(ofTokens: price.maxOutputTokens - 1).value, "the worst case it reserved")
        }
    }

    @Test("over budget: 402 in the OpenAI shape with the limit details, and nothing reaches the provider")
    func budgetExceededOpenAI() async throws {
        try await withProxy { replica, mock in
            let client = TestRedis.uniqueClient()
            _ = try await TestRedis.shared.call(.command(["HSET", RedisKeys(client).limits, "daily", "1000"]))
            let before = mock.recorder.count
            let reply = await TestClient.shared.post(replica.baseURL + "/v1/chat/completions", chatBody, headers: [("X-Client-ID", client.rawValue)])
            #expect(reply.status == 402)
            let error = try #require(reply.json?["error"])
            #expect(error["type"]?.string == "budget_exceeded")
            #expect(error["code"]?.string == "budget_exceeded")
            #expect(error["client_id"]?.string == client.rawValue)
            #expect(error["limit_type"]?.string == "daily")
            #expect(error["limit_usd"] == .number("0.000001"))
            #expect(error["spent_usd"] == .number("0"))
            #expect(error["resets_at"]?.string?.hasSuffix("T00:00:00Z") == true)
            #expect(error["message"]?.string?.contains("resets at") == true)
            #expect(mock.recorder.count == before)
        }
    }

    @Test("over budget on the Anthropic route: Anthropic's error shape; 429 with Retry-After when configured")
    func budgetExceededAnthropic() async throws {
        try await withProxy(configure: { $0.budget.exceededStatus = 429 }) { replica, _ in
            let client = TestRedis.uniqueClient()
            _ = try await TestRedis.shared.call(.command(["HSET", RedisKeys(client).limits, "monthly", "5"]))
            let reply = await TestClient.shared.post(replica.baseURL + "/v1/messages",
                                                     #"{"model":"claude-haiku-4-5","max_tokens":100,"messages":[{"role":"user","content":"hi"}]}"#,
                                                     headers: [("X-Client-ID", client.rawValue)])
            #expect(reply.status == 429)
            #expect(reply.json?["type"]?.string == "error")
            #expect(reply.json?["error"]?["type"]?.string == "budget_exceeded")
            #expect(reply.json?["error"]?["limit_type"]?.string == "monthly")
            let retryAfter = try #require(reply.header("Retry-After").flatMap { Int($0) })
            #expect(retryAfter > 0 && retryAfter <= 31 * 86_400)
        }
    }

    @Test("Redis down: 503 with a clear body, and nothing is forwarded unreserved")
    func redisDown() async throws {
        let mock = try await MockProvider.start()
        let replica = try await Replica.start(upstream: mock.baseURL, redisURL: "redis://127.0.0.1:1/0")
        let reply = await TestClient.shared.post(replica.baseURL + "/v1/chat/completions", chatBody, headers: [("X-Client-ID", "alice")])
        #expect(reply.status == 503)
        #expect(reply.json?["error"]?["type"]?.string == "budget_unavailable")
        #expect(reply.json?["error"]?["message"]?.string?.contains("Redis") == true)
        #expect(mock.recorder.count == 0)
        let ready = await TestClient.shared.get(replica.baseURL + "/readyz")
        #expect(ready.status == 503)
        await replica.stop()
        await mock.stop()
    }
}
