import Foundation
import TollgateCore
@testable import TollgateRedis

/// A real Redis Cluster of 3 masters and 3 replicas on loopback, made with `redis-cli --cluster
/// create`. A low cluster-node-timeout makes a killed master's replica take over in about two
/// seconds; `promote` forces it (CLUSTER FAILOVER TAKEOVER) when the election is slower.
final class SpawnedCluster: @unchecked Sendable {
    let nodes: [SpawnedRedis]
    var seeds: [RedisAddress] { nodes.map { RedisAddress(host: "127.0.0.1", port: $0.port) } }

    private init(nodes: [SpawnedRedis]) { self.nodes = nodes }

    static func start() async throws -> SpawnedCluster {
        let nodes = try (0..<6).map { _ in
            // The bus port defaults to port + 10000, past 65535 for an ephemeral port: name one.
            try SpawnedRedis(["--cluster-enabled", "yes", "--cluster-port", String(try SpawnedRedis.freePort()),
                              "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "1000",
                              // Any replica may take over, however stale: the test kills masters on purpose.
                              "--cluster-replica-validity-factor", "0",
                              // Replicas sync at once (the default waits 5 s for more replicas to share the transfer).
                              "--repl-diskless-sync-delay", "0"])
        }
        let cluster = SpawnedCluster(nodes: nodes)
        let create = try await cli(["--cluster", "create"] + nodes.map { "127.0.0.1:\($0.port)" } + ["--cluster-replicas", "1", "--cluster-yes"])
        guard create.status == 0 else { throw Failure(description: "redis-cli --cluster create failed: \(create.output)") }
        for node in nodes { try await cluster.waitUntilOK(node.port) }
        // A replica promoted before its first sync would serve an empty dataset.
        for node in nodes { try await cluster.waitUntilSynced(node.port) }
        // Tollgate reads the topology from whichever node answers first, and only a replica listed
        // in CLUSTER SLOTS is waited on (WAIT). Redis 7.0 lists a replica only once the node asked
        // knows it by gossip with a replication offset above 0: so every master gets a write, and
        // every node must list every replica, before a test starts Tollgate.
        for i in 0..<64 { _ = try await cli(["-c", "-p", String(nodes[0].port), "SET", "spawned-cluster-warmup-\(i)", "1"]) }
        for node in nodes { try await cluster.waitUntilReplicasListed(node.port) }
        return cluster
    }

