import Testing
import TollgateCore
import TollgateRedis

/// `GET /v1/budget` on the proxy's port: a client's own budget, identified like a proxied request.
@Suite("a client's own budget", .timeLimit(.minutes(2)))
struct ClientBudgetTests {
    /// Limits, a policy, today's and this month's counters and a run, as the scripts write them.
    func seed(_ client: ClientID) async throws {
        let (day, month) = try await TestRedis.periodKeys(client)
        let keys = RedisKeys(client)
        for command in [
            ["HSET", keys.limits, "daily", "2000000000", "monthly", "30000000000", "on_limit", "warn", "run_limit", "500000000",
             "downgrade_at", "75", "downgrade:gpt-4o", "gpt-4o-mini"],
            ["HSET", day, "spent", "250000000", "reserved", "50000000", "requests", "3", "refused", "1"],
            ["HSET", month, "spent", "1250000000", "reserved", "50000000", "requests", "9"],
            ["HSET", keys.run(RunID("research-42")!), "spent", "100000000", "reserved", "30000000", "requests", "2"],
        ] { _ = try await TestRedis.shared.call(.command(command)) }
    }

    @Test("a client sees its day, month, run and policy as they stand in Redis")
    func ownNumbers() async throws {
        let replica = try await Replica.start(upstream: "http://127.0.0.1:1")
        let client = TestRedis.uniqueClient("own")
        try await seed(client)
        let reply = await TestClient.shared.get(replica.baseURL + "/v1/budget", headers: [("X-Client-ID", client.rawValue)])
        #expect(reply.status == 200, "\(reply.text)")
        let json = try #require(reply.json)
        #expect(json["client_id"]?.string == client.rawValue)
        let day = try #require(json["day"])
        #expect(day["spent_usd"] == .number("0.25") && day["reserved_usd"] == .number("0.05"))
        #expect(day["limit_usd"] == .number("2") && day["remaining_usd"] == .number("1.7"))
        #expect(day["requests"]?.int == 3 && day["refused"]?.int == 1)
        #expect(day["resets_at"]?.string?.hasSuffix("T00:00:00Z") == true, "UTC midnight")
        let month = try #require(json["month"])
        #expect(month["spent_usd"] == .number("1.25") && month["limit_usd"] == .number("30") && month["remaining_usd"] == .number("28.7"))
        #expect(month["resets_at"]?.string?.hasSuffix("-01T00:00:00Z") == true)
        #expect(json["run"] == nil, "no run without the run header")
        let policy = try #require(json["policy"])
        #expect(policy["on_limit"]?.string == "warn")
        #expect(policy["downgrade"]?["at_percent"]?.int == 75 && policy["downgrade"]?["models"]?["gpt-4o"]?.string == "gpt-4o-mini")
        #expect(policy["run_limit_usd"] == .number("0.5"))
        #expect(policy["on_limit_is_default"] == nil, "a client sees the values in force, not how they were configured")

        let run = await TestClient.shared.get(replica.baseURL + "/v1/budget", headers: [("X-Client-ID", client.rawValue), ("X-Budget-Run", "research-42")])
        #expect(run.json?["run"] == .object([
            ("run_id", .string("research-42")), ("spent_usd", .number("0.1")), ("reserved_usd", .number("0.03")),
            ("requests", .number("2")), ("limit_usd", .number("0.5")), ("remaining_usd", .number("0.37")),
        ]))
        let capped = await TestClient.shared.get(replica.baseURL + "/v1/budget", headers: [
            ("X-Client-ID", client.rawValue), ("X-Budget-Run", "research-42"), ("X-Budget-Run-USD", "0.2"), ("X-Budget-Daily-USD", "1"),
        ])
        #expect(capped.json?["run"]?["limit_usd"] == .number("0.2") && capped.json?["run"]?["remaining_usd"] == .number("0.07"))
        #expect(capped.json?["day"]?["limit_usd"] == .number("1") && capped.json?["day"]?["remaining_usd"] == .number("0.7"),
                "a header budget lowers the limit as it would for a request")
        let fresh = await TestClient.shared.get(replica.baseURL + "/v1/budget", headers: [("X-Client-ID", client.rawValue), ("X-Budget-Run", "new-run")])
        #expect(fresh.json?["run"]?["spent_usd"] == .number("0") && fresh.json?["run"]?["remaining_usd"] == .number("0.5"))
        await replica.stop()
    }

    @Test("another client sees only its own numbers")
    func isolation() async throws {
        let replica = try await Replica.start(upstream: "http://127.0.0.1:1")
        let seeded = TestRedis.uniqueClient("own"), other = TestRedis.uniqueClient("other")
        try await seed(seeded)
        let reply = await TestClient.shared.get(replica.baseURL + "/v1/budget", headers: [("X-Client-ID", other.rawValue), ("X-Budget-Run", "research-42")])
        #expect(reply.status == 200)
        #expect(reply.json?["client_id"]?.string == other.rawValue)
        #expect(reply.json?["day"]?["spent_usd"] == .number("0") && reply.json?["day"]?["limit_usd"] == .number("10"))
        #expect(reply.json?["month"]?["spent_usd"] == .number("0"))
        #expect(reply.json?["run"]?["spent_usd"] == .number("0"), "runs are per client: the same run id is another run")
        #expect(reply.json?["policy"]?["on_limit"]?.string == "block")
        await replica.stop()
    }

    @Test("with clients.auth: keys the key decides whose budget it is, whatever X-Client-ID says")
    func virtualKey() async throws {
        let replica = try await Replica.start(upstream: "http://127.0.0.1:1") { $0.clients.auth = .keys }
        let seeded = TestRedis.uniqueClient("own"), other = TestRedis.uniqueClient("other")
        try await seed(seeded)
        let (_, secret) = try await replica.tollgate.keys.create(client: other, name: "test")
        let reply = await TestClient.shared.get(replica.baseURL + "/v1/budget", headers: [("Authorization", "Bearer \(secret)"), ("X-Client-ID", seeded.rawValue)])
        #expect(reply.status == 200)
        #expect(reply.json?["client_id"]?.string == other.rawValue)
        #expect(reply.json?["day"]?["spent_usd"] == .number("0"))
        let none = await TestClient.shared.get(replica.baseURL + "/v1/budget", headers: [("X-Client-ID", seeded.rawValue)])
        #expect(none.status == 401)
        #expect(none.json?["error"]?["code"]?.string == "missing_api_key")
        await replica.stop()
    }

    @Test("a missing or invalid client id, or a bad budget header, is a 400 in OpenAI's error shape",
          arguments: [
              ([(String, String)](), "missing_client_id"),
              ([("X-Client-ID", "has spaces")], "invalid_client_id"),
              ([("X-Client-ID", "fine"), ("X-Budget-Run", "bad{run}")], "invalid_request"),
          ])
    func refused(headers: [(String, String)], code: String) async throws {
        let replica = try await Replica.start(upstream: "http://127.0.0.1:1")
        let reply = await TestClient.shared.get(replica.baseURL + "/v1/budget", headers: headers)
        #expect(reply.status == 400)
        #expect(reply.json?["error"]?["code"]?.string == code)
        #expect(reply.json?["error"]?["type"]?.string == "invalid_request_error")
        #expect(reply.json?["error"]?["message"]?.string?.isEmpty == false)
        await replica.stop()
    }
}
