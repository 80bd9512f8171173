import Foundation
import Metrics
import Prometheus
import Synchronization
import Testing
import TollgateCore
import TollgateMockProvider
import TollgateRedis

/// The admin API against its OpenAPI document, virtual keys end to end, and the access log.
@Suite("operations", .timeLimit(.minutes(2)))
struct AdminAPITests {
    let token = "test-admin-token"

    @Test("every admin endpoint answers as docs/admin-openapi.yaml says, for good and bad input")
    func matchesOpenAPI() async throws {
        let contract = try OpenAPIContract()
        let mock = try await MockProvider.start()
        let replica = try await Replica.start(upstream: mock.baseURL, environment: ["TOLLGATE_ADMIN_TOKEN": token])
        let (admin, adminServer) = try await replica.startAdmin()
        let client = TestRedis.uniqueClient("adm")
        let auth = [("Authorization", "Bearer \(token)")]
        var covered: Set<String> = []
        let today = try await replica.tollgate.admin.today()

        func call(_ method: String, _ path: String, _ template: String, _ body: String = "", expect status: Int,
                  headers: [(String, String)]? = nil) async -> TestClient.Reply {
            let reply = await TestClient.shared.send(method, admin + path, body, headers: headers ?? auth)
            #expect(reply.status == status, "\(method) \(path): \(reply.text)")
            #expect(contract.check(method: method, template: template, status: reply.status, body: reply.json) == [], "\(method) \(path)")
            covered.insert("\(method) \(template)")
            return reply
        }

        let set = await call("POST", "/v1/budgets", "/v1/budgets", #"{"client_id":"\#(client)","daily_limit_usd":2.5,"monthly_limit_usd":null}"#, expect: 200)
        #expect(set.json?["daily_limit_usd"] == .number("2.5"))
        #expect(set.json?["monthly_is_default"]?.bool == true)
        #expect(try await TestRedis.hash(RedisKeys(client).limits)["daily"] == "2500000000")
        _ = await call("POST", "/v1/budgets", "/v1/budgets", #"{"client_id":"no spaces allowed","daily_limit_usd":1}"#, expect: 400)
        _ = await call("POST", "/v1/budgets", "/v1/budgets", #"{"client_id":"\#(client)","daily_limit_usd":-1}"#, expect: 400)
        _ = await call("POST", "/v1/budgets", "/v1/budgets", #"{"client_id":"\#(client)","daily":1}"#, expect: 400)
        _ = await call("POST", "/v1/budgets", "/v1/budgets", "not json", expect: 400)
        let got = await call("GET", "/v1/budgets/\(client)", "/v1/budgets/{client_id}", expect: 200)
        #expect(got.json?["daily_limit_usd"] == .number("2.5"))
        _ = await call("GET", "/v1/budgets/bad%7Bid%7D", "/v1/budgets/{client_id}", expect: 400)

        // Some real spend, then read it back.
        let proxied = await TestClient.shared.post(replica.baseURL + "/v1/chat/completions",
                                                   #"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#,
                                                   headers: [("X-Client-ID", client.rawValue)])
        #expect(proxied.status == 200)
        #expect(proxied.header("X-Budget-Limit-USD") == "2.5", "a limit set through the admin API applies at once")
        // A non-streamed answer is settled after it is sent: read the spend once it has landed.
        let day = try await TestRedis.periodKeys(client).day
        #expect(try await eventually { (try? await TestRedis.int(day, "spent")).map { $0 > 0 } ?? false })
        let spend = await call("GET", "/v1/spend/\(client)?date=\(today)", "/v1/spend/{client_id}", expect: 200)
        let spent = try #require(spend.json?["day"]?["spent_usd"]?.usd)
        #expect(spent.value == (try await TestRedis.int(day, "spent")))
        #expect(spend.json?["day"]?["requests"]?.int == 1)
        _ = await call("GET", "/v1/spend/\(client)?date=2026-13-01", "/v1/spend/{client_id}", expect: 400)
        #expect(elements(spend.json?["days"]).count == 30, "the last 30 days come along")
        let range = await call("GET", "/v1/spend/\(client)?from=\(today)&to=\(today)", "/v1/spend/{client_id}", expect: 200)
        #expect(range.json?["total"]?["spent_nano_usd"]?.int == spent.value)
        _ = await call("GET", "/v1/spend/\(client)?from=2026-02-30", "/v1/spend/{client_id}", expect: 400)
        _ = await call("GET", "/v1/spend/top?day=\(today)&limit=1000", "/v1/spend/top", expect: 200)
        _ = await call("GET", "/v1/spend/top?month=\(today.prefix(7))", "/v1/spend/top", expect: 200)
        _ = await call("GET", "/v1/spend/top?limit=0", "/v1/spend/top", expect: 400)
        let all = await call("GET", "/v1/spend?date=\(today)", "/v1/spend", expect: 200)
        guard case .array(let rows)? = all.json?["clients"] else { Issue.record("no clients array"); return }
        #expect(rows.contains { $0["client_id"]?.string == client.rawValue })
        let spends = rows.compactMap { $0["day"]?["spent_usd"]?.usd }
        #expect(spends == spends.sorted(by: >), "sorted by spend, highest first")
        _ = await call("GET", "/v1/spend?sort=bogus", "/v1/spend", expect: 400)

        let reset = await call("DELETE", "/v1/budgets/\(client)", "/v1/budgets/{client_id}", expect: 200)
        #expect(reset.json?["daily_is_default"]?.bool == true)
        #expect(reset.json?["daily_limit_usd"] == .number("10"))

        let created = await call("POST", "/v1/keys", "/v1/keys", #"{"client_id":"\#(client)","name":"ci"}"#, expect: 201)
        let keyID = try #require(created.json?["id"]?.string)
        _ = await call("POST", "/v1/keys", "/v1/keys", #"{"client_id":"\#(client)"}"#, expect: 400)
        let listed = await call("GET", "/v1/keys?client_id=\(client)", "/v1/keys", expect: 200)
        #expect(listed.text.contains(keyID))
        #expect(!listed.text.contains("tg-"), "secrets are never listed")
        _ = await call("DELETE", "/v1/keys/\(keyID)", "/v1/keys/{id}", expect: 200)
        _ = await call("DELETE", "/v1/keys/\(keyID)", "/v1/keys/{id}", expect: 404)
        _ = await call("GET", "/v1/keys", "/v1/keys", expect: 401, headers: [("Authorization", "Bearer wrong")])
        _ = await call("GET", "/v1/budgets/\(client)", "/v1/budgets/{client_id}", expect: 401, headers: [])

        #expect(covered == contract.operations, "every documented operation is exercised")
        #expect(!contract.check(method: "GET", template: "/v1/budgets/{client_id}", status: 200, body: .object([])).isEmpty,
                "the contract check itself rejects a body that lacks the required fields")
        adminServer.cancel()
        await replica.stop()
        await mock.stop()
    }

    @Test("the admin listener refuses to start on a public address without a token")
    func adminNeedsToken() async throws {
        #expect(throws: ConfigError.self) {
            _ = try Replica.makeTollgate(upstream: "http://127.0.0.1:1") { $0.admin.host = "0.0.0.0" }
        }
        _ = try Replica.makeTollgate(upstream: "http://127.0.0.1:1", environment: ["TOLLGATE_ADMIN_TOKEN": "x"]) { $0.admin.host = "0.0.0.0" }
    }

    @Test("with clients.auth: keys a virtual key identifies the client, is never sent upstream, and stops working when revoked")
    func virtualKeys() async throws {
        let mock = try await MockProvider.start()
        let replica = try await Replica.start(upstream: mock.baseURL, environment: ["OPENAI_API_KEY": "sk-openai", "ANTHROPIC_API_KEY": "sk-ant"]) {
            $0.clients.auth = .keys
        }
        let client = TestRedis.uniqueClient("key")
        let (info, secret) = try await replica.tollgate.keys.create(client: client, name: "test")
        let chat = #"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#

        let ok = await TestClient.shared.post(replica.baseURL + "/v1/chat/completions", chat, headers: [("Authorization", "Bearer \(secret)")])
        #expect(ok.status == 200)
        #expect(mock.recorder.last?.header("Authorization") == "Bearer sk-openai")
        #expect(!(mock.recorder.last?.headers.contains { $0.value.contains(secret) } ?? true))
        let anthropic = await TestClient.shared.post(replica.baseURL + "/v1/messages", #"{"model":"claude-haiku-4-5","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}"#,
                                                     headers: [("x-api-key", secret)])
        #expect(anthropic.status == 200)
        #expect(mock.recorder.last?.header("x-api-key") == "sk-ant")
        #expect(try await eventually { try await TestRedis.int(try await TestRedis.periodKeys(client).day, "requests") == 2 })

        let wrong = await TestClient.shared.post(replica.baseURL + "/v1/chat/completions", chat, headers: [("Authorization", "Bearer tg-" + String(repeating: "0", count: 48))])
        #expect(wrong.status == 401)
        #expect(wrong.json?["error"]?["code"]?.string == "invalid_api_key")
        let none = await TestClient.shared.post(replica.baseURL + "/v1/messages", chat, headers: [("X-Client-ID", "spoofed")])
        #expect(none.status == 401)
        #expect(none.json?["type"]?.string == "error", "Anthropic's error shape on the Anthropic route")

        #expect(try await replica.tollgate.keys.revoke(id: info.id))
        let revoked = await TestClient.shared.post(replica.baseURL + "/v1/chat/completions", chat, headers: [("Authorization", "Bearer \(secret)")])
        #expect(revoked.status == 401)
        await replica.stop()
        await mock.stop()
    }

    @Test("one JSON access-log line per request, with costs and tokens but never a key or a prompt")
    func accessLog() async throws {
        let lines = Lines()
        let mock = try await MockProvider.start()
        let replica = try await Replica.start(upstream: mock.baseURL, environment: ["OPENAI_API_KEY": "sk-secret-provider-key"],
                                              accessLog: { lines.append($0) })
        let client = TestRedis.uniqueClient("log")
        _ = await TestClient.shared.post(replica.baseURL + "/v1/chat/completions",
                                         #"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"my secret prompt"}]}"#,
                                         headers: [("X-Client-ID", client.rawValue), ("Authorization", "Bearer sk-client-key")])
        _ = await TestClient.shared.post(replica.baseURL + "/v1/chat/completions", #"{"model":"gpt-4o-mini","stream":true,"messages":[]}"#,
                                         headers: [("X-Client-ID", client.rawValue)])
        _ = await TestClient.shared.post(replica.baseURL + "/v1/chat/completions", "{", headers: [("X-Client-ID", client.rawValue)])
        #expect(try await eventually { lines.all.count == 3 })
        let entries = lines.all.compactMap { try? JSONValue.parse($0) }
        #expect(entries.count == 3)
        let first = try #require(entries.first { $0["stream"]?.bool == false && $0["status"]?.int == 200 })
        for field in ["time", "request_id", "client", "model", "route", "stream", "status", "outcome", "estimate_usd", "cost_usd",
                      "input_tokens", "output_tokens", "upstream_ms", "total_ms"] {
            #expect(first[field] != nil, "access log has \(field)")
        }
        #expect(first["client"]?.string == client.rawValue)
        #expect(entries.contains { $0["stream"]?.bool == true && $0["outcome"]?.string == "forwarded" })
        #expect(entries.contains { $0["status"]?.int == 400 && $0["outcome"]?.string == "bad_request" })
        for line in lines.all {
            #expect(!line.contains("secret"), "no prompt or key in \(line)")
            #expect(!line.contains("sk-"))
        }
        await replica.stop()
        await mock.stop()
    }
}

@Suite("metrics", .timeLimit(.minutes(2)))
struct MetricsTests {
    /// swift-metrics can be bootstrapped once per process; this suite owns it.
    static let registry: PrometheusCollectorRegistry = {
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        return registry
    }()

    @Test("/metrics counts requests by route, model, status and outcome")
    func metrics() async throws {
        let registry = Self.registry
        let mock = try await MockProvider.start()
        let replica = try await Replica.start(upstream: mock.baseURL, metrics: registry)
        let client = TestRedis.uniqueClient("metrics")
        _ = try await TestRedis.shared.call(.command(["HSET", RedisKeys(client).limits, "daily", "1"]))
        _ = await TestClient.shared.post(replica.baseURL + "/v1/embeddings", #"{"model":"text-embedding-3-small","input":"x"}"#,
                                         headers: [("X-Client-ID", "metrics-ok")])
        _ = await TestClient.shared.post(replica.baseURL + "/v1/chat/completions", #"{"model":"gpt-4o-mini","messages":[]}"#,
                                         headers: [("X-Client-ID", client.rawValue)])
        let text = await TestClient.shared.get(replica.baseURL + "/metrics").text
        #expect(text.contains(#"tollgate_requests_total{route="/v1/embeddings",model="text-embedding-3-small",status="200",outcome="forwarded"}"#))
        #expect(text.contains(#"outcome="refused_budget""#))
        #expect(text.contains("tollgate_reserve_duration_seconds_count"))
        #expect(text.contains("tollgate_spent_nanousd_total"))
        await replica.stop()
        await mock.stop()
    }
}

final class Lines: Sendable {
    private let lines = Mutex<[String]>([])
    func append(_ line: String) { lines.withLock { $0.append(line) } }
    var all: [String] { lines.withLock { $0 } }
}
