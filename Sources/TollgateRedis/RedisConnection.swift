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
    private let loadsScripts: Bool
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
        loadsScripts = !scripts.isEmpty
        let settings = RedisLink.Settings(endpoint: endpoint, transport: Self.transport(endpoint, logger: logger),
                                          timeout: .milliseconds(Int64(timeoutMilliseconds)), scripts: scripts, logger: logger, encode: encode)
        links = group.makeIterator().map { RedisLink(eventLoop: $0, settings: settings) }
        // Connect eagerly so readiness and script loading do not wait for the first request.
        for link in links { link.eventLoop.execute { link.connect() } }
    }

    /// The TLS files are read here, once; a failure is kept and reported by every connect (and by
    /// `verify`), so creating a connection never throws.
    private static func transport(_ endpoint: RedisEndpoint, logger: Logger) -> RedisLink.Transport {
        guard let tls = endpoint.tls else { return .plain }
        if tls.insecureSkipVerify {
            logger.warning("redis.tls.insecure_skip_verify is true: Redis's certificate is NOT checked, so anyone on the network path can pose as Redis and read or rewrite every budget. Use it on a test bench only; set redis.tls.ca_file instead",
                           metadata: ["redis": "\(endpoint)"])
        }
        do { return .tls(try RedisTLSContext(tls, host: endpoint.host)) } catch {
            if case .misconfigured(let why) = error { return .unusable(why) }
            return .unusable("\(error)")
        }
    }

    /// Checks once, at start, what a wrong setting would break: it connects (TLS, AUTH, SELECT,
    /// SCRIPT LOAD are each connection's setup), then asks whether the user may run the scripts on
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
