import Testing
import TollgateCore
import TollgateMockProvider
import TollgateRedis

/// `POST /v1/budgets` with a `policy`, and `GET /v1/budgets/{client}` showing the policy in
/// force, against the real Redis and docs/admin-openapi.yaml.
@Suite("admin policies", .timeLimit(.minutes(2)))
struct AdminPolicyTests {
    let contract = try! OpenAPIContract()

    func post(_ admin: String, _ body: String, expect status: Int) async -> TestClient.Reply {
        let reply = await TestClient.shared.post(admin + "/v1/budgets", body)
        #expect(reply.status == status, "\(body): \(reply.text)")
        #expect(contract.check(method: "POST", template: "/v1/budgets", status: reply.status, body: reply.json) == [], "\(body)")
        return reply
    }

    func get(_ admin: String, _ client: ClientID) async -> TestClient.Reply {
        let reply = await TestClient.shared.get(admin + "/v1/budgets/\(client)")
        #expect(reply.status == 200, "\(reply.text)")
        #expect(contract.check(method: "GET", template: "/v1/budgets/{client_id}", status: 200, body: reply.json) == [])
        return reply
    }

    @Test("a policy is written to the limits hash, merged over the defaults when read, and null puts a value back to the default")
    func setAndRead() async throws {
        let replica = try await Replica.start(upstream: "http://127.0.0.1:1") {
            $0.clients.defaults.downgrade = ClientPolicy.Downgrade(atPercent: 90, models: ["gpt-4.1": "gpt-4.1-mini", "gpt-4o": "gpt-4o-mini"])
        }
        let (admin, server) = try await replica.startAdmin()
        let client = TestRedis.uniqueClient("pol")
        let set = await post(admin, #"""
            {"client_id":"\#(client)","daily_limit_usd":3,"policy":{"on_limit":"warn",
             "downgrade":{"at_percent":80,"models":{"gpt-4o":"none","o3":"o4-mini"}},
             "loop_breaker":{"max_repeats":20,"window_seconds":30},"run_limit_usd":5}}
            """#, expect: 200)
        #expect(try await TestRedis.hash(RedisKeys(client).limits) == [
            "daily": "3000000000", "on_limit": "warn", "downgrade_at": "80", "downgrade:gpt-4o": "none", "downgrade:o3": "o4-mini",
            "loop_max": "20", "loop_window": "30", "run_limit": "5000000000",
        ])
        let policy = try #require(set.json?["policy"])
        #expect(policy["on_limit"]?.string == "warn" && policy["on_limit_is_default"]?.bool == false)
        #expect(policy["downgrade"]?["at_percent"]?.int == 80)
        #expect(policy["downgrade"]?["models"] == .object([("gpt-4.1", .string("gpt-4.1-mini")), ("gpt-4o", .string("none")), ("o3", .string("o4-mini"))]))
        #expect(policy["downgrade"]?["models_is_default"] == .object([("gpt-4.1", .bool(true)), ("gpt-4o", .bool(false)), ("o3", .bool(false))]))
        #expect(policy["loop_breaker"]?["max_repeats"]?.int == 20 && policy["loop_breaker"]?["window_seconds"]?.int == 30)
        #expect(policy["run_limit_usd"] == .number("5") && policy["run_limit_usd_is_default"]?.bool == false)

        // A key left out keeps its value; null removes it.
        _ = await post(admin, #"{"client_id":"\#(client)","daily_limit_usd":3,"policy":{"on_limit":null,"downgrade":{"models":{"gpt-4o":null}},"loop_breaker":null}}"#,
                       expect: 200)
        #expect(try await TestRedis.hash(RedisKeys(client).limits) == [
            "daily": "3000000000", "downgrade_at": "80", "downgrade:o3": "o4-mini", "run_limit": "5000000000",
        ])
        let got = try #require(await get(admin, client).json?["policy"])
        #expect(got["on_limit"]?.string == "block" && got["on_limit_is_default"]?.bool == true)
        #expect(got["downgrade"]?["models"]?["gpt-4o"]?.string == "gpt-4o-mini", "the default mapping is back")
        #expect(got["loop_breaker"]?["max_repeats"]?.int == 0 && got["loop_breaker"]?["max_repeats_is_default"]?.bool == true)

        _ = await post(admin, #"{"client_id":"\#(client)","policy":null}"#, expect: 200)
        #expect(try await TestRedis.hash(RedisKeys(client).limits) == [:])
        server.cancel()
        await replica.stop()
    }

    @Test("USD amounts are read from the number's own text: 1e-06 is 1000 nano-USD")
    func exponentAmounts() async throws {
        let replica = try await Replica.start(upstream: "http://127.0.0.1:1")
        let (admin, server) = try await replica.startAdmin()
        let client = TestRedis.uniqueClient("exp")
        let set = await post(admin, #"{"client_id":"\#(client)","daily_limit_usd": 1e-06,"monthly_limit_usd":2.5E+1,"policy":{"run_limit_usd":1.5e-3}}"#,
                             expect: 200)
        #expect(try await TestRedis.hash(RedisKeys(client).limits) == ["daily": "1000", "monthly": "25000000000", "run_limit": "1500000"])
        #expect(set.json?["daily_limit_usd"] == .number("0.000001"))
        _ = await post(admin, #"{"client_id":"\#(client)","daily_limit_usd": 1e-10}"#, expect: 400)
        server.cancel()
        await replica.stop()
    }

    @Test("a policy that cannot be applied is refused with a message that says how to fix it, and nothing is written",
          arguments: [
              (#"{"policy":{"on_limit":"sometimes"}}"#, "block, warn, stop"),
              (#"{"policy":{"onlimit":"warn"}}"#, "Unknown key \"onlimit\" in policy"),
              (#"{"policy":{"downgrade":{"at_percent":101}}}"#, "from 0 to 100"),
              (#"{"policy":{"downgrade":{"at_percent":8.5}}}"#, "integer"),
              (#"{"policy":{"downgrade":{"models":{"gpt-4o":"a|b"}}}}"#, "without '|'"),
              (#"{"policy":{"downgrade":{"models":{"":"gpt-4o-mini"}}}}"#, "each key must be"),
              (#"{"policy":{"downgrade":{"models":["gpt-4o"]}}}"#, "model to cheaper model"),
              (#"{"policy":{"loop_breaker":{"max_repeats":-1}}}"#, "0 turns the loop breaker off"),
              (#"{"policy":{"loop_breaker":{"window_seconds":0}}}"#, "from 1 to 86400"),
              (#"{"policy":{"run_limit_usd":"5"}}"#, "USD amount"),
              (#"{"policy":5}"#, "must be an object like"),
              (#"{"daily_limit_usd":1,"policy":{"on_limit":"warn","downgrade":{"at_percent":200}}}"#, "at_percent"),
          ])
    func refused(body: String, hint: String) async throws {
        let replica = try await Replica.start(upstream: "http://127.0.0.1:1")
        let (admin, server) = try await replica.startAdmin()
        let client = TestRedis.uniqueClient("bad")
        let json = "{\"client_id\":\"\(client)\"," + body.dropFirst()
        let reply = await post(admin, json, expect: 400)
        let message = reply.json?["error"]?["message"]?.string ?? ""
        #expect(message.contains(hint), "\(message)")
        #expect(try await TestRedis.hash(RedisKeys(client).limits) == [:])
        server.cancel()
        await replica.stop()
    }

    @Test("a policy set through the admin API applies to the next request: on_limit warn lets it through, marked")
    func appliesAtOnce() async throws {
        let mock = try await MockProvider.start()
        let replica = try await Replica.start(upstream: mock.baseURL)
        let (admin, server) = try await replica.startAdmin()
        let client = TestRedis.uniqueClient("warn")
        _ = await post(admin, #"{"client_id":"\#(client)","daily_limit_usd":1e-06,"policy":{"on_limit":"warn"}}"#, expect: 200)
        let proxied = await TestClient.shared.post(replica.baseURL + "/v1/chat/completions",
                                                   #"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#,
                                                   headers: [("X-Client-ID", client.rawValue)])
        #expect(proxied.status == 200)
        #expect(proxied.header("X-Budget-Exceeded") == "true")
        server.cancel()
        await replica.stop()
        await mock.stop()
    }
}

@Suite("admin alert thresholds", .timeLimit(.minutes(2)))
struct AdminAlertThresholdTests {
    @Test("alert thresholds are set per client, shown over the default, turned off with none, and refused when not percents")
    func alertThresholds() async throws {
        let replica = try await Replica.start(upstream: "http://127.0.0.1:1")
        let (admin, server) = try await replica.startAdmin()
        defer { server.cancel(); replica.server.cancel() }
        let client = TestRedis.uniqueClient("alerts")
        let policies = AdminPolicyTests()
        let set = await policies.post(admin, #"{"client_id":"\#(client)","policy":{"alert_thresholds":[90,25,90]}}"#, expect: 200)
        #expect(try await TestRedis.hash(RedisKeys(client).limits)["alerts"] == "25,90")
        #expect(set.json?["policy"]?["alert_thresholds"] == .array([.number("25"), .number("90")]))
        #expect(set.json?["policy"]?["alert_thresholds_is_default"]?.bool == false)

        _ = await policies.post(admin, #"{"client_id":"\#(client)","policy":{"alert_thresholds":"none"}}"#, expect: 200)
        #expect(try await TestRedis.hash(RedisKeys(client).limits)["alerts"] == "none")
        #expect(await policies.get(admin, client).json?["policy"]?["alert_thresholds"] == .array([]))

        _ = await policies.post(admin, #"{"client_id":"\#(client)","policy":{"alert_thresholds":null}}"#, expect: 200)
        let back = await policies.get(admin, client).json?["policy"]
        #expect(back?["alert_thresholds"] == .array([.number("50"), .number("80"), .number("100")]))
        #expect(back?["alert_thresholds_is_default"]?.bool == true)

        for bad in [#"[0]"#, #"[50,"80"]"#, #""50,80""#, #"[1001]"#] {
            let reply = await TestClient.shared.post(admin + "/v1/budgets", #"{"client_id":"\#(client)","policy":{"alert_thresholds":\#(bad)}}"#)
            #expect(reply.status == 400, "\(bad)")
            #expect(reply.text.contains("policy.alert_thresholds must be an array of percents from 1 to 1000"), "\(bad): \(reply.text)")
        }
        #expect(try await TestRedis.hash(RedisKeys(client).limits)["alerts"] == nil, "a refused edit writes nothing")
    }
}
