import Logging
import NIOCore
import NIOPosix
import Synchronization
import TollgateCore

/// Tollgate's Redis client: one connection per NIO event loop (hiredis encodes and decodes,
/// NIO moves the bytes). A caller running on an event loop — every request handler in
/// `tollgate serve`, where Swift concurrency runs on NIO's loops — uses that loop's connection,
/// so a reserve or settle costs no thread hop, and all commands written in one loop tick share
/// one write (pipelining). Callers elsewhere hop to a loop. No event loop ever blocks on Redis.
public final class RedisConnection: Sendable {
    public let endpoint: RedisEndpoint
    private let links: [RedisLink]
    private let next = Atomic<Int>(0)

    public convenience init(endpoint: RedisEndpoint, timeoutMilliseconds: Int, scripts: [RedisScript], logger: Logger,
                            group: MultiThreadedEventLoopGroup = .singleton) {
        self.init(endpoint: endpoint, timeoutMilliseconds: timeoutMilliseconds, scripts: scripts, logger: logger, group: group,
                  encode: RedisWire.write)
    }

    /// `encode` replaces hiredis's encoder (tests make it fail).
    init(endpoint: RedisEndpoint, timeoutMilliseconds: Int, scripts: [RedisScript], logger: Logger,
         group: MultiThreadedEventLoopGroup, encode: @escaping @Sendable (_ args: [String], _ buffer: inout ByteBuffer) -> Bool) {
        self.endpoint = endpoint
        let settings = RedisLink.Settings(endpoint: endpoint, timeout: .milliseconds(Int64(timeoutMilliseconds)), scripts: scripts,
                                          logger: logger, encode: encode)
        links = group.makeIterator().map { RedisLink(eventLoop: $0, settings: settings) }
        // Connect eagerly so readiness and script loading do not wait for the first request.
        for link in links { link.eventLoop.execute { link.connect() } }
    }

    public func send(_ command: RedisCommand) async throws -> RedisReply {
        try await withCheckedThrowingContinuation { reply in enqueue(command, RedisLink.Reply(caller: reply)) }
    }

    /// Sends a command whose reply nobody waits for (bookkeeping such as the top-spender sets):
    /// it rides in the next pipelined write and costs the caller no round trip. Lost if Redis is
    /// unreachable, so only for what may be approximate.
    public func post(_ command: RedisCommand) {
        enqueue(command, RedisLink.Reply(caller: nil))
    }

    private func enqueue(_ command: RedisCommand, _ reply: RedisLink.Reply) {
        if let link = links.first(where: { $0.eventLoop.inEventLoop }) {
            link.send(command, reply)
        } else {
            let link = links[next.add(1, ordering: .relaxed).oldValue % links.count]
            link.eventLoop.execute { link.send(command, reply) }
        }
    }

    /// Runs a command and turns an error reply into a thrown `RedisError.server`.
    public func call(_ command: RedisCommand) async throws -> RedisReply {
        let reply = try await send(command)
        if case .error(let message) = reply { throw RedisError.server(message) }
        return reply
    }

    /// Closes the connections; calls waiting for a reply fail with `.unavailable`. Does not block.
    public func shutdown() {
        for link in links {
            if link.eventLoop.inEventLoop { link.shutdown() } else { link.eventLoop.execute { link.shutdown() } }
        }
    }
}
