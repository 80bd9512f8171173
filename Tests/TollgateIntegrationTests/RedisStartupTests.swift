import Foundation
import Testing
import TollgateCore
import TollgateRedis

/// The `tollgate` binary with a Redis that wants a password: `serve` stops at start on a wrong
/// one, the CLI logs in with its flags, and no output ever shows a password.
@Suite("Redis login at start, through the binary", .timeLimit(.minutes(2)),
       .enabled(if: ReplicaProcess.binaryExists, "needs the built tollgate binary"))
struct RedisStartupTests {
    static let password = "startup-secret-5"

    /// Runs the binary to its end (killed after 30 s); its exit status and all it printed.
    func run(_ arguments: [String], environment: [String: String]) async throws -> (status: Int32, output: String) {
        try await ChildProcess.run(ReplicaProcess.binary.path, arguments, environment: ChildProcess.environment(environment),
                                   killAfter: .seconds(30))
    }

    func serveEnvironment(_ redis: SpawnedRedis, password: String) throws -> [String: String] {
        ["TOLLGATE_HOST": "127.0.0.1", "TOLLGATE_PORT": String(try SpawnedRedis.freePort()),
         "TOLLGATE_ADMIN_PORT": String(try SpawnedRedis.freePort()), "TOLLGATE_REDIS_URL": redis.url,
         "TOLLGATE_LUA_DIR": ReplicaProcess.repository.appendingPathComponent("lua").path, "TG_TEST_REDIS_PW": password]
    }

    @Test("serve with a wrong Redis password exits non-zero at once, naming redis.password_env and not the password")
    func serveRefused() async throws {
        let redis = try SpawnedRedis(["--requirepass", Self.password])
        let config = redis.dir + "/tollgate.yaml"
        try "redis:\n  password_env: TG_TEST_REDIS_PW\n".write(toFile: config, atomically: true, encoding: .utf8)
        let started = ContinuousClock.now
        let r = try await run(["serve", "--config", config], environment: try serveEnvironment(redis, password: "not-the-password-6"))
        #expect(r.status != 0 && r.status != SIGKILL, "\(r.output)")
        #expect(ContinuousClock.now - started < .seconds(20), "it stopped at start, not at the watchdog")
        #expect(r.output.contains("redis.password_env (TG_TEST_REDIS_PW)") && r.output.contains("WRONGPASS"), "\(r.output)")
        #expect(!r.output.contains("not-the-password-6") && !r.output.contains(Self.password), "\(r.output)")
    }

    @Test("the CLI logs in with --redis-password-env; without it the error says NOAUTH and which flags to use")
    func cliLogin() async throws {
        let redis = try SpawnedRedis(["--requirepass", Self.password])
        let client = TestRedis.uniqueClient("cli-auth")
        let environment = ["TOLLGATE_REDIS_URL": redis.url, "TG_TEST_REDIS_PW": Self.password]
        var r = try await run(["budgets", "set", client.rawValue, "--daily", "3", "--redis-password-env", "TG_TEST_REDIS_PW"], environment: environment)
        #expect(r.status == 0 && r.output.contains("daily $3"), "\(r.output)")
        r = try await run(["budgets", "get", client.rawValue], environment: environment)
        #expect(r.status != 0 && r.output.contains("NOAUTH") && r.output.contains("--redis-password-env"), "\(r.output)")
        #expect(!r.output.contains(Self.password))
    }

    @Test("check-config and a bad URL show the password as *** only")
    func redactedOutput() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tollgate-cfg-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let config = dir + "/tollgate.yaml"
        try "redis:\n  url: rediss://tollgate:\(Self.password)@cache.internal:6380/1\n".write(toFile: config, atomically: true, encoding: .utf8)
        var r = try await run(["check-config", config], environment: [:])
        #expect(r.status == 0 && r.output.contains("rediss://tollgate:***@cache.internal:6380/1"), "\(r.output)")
        #expect(!r.output.contains(Self.password))
        r = try await run(["check-config", config], environment: ["TOLLGATE_REDIS_URL": "redis://:\(Self.password)@cache.internal:99999/0"])
        #expect(r.status != 0 && r.output.contains("redis.url (from TOLLGATE_REDIS_URL)"), "\(r.output)")
        #expect(!r.output.contains(Self.password), "\(r.output)")
    }
}