    /// Until `ready` holds for the node's CLUSTER NODES, up to ~15 s.
    static func waitUntil(port: Int, _ what: String, _ ready: (String) -> Bool) async throws {
        for _ in 0..<150 {
            if ready(try await cli(["-p", String(port), "CLUSTER", "NODES"]).output) { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw Failure(description: "port \(port): never \(what)")
    }

    /// How many WAITs the node has run (INFO commandstats).
    static func waitCalls(port: Int) async throws -> Int {
        let stats = try await cli(["-p", String(port), "INFO", "commandstats"]).output
        // INFO's lines end with "\r\n", one Character: split on any newline.
        return stats.split(whereSeparator: \.isNewline).first { $0.hasPrefix("cmdstat_wait:") }
            .flatMap { $0.split(separator: "=").dropFirst().first?.split(separator: ",").first }.flatMap { Int($0) } ?? 0
    }

    /// Until the node's CLUSTER SLOTS lists a replica for each of the 3 masters, up to ~15 s.
    func waitUntilReplicasListed(_ port: Int) async throws {
        let redis = RedisConnection(endpoint: RedisEndpoint(url: "redis://127.0.0.1:\(port)/0")!, timeoutMilliseconds: 2_000, scripts: [],
                                    logger: TestRedis.quietLogger)
        defer { redis.shutdown() }
        for _ in 0..<150 {
            if let map = RedisClusterMap(clusterSlots: try await redis.call(.command(["CLUSTER", "SLOTS"])), askedHost: "127.0.0.1"),
               map.masters.count == 3, map.masters.allSatisfy({ map.replicas(of: $0) >= 1 }) { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw Failure(description: "the cluster node on port \(port) never listed a replica for every master in CLUSTER SLOTS")
    }

    /// Until the node says `cluster_state:ok` (every slot served), up to ~10 s.
    func waitUntilOK(_ port: Int) async throws {
        for _ in 0..<100 {
            if try await Self.cli(["-p", String(port), "CLUSTER", "INFO"]).output.contains("cluster_state:ok") { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw Failure(description: "the cluster node on port \(port) never reached cluster_state:ok")
    }

    /// Until a replica's link to its master is up (a master returns at once), up to ~10 s.
    func waitUntilSynced(_ port: Int) async throws {
        for _ in 0..<100 {
            let info = try await Self.cli(["-p", String(port), "INFO", "replication"]).output
            if info.contains("role:master") || info.contains("master_link_status:up") { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw Failure(description: "the replica on port \(port) never synced with its master")
    }

    /// The port of the master serving `slot`, and of its replica, from CLUSTER NODES. Asked again
    /// for up to ~5 s: the node asked may learn of a replica by gossip after the replica has
    /// synced (a fresh-clone CI run once saw the master without its replica).
    func master(ofSlot slot: Int) async throws -> (master: Int, replica: Int) {
        for _ in 0..<50 {
            if let found = try await masterNow(ofSlot: slot) { return found }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw Failure(description: "no master with a replica serves slot \(slot)")
    }

    private func masterNow(ofSlot slot: Int) async throws -> (master: Int, replica: Int)? {
        let lines = try await Self.cli(["-p", String(nodes[0].port), "CLUSTER", "NODES"]).output.split(separator: "\n").map { $0.split(separator: " ") }
        func port(_ fields: [Substring]) -> Int? { fields[1].split(separator: "@").first?.split(separator: ":").last.flatMap { Int($0) } }
        for fields in lines where fields.count > 8 && fields[2].contains("master") {
            let owns = fields[8...].contains { range in
                let ends = range.split(separator: "-").compactMap { Int($0) }
                return ends.count == 2 ? (ends[0]...ends[1]).contains(slot) : ends.first == slot
            }
            guard owns, let masterPort = port(fields) else { continue }
            guard let replica = lines.first(where: { $0.count > 3 && $0[3] == fields[0] }), let replicaPort = port(replica) else { return nil }
            return (masterPort, replicaPort)
        }
        return nil
    }

    /// Waits for `replica` to become a master after its master was killed; forces a takeover
    /// after `patience` if the cluster's own election has not happened by then.
    func promote(_ replica: Int, patience: Duration = .seconds(4)) async throws {
        let start = ContinuousClock.now
        var forced = false
        while ContinuousClock.now - start < .seconds(15) {
            if try await Self.cli(["-p", String(replica), "ROLE"]).output.hasPrefix("master") {
                try await waitUntilOK(replica)
                return
            }
            if !forced, ContinuousClock.now - start > patience {
                _ = try await Self.cli(["-p", String(replica), "CLUSTER", "FAILOVER", "TAKEOVER"])
                forced = true
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw Failure(description: "the replica on port \(replica) was never promoted")
    }

    func stop() { nodes.forEach { $0.stop() } }

    static func cli(_ arguments: [String]) async throws -> (status: Int32, output: String) {
        try await ChildProcess.run("redis-cli", arguments)
    }

    struct Failure: Error, CustomStringConvertible { let description: String }
}

/// A Sentinel (`redis-server sentinel.conf --sentinel`) watching one master, with a low
/// down-after-milliseconds and failover-timeout so a killed master is replaced in seconds.
final class SpawnedSentinel: @unchecked Sendable {
    let port: Int
    let dir: String
    private var process: ChildProcess?

    init(master: String, masterPort: Int) throws {
        port = try SpawnedRedis.freePort()
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("tollgate-sentinel-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let conf = """
            port \(port)
            bind 127.0.0.1
            dir \(dir)
            sentinel monitor \(master) 127.0.0.1 \(masterPort) 2
            sentinel down-after-milliseconds \(master) 1000
            sentinel failover-timeout \(master) 3000
            sentinel parallel-syncs \(master) 1
            """
        try conf.write(toFile: dir + "/sentinel.conf", atomically: true, encoding: .utf8)
        process = try SpawnedRedis.launch(["redis-server", dir + "/sentinel.conf", "--sentinel"], port: port)
    }

    func stop() {
        guard let p = process else { return }
        p.kill()
        process = nil
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(atPath: dir)
    }
}

extension SpawnedCluster {
    /// A node's cluster id (CLUSTER MYID).
    func id(of port: Int) async throws -> String {
        try await Self.cli(["-p", String(port), "CLUSTER", "MYID"]).output.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
