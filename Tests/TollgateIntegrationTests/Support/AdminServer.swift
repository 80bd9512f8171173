import Foundation
import TollgateCore
import TollgateRedis
import TollgateServer

/// A replica's admin listener alone (API and dashboard) on a free loopback port, over the given
/// Redis; for tests that seed counters directly and read them back over HTTP.
struct AdminServer: Sendable {
    let tollgate: Tollgate
    let url: String
    let server: Task<Void, any Error>
    static let token = "test-admin-token"

    static func start(redisURL: String = TestRedis.url, token: String? = AdminServer.token) async throws -> AdminServer {
        let tollgate = try Replica.makeTollgate(upstream: "http://127.0.0.1:1", redisURL: redisURL,
                                                environment: token.map { ["TOLLGATE_ADMIN_TOKEN": $0] } ?? [:])
        let (port, server) = try await Replica.run { tollgate.adminApplication(onServerRunning: $0) }
        return AdminServer(tollgate: tollgate, url: "http://127.0.0.1:\(port)", server: server)
    }

    /// Runs `body` against a fresh admin listener and stops it afterwards, also when `body` throws.
    static func with<T>(redisURL: String = TestRedis.url, token: String? = AdminServer.token,
                        _ body: (AdminServer) async throws -> T) async throws -> T {
        let server = try await start(redisURL: redisURL, token: token)
        do {
            let result = try await body(server)
            await server.stop()
            return result
        } catch {
            await server.stop()
            throw error
        }
    }

    /// GET with the admin token.
    func get(_ path: String) async -> TestClient.Reply {
        await TestClient.shared.get(url + path, headers: [("Authorization", "Bearer \(Self.token)")])
    }

    func stop() async {
        server.cancel()
        _ = try? await server.value
        tollgate.shutdown()
    }
}

/// Counters written straight into Redis, as the scripts would have left them.
enum Seed {
    static func hash(_ key: String, _ fields: [String: Int64], on redis: RedisConnection = TestRedis.shared) async throws {
        guard !fields.isEmpty else { return }
        _ = try await redis.call(.command(["HSET", key] + fields.sorted { $0.key < $1.key }.flatMap { [$0.key, String($0.value)] }))
    }

    static func top(_ key: String, _ scores: [(String, Int64)], on redis: RedisConnection = TestRedis.shared) async throws {
        _ = try await redis.call(.command(["ZADD", key] + scores.flatMap { [String($0.1), $0.0] }))
    }

    /// A random day between 1990 and 2019, so tests seeding the shared top sets of "their" day
    /// never meet another test's members.
    static func randomPastDay() -> Int64 {
        Int64.random(in: CivilDate.days(year: 1990, month: 1, day: 1)...CivilDate.days(year: 2019, month: 12, day: 1))
    }

    /// Today by Redis TIME in UTC (the tests' budget timezone), computed here rather than by the
    /// code under test.
    static func today(on redis: RedisConnection = TestRedis.shared) async throws -> Int64 {
        let seconds = try await redis.call(.command(["TIME"])).array![0].int!
        return seconds / 86_400
    }
}

/// The elements of a JSON array (none for anything else).
func elements(_ value: JSONValue?) -> [JSONValue] {
    if case .array(let items)? = value { return items }
    return []
}

/// `YYYY-MM-DD` of a day number (days since 1970-01-01).
func dayName(_ days: Int64) -> String {
    let (y, m, d) = CivilDate.fromDays(days)
    return String(format: "%04d-%02d-%02d", Int(y), Int(m), Int(d))
}
