import Foundation
import Testing
import TollgateCore
import TollgateRedis

/// The `tollgate` binary's operator commands, run as a process against the real test Redis.
@Suite("CLI", .timeLimit(.minutes(2)), .enabled(if: ReplicaProcess.binaryExists, "needs the built tollgate binary"))
struct CLITests {
    func run(_ arguments: [String]) async throws -> (status: Int32, output: String) {
        try await ChildProcess.run(ReplicaProcess.binary.path, arguments,
                                   environment: ChildProcess.environment(["TOLLGATE_REDIS_URL": TestRedis.url]))
    }

    @Test("budgets set/get/reset, spend and keys work against Redis with no replica running")
    func operatorCommands() async throws {
        let client = TestRedis.uniqueClient("cli")
        var r = try await run(["budgets", "set", client.rawValue, "--daily", "5", "--monthly", "100.25"])
        #expect(r.status == 0, "\(r.output)")
        #expect(try await TestRedis.hash(RedisKeys(client).limits) == ["daily": "5000000000", "monthly": "100250000000"])
        r = try await run(["budgets", "get", client.rawValue])
        #expect(r.output.contains("daily $5,") && r.output.contains("monthly $100.25"))
        r = try await run(["budgets", "reset", client.rawValue])
        #expect(r.output.contains("(default)"))

        let store = BudgetStore.forTests()
        let grant = try await store.grant(client, estimate: .fixed(1_500_000))
        _ = try await store.settle(client, grant.lease, actual: NanoUSD(1_234_567))
        r = try await run(["spend", client.rawValue, "--json"])
        let rows = try JSONValue.parse(r.output.trimmingCharacters(in: .whitespacesAndNewlines))
        guard case .array(let list) = rows, let row = list.first else { Issue.record("not a JSON array: \(r.output)"); return }
        #expect(row["day"]?["spent_usd"] == .number("0.001234567"))
        #expect(row["day"]?["requests"]?.int == 1)
        r = try await run(["spend"])
        #expect(r.output.contains(client.rawValue) && r.output.contains("$0.001234567"), "the table lists the client")

        r = try await run(["keys", "create", client.rawValue, "--name", "cli-test"])
        let secret = try #require(r.output.split(separator: "\n").first.map(String.init))
        #expect(VirtualKey.looksLikeKey(secret))
        #expect(try await VirtualKeyStore(redis: TestRedis.shared).client(forSecret: secret) == client)
        r = try await run(["keys", "list", "--client", client.rawValue])
        let keyID = try #require(r.output.split(separator: " ").first.map(String.init))
        #expect(!r.output.contains(secret))
        r = try await run(["keys", "revoke", keyID])
        #expect(r.status == 0)
        #expect(try await VirtualKeyStore(redis: TestRedis.shared).client(forSecret: secret) == nil)

        r = try await run(["budgets", "set", "bad client", "--daily", "5"])
        #expect(r.status != 0 && r.output.contains("must be"))
        r = try await run(["budgets", "set", client.rawValue, "--daily", "lots"])
        #expect(r.status != 0 && r.output.contains("USD amount"))
    }

