import Foundation
import Testing
import TollgateCore
import TollgateRedis

/// How soon budgets are served again once a restarted Redis is. Every reserve the link refuses
/// after that is a 503 a client did not need to see.
@Suite("Redis recovery after a restart", .timeLimit(.minutes(2)))
struct RedisRecoveryTests {
    /// Generous for a 2-core box running the whole suite at once (0.95 s seen there; alone it is
    /// well under 0.3 s). The old backoff, growing to 2 s, measured 1.31 and 1.47 s unloaded.
    static let bound = Duration.milliseconds(1_200)

    /// Reserves every 10 ms, as steady traffic would, until one is granted; when it was, or nil.
    static func firstGrant(_ store: BudgetStore, _ client: ClientID, until deadline: ContinuousClock.Instant) async -> ContinuousClock.Instant? {
        while ContinuousClock.now < deadline {
            if case .granted? = try? await store.reserve(client, .unique(), estimate: .fixed(1_000)) { return .now }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return nil
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

    @Test("after a restart, the first reserve is granted soon after Redis accepts connections")
    func restart() async throws {
        let redis = try SpawnedRedis()
        let (connection, store, client) = try await Self.serving(redis, "restart")
        defer { connection.shutdown() }
        redis.stop()
        // Down for 1.7 s under steady traffic: a backoff doubling to 2 s would next try ~1.5 s later.
        #expect(await Self.firstGrant(store, client, until: .now + .milliseconds(1_700)) == nil, "Redis was down")
        try redis.start()
        let back = ContinuousClock.now
        let granted = try #require(await Self.firstGrant(store, client, until: back + .seconds(10)))
        #expect(granted - back < Self.bound, "served again \(granted - back) after Redis was")
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

    @Test("while Redis loads its dataset (-LOADING), the link retries quickly: the first reserve is granted soon after the load's end")
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
        let first = try #require(granted)
        #expect(first - ended.ended < Self.bound, "served again \(first - ended.ended) after the load ended")
    }
}
