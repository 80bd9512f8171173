import Logging
import Synchronization
import TollgateCore

/// A master found through Redis Sentinel. The sentinels are asked, in order, `SENTINEL
/// get-master-addr-by-name`; the address they give is used only after that server's `ROLE` says
/// master (a sentinel may lag a failover). When the master stops answering, or answers
/// `-READONLY` (it was demoted to a replica), the sentinels are asked again. A command that was
/// not sent, or was refused as READONLY, did not run, so it is retried on the new master;
/// one whose reply was lost is not (its outcome is unknown).
final class RedisSentinel: Sendable {
    /// Rediscoveries per call before the caller sees the error (a 503 during the failover).
    static let maxAttempts = 3
    static let retryPause = Duration.milliseconds(200)

    private let sentinels: RedisSentinels
    private let wait: RedisWait
    private let logger: Logger
    private let makeMaster: @Sendable (RedisAddress) -> RedisNode
    private let makeSentinel: @Sendable (RedisAddress) -> RedisNode
    private let state = Mutex(State())
    private let discovering = SharedRun()

    private struct State {
        var master: (address: RedisAddress, node: RedisNode)?
        /// Replicas connected to the master, from its ROLE, and when that was read (re-read every 10 s).
        var replicas = 0
        var replicasRead: ContinuousClock.Instant?
        /// The master stopped answering or was demoted: ask the sentinels before using it again.
        var stale = true
        var sentinelNodes: [RedisAddress: RedisNode] = [:]
        var shutDown = false
    }

    init(_ sentinels: RedisSentinels, wait: RedisWait, logger: Logger,
         master: @escaping @Sendable (RedisAddress) -> RedisNode, sentinel: @escaping @Sendable (RedisAddress) -> RedisNode) {
        self.sentinels = sentinels
        self.wait = wait
        self.logger = logger
        makeMaster = master
        makeSentinel = sentinel
    }

    func send(_ command: RedisCommand) async throws -> RedisReply {
        var attempt = 0
        while true {
            attempt += 1
            let last = attempt >= Self.maxAttempts
            let node = try await master()
            let reply: RedisReply
            do {
                reply = try await wait.send(command, to: node, healthy: replicas())
            } catch RedisError.unavailable where !last {
                markStale(node)
                try await Task.sleep(for: Self.retryPause)
                continue
            } catch RedisError.unknownOutcome(let why) {
                markStale(node)
                throw RedisError.unknownOutcome(why)
            }
            if case .error(let message) = reply, message.hasPrefix("READONLY") {
                markStale(node)
                if !last { continue }
                throw RedisError.unavailable("the master Sentinel named is now a replica (\(message)); a failover is under way")
            }
            return reply
        }
    }

    /// How many replicas a WAIT can ask for, from the master's ROLE (re-read at most every 10 s,
    /// so a replica that attaches later is waited for again).
    private func replicas() async -> Int {
        guard wait.replicas > 0 else { return 0 }
        let (node, due): (RedisNode?, Bool) = state.withLock { s in
            (s.master?.node, s.replicasRead.map { ContinuousClock.now - $0 > .seconds(10) } ?? true)
        }
        guard due, let node else { return state.withLock { $0.replicas } }
        let count = (try? await node.send(.command(["ROLE"]))).map(Self.connectedReplicas) ?? 0
        state.withLock { s in
            s.replicas = count
            s.replicasRead = .now
        }
        return count
    }

    /// ROLE of a master: `["master", offset, [[host, port, offset], …]]`.
    static func connectedReplicas(_ role: RedisReply) -> Int {
        guard let parts = role.array, parts.count >= 3, parts[0].string == "master" else { return 0 }
        return parts[2].array?.count ?? 0
    }

    func post(_ command: RedisCommand) {
        state.withLock { $0.stale ? nil : $0.master?.node }?.post(command)
    }

    /// The current master, asking the sentinels when there is none or it failed.
    func master() async throws -> RedisNode {
        if let node = state.withLock({ $0.stale ? nil : $0.master?.node }) { return node }
        await discover()
        if let node = state.withLock({ $0.stale ? nil : $0.master?.node }) { return node }
        throw RedisError.unavailable("no sentinel of redis.sentinels (\(sentinels.addresses.map(\.description).joined(separator: ", "))) "
                                     + "named a reachable master '\(sentinels.master)' (check redis.sentinel_master, and that a failover is not under way)")
    }

    func shutdown() {
        let nodes = state.withLock { s in
            s.shutDown = true
            return Array(s.sentinelNodes.values) + (s.master.map { [$0.node] } ?? [])
        }
        for node in nodes { node.shutdown() }
    }

    private func markStale(_ node: RedisNode) {
        state.withLock { s in if s.master?.node === node { s.stale = true } }
    }

    /// Asks each sentinel in turn; concurrent callers share one discovery.
    private func discover() async {
        guard !state.withLock({ $0.shutDown }), await discovering.join() else { return }
        defer { discovering.finish() }
        var found: (address: RedisAddress, node: RedisNode)?
        var replicaCount = 0
        for sentinel in sentinels.addresses {
            guard let address = await ask(sentinel) else { continue }
            let node = state.withLock { s in s.master?.address == address ? s.master!.node : nil } ?? makeMaster(address)
            // A sentinel that has not seen the failover yet names the old master: believe ROLE.
            if let role = try? await node.send(.command(["ROLE"])), role.array?.first?.string == "master" {
                found = (address, node)
                replicaCount = Self.connectedReplicas(role)
                break
            }
            if state.withLock({ $0.master?.node !== node }) { node.shutdown() }
        }
        let replaced = state.withLock { s in
            var replaced: RedisNode?
            if let found {
                if s.master?.address != found.address {
                    replaced = s.master?.node
                    logger.info("Redis master from Sentinel", metadata: ["master": "\(found.address)", "name": "\(sentinels.master)"])
                }
                s.master = found
                s.stale = false
                s.replicas = replicaCount
                s.replicasRead = .now
            }
            return replaced
        }
        // The old master's in-flight commands have failed by now (it stopped answering or was demoted).
        replaced?.shutdown()
    }

    private func ask(_ sentinel: RedisAddress) async -> RedisAddress? {
        let node = state.withLock { s in
            if let node = s.sentinelNodes[sentinel] { return node }
            let node = makeSentinel(sentinel)
            s.sentinelNodes[sentinel] = node
            return node
        }
        let reply = try? await node.send(.command(["SENTINEL", "GET-MASTER-ADDR-BY-NAME", sentinels.master]))
        guard let parts = reply?.array, parts.count == 2, let host = parts[0].string, let port = parts[1].int, (1...65535).contains(port) else {
            if case .error(let message)? = reply {
                logger.warning("a sentinel refused to name the master", metadata: ["sentinel": "\(sentinel)", "reply": "\(message)"])
            }
            return nil
        }
        return RedisAddress(host: host, port: Int(port))
    }
}