    @Test("budget set takes policy options, budget show prints the policy in force, and 'default' removes a value")
    func policyCommands() async throws {
        let client = TestRedis.uniqueClient("clipol")
        var r = try await run(["budget", "set", client.rawValue, "--on-limit", "warn", "--downgrade-at", "80", "--downgrade", "gpt-4o=gpt-4o-mini",
                         "--downgrade", "o3=none", "--loop-max", "20", "--loop-window", "60", "--run-limit", "5"])
        #expect(r.status == 0, "\(r.output)")
        #expect(try await TestRedis.hash(RedisKeys(client).limits) == [
            "on_limit": "warn", "downgrade_at": "80", "downgrade:gpt-4o": "gpt-4o-mini", "downgrade:o3": "none",
            "loop_max": "20", "loop_window": "60", "run_limit": "5000000000",
        ])
        r = try await run(["budget", "show", client.rawValue])
        #expect(r.status == 0, "\(r.output)")
        #expect(r.output.contains("daily $10 (default)"))
        #expect(r.output.contains("on limit:      warn\n"), "\(r.output)")
        #expect(r.output.contains("downgrade at:  80%\n"))
        #expect(r.output.contains("gpt-4o -> gpt-4o-mini\n") && r.output.contains("o3 -> none\n"))
        #expect(r.output.contains("loop breaker:  20 repeats, window 60 s\n"))
        #expect(r.output.contains("run limit:     $5\n"))

        r = try await run(["budgets", "set", client.rawValue, "--on-limit", "default", "--downgrade", "o3=default", "--daily", "1e-06"])
        #expect(r.status == 0, "\(r.output)")
        #expect(try await TestRedis.hash(RedisKeys(client).limits) == [
            "daily": "1000", "downgrade_at": "80", "downgrade:gpt-4o": "gpt-4o-mini", "loop_max": "20", "loop_window": "60", "run_limit": "5000000000",
        ])
        #expect(r.output.contains("on limit:      block (default)"), "\(r.output)")

        for (arguments, hint) in [(["--on-limit", "sometimes"], "block, warn, stop"), (["--downgrade", "gpt-4o"], "MODEL=CHEAPER"),
                                  (["--downgrade-at", "101"], "from 0 to 100"), (["--loop-window", "0"], "from 1 to 86400"),
                                  (["--run-limit", "lots"], "USD amount"), ([], "give --daily")] {
            r = try await run(["budgets", "set", client.rawValue] + arguments)
            #expect(r.status != 0 && r.output.contains(hint), "\(arguments): \(r.output)")
        }
        r = try await run(["budgets", "reset", client.rawValue])
        #expect(try await TestRedis.hash(RedisKeys(client).limits) == [:])
        #expect(r.output.contains("on limit:      block (default)"))
    }

    @Test("spend --by model / --by day over --days, for one client or every client that spent, as CSV, a table or JSON")
    func spendBreakdown() async throws {
        let (a, b) = (TestRedis.uniqueClient("clia"), TestRedis.uniqueClient("clib"))
        let first = Seed.randomPastDay()
        let (d1, d2, d3) = (dayName(first), dayName(first + 1), dayName(first + 2))
        // A model name with a comma and quotes (clients choose it), and spend no model accounts for.
        try await Seed.hash(RedisKeys(a).day(d1), ["spent": 1_500_000_000, "requests": 3, "model:gpt-4o": 1_000_000_000, #"model:gpt,"4""#: 400_000_000])
        try await Seed.hash(RedisKeys(b).day(d2), ["spent": 2_000_000_000, "requests": 4, "model:gpt-4o": 2_000_000_000])
        try await Seed.hash(RedisKeys(a).day(d3), ["spent": 250_000_001, "requests": 1, "refused": 2, "model:gpt-4o-mini": 250_000_001])
        try await Seed.top(SharedRedisKeys.topDay(d1), [(a.rawValue, 1_500_000_000)])
        try await Seed.top(SharedRedisKeys.topDay(d2), [(b.rawValue, 2_000_000_000)])
        try await Seed.top(SharedRedisKeys.topDay(d3), [(a.rawValue, 250_000_001)])

        let byModel = #"""
            model,spent_nano_usd,spent_usd,share_percent
            gpt-4o,1000000000,1,57.1
            "gpt,""4""",400000000,0.4,22.8
            gpt-4o-mini,250000001,0.250000001,14.2
            (not by model),100000000,0.1,5.7

            """#
        var r = try await run(["spend", "--by", "model", "--days", "3", "--date", d3, "--client", a.rawValue, "--csv"])
        #expect(r.status == 0 && r.output == byModel, "\(r.output)")
        let byDay = """
            date,spent_nano_usd,spent_usd,requests,refused,downgrades,loop_trips
            \(d1),1500000000,1.5,3,0,0,0
            \(d2),2000000000,2,4,0,0,0
            \(d3),250000001,0.250000001,1,2,0,0

            """
        r = try await run(["spend", "--by", "day", "--days", "3", "--date", d3, "--csv"])
        #expect(r.status == 0 && r.output == byDay, "every client in the days' top sets, summed: \(r.output)")
        r = try await run(["spend", a.rawValue, "--by", "model", "--days", "3", "--date", d3])
        #expect(r.output.hasPrefix("Spend by model, \(d1) to \(d3), client \(a)\nMODEL"), "\(r.output)")
        let lines = r.output.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
        #expect(lines.contains(["MODEL", "SPENT", "SHARE"]) && lines.contains(["gpt-4o", "$1", "57.1%"]), "\(r.output)")
        #expect(lines.contains(["(not", "by", "model)", "$0.1", "5.7%"]), "\(r.output)")
        r = try await run(["spend", "--by", "model", "--days", "3", "--date", d3, "--client", a.rawValue, "--json"])
        let json = try JSONValue.parse(r.output.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(json["client_id"]?.string == a.rawValue && json["total"]?["spent_nano_usd"]?.int == 1_750_000_001)
        r = try await run(["spend", a.rawValue, "--date", d1, "--csv"])
        #expect(r.output == "client,date,day_spent_usd,reserved_usd,day_limit_usd,left_today_usd,requests,refused,month_spent_usd,month_limit_usd\n"
                + "\(a),\(d1),1.5,0,10,8.5,3,0,0,200\n", "\(r.output)")

        for (arguments, hint) in [(["--by", "model", "--days", "0"], "--days must be from 1 to 400"), (["--days", "3"], "--days needs --by"),
                                  (["--csv", "--json"], "not both"), (["--by", "week"], "model"), (["x", "--client", "y"], "give the client once")] {
            r = try await run(["spend"] + arguments)
            #expect(r.status != 0 && r.output.contains(hint), "\(arguments): \(r.output)")
        }
    }
}
