import Logging
import Synchronization
import TollgateCore

/// A Redis Cluster: a `RedisNode` (pipelined links) per master, and the slot map that says which
/// master owns a key. A command goes to its key's master. The cluster answers a command that
/// landed on the wrong node without running it (MOVED, ASK, TRYAGAIN, CLUSTERDOWN), so those are
/// followed or retried; so is a command that was never sent. A command whose connection broke
/// after sending has an unknown outcome and is never retried here (the caller decides: settles
/// are idempotent, reserves are not). Topology is re-read after a redirect or a lost node.
final class RedisCluster: Sendable {
    /// Redirects and retries per call before its error goes back to the caller.
    static let maxAttempts = 6
    /// The pause before retrying CLUSTERDOWN/TRYAGAIN or an unreachable node: about the time a
    /// replica takes to be promoted with a low cluster-node-timeout, split over the attempts.
    static let retryPause = Duration.milliseconds(150)
    /// Topology is re-read at most this often (a failover makes every caller ask at once).
    static let refreshInterval = Duration.milliseconds(100)
    /// While the map shows a master with fewer replicas than a WAIT wants, it is re-read this often:
    /// a replica that joined later (or that the node first asked had not heard of yet, by
    /// gossip) would otherwise never be waited for, and a failover could lose budget writes.
    static let replicaRecheckInterval = Duration.seconds(5)

    private let seeds: [RedisAddress]
    private let wait: RedisWait
    private let logger: Logger
    private let makeNode: @Sendable (RedisAddress) -> RedisNode
    private let state = Mutex(State())
    private let refreshing = SharedRun()

    private struct State {
        var map = RedisClusterMap()
        var nodes: [RedisAddress: RedisNode] = [:]
        var lastRefresh: ContinuousClock.Instant?
        var lastReplicaRecheck: ContinuousClock.Instant?
        var shutDown = false
    }

    init(seeds: [RedisAddress], wait: RedisWait, logger: Logger, makeNode: @escaping @Sendable (RedisAddress) -> RedisNode) {
        self.seeds = seeds
        self.wait = wait
        self.logger = logger
        self.makeNode = makeNode
    }

    func send(_ command: RedisCommand) async throws -> RedisReply {
        let slot = command.routingKey.map(RedisHashSlot.of)
        var ask: RedisAddress?
        var attempt = 0
        while true {
            attempt += 1
            let last = attempt >= Self.maxAttempts
            let node: RedisNode
            if let ask { node = self.node(at: ask) } else { node = try await self.node(for: slot) }
            let asking = ask != nil
            ask = nil
            let reply: RedisReply
            do {
                let healthy = state.withLock { $0.map.replicas(of: node.address) }
                if command.isScript, healthy < wait.replicas { recheckReplicas() }
                reply = try await wait.send(command, asking: asking, to: node, healthy: healthy)
            } catch RedisError.unavailable(let why) where !last {
                // Not sent: the node is down or reconnecting. Its slots may have a new master.
                logger.debug("Redis Cluster node unavailable; re-reading the topology", metadata: ["redis": "\(node.endpoint)", "reason": "\(why)"])
                await refresh(force: false)
                try await Task.sleep(for: Self.retryPause)
                continue
            } catch RedisError.unknownOutcome(let why) {
                await refresh(force: false)
                throw RedisError.unknownOutcome(why)
            }
            guard case .error(let message) = reply, !last, let redirect = RedisClusterRedirect(message, askedHost: node.endpoint.host) else {
                return reply
            }
            switch redirect {
            case .moved(let slot, let address):
                state.withLock { $0.map.move(slot, to: address) }
                await refresh(force: false)
            case .ask(_, let address):
                ask = address
            case .retryLater:
                try await Task.sleep(for: Self.retryPause)
                await refresh(force: false)
            }
        }
    }

