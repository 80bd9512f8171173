import Logging
import Synchronization

/// Redis replicates asynchronously: a master that dies a moment after running a script may take
/// its writes with it, and the replica promoted in its place never saw the reservation (another
/// replica could then reserve the same money) or the charge (a lost settlement). So in cluster and
/// sentinel modes each script is followed, on the same link, by `WAIT n timeout`, and its reply is
/// handed back only after the WAIT's.
///
/// WAIT blocks the connection it is sent on until the replicas confirm or the timeout passes, and
/// every pipelined command behind it waits too. So it is sent only to a master known to have
/// healthy replicas (n is at most their number), and a master whose WAIT came back short is left
/// out for `pause` (its replica died or lags): stalling every request for the timeout would turn
/// a lost replica into an outage. Such a write still counts — it is on the master — and it is
/// logged, at most every 10 s.
final class RedisWait: Sendable {
    static let pause = Duration.seconds(5)
    let replicas: Int
    /// Below the link's own timeout, so a slow replica never fails the connection.
    let timeoutMilliseconds: Int
    private let logger: Logger
    private let state = Mutex(State())

    private struct State {
        var shortUntil: [ObjectIdentifier: ContinuousClock.Instant] = [:]
        var lastWarning: ContinuousClock.Instant?
    }

    init(replicas: Int, timeoutMilliseconds: Int, logger: Logger) {
        self.replicas = replicas
        self.timeoutMilliseconds = max(1, timeoutMilliseconds / 2)
        self.logger = logger
    }

    /// `command`, preceded by ASKING when asked to, and followed by a WAIT when it is a script (the
    /// only writes that carry money) and `node` has replicas (`healthy`: how many it has) to wait for.
    func sequence(_ command: RedisCommand, asking: Bool = false, node: RedisNode, healthy: Int) -> [RedisCommand] {
        var sequence = asking ? [RedisCommand.command(["ASKING"]), command] : [command]
        let n = min(replicas, healthy)
        guard n > 0, command.isScript else { return sequence }
        let short = state.withLock { s -> Bool in
            guard let until = s.shortUntil[ObjectIdentifier(node)] else { return false }
            if ContinuousClock.now < until { return true }
            s.shortUntil[ObjectIdentifier(node)] = nil
            return false
        }
        if !short { sequence.append(.command(["WAIT", String(n), String(timeoutMilliseconds)])) }
        return sequence
    }

    /// Sends the sequence and returns the command's own reply.
    func send(_ command: RedisCommand, asking: Bool = false, to node: RedisNode, healthy: Int) async throws -> RedisReply {
        let sequence = sequence(command, asking: asking, node: node, healthy: healthy)
        if sequence.count == 1 { return try await node.send(command) }
        let replies = try await node.send(sequence)
        let reply = replies[asking ? 1 : 0]
        if case .command(let wait) = sequence.last, wait.first == "WAIT", let wanted = Int(wait[1]), let acked = replies.last?.int, acked < wanted {
            let warn = state.withLock { s -> Bool in
                s.shortUntil[ObjectIdentifier(node)] = .now + Self.pause
                if let last = s.lastWarning, ContinuousClock.now - last < .seconds(10) { return false }
                s.lastWarning = .now
                return true
            }
            if warn {
                logger.warning("a Redis replica did not confirm a budget write in time: a failover now could lose it",
                               metadata: ["redis": "\(node.endpoint)", "confirmed": "\(acked)", "wanted": "\(wanted)",
                                          "fix": "keep a healthy replica per master, or set redis.wait_replicas: 0"])
            }
        }
        return reply
    }
}
