import Logging
import NIOCore
import NIOPosix
import TollgateCore

/// Tollgate's Redis client. With one Redis (the default) every call goes straight to that
/// server's `RedisNode`: one pipelined link per event loop, no extra hop. With a Redis Cluster
/// (`RedisCluster`) a call goes to the master that owns its key's slot; with Sentinel
/// (`RedisSentinel`) to the master the sentinels name. `BudgetStore`, `BudgetAdmin` and the rest
/// see the same `send`/`call`/`post` in every mode.
public final class RedisConnection: Sendable {
    public let endpoint: RedisEndpoint
    private let backend: Backend
    private let loadsScripts: Bool

    enum Backend: Sendable {
        case single(RedisNode)
        case cluster(RedisCluster)
        case sentinel(RedisSentinel)
    }

    /// - Parameters:
    ///   - endpoint: the server (single mode), and in every mode the login, database and TLS.
    ///   - waitReplicas: cluster and sentinel modes: a script's reply counts only once this many
    ///     replicas hold its writes (`WAIT`), so a failover does not lose a reservation or a charge.
    public convenience init(endpoint: RedisEndpoint, timeoutMilliseconds: Int, scripts: [RedisScript], logger: Logger,
                            group: MultiThreadedEventLoopGroup = .singleton, topology: RedisTopology = .single, waitReplicas: Int = 0) {
        let node: @Sendable (RedisEndpoint, [RedisScript]) -> RedisNode = { endpoint, scripts in
            RedisNode(endpoint: endpoint, timeoutMilliseconds: timeoutMilliseconds, scripts: scripts, logger: logger, group: group)
        }
        let wait = RedisWait(replicas: waitReplicas, timeoutMilliseconds: timeoutMilliseconds, logger: logger)
        let backend: Backend
        switch topology {
        case .single: backend = .single(node(endpoint, scripts))
        case .cluster(let seeds):
            backend = .cluster(RedisCluster(seeds: seeds, wait: wait, logger: logger) { node(endpoint.at($0), scripts) })
        case .sentinel(let sentinels):
            backend = .sentinel(RedisSentinel(sentinels, wait: wait, logger: logger, master: { node(endpoint.at($0), scripts) }, sentinel: { address in
                var login = endpoint.at(address)
                login.username = sentinels.username
                login.password = sentinels.password
                login.database = 0
                return node(login, [])
            }))
        }
        self.init(endpoint: endpoint, backend: backend, loadsScripts: !scripts.isEmpty)
    }

    /// One server, with `encode` replacing hiredis's encoder (tests make it fail).
    convenience init(endpoint: RedisEndpoint, timeoutMilliseconds: Int, scripts: [RedisScript], logger: Logger,
                     group: MultiThreadedEventLoopGroup, encode: @escaping @Sendable (_ args: [String], _ buffer: inout ByteBuffer) -> Bool) {
        let node = RedisNode(endpoint: endpoint, timeoutMilliseconds: timeoutMilliseconds, scripts: scripts, logger: logger, group: group, encode: encode)
        self.init(endpoint: endpoint, backend: .single(node), loadsScripts: !scripts.isEmpty)
    }

    private init(endpoint: RedisEndpoint, backend: Backend, loadsScripts: Bool) {
        self.endpoint = endpoint
        self.backend = backend
        self.loadsScripts = loadsScripts
    }

    /// Checks once, at start, what a wrong setting would break: it connects (TLS, AUTH, SELECT,
    /// SCRIPT LOAD are each connection's setup; in cluster mode the topology is read first, in
    /// sentinel mode the master is found), then asks whether the user may run the scripts on
    /// Tollgate's keys. Throws `.misconfigured` naming the setting to fix, or `.unavailable` when
    /// Redis cannot be reached, which may heal by itself.
    public func verify() async throws {
        try await check("PING", .command(["PING"])) { _ in false }
        guard loadsScripts else { return }
        // A script that cannot exist: Redis checks the command and key permissions before it
        // looks the script up, so NOSCRIPT means allowed, and nothing runs.
        let probe = ["EVALSHA", String(repeating: "0", count: 40), "1", RedisKeys.namespace + ":verify"]
        try await check("EVALSHA", .command(probe)) { $0.hasPrefix("NOSCRIPT") }
    }

    private func check(_ step: String, _ command: RedisCommand, fine: (String) -> Bool) async throws {
        guard case .error(let message) = try await send(command), !fine(message) else { return }
        throw RedisOutage.reply(to: step, message, endpoint: endpoint).unsent
    }

    public func send(_ command: RedisCommand) async throws -> RedisReply {
        switch backend {
        case .single(let node): return try await node.send(command)
        case .cluster(let cluster): return try await cluster.send(command)
        case .sentinel(let sentinel): return try await sentinel.send(command)
        }
    }

    /// `send` for a caller driven by its event loop's callbacks: with one Redis, `done` runs on
    /// the caller's loop (or the link's, off a loop) without a task; a cluster or sentinel call,
    /// which may be redirected or wait for its master, runs in a task.
    package func send(_ command: RedisCommand, then done: @escaping @Sendable (Result<RedisReply, any Error>) -> Void) {
        if case .single(let node) = backend { return node.send(command, then: done) }
        Task {
            do { done(.success(try await send(command))) } catch { done(.failure(error)) }
        }
    }

    /// Sends a command whose reply nobody waits for (bookkeeping such as the top-spender sets):
    /// it rides in the next pipelined write and costs the caller no round trip. Lost if Redis is
    /// unreachable (or, in a cluster, its slot just moved), so only for what may be approximate.
    public func post(_ command: RedisCommand) {
        switch backend {
        case .single(let node): node.post(command)
        case .cluster(let cluster): cluster.post(command)
        case .sentinel(let sentinel): sentinel.post(command)
        }
    }

    /// Runs a command and turns an error reply into a thrown `RedisError.server`.
    public func call(_ command: RedisCommand) async throws -> RedisReply {
        let reply = try await send(command)
        if case .error(let message) = reply { throw RedisError.server(message) }
        return reply
    }

    /// Every key matching `pattern` (and of `type`, when given), found with SCAN, never KEYS. In a
    /// cluster each master holds only its own slots' keys, so every master is scanned.
    public func scan(match pattern: String, type: String? = nil) async throws -> [String] {
        let nodes: [RedisNode]
        switch backend {
        case .single(let node): nodes = [node]
        case .cluster(let cluster): nodes = try await cluster.masters()
        case .sentinel(let sentinel): nodes = [try await sentinel.master()]
        }
        var keys: [String] = []
        for node in nodes {
            var cursor = "0"
            repeat {
                let reply = try await node.send(.command(["SCAN", cursor, "MATCH", pattern] + (type.map { ["TYPE", $0] } ?? []) + ["COUNT", "1000"]))
                if case .error(let message) = reply { throw RedisError.server(message) }
                guard let parts = reply.array, parts.count == 2, let next = parts[0].string else { break }
                cursor = next
                keys += (parts[1].array ?? []).compactMap(\.string)
            } while cursor != "0"
        }
        return keys
    }

    /// Closes the connections; calls waiting for a reply fail with `.unavailable`. Does not block.
    public func shutdown() {
        switch backend {
        case .single(let node): node.shutdown()
        case .cluster(let cluster): cluster.shutdown()
        case .sentinel(let sentinel): sentinel.shutdown()
        }
    }
}