    /// Fire and forget, to the master the map names now; dropped when none is known yet.
    func post(_ command: RedisCommand) {
        let slot = command.routingKey.map(RedisHashSlot.of)
        let node: RedisNode? = state.withLock { s in
            guard let address = slot.flatMap({ s.map.master(of: $0) }) ?? s.map.masters.first else { return nil }
            return Self.node(at: address, in: &s, make: makeNode)
        }
        node?.post(command)
    }

    /// Every master, for commands that must reach them all (SCAN).
    func masters() async throws -> [RedisNode] {
        if state.withLock({ $0.map.isEmpty }) { await refresh(force: true) }
        let nodes = state.withLock { s in
            let masters = s.map.masters
            return masters.map { Self.node(at: $0, in: &s, make: makeNode) }
        }
        guard !nodes.isEmpty else { throw unreachable }
        return nodes
    }

    func shutdown() {
        let nodes = state.withLock { s in
            s.shutDown = true
            return Array(s.nodes.values)
        }
        for node in nodes { node.shutdown() }
    }

    // MARK: the slot map

    private var unreachable: RedisError {
        .unavailable("no Redis Cluster node answered CLUSTER SLOTS (redis.cluster_nodes: \(seeds.map(\.description).joined(separator: ", ")))")
    }

    private func node(for slot: Int?) async throws -> RedisNode {
        for pass in 0..<2 {
            let found: RedisNode? = state.withLock { s in
                guard let address = slot.map({ s.map.master(of: $0) }) ?? s.map.masters.first else { return nil }
                return Self.node(at: address, in: &s, make: makeNode)
            }
            if let found { return found }
            if pass == 0 { await refresh(force: true) }
        }
        if state.withLock({ $0.map.isEmpty }) { throw unreachable }
        throw RedisError.unavailable("no Redis Cluster master serves slot \(slot ?? -1) (the cluster is reconfiguring or down)")
    }

    private func node(at address: RedisAddress) -> RedisNode {
        state.withLock { Self.node(at: address, in: &$0, make: makeNode) }
    }

    private static func node(at address: RedisAddress, in s: inout State, make: (RedisAddress) -> RedisNode) -> RedisNode {
        if let node = s.nodes[address] { return node }
        let node = make(address)
        s.nodes[address] = node
        return node
    }

    /// Re-reads the topology in the background, at most every `replicaRecheckInterval`.
    private func recheckReplicas() {
        let due = state.withLock { s -> Bool in
            if let last = s.lastReplicaRecheck, ContinuousClock.now - last < Self.replicaRecheckInterval { return false }
            s.lastReplicaRecheck = .now
            return true
        }
        if due { Task { await self.refresh(force: true) } }
    }

    /// Re-reads the topology from the first node that answers: the known masters, then the seeds.
    /// Concurrent callers share one refresh; without `force`, one that finished moments ago is enough.
    func refresh(force: Bool) async {
        let skip = state.withLock { s in
            s.shutDown || (!force && s.lastRefresh.map { ContinuousClock.now - $0 < Self.refreshInterval } ?? false)
        }
        guard !skip, await refreshing.join() else { return }
        defer { refreshing.finish() }
        let candidates = state.withLock { s in
            var seen = Set<RedisAddress>()
            return (s.map.masters + seeds).filter { seen.insert($0).inserted }
        }
        var learned: RedisClusterMap?
        for address in candidates {
            let node = self.node(at: address)
            guard let reply = try? await node.send(.command(["CLUSTER", "SLOTS"])),
                  let map = RedisClusterMap(clusterSlots: reply, askedHost: address.host), !map.isEmpty else { continue }
            learned = map
            break
        }
        state.withLock { s in
            if let learned, learned != s.map {
                logger.info("Redis Cluster topology", metadata: ["masters": "\(learned.masters.map(\.description).joined(separator: " "))"])
                s.map = learned
            }
            s.lastRefresh = .now
        }
        if learned == nil { logger.warning("no Redis Cluster node answered CLUSTER SLOTS", metadata: ["tried": "\(candidates.map(\.description))"]) }
    }
}
