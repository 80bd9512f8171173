import Foundation
import Synchronization
import Testing
import TollgateCore
import TollgateMockProvider
import TollgateRedis
import TollgateServer

/// The strict guarantee's holes, one test each: every way a request can end is charged at least
/// what the provider bills, and shapes whose cost cannot be bounded are refused. Expected amounts
/// are worked out by hand from list prices written here as literals, or observed in Redis while
/// the request was in flight (its reservation), never computed by the code under test.
@Suite("strict mode has no holes", .timeLimit(.minutes(3)))
struct ExactnessTests {
    /// List prices in nano-USD per token ($1 per million tokens = 1,000 nano-USD per token).
    enum ListPrice {
        static let gpt4oMiniInput: Int64 = 150      // $0.15 / M tokens
        static let gpt4oMiniOutput: Int64 = 600     // $0.60 / M tokens
    }

    struct Totals: Equatable { var spent: Int64; var reserved: Int64; var requests: Int64 }

    func totals(_ client: ClientID) async throws -> Totals {
        let (day, _) = try await TestRedis.periodKeys(client)
        let h = try await TestRedis.hash(day)
        return Totals(spent: Int64(h["spent"] ?? "0")!, reserved: Int64(h["reserved"] ?? "0")!, requests: Int64(h["requests"] ?? "0")!)
    }

    func settled(_ client: ClientID, requests: Int64 = 1) async throws -> Totals {
        _ = try await eventually { try await totals(client).requests >= requests }
        return try await totals(client)
    }

