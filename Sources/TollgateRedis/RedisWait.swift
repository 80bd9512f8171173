import Logging
import Synchronization

/// Redis replicates asynchronously: a master that dies a moment after running a script may take
/// its writes with it, and the replica promoted in its place never saw the reservation (another
/// replica could then reserve the same money) or the charge (a lost settlement). So in cluster and
/// sentinel modes each script is followed, on the same link, by `WAIT replicas timeout`, and its
/// reply is handed back only after the WAIT's. A WAIT that times out (no replica attached) still
/// lets the reply through — the write is on the master — and is logged, at most every 10 s.
struct RedisWait: Sendable {
    let replicas: Int
    /// Below the link's own timeout, so a slow replica never fails the connection.
    let timeoutMilliseconds: Int
    let logger: Logger
    private let lastWarning = LastWarning()

    init(replicas: Int, timeoutMilliseconds: Int, logger: Logger) {
        self.replicas = replicas
        self.timeoutMilliseconds = max(1, timeoutMilliseconds / 2)
        self.logger = logger
    }

    /// `command`, with a WAIT after it when it is a script (the only writes that carry money).
    func sequence(_ command: RedisCommand, asking: Bool = false) -> [RedisCommand] {
        var sequence = asking ? [RedisCommand.command(["ASKING"]), command] : [command]
        if replicas > 0, command.isScript { sequence.append(.command(["WAIT", String(replicas), String(timeoutMilliseconds)])) }
        return sequence
    }

    /// The command's own reply out of the sequence's.
    func reply(_ replies: [RedisReply], asking: Bool, node: RedisNode) -> RedisReply {
        let reply = replies[asking ? 1 : 0]
        if replicas > 0, replies.count == (asking ? 3 : 2), let acked = replies.last?.int, acked < replicas, lastWarning.due() {
            logger.warning("a Redis replica did not confirm a budget write in time: a failover now could lose it",
                           metadata: ["redis": "\(node.endpoint)", "confirmed": "\(acked)", "wanted": "\(replicas)",
                                      "fix": "attach a replica to every master, or set redis.wait_replicas to the replicas each master has"])
        }
        return reply
    }

    private final class LastWarning: Sendable {
        private let at = Mutex<ContinuousClock.Instant?>(nil)
        func due() -> Bool {
            at.withLock { last in
                let now = ContinuousClock.now
                if let last, now - last < .seconds(10) { return false }
                last = now
                return true
            }
        }
    }
}
