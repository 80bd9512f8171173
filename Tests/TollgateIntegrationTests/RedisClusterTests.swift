import Foundation
import Synchronization
import Testing
import TollgateCore
import TollgateMockProvider
@testable import TollgateRedis

extension HeavySuites {
/// Tollgate against a real Redis Cluster (3 masters, 3 replicas) started by the test. Not to be
/// confused with `ClusterTests`, which run Tollgate replicas behind nginx on one Redis.
@Suite("Redis Cluster", .timeLimit(.minutes(3)))
struct RedisClusterTests {
    static func connection(_ cluster: SpawnedCluster, scripts: [RedisScript] = TestRedis.scripts.all) -> RedisConnection {
        RedisConnection(endpoint: RedisEndpoint(url: "redis://127.0.0.1:6379/0")!, timeoutMilliseconds: 2_000, scripts: scripts,
                        logger: TestRedis.quietLogger, topology: .cluster(seeds: cluster.seeds), waitReplicas: 1)
    }

    /// A tag whose slot another master serves than `other`'s.
    static func tag(awayFrom other: String, in cluster: SpawnedCluster) async throws -> String {
        let owner = try await cluster.master(ofSlot: RedisHashSlot.of(other)).master
        for i in 0..<100 where try await cluster.master(ofSlot: RedisHashSlot.of("t\(i)")).master != owner { return "t\(i)" }
        throw SpawnedCluster.Failure(description: "every tag on one master")
    }

