import Testing
import TollgateCore
@testable import TollgateRedis

/// The cluster client's pure parts: no server needed.
@Suite("Redis Cluster slot map, redirects and routing keys")
struct RedisClusterMapTests {
    static func node(_ host: String, _ port: Int64) -> RedisReply {
        .array([.bulk(Array(host.utf8)), .integer(port), .bulk(Array("id".utf8))])
    }

    @Test("CLUSTER SLOTS becomes a slot → master map; an empty host means the node asked")
    func clusterSlots() throws {
        let reply = RedisReply.array([
            .array([.integer(0), .integer(5460), Self.node("10.0.0.1", 7000), Self.node("10.0.0.4", 7003)]),
            .array([.integer(5461), .integer(10922), Self.node("", 7001)]),
            .array([.integer(10923), .integer(16383), Self.node("10.0.0.3", 7002)]),
        ])
        let map = try #require(RedisClusterMap(clusterSlots: reply, askedHost: "seed.local"))
        #expect(map.master(of: 0) == RedisAddress(host: "10.0.0.1", port: 7000))
        #expect(map.master(of: 5461) == RedisAddress(host: "seed.local", port: 7001))
        #expect(map.master(of: 16383) == RedisAddress(host: "10.0.0.3", port: 7002))
        #expect(map.masters.count == 3)
        #expect(RedisClusterMap(clusterSlots: .array([.array([.integer(0), .integer(16384), Self.node("a", 1)])]), askedHost: "x") == nil)
        #expect(RedisClusterMap(clusterSlots: .error("ERR This instance has cluster support disabled"), askedHost: "x") == nil)
    }

    @Test("MOVED updates one slot; the rest of the map stays")
    func moved() throws {
        var map = try #require(RedisClusterMap(clusterSlots: .array([.array([.integer(0), .integer(16383), Self.node("a", 1)])]), askedHost: "x"))
        map.move(42, to: RedisAddress(host: "b", port: 2))
        #expect(map.master(of: 42) == RedisAddress(host: "b", port: 2))
        #expect(map.master(of: 43) == RedisAddress(host: "a", port: 1))
    }

    @Test("redirect replies are read as Redis writes them", arguments: [
        ("MOVED 3999 127.0.0.1:6381", RedisClusterRedirect.moved(slot: 3999, to: RedisAddress(host: "127.0.0.1", port: 6381))),
        ("ASK 3999 10.0.0.2:7000", .ask(slot: 3999, to: RedisAddress(host: "10.0.0.2", port: 7000))),
        ("MOVED 12 :7001", .moved(slot: 12, to: RedisAddress(host: "asked", port: 7001))),
        ("TRYAGAIN Multiple keys request during rehashing of slot", .retryLater),
        ("CLUSTERDOWN The cluster is down", .retryLater),
    ] as [(String, RedisClusterRedirect)])
    func redirects(message: String, redirect: RedisClusterRedirect) {
        #expect(RedisClusterRedirect(message, askedHost: "asked") == redirect)
    }

    @Test("other errors are not redirects")
    func notRedirects() {
        #expect(RedisClusterRedirect("NOSCRIPT No matching script", askedHost: "a") == nil)
        #expect(RedisClusterRedirect("MOVED 99999 a:1", askedHost: "a") == nil)
    }

    @Test("a command's routing key is the key Redis hashes", arguments: [
        (RedisCommand.command(["HGETALL", "tollgate:{a}:limits"]), "tollgate:{a}:limits"),
        (.command(["XGROUP", "CREATE", "tollgate:{a}:alerts", "g", "0"]), "tollgate:{a}:alerts"),
        (.command(["XREADGROUP", "GROUP", "g", "c", "COUNT", "5", "STREAMS", "tollgate:{a}:alerts", ">"]), "tollgate:{a}:alerts"),
        (.command(["EVALSHA", "abc", "1", "tollgate:verify"]), "tollgate:verify"),
        (.script(RedisScript(name: "s", source: ""), keys: ["tollgate:{b}:limits", "tollgate:{b}:leases"], args: []), "tollgate:{b}:limits"),
        (.command(["PING"]), nil), (.command(["TIME"]), nil), (.command(["SCAN", "0", "MATCH", "x"]), nil),
    ] as [(RedisCommand, String?)])
    func routingKey(command: RedisCommand, key: String?) {
        #expect(command.routingKey == key)
    }
}