    /// The reservation of the one request in flight for `client`, read from Redis while it runs.
    func reservationInFlight(_ client: ClientID) async throws -> Int64 {
        var reserved: Int64 = 0
        try #require(await eventually {
            reserved = try await totals(client).reserved
            return reserved > 0
        }, "no reservation seen for \(client.rawValue) while its request was in flight")
        return reserved
    }

    /// Sends `body` for `client` with the mock holding its answer (`X-Mock-Hold`) until the
    /// reservation has been read from Redis, then lets it answer. No machine load can close that
    /// window, as a latency could (CI once missed a 1.5 s one).
    func postHeld(_ replica: Replica, _ mock: RunningMockProvider, _ body: String, _ client: ClientID,
                  _ headers: [(String, String)] = [], path: String = "/v1/chat/completions") async throws -> (reserved: Int64, reply: TestClient.Reply) {
        defer { mock.recorder.release(client.rawValue) }
        async let reply = post(replica, body, client, headers + [(MockHeader.hold, client.rawValue)], path: path)
        let reserved = try await reservationInFlight(client)
        mock.recorder.release(client.rawValue)
        return (reserved, await reply)
    }

    /// The request settled at exactly what was reserved for it, and the log says so.
    func expectChargedItsReservation(_ client: ClientID, _ reserved: Int64, _ log: AccessLog,
                                     sourceLocation: SourceLocation = #_sourceLocation) async throws {
        #expect(try await settled(client) == Totals(spent: reserved, reserved: 0, requests: 1), sourceLocation: sourceLocation)
        #expect(try await log.charged(client) == "reservation", sourceLocation: sourceLocation)
    }

    /// A replica with an access log captured in memory (to tell usage from bounds).
    func withProxy(configure: (inout TollgateConfig) -> Void = { _ in },
                   _ body: (Replica, RunningMockProvider, AccessLog) async throws -> Void) async throws {
        let mock = try await MockProvider.start()
        let log = AccessLog()
        let replica = try await Replica.start(upstream: mock.baseURL, configure: configure, accessLog: { log.append($0) })
        do { try await body(replica, mock, log) } catch {
            await replica.stop(); await mock.stop(); throw error
        }
        await replica.stop()
        await mock.stop()
    }

    final class AccessLog: Sendable {
        private let lines = Mutex<[String]>([])
        func append(_ line: String) { lines.withLock { $0.append(line) } }
        /// The `charged` field of the request logged for `client`.
        func charged(_ client: ClientID) async throws -> String? { try await field("charged", of: client) }

        /// A text field of the request logged for `client`, once it is logged.
        func field(_ name: String, of client: ClientID) async throws -> String? {
            var found: String?
            _ = try await eventually {
                found = lines.withLock { $0 }.compactMap { try? JSONValue.parse(Array($0.utf8)) }
                    .first { $0["client"]?.string == client.rawValue }?[name]?.string
                return found != nil
            }
            return found
        }
    }

    func post(_ replica: Replica, _ body: String, _ client: ClientID, _ headers: [(String, String)] = [],
              path: String = "/v1/chat/completions") async -> TestClient.Reply {
        await TestClient.shared.post(replica.baseURL + path, body, headers: [("X-Client-ID", client.rawValue)] + headers)
    }

    static let chat = #"{"model":"gpt-4o-mini","max_tokens":50,"messages":[{"role":"user","content":"hi"}]}"#

    // MARK: 1. A 2xx answer without usage

    @Test("hole 1: a 2xx answer without usage is charged its reservation, not $0")
    func successWithoutUsage() async throws {
        try await withProxy { replica, mock, log throws in
            let client = TestRedis.uniqueClient("nousage")
            let (reserved, reply) = try await postHeld(replica, mock, Self.chat, client, [("X-Mock-Omit-Usage", "1")])
            #expect(reply.status == 200)
            let after = try await settled(client)
            #expect(after == Totals(spent: reserved, reserved: 0, requests: 1))
            #expect(try await log.charged(client) == "reservation")
        }
    }

    @Test("hole 1: strict mode refuses background: true, naming the field and the setting that allows it")
    func backgroundRefused() async throws {
        try await withProxy { replica, mock, _ throws in
            let client = TestRedis.uniqueClient("bg")
            let body = #"{"model":"gpt-4o-mini","background":true,"max_output_tokens":50,"input":"hi"}"#
            let reply = await post(replica, body, client, path: "/v1/responses")
            #expect(reply.status == 400)
            let message = try #require(reply.json?["error"]?["message"]?.string)
            #expect(message.contains("background"))
            #expect(message.contains("budget.background"))
            #expect(mock.recorder.count == 0)
            #expect(try await totals(client).reserved == 0)
        }
    }

    @Test("hole 1: background: true, when allowed, is charged its reservation (usage arrives only later)")
    func backgroundAllowedIsCharged() async throws {
        try await withProxy(configure: { $0.budget.background = .allow }) { replica, mock, log throws in
            let client = TestRedis.uniqueClient("bgok")
            let body = #"{"model":"gpt-4o-mini","background":true,"max_output_tokens":50,"input":"hi"}"#
            let (reserved, answer) = try await postHeld(replica, mock, body, client, path: "/v1/responses")
            #expect(answer.status == 200)
            #expect(answer.json?["status"]?.string == "queued")
            try await expectChargedItsReservation(client, reserved, log)
        }
    }

    // MARK: 2. A non-streamed request cut after it reached the provider

    @Test("hole 2: a non-streamed request cut by upstream.timeout_seconds is charged its reservation")
    func upstreamTimeout() async throws {
        try await withProxy(configure: { $0.upstream.timeoutSeconds = 2 }) { replica, mock, log throws in
            // The timeout closes the request's own window after 2 s, so its reservation is read
            // from the same body sent for another client through a second replica with the default
            // timeout, held until looked at (a probe through this replica would have the same 2 s
            // window; a loaded CI machine once missed a 1 s one).
            let prober = try await Replica.start(upstream: mock.baseURL)
            let reserved: Int64
            do { reserved = try await postHeld(prober, mock, Self.chat, TestRedis.uniqueClient("timeout-probe")).reserved } catch {
                await prober.stop(); throw error
            }
            await prober.stop()
            // A quick request first leaves a keep-alive connection, which the timed-out one reuses:
            // curl reports no connect time there, and such a timeout was once taken for "never
            // sent" and charged $0. Its own answer is not the point (on a loaded machine it may
            // itself run into the timeout), so it is not asserted.
            _ = await post(replica, Self.chat, TestRedis.uniqueClient("timeout-warm"))
            let client = TestRedis.uniqueClient("timeout")
            let reply = await post(replica, Self.chat, client, [(MockHeader.hold, client.rawValue)])
            mock.recorder.release(client.rawValue)
            // The duration cap (docs/operations.md, "Limits and back-pressure"): a gateway timeout.
            #expect(reply.status == 504)
            try await expectChargedItsReservation(client, reserved, log)
        }
    }

    @Test("hole 2: a connection reset mid-body is charged its reservation")
    func resetMidBody() async throws {
        try await withProxy { replica, mock, log throws in
            let client = TestRedis.uniqueClient("reset")
            let (reserved, reply) = try await postHeld(replica, mock, Self.chat, client, [("X-Mock-Drop-After-Bytes", "40")])
            #expect(reply.status == 502)
            try await expectChargedItsReservation(client, reserved, log)
        }
    }

    @Test("hole 2: a client that hangs up while its request waits for an upstream connection is charged nothing")
    func goneBeforeSent() async throws {
        try await withProxy(configure: { $0.upstream.maxConnections = 1 }) { replica, mock, log throws in
            // The one upstream connection is taken by a request the mock holds.
            let holder = TestRedis.uniqueClient("holder")
            async let held = post(replica, Self.chat, holder, [(MockHeader.hold, holder.rawValue)])
            #expect(try await eventually { mock.recorder.count == 1 })
            // The next request is reserved, then waits in curl's queue for that connection.
            let client = TestRedis.uniqueClient("queued")
            let transfer = TestClient.shared.start(replica.baseURL + "/v1/chat/completions", Self.chat, headers: [("X-Client-ID", client.rawValue)])
            _ = try await reservationInFlight(client)
            try await Task.sleep(for: .milliseconds(200))
            transfer.cancel()
            // Not a byte of it went out, so the provider cannot bill it: $0, not its reservation.
            #expect(try await settled(client) == Totals(spent: 0, reserved: 0, requests: 1))
            #expect(try await log.charged(client) == "nothing")
            mock.recorder.release(holder.rawValue)
            #expect(await held.status == 200)
            #expect(mock.recorder.count == 1, "the queued request never reached the provider")
        }
    }

    @Test("a client that hangs up on a sent non-streamed request whose answer comes while it is read on is charged that answer's usage, not its reservation")
    func goneBeforeTheAnswer() async throws {
        // Read on for long enough that no machine load can make the answer miss it.
        try await withProxy(configure: { $0.upstream.drainAfterHangupMilliseconds = 30_000 }) { replica, mock, log throws in
            let headers = [("X-Mock-Completion-Tokens", "30")]
            // The same request answered in full says what the provider bills for it.
            let whole = await post(replica, Self.chat, TestRedis.uniqueClient("answered-whole"), headers)
            let usage = try #require(whole.json?["usage"], "usage in \(whole.text)")
            let billed = try #require(usage["prompt_tokens"]?.int) * ListPrice.gpt4oMiniInput
                + (try #require(usage["completion_tokens"]?.int)) * ListPrice.gpt4oMiniOutput

            let client = TestRedis.uniqueClient("answered")
            let before = mock.recorder.count
            let hangUp = FileManager.default.temporaryDirectory.appendingPathComponent("hang-up-\(client.rawValue)").path
            defer { try? FileManager.default.removeItem(atPath: hangUp) }
            let request = RawHTTP.post("/v1/chat/completions", Self.chat, headers: [
                "X-Client-ID: \(client.rawValue)", "\(MockHeader.hold): \(client.rawValue)", "X-Mock-Completion-Tokens: 30",
            ])
            async let exchange = RawHTTP.exchange(port: replica.port, request, waitForClose: 30, reset: .whenFileExists(hangUp))
            #expect(try await eventually { mock.recorder.count == before + 1 }, "the request reached the provider")
            // The client resets its connection, which the replica sees at once; the provider
            // answers after that.
            FileManager.default.createFile(atPath: hangUp, contents: nil)
            #expect(try await exchange.response.isEmpty, "nothing was answered before the hang-up")
            // The replica sees the reset on its next look at its sockets; give a loaded machine
            // (CI at the start of the run) a whole second for that before the answer comes.
            try await Task.sleep(for: .seconds(1))
            mock.recorder.release(client.rawValue)
            #expect(try await settled(client) == Totals(spent: billed, reserved: 0, requests: 1))
            #expect(try await log.charged(client) == "usage")
            #expect(try await log.field("outcome", of: client) == "client_disconnected")
        }
    }

    @Test("hole 2: a provider that was never reached charges nothing")
    func neverReached() async throws {
        let replica = try await Replica.start(upstream: "http://127.0.0.1:1")
        let client = TestRedis.uniqueClient("unreached")
        #expect(await post(replica, Self.chat, client).status == 502)
        #expect(try await settled(client) == Totals(spent: 0, reserved: 0, requests: 1))
        await replica.stop()
    }

    // MARK: 3. Cut streams

    @Test("hole 3: a cut stream of a model with hidden reasoning is charged its reservation")
    func cutReasoningStream() async throws {
        try await withProxy { replica, _, log throws in
            let client = TestRedis.uniqueClient("reasoning")
            let body = #"{"model":"o3-mini","stream":true,"max_completion_tokens":4000,"messages":[{"role":"user","content":"think"}]}"#
            let transfer = TestClient.shared.start(replica.baseURL + "/v1/chat/completions", body, headers: [
                ("X-Client-ID", client.rawValue), ("X-Mock-Reasoning-Tokens", "3000"), ("X-Mock-Completion-Tokens", "400"),
                ("X-Mock-Chunk-Delay-Ms", "100"),
            ])
            let reserved = try await reservationInFlight(client)
            // Hang up after the first visible output: the provider has billed 3,000 reasoning tokens.
            for await part in transfer.parts { if case .body = part { break } }
            transfer.cancel()
            try await expectChargedItsReservation(client, reserved, log)
        }
    }

    @Test("hole 3: a stream cut without usage and no hidden reasoning pays input bound + one token per streamed byte")
    func cutPlainStream() async throws {
        try await withProxy { replica, _, log throws in
            let client = TestRedis.uniqueClient("cut")
            let body = #"{"model":"gpt-4o-mini","stream":true,"max_tokens":100,"messages":[{"role":"user","content":"hi"}]}"#
            // The provider drops after 6 events: the role chunk (no text) and 5 × "tok " = 20 bytes.
            _ = await post(replica, body, client, [("X-Mock-Drop-After-Chunks", "6"), ("X-Mock-Completion-Tokens", "50")])
            // Input bound by hand (README): 16 per request + 8 per message + "user" (4) + "hi" (2) = 30.
            // 30 × $0.15/M + 20 × $0.60/M = 4,500 + 12,000 nano-USD.
            let expected = (30 * ListPrice.gpt4oMiniInput + 20 * ListPrice.gpt4oMiniOutput)
            #expect(try await settled(client) == Totals(spent: expected, reserved: 0, requests: 1))
            #expect(try await log.charged(client) == "bound")
        }
    }

    @Test("hole 3b: a client that hangs up on a stream the provider has already sent is charged the usage the stream reports, not a bound on what was relayed")
    func hangUpOnASentStream() async throws {
        try await withProxy(configure: { $0.upstream.drainAfterHangupMilliseconds = 30_000 }) { replica, _, log throws in
            let client = TestRedis.uniqueClient("drain")
            let body = #"{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"max_tokens":40,"messages":[{"role":"user","content":"hi"}]}"#
            // 400 KB of events, written by the provider at once: much of it is still on its way
            // (buffered by Tollgate and in the sockets) when the client hangs up, and it all
            // arrives while it is read on (upstream.drain_after_hangup_ms, long here so that no
            // machine load can make it miss it).
            let headers = [(MockHeader.streamBytes, "400000"), ("X-Mock-Completion-Tokens", "40")]
            // The same stream read to its end says what the provider bills for it.
            let whole = await post(replica, body, TestRedis.uniqueClient("drain-whole"), headers)
            let reported = HeavySuites.SettleJournalTests.streamedUsage(whole.text)
            let usage = try #require(reported, "usage in the whole stream (\(whole.text.count) characters)")
            let billed = try #require(usage["prompt_tokens"]?.int) * ListPrice.gpt4oMiniInput
                + (try #require(usage["completion_tokens"]?.int)) * ListPrice.gpt4oMiniOutput

            let transfer = TestClient.shared.start(replica.baseURL + "/v1/chat/completions", body,
                                                   headers: [("X-Client-ID", client.rawValue)] + headers)
            for await part in transfer.parts { if case .body = part { break } }
            transfer.cancel()
            #expect(try await settled(client) == Totals(spent: billed, reserved: 0, requests: 1))
            #expect(try await log.charged(client) == "usage")
        }
    }

    // MARK: 4. Leases of non-streamed requests

    @Test("hole 4: a non-streamed call that outlives its lease is renewed, not reaped and granted again")
    func slowCallKeepsItsLease() async throws {
        // A 6 s lease renewed every 2 s, a 12 s call, and a reaping pass 7.5 s after it was sent:
        // past the lease, and seconds before the call ends even on a loaded machine.
        try await withProxy(configure: { $0.budget.leaseSeconds = 6 }) { replica, _, _ throws in
            let client = TestRedis.uniqueClient("slow")
            // Room for one such request only.
            _ = try await TestRedis.shared.call(.command(["HSET", RedisKeys(client).limits, "daily", "40000"]))
            let body = #"{"model":"gpt-4o-mini","max_tokens":50,"messages":[{"role":"user","content":"hi"}]}"#
            let sent = ContinuousClock.now
            async let slow = post(replica, body, client, [("X-Mock-Latency-Ms", "12000")])
            _ = try await reservationInFlight(client)
            try await Task.sleep(until: sent + .seconds(7.5))
            // Every reserve reaps the client's expired leases; the slow call's must not be one.
            let second = await post(replica, body, client)
            #expect(second.status == 402, "the slow call still holds the budget")
            #expect(await slow.status == 200)
            let (day, _) = try await TestRedis.periodKeys(client)
            #expect(try await TestRedis.hash(day)["leases_reaped"] == nil)
            #expect(try await settled(client).spent <= 40_000)
        }
    }

    // MARK: 5. Input the body does not carry

    static let unseen: [(path: String, body: String, field: String, setting: String)] = [
        ("/v1/responses", #"{"model":"gpt-4o-mini","max_output_tokens":20,"previous_response_id":"resp_1","input":"go on"}"#,
         "previous_response_id", "budget.unseen_input"),
        ("/v1/responses", #"{"model":"gpt-4o-mini","max_output_tokens":20,"conversation":"conv_1","input":"hi"}"#,
         "conversation", "budget.unseen_input"),
        ("/v1/responses", #"{"model":"gpt-4o-mini","max_output_tokens":20,"prompt":{"id":"pmpt_1"},"input":"hi"}"#,
         "prompt", "budget.unseen_input"),
        ("/v1/chat/completions", #"{"model":"gpt-4o-mini","max_tokens":20,"messages":[{"role":"user","content":[{"type":"file","file":{"file_id":"file-1"}}]}]}"#,
         "file_id", "budget.unseen_input"),
        ("/v1/messages", #"{"model":"claude-haiku-4-5","max_tokens":20,"messages":[{"role":"user","content":[{"type":"document","source":{"type":"url","url":"https://example.com/a.pdf"}}]}]}"#,
         "source", "budget.unseen_input"),
        ("/v1/responses", #"{"model":"gpt-4o-mini","max_output_tokens":20,"tools":[{"type":"web_search"}],"input":"news"}"#,
         "tools[0]", "budget.server_tools"),
        ("/v1/messages", #"{"model":"claude-haiku-4-5","max_tokens":20,"tools":[{"type":"web_search_20250305","name":"web_search"}],"messages":[{"role":"user","content":"news"}]}"#,
         "tools[0]", "budget.server_tools"),
        ("/v1/messages", #"{"model":"claude-haiku-4-5","max_tokens":20,"mcp_servers":[{"type":"url","url":"https://mcp.example.com","name":"x"}],"messages":[{"role":"user","content":"hi"}]}"#,
         "mcp_servers", "budget.server_tools"),
        ("/v1/chat/completions", #"{"model":"gpt-4o-mini","max_tokens":20,"service_tier":"scale","messages":[{"role":"user","content":"hi"}]}"#,
         "service_tier", "pricing"),
    ]

    @Test("hole 5: input the body does not carry is refused in strict mode with a 400 naming the field and the setting",
          arguments: 0..<unseen.count)
    func unseenInputRefused(index: Int) async throws {
        let shape = Self.unseen[index]
        try await withProxy { replica, mock, _ throws in
            let client = TestRedis.uniqueClient("unseen")
            let reply = await post(replica, shape.body, client, path: shape.path)
            #expect(reply.status == 400)
            let error = shape.path == "/v1/messages" ? reply.json?["error"] : reply.json?["error"]
            if shape.path == "/v1/messages" { #expect(reply.json?["type"]?.string == "error") }
            let message = try #require(error?["message"]?.string)
            #expect(message.contains(shape.field), "\(message)")
            #expect(message.contains(shape.setting), "\(message)")
            #expect(mock.recorder.count == 0)
            #expect(try await totals(client) == Totals(spent: 0, reserved: 0, requests: 0))
        }
    }

    // MARK: 6. Prices the table did not model

    @Test("hole 6: a priority-tier answer is priced at the priority rate (2× standard)")
    func priorityTier() async throws {
        try await withProxy { replica, _, _ throws in
            let client = TestRedis.uniqueClient("tier")
            let body = #"{"model":"gpt-4o-mini","max_tokens":50,"service_tier":"priority","messages":[{"role":"user","content":"hi"}]}"#
            let reply = await post(replica, body, client, [("X-Mock-Service-Tier", "priority")])
            #expect(reply.status == 200)
            let usage = try #require(reply.json?["usage"])
            let prompt = try #require(usage["prompt_tokens"]?.int), completion = try #require(usage["completion_tokens"]?.int)
            let expected = 2 * (prompt * ListPrice.gpt4oMiniInput + completion * ListPrice.gpt4oMiniOutput)
            #expect(try await settled(client).spent == expected)
        }
    }

    @Test("hole 6: Anthropic 1-hour cache writes are priced at 2× input")
    func oneHourCacheWrites() async throws {
        try await withProxy { replica, _, _ throws in
            let client = TestRedis.uniqueClient("cache1h")
            let prompt = String(repeating: "cache me ", count: 40)
            let body = #"{"model":"claude-haiku-4-5","max_tokens":50,"system":[{"type":"text","text":"\#(prompt)","cache_control":{"type":"ephemeral","ttl":"1h"}}],"messages":[{"role":"user","content":"hi"}]}"#
            let reply = await post(replica, body, client, [("X-Mock-Cache-Write-1h-Tokens", "60")], path: "/v1/messages")
            #expect(reply.status == 200)
            let usage = try #require(reply.json?["usage"])
            let input = try #require(usage["input_tokens"]?.int), output = try #require(usage["output_tokens"]?.int)
            #expect(usage["cache_creation"]?["ephemeral_1h_input_tokens"]?.int == 60)
            // claude-haiku-4-5: input $1/M, 1-hour cache write $2/M, output $5/M: 1,000 / 2,000 / 5,000 nano-USD per token.
            let expected = input * 1_000 + 60 * 2_000 + output * 5_000
            #expect(try await settled(client).spent == expected)
        }
    }

    @Test("hole 6: a dated snapshot priced apart from its base is charged its own price (gpt-4o-2024-05-13: $5 / $15)")
    func snapshotPrice() async throws {
        try await withProxy { replica, _, _ throws in
            let client = TestRedis.uniqueClient("snapshot")
            let body = #"{"model":"gpt-4o-2024-05-13","max_tokens":50,"messages":[{"role":"user","content":"hi"}]}"#
            let reply = await post(replica, body, client)
            let usage = try #require(reply.json?["usage"])
            let prompt = try #require(usage["prompt_tokens"]?.int), completion = try #require(usage["completion_tokens"]?.int)
            #expect(try await settled(client).spent == prompt * 5_000 + completion * 15_000)
        }
    }

    @Test("hole 6: provider-run tool calls, when allowed, are charged their per-call fee")
    func webSearchFees() async throws {
        try await withProxy(configure: { $0.budget.serverTools = .allow }) { replica, _, _ throws in
            let client = TestRedis.uniqueClient("search")
            _ = try await TestRedis.shared.call(.command(["HSET", RedisKeys(client).limits, "daily", "5000000000"]))
            let body = #"{"model":"claude-haiku-4-5","max_tokens":50,"tools":[{"type":"web_search_20250305","name":"web_search","max_uses":2}],"messages":[{"role":"user","content":"news"}]}"#
            let reply = await post(replica, body, client, [("X-Mock-Web-Search-Calls", "2")], path: "/v1/messages")
            #expect(reply.status == 200)
            let usage = try #require(reply.json?["usage"])
            let input = try #require(usage["input_tokens"]?.int), output = try #require(usage["output_tokens"]?.int)
            // $10 per 1,000 searches = $0.01 = 10,000,000 nano-USD each.
            #expect(try await settled(client).spent == input * 1_000 + output * 5_000 + 2 * 10_000_000)
        }
    }

    @Test("hole 6: an Anthropic beta whose cost is not priced is refused in strict mode; a priced one, or one the operator allows, passes")
    func unpricedBeta() async throws {
        try await withProxy(configure: { $0.budget.allowedBetas = ["house-beta-2026-01-01"] }) { replica, mock, _ throws in
            let client = TestRedis.uniqueClient("beta")
            let body = #"{"model":"claude-haiku-4-5","max_tokens":20,"messages":[{"role":"user","content":"hi"}]}"#
            let refused = await post(replica, body, client, [("anthropic-beta", "prompt-caching-2024-07-31, new-pricing-2027-01-01")], path: "/v1/messages")
            #expect(refused.status == 400)
            let message = try #require(refused.json?["error"]?["message"]?.string)
            #expect(message.contains("new-pricing-2027-01-01") && message.contains("budget.allowed_betas"))
            #expect(mock.recorder.count == 0)
            #expect(await post(replica, body, client, [("anthropic-beta", "context-1m-2025-08-07")], path: "/v1/messages").status == 200)
            #expect(await post(replica, body, client, [("anthropic-beta", "house-beta-2026-01-01")], path: "/v1/messages").status == 200)
        }
    }

    // MARK: 7. Allowances that were too small

    @Test("hole 7: a gpt-4o-mini image reserves its real worst case (tens of thousands of tokens), not 2,000")
    func imageAllowance() async throws {
        try await withProxy { replica, mock, _ throws in
            let client = TestRedis.uniqueClient("image")
            // $0.002 covers 2,000 image tokens at $0.15/M ($0.0003) but not a high-detail tile count (≈ $0.0072).
            _ = try await TestRedis.shared.call(.command(["HSET", RedisKeys(client).limits, "daily", "2000000"]))
            let body = #"{"model":"gpt-4o-mini","max_tokens":10,"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"https://example.com/cat.png"}}]}]}"#
            let reply = await post(replica, body, client)
            #expect(reply.status == 402)
            #expect(mock.recorder.count == 0)
        }
    }

    @Test("Anthropic: a clamp that would leave max_tokens at or below thinking.budget_tokens refuses instead")
    func thinkingClamp() async throws {
        try await withProxy { replica, mock, _ throws in
            let client = TestRedis.uniqueClient("think")
            // $0.01 at $15/M output affords ~660 tokens: less than the 2,000-token thinking budget.
            _ = try await TestRedis.shared.call(.command(["HSET", RedisKeys(client).limits, "daily", "10000000"]))
            let body = #"{"model":"claude-sonnet-4-5","max_tokens":8000,"thinking":{"type":"enabled","budget_tokens":2000},"messages":[{"role":"user","content":"hi"}]}"#
            let reply = await post(replica, body, client, path: "/v1/messages")
            #expect(reply.status == 402)
            #expect(reply.json?["error"]?["type"]?.string == "budget_exceeded")
            #expect(mock.recorder.count == 0)
        }
    }
}