    @Test("a replica that joins after Tollgate read the slot map is waited on (WAIT) within seconds, without any redirect")
    func replicaJoiningLaterIsWaitedOn() async throws {
        let cluster = try await SpawnedCluster.start()
        defer { cluster.stop() }
        let (master, replicaPort) = try await cluster.master(ofSlot: RedisHashSlot.of("acme"))
        let replica = try #require(cluster.nodes.first { $0.port == replicaPort })
        // The replica is down and known to have failed before Tollgate reads the map: no WAIT to that master.
        replica.stop()
        try await SpawnedCluster.waitUntil(port: master, "CLUSTER NODES shows the replica failed") { nodes in
            nodes.split(separator: "\n").contains { $0.contains("slave") && $0.contains("fail") && !$0.contains("fail?") }
        }
        let probe = RedisScript(name: "probe", source: "return redis.call('HINCRBY', KEYS[1], 'n', 1)")
        let redis = Self.connection(cluster, scripts: [probe])
        defer { redis.shutdown() }
        func waits() async throws -> Int { try await SpawnedCluster.waitCalls(port: master) }
        _ = try await redis.send(.script(probe, keys: ["tollgate:{acme}:limits"], args: []))
        #expect(try await waits() == 0, "a master without a healthy replica is not waited on")
        // It comes back (same node id, from its nodes.conf) and syncs; nothing redirects Tollgate.
        try replica.start(["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "1000"])
        try await cluster.waitUntilSynced(replicaPort)
        var waited = 0
        for _ in 0..<150 where waited == 0 {
            _ = try await redis.send(.script(probe, keys: ["tollgate:{acme}:limits"], args: []))
            waited = try await waits()
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(waited > 0, "the slot map was re-read and the joined replica waited on")
    }

    @Test("a script rerun after NOSCRIPT (scripts flushed, or a promoted replica that never loaded them) is waited on (WAIT) behind the rerun")
    func rerunIsWaitedOn() async throws {
        let cluster = try await SpawnedCluster.start()
        defer { cluster.stop() }
        let (master, _) = try await cluster.master(ofSlot: RedisHashSlot.of("acme"))
        let probe = RedisScript(name: "probe", source: "return redis.call('HINCRBY', KEYS[1], 'n', 1)")
        let redis = Self.connection(cluster, scripts: [probe])
        defer { redis.shutdown() }
        func waits() async throws -> Int { try await SpawnedCluster.waitCalls(port: master) }
        var n: Int64 = 0
        // Until Tollgate's slot map lists the master's replica (it is waited on from then on).
        for _ in 0..<150 where try await waits() == 0 {
            n = try #require(try await redis.send(.script(probe, keys: ["tollgate:{acme}:limits"], args: [])).int)
            try await Task.sleep(for: .milliseconds(100))
        }
        let before = try await waits()
        #expect(before > 0, "the master's writes are waited on")
        #expect(try await SpawnedCluster.cli(["-p", String(master), "SCRIPT", "FLUSH"]).status == 0)
        #expect(try await redis.send(.script(probe, keys: ["tollgate:{acme}:limits"], args: [])).int == n + 1, "rerun once")
        // One WAIT went behind the refused call (it confirmed nothing of the rerun), one behind the rerun.
        #expect(try await waits() == before + 2)
    }

    @Test("Redis 7 Cluster lets a script touch undeclared keys of its own slot (the day and month hashes) and refuses another slot's")
    func undeclaredSameSlotKeys() async throws {
        let cluster = try await SpawnedCluster.start()
        defer { cluster.stop() }
        let probe = RedisScript(name: "probe", source: "redis.call('HSET', ARGV[1], 'x', ARGV[2]); return redis.call('HGET', ARGV[1], 'x')")
        let redis = Self.connection(cluster, scripts: [probe])
        defer { redis.shutdown() }
        // The budget scripts' case: KEYS[1] declares the client's slot, the period hash is computed in the script.
        let same = try await redis.send(.script(probe, keys: ["tollgate:{acme}:limits"], args: ["tollgate:{acme}:day:2026-12-31", "7"]))
        #expect(same == .bulk(Array("7".utf8)))
        let away = try await Self.tag(awayFrom: "acme", in: cluster)
        let other = try await redis.send(.script(probe, keys: ["tollgate:{acme}:limits"], args: ["tollgate:{\(away)}:day:2026-12-31", "7"]))
        guard case .error(let message) = other else { Issue.record("a key of another master's slot was accepted: \(other)"); return }
        #expect(message.contains("non local key"), "\(message)")
    }

    @Test("commands go to their slot's master, SCAN covers every master, and MOVED and ASK are followed")
    func routingAndRedirects() async throws {
        let cluster = try await SpawnedCluster.start()
        defer { cluster.stop() }
        let redis = Self.connection(cluster)
        defer { redis.shutdown() }
        let clients = (0..<30).map { _ in TestRedis.uniqueClient("rt") }
        _ = try await redis.calls(clients.map { .command(["HSET", RedisKeys($0).limits, "daily", "1"]) })
        for client in clients.prefix(5) {
            let owner = try await cluster.master(ofSlot: RedisHashSlot.of(client.rawValue)).master
            let direct = try await SpawnedCluster.cli(["-p", String(owner), "HGET", RedisKeys(client).limits, "daily"]).output
            #expect(direct.trimmingCharacters(in: .whitespacesAndNewlines) == "1", "the key lives on its slot's master")
        }
        let found = try await redis.scan(match: "tollgate:{rt-*}:limits")
        #expect(Set(found) == Set(clients.map { RedisKeys($0).limits }), "SCAN reached every master")

        // MOVED: an empty slot handed to another master behind the connection's back.
        let tag = "moved-\(UUID().uuidString.prefix(6))"
        let key = "tollgate:{\(tag)}:limits"
        let slot = RedisHashSlot.of(key)
        let from = try await cluster.master(ofSlot: slot).master
        let to = try await cluster.master(ofSlot: RedisHashSlot.of(try await Self.tag(awayFrom: tag, in: cluster))).master
        _ = try await redis.call(.command(["GET", key])) // the map now names `from`
        let toID = try await cluster.id(of: to)
        // The new owner's epoch first becomes the highest, so no late gossip from the old owner
        // can hand the slot back (a MOVED ping-pong that once failed this test on a busy box).
        _ = try await SpawnedCluster.cli(["-p", String(to), "CLUSTER", "BUMPEPOCH"])
        for node in cluster.nodes { _ = try await SpawnedCluster.cli(["-p", String(node.port), "CLUSTER", "SETSLOT", String(slot), "NODE", toID]) }
        #expect(try await eventually {
            var agreed = true
            for node in cluster.nodes where node.port != to {
                let answer = try await SpawnedCluster.cli(["-p", String(node.port), "GET", key]).output
                agreed = agreed && answer.contains("MOVED \(slot) ") && answer.contains(":\(to)")
            }
            return agreed
        }, "every node names the new owner")
        _ = try await redis.call(.command(["HSET", key, "daily", "2"]))
        #expect(try await SpawnedCluster.cli(["-p", String(to), "HGET", key, "daily"]).output.hasPrefix("2"), "MOVED was followed to the new master")

        // ASK: the slot migrates back; a key not yet on the source is answered with ASK.
        let fromID = try await cluster.id(of: from)
        let askKey = "tollgate:{\(tag)}:other"
        #expect(RedisHashSlot.of(askKey) == slot)
        _ = try await SpawnedCluster.cli(["-p", String(from), "CLUSTER", "SETSLOT", String(slot), "IMPORTING", toID])
        _ = try await SpawnedCluster.cli(["-p", String(to), "CLUSTER", "SETSLOT", String(slot), "MIGRATING", fromID])
        _ = try await redis.call(.command(["HSET", askKey, "f", "3"]))
        // Read without ASKING, the importing node would answer MOVED: list the slot's keys instead.
        let imported = try await SpawnedCluster.cli(["-p", String(from), "CLUSTER", "GETKEYSINSLOT", String(slot), "10"]).output
        #expect(imported.contains(askKey), "ASK was followed with ASKING to the importing node: \(imported)")
    }

    @Test("failover under load: a master is SIGKILLed while 3 Tollgate replicas race clients against tight budgets; no overshoot, no lost settlement")
    func failoverUnderLoad() async throws {
        let cluster = try await SpawnedCluster.start()
        defer { cluster.stop() }
        let mock = try await MockProvider.start()
        let seeds = cluster.seeds
        // Tollgate runs as the ACL user docs/operations.md documents (ACLs are per node).
        let acl = try RedisAuthTLSTests.documentedACL(password: "cluster-password-3")
        for node in cluster.nodes { #expect(try await SpawnedCluster.cli(["-p", String(node.port)] + acl).output.hasPrefix("OK")) }
        var started: [Replica] = []
        for _ in 0..<3 {
            started.append(try await Replica.start(upstream: mock.baseURL, environment: ["TEST_CLUSTER_PASSWORD": "cluster-password-3"]) { config in
                config.redis.username = "tollgate"
                config.redis.passwordEnv = "TEST_CLUSTER_PASSWORD"
                config.redis.mode = .cluster
                config.redis.clusterNodes = seeds
                config.redis.timeoutMilliseconds = 1_000
                config.budget.leaseSeconds = 5
            })
        }
        let replicas = started
        let redis = Self.connection(cluster)
        defer { redis.shutdown() }

        // Half the clients live on the master that will be killed.
        var onVictim: [ClientID] = [], elsewhere: [ClientID] = []
        let victim = try await cluster.master(ofSlot: RedisHashSlot.of("victim-probe"))
        while onVictim.count < 3 || elsewhere.count < 3 {
            let client = TestRedis.uniqueClient("fo")
            let owner = try await cluster.master(ofSlot: RedisHashSlot.of(client.rawValue)).master
            if owner == victim.master { if onVictim.count < 3 { onVictim.append(client) } } else if elsewhere.count < 3 { elsewhere.append(client) }
        }
        let clients = onVictim + elsewhere
        let price = try #require(bundledPrices.price(for: "gpt-4o-mini"))
        func body(_ client: ClientID) -> String {
            #"{"model":"gpt-4o-mini","max_tokens":50,"messages":[{"role":"user","content":"\#(client.rawValue)"}]}"#
        }
        // About 60 requests' worth each: enough to last through the failover, tight enough to run out.
        let limit = NanoUSD(60 * price.cost(of: TokenUsage(input: 20, output: 50)).value)
        _ = try await redis.calls(clients.map { .command(["HSET", RedisKeys($0).limits, "daily", String(limit.value)]) })

        let seen = FailoverTally()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<24 {
                group.addTask {
                    let deadline = ContinuousClock.now + .seconds(25)
                    var i = 0
                    while ContinuousClock.now < deadline, !seen.allRefused(clients.count) {
                        let client = clients[(worker + i) % clients.count]
                        i += 1
                        if seen.refused(client) { continue }
                        let reply = await TestClient.shared.post(replicas[(worker + i) % replicas.count].baseURL + "/v1/chat/completions", body(client),
                                                                 headers: [("X-Client-ID", client.rawValue), ("X-Mock-Completion-Tokens", "50"),
                                                                           ("X-Mock-Latency-Ms", "20")])
                        seen.record(client, reply)
                        if reply.status == 503 { try await Task.sleep(for: .milliseconds(50)) }
                    }
                }
            }
            group.addTask {
                // The kill comes once a sixth of the budgets is spent, not after a fixed time: a fast
                // box spent them all in under 700 ms once, and nothing was left to serve after it.
                let killBy = ContinuousClock.now + .seconds(10)
                while seen.snapshot.ok < clients.count * 10, ContinuousClock.now < killBy { try await Task.sleep(for: .milliseconds(5)) }
                cluster.nodes.first { $0.port == victim.master }!.stop()
                try await cluster.promote(victim.replica)
                seen.markFailover()
            }
            try await group.waitForAll()
        }
        let t = seen.snapshot
        print("redis cluster failover: \(t.ok) ok, \(t.refused) refused (402), \(t.unavailable) unavailable (503), \(t.other) other; served after the failover: \(t.okAfterFailover)")
        #expect(t.failoverDone)
        #expect(t.okAfterFailover > 0, "Tollgate followed the promoted replica")
        #expect(t.other == 0, "only 200, 402 and 503 answers")

        // Leases of reserves whose outcome was lost expire; the next reserve reaps (charges) them.
        try await Task.sleep(for: .seconds(6))
        for client in clients {
            _ = await TestClient.shared.post(replicas[0].baseURL + "/v1/chat/completions", body(client),
                                             headers: [("X-Client-ID", client.rawValue), ("X-Mock-Completion-Tokens", "50")])
        }
        let today = try await redis.call(.command(["TIME"])).array![0].int!
        let date = CivilDate.dayString(UnixTime(seconds: today), utcOffset: 0)
        let forwarded = Dictionary(grouping: mock.recorder.requests().compactMap(\.firstMessage), by: { $0 }).mapValues(\.count)
        for client in clients {
            let key = RedisKeys(client).day(date)
            #expect(try await eventually { Int64(try await redis.call(.command(["HGET", key, "reserved"])).string ?? "0") == 0 }, "\(client): no lease left unsettled")
            let day = try await redis.call(.command(["HGETALL", key])).hash
            let spent = Int64(day["spent"] ?? "0")!, reaped = Int64(day["leases_reaped"] ?? "0")!
            // A reaped lease stays as `C|id|cost|…` for a day: what each reap charged.
            let members = try await redis.call(.command(["ZRANGE", RedisKeys(client).leases, "0", "-1"])).array?.compactMap(\.string) ?? []
            let reapCharges = members.filter { $0.hasPrefix("C|") }.compactMap { Int64($0.split(separator: "|")[2]) }.reduce(0, +)
            let settled = Int64(day["requests"] ?? "0")!, served = Int64(forwarded[client.rawValue] ?? 0)
            print("  \(client) on \(onVictim.contains(client) ? "the killed master" : "a surviving master"): spent \(spent) of \(limit.value); "
                  + "\(served) forwarded, \(settled) settled, \(reaped) reaped (charged \(reapCharges))")
            #expect(spent <= limit.value, "\(client): no overshoot")
            // Every request the provider served was settled, or reaped and charged its reservation
            // (a reserve whose reply was lost may also be reaped without having been forwarded).
            #expect(settled + reaped >= served, "\(client): no lost settlement")
            #expect(settled <= served, "\(client): nothing settled that was not forwarded")
        }
        // The budget writes were waited on (WAIT) on the masters that lived through it.
        for client in elsewhere {
            let master = try await cluster.master(ofSlot: RedisHashSlot.of(client.rawValue)).master
            #expect(try await SpawnedCluster.waitCalls(port: master) > 0, "WAIT followed the budget scripts on \(master)")
        }
        for r in replicas { await r.stop() }
        await mock.stop()
    }
}
}

/// What the racing clients saw, per client.
final class FailoverTally: Sendable {
    struct Counts: Sendable {
        var ok = 0, refused = 0, unavailable = 0, other = 0, okAfterFailover = 0
        var failoverDone = false
        var refusedClients: Set<String> = []
    }
    private let counts = Mutex(Counts())
    var snapshot: Counts { counts.withLock { $0 } }

    func record(_ client: ClientID, _ reply: TestClient.Reply) {
        counts.withLock { c in
            switch reply.status {
            case 200:
                c.ok += 1
                if c.failoverDone { c.okAfterFailover += 1 }
            case 402: c.refused += 1; c.refusedClients.insert(client.rawValue)
            case 503: c.unavailable += 1
            default: c.other += 1
            }
        }
    }
    func refused(_ client: ClientID) -> Bool { counts.withLock { $0.refusedClients.contains(client.rawValue) } }
    func allRefused(_ count: Int) -> Bool { counts.withLock { $0.refusedClients.count >= count } }
    func markFailover() { counts.withLock { $0.failoverDone = true } }
}

extension RecordedRequest {
    /// The first message's text: the racing tests name their client in it (X-Client-ID is not forwarded).
    var firstMessage: String? {
        guard case .array(let messages)? = json?["messages"] else { return nil }
        return messages.first?["content"]?.string
    }
}
