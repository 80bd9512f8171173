import Testing
@testable import TollgateCore

@Suite("Redis Cluster slots and the cluster / sentinel settings")
struct RedisTopologyConfigTests {
    /// The cluster spec's CRC16 check value ("123456789" → 0x31C3, XMODEM), and slots that a real
    /// redis-server 7.0 reports with CLUSTER KEYSLOT, including the spec's hash-tag examples.
    @Test("CRC16 is XMODEM, the cluster spec's check value")
    func crc16() {
        #expect(RedisHashSlot.crc16(Array("123456789".utf8)[...]) == 0x31C3)
    }

    @Test("a key's slot follows the {hash tag} rule as Redis computes it", arguments: [
        ("123456789", 12739), ("user1000", 3443), ("{user1000}.following", 3443), ("{user1000}.followers", 3443),
        ("foo{}{bar}", 8363), ("foo{{bar}}zap", 4015), ("{bar", 4015), ("foo{bar}{zap}", 5061), ("bar", 5061),
    ])
    func slot(key: String, slot: Int) {
        #expect(RedisHashSlot.of(key) == slot)
    }

    @Test("every key of one client shares the client's slot")
    func clientKeys() {
        let keys = RedisKeys(ClientID("acme-prod")!)
        let slot = RedisHashSlot.of(keys.limits)
        #expect([keys.leases, keys.alerts, keys.day("2026-12-01"), keys.day("2026-12-02"), keys.month("2026-12")].allSatisfy { RedisHashSlot.of($0) == slot })
        #expect(slot == RedisHashSlot.of("acme-prod"))
    }

    @Test("cluster_nodes alone selects cluster mode, and the sentinel settings select sentinel mode")
    func modes() throws {
        let cluster = try TollgateConfig.load(yaml: "redis: { cluster_nodes: ['10.0.0.1:6379', '[::1]:7000'] }")
        #expect(try cluster.redis.topology(environment: [:]) == .cluster(seeds: [RedisAddress(host: "10.0.0.1", port: 6379), RedisAddress(host: "::1", port: 7000)]))
        #expect(cluster.redis.effectiveWaitReplicas == 1)
        let sentinel = try TollgateConfig.load(yaml: """
            redis: { sentinels: 's1:26379, s2:26379', sentinel_master: mymaster, sentinel_password_env: SENTINEL_PW, wait_replicas: 0 }
            """)
        guard case .sentinel(let s) = try sentinel.redis.topology(environment: ["SENTINEL_PW": "pw"]) else { Issue.record("not sentinel"); return }
        #expect(s.addresses == [RedisAddress(host: "s1", port: 26379), RedisAddress(host: "s2", port: 26379)] && s.master == "mymaster")
        #expect(s.password?.value == "pw" && sentinel.redis.effectiveWaitReplicas == 0)
        #expect(try TollgateConfig.load(yaml: "").redis.effectiveWaitReplicas == 0)
    }

    @Test("a cluster or sentinel mistake names its key", arguments: [
        ("redis: { mode: cluster }", "redis.cluster_nodes"),
        ("redis: { mode: shard }", "redis.mode"),
        ("redis: { cluster_nodes: [cache] }", "redis.cluster_nodes"),
        ("redis: { cluster_nodes: ['a:1'], url: 'redis://a/2' }", "redis.url"),
        ("redis: { cluster_nodes: ['a:1'], sentinels: ['b:2'] }", "redis.sentinels"),
        ("redis: { mode: single, cluster_nodes: ['a:1'] }", "redis.cluster_nodes"),
        ("redis: { sentinels: ['b:26379'] }", "redis.sentinel_master"),
        ("redis: { mode: sentinel, sentinel_master: m }", "redis.sentinels"),
        ("redis: { sentinel_master: m }", "redis.sentinel_master"),
        ("redis: { sentinels: ['b:26379'], sentinel_master: m, sentinel_username: u }", "redis.sentinel_username"),
        ("redis: { wait_replicas: -1 }", "redis.wait_replicas"),
    ])
    func mistakes(yaml: String, key: String) {
        let error = #expect(throws: ConfigError.self) { try TollgateConfig.load(yaml: yaml) }
        #expect(error?.key == key, "\(String(describing: error))")
    }
}
