import TollgateCore

extension RedisConnection {
    /// At most this many commands wait for replies at once, so a large read (many clients ×
    /// many days) holds bounded memory while still filling each write.
    static let batchWindow = 512

    /// Runs independent commands concurrently and returns their replies in order. They are all
    /// sent before any reply is awaited, so each loop's connection writes those of one tick
    /// together (pipelining): a batch costs about one round trip, not one per command.
    public func calls(_ commands: [RedisCommand]) async throws -> [RedisReply] {
        try await withThrowingTaskGroup(of: (Int, RedisReply).self) { group in
            var replies = [RedisReply](repeating: .bulk(nil), count: commands.count)
            var next = 0
            func start() {
                let i = next, command = commands[i]
                group.addTask { (i, try await self.call(command)) }
                next += 1
            }
            while next < min(commands.count, Self.batchWindow) { start() }
            for try await (i, reply) in group {
                replies[i] = reply
                if next < commands.count { start() }
            }
            return replies
        }
    }

    /// HGETALL of every key, in order; a missing key is an empty hash.
    public func hashes(_ keys: [String]) async throws -> [[String: String]] {
        try await calls(keys.map { .command(["HGETALL", $0]) }).map(\.hash)
    }
}
