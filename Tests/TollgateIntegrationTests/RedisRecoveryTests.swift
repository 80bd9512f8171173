import Foundation
import Testing
import TollgateCore
import TollgateRedis

/// Budgets are served again once a restarted Redis is, by the link itself. How soon it retries
/// (the backoff, the 100 ms pace while Redis loads) is the state machine's and is unit-tested
/// without a server (RedisLinkStateMachineTests): timing it here only measured how busy the box was.
@Suite("Redis recovery after a restart", .timeLimit(.minutes(2)))
struct RedisRecoveryTests {
    /// Reserves every 10 ms, as steady traffic would, until one is granted: when it was (nil if
    /// never) and the errors of the refused ones before it.
    static func firstGrant(_ store: BudgetStore, _ client: ClientID, until deadline: ContinuousClock.Instant) async -> (at: ContinuousClock.Instant?, errors: [String]) {
        var errors: [String] = []
        while ContinuousClock.now < deadline {
            do {
                if case .granted = try await store.reserve(client, .unique(), estimate: .fixed(1_000)) { return (.now, errors) }
            } catch {
                errors.append("\(error)")
            }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return (nil, errors)
    }

    static func connection(_ redis: SpawnedRedis, scripts: [RedisScript] = TestRedis.scripts.all) -> RedisConnection {
        RedisConnection(endpoint: RedisEndpoint(url: redis.url)!, timeoutMilliseconds: 1_000, scripts: scripts, logger: TestRedis.quietLogger)
    }

    /// A connection to `redis` that has granted a reservation (so its scripts are loaded).
    static func serving(_ redis: SpawnedRedis, _ label: String) async throws -> (RedisConnection, BudgetStore, ClientID) {
        let connection = Self.connection(redis)
        let store = BudgetStore.forTests(redis: connection)
        let client = TestRedis.uniqueClient(label)
        _ = try await store.grant(client, estimate: .fixed(1_000))
        return (connection, store, client)
    }

    @Test("after a restart, reserves are refused as unavailable while Redis is down and granted again once it is back")
    func restart() async throws {
        let redis = try SpawnedRedis()
        let (connection, store, client) = try await Self.serving(redis, "restart")
        defer { connection.shutdown() }
        redis.stop()
        // Down for 1.7 s under steady traffic: every reserve is refused as unavailable, none hangs.
        let down = await Self.firstGrant(store, client, until: .now + .milliseconds(1_700))
        #expect(down.at == nil, "Redis was down")
        #expect(!down.errors.isEmpty && down.errors.allSatisfy { $0.hasPrefix("Redis unavailable") || $0.hasPrefix("Redis connection lost") }, "\(down.errors.prefix(3))")
        try redis.start()
        let back = await Self.firstGrant(store, client, until: .now + .seconds(15))
        #expect(back.at != nil, "the link reconnected and reloaded its scripts by itself")
    }

    /// Polls `INFO persistence` (answered while loading) every 10 ms: when loading ended, and
    /// whether it was ever seen loading.
    static func loadingEnds(_ admin: RedisConnection, until deadline: ContinuousClock.Instant) async -> (ended: ContinuousClock.Instant, sawLoading: Bool)? {
        var sawLoading = false
        while ContinuousClock.now < deadline {
            // Whole lines: Redis 7 also reports `async_loading:0`.
            if let info = try? await admin.call(.command(["INFO", "persistence"])).string?.split(separator: "\r\n") {
                if info.contains("loading:0") { return (.now, sawLoading) }
                sawLoading = sawLoading || info.contains("loading:1")
            }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return nil
    }

    @Test("while Redis loads its dataset (-LOADING), reserves are refused as a load, not a broken link, and granted again after it")
    func loading() async throws {
        let redis = try SpawnedRedis(["--enable-debug-command", "yes"])
        let admin = Self.connection(redis, scripts: [])
        defer { admin.shutdown() }
        _ = try await admin.call(.command(["DEBUG", "POPULATE", "15000"]))
        _ = try await admin.call(.command(["SAVE"]))
        let (connection, store, client) = try await Self.serving(redis, "loading")
        defer { connection.shutdown() }
        redis.stop()
        // About 2 s of loading (50 µs a key), with connections accepted and answered meanwhile.
        try redis.start(["--key-load-delay", "50", "--loading-process-events-interval-bytes", "1024"])
        let deadline = ContinuousClock.now + .seconds(20)
        async let load = Self.loadingEnds(admin, until: deadline)
        async let grant = Self.firstGrant(store, client, until: deadline)
        let (loaded, granted) = await (load, grant)
        let ended = try #require(loaded, "Redis never finished loading")
        #expect(ended.sawLoading, "Redis was loading its dataset")
        #expect(granted.at != nil, "never served again after the load")
        // Recognised as a load (retried at the loading pace), not as a broken connection.
        #expect(granted.errors.contains { $0.contains("loading its dataset") }, "\(granted.errors.prefix(3))")
    }
}
