import Foundation
import Testing
import TollgateCore
import TollgateRedis

/// The `tollgate` binary's operator commands, run as a process against the real test Redis.
@Suite("CLI", .timeLimit(.minutes(2)), .enabled(if: ReplicaProcess.binaryExists, "needs the built tollgate binary"))
struct CLITests {
    func run(_ arguments: [String]) throws -> (status: Int32, output: String) {
        let p = Process()
        p.executableURL = ReplicaProcess.binary
        p.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        environment["TOLLGATE_REDIS_URL"] = TestRedis.url
        p.environment = environment
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        try p.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    @Test("budgets set/get/reset, spend and keys work against Redis with no replica running")
    func operatorCommands() async throws {
        let client = TestRedis.uniqueClient("cli")
        var r = try run(["budgets", "set", client.rawValue, "--daily", "5", "--monthly", "100.25"])
        #expect(r.status == 0, "\(r.output)")
        #expect(try await TestRedis.hash(RedisKeys(client).limits) == ["daily": "5000000000", "monthly": "100250000000"])
        r = try run(["budgets", "get", client.rawValue])
        #expect(r.output.contains("daily $5,") && r.output.contains("monthly $100.25"))
        r = try run(["budgets", "reset", client.rawValue])
        #expect(r.output.contains("(default)"))

        let store = BudgetStore.forTests()
        let grant = try await store.grant(client, estimate: .fixed(1_500_000))
        _ = try await store.settle(client, grant.lease, actual: NanoUSD(1_234_567))
        r = try run(["spend", client.rawValue, "--json"])
        let rows = try JSONValue.parse(r.output.trimmingCharacters(in: .whitespacesAndNewlines))
        guard case .array(let list) = rows, let row = list.first else { Issue.record("not a JSON array: \(r.output)"); return }
        #expect(row["day"]?["spent_usd"] == .number("0.001234567"))
        #expect(row["day"]?["requests"]?.int == 1)
        r = try run(["spend"])
        #expect(r.output.contains(client.rawValue) && r.output.contains("$0.001234567"), "the table lists the client")

        r = try run(["keys", "create", client.rawValue, "--name", "cli-test"])
        let secret = try #require(r.output.split(separator: "\n").first.map(String.init))
        #expect(VirtualKey.looksLikeKey(secret))
        #expect(try await VirtualKeyStore(redis: TestRedis.shared).client(forSecret: secret) == client)
        r = try run(["keys", "list", "--client", client.rawValue])
        let keyID = try #require(r.output.split(separator: " ").first.map(String.init))
        #expect(!r.output.contains(secret))
        r = try run(["keys", "revoke", keyID])
        #expect(r.status == 0)
        #expect(try await VirtualKeyStore(redis: TestRedis.shared).client(forSecret: secret) == nil)

        r = try run(["budgets", "set", "bad client", "--daily", "5"])
        #expect(r.status != 0 && r.output.contains("must be"))
        r = try run(["budgets", "set", client.rawValue, "--daily", "lots"])
        #expect(r.status != 0 && r.output.contains("USD amount"))
    }

    @Test("budget set takes policy options, budget show prints the policy in force, and 'default' removes a value")
    func policyCommands() async throws {
        let client = TestRedis.uniqueClient("clipol")
        var r = try run(["budget", "set", client.rawValue, "--on-limit", "warn", "--downgrade-at", "80", "--downgrade", "gpt-4o=gpt-4o-mini",
                         "--downgrade", "o3=none", "--loop-max", "20", "--loop-window", "60", "--run-limit", "5"])
        #expect(r.status == 0, "\(r.output)")
        #expect(try await TestRedis.hash(RedisKeys(client).limits) == [
            "on_limit": "warn", "downgrade_at": "80", "downgrade:gpt-4o": "gpt-4o-mini", "downgrade:o3": "none",
            "loop_max": "20", "loop_window": "60", "run_limit": "5000000000",
        ])
        r = try run(["budget", "show", client.rawValue])
        #expect(r.status == 0, "\(r.output)")
        #expect(r.output.contains("daily $10 (default)"))
        #expect(r.output.contains("on limit:      warn\n"), "\(r.output)")
        #expect(r.output.contains("downgrade at:  80%\n"))
        #expect(r.output.contains("gpt-4o -> gpt-4o-mini\n") && r.output.contains("o3 -> none\n"))
        #expect(r.output.contains("loop breaker:  20 repeats, window 60 s\n"))
        #expect(r.output.contains("run limit:     $5\n"))

        r = try run(["budgets", "set", client.rawValue, "--on-limit", "default", "--downgrade", "o3=default", "--daily", "1e-06"])
        #expect(r.status == 0, "\(r.output)")
        #expect(try await TestRedis.hash(RedisKeys(client).limits) == [
            "daily": "1000", "downgrade_at": "80", "downgrade:gpt-4o": "gpt-4o-mini", "loop_max": "20", "loop_window": "60", "run_limit": "5000000000",
        ])
        #expect(r.output.contains("on limit:      block (default)"), "\(r.output)")

        for (arguments, hint) in [(["--on-limit", "sometimes"], "block, warn, stop"), (["--downgrade", "gpt-4o"], "MODEL=CHEAPER"),
                                  (["--downgrade-at", "101"], "from 0 to 100"), (["--loop-window", "0"], "from 1 to 86400"),
                                  (["--run-limit", "lots"], "USD amount"), ([], "give --daily")] {
            r = try run(["budgets", "set", client.rawValue] + arguments)
            #expect(r.status != 0 && r.output.contains(hint), "\(arguments): \(r.output)")
        }
        r = try run(["budgets", "reset", client.rawValue])
        #expect(try await TestRedis.hash(RedisKeys(client).limits) == [:])
        #expect(r.output.contains("on limit:      block (default)"))
    }
}
