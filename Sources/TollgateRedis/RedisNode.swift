import Logging
import NIOCore
import NIOPosix
import Synchronization
import TollgateCore

/// One Redis server: a pipelined link per NIO event loop (hiredis encodes and decodes, NIO moves
/// the bytes). A caller running on an event loop — every request handler in `tollgate serve`,
/// where Swift concurrency runs on NIO's loops — uses that loop's link, so a command costs no
/// thread hop, and all commands written in one loop tick share one write. Callers elsewhere hop
/// to a loop. No event loop ever blocks on Redis. `RedisConnection` talks to one node, or to one
/// per cluster master, or to the master Sentinel names.
final class RedisNode: Sendable {
    let endpoint: RedisEndpoint
    var address: RedisAddress { RedisAddress(host: endpoint.host, port: endpoint.port) }
    private let links: [RedisLink]
    private let next = Atomic<Int>(0)

    init(endpoint: RedisEndpoint, timeoutMilliseconds: Int, scripts: [RedisScript], logger: Logger, group: MultiThreadedEventLoopGroup,
         encode: @escaping @Sendable (_ args: [String], _ buffer: inout ByteBuffer) -> Bool = RedisWire.write) {
        self.endpoint = endpoint
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

    func send(_ command: RedisCommand) async throws -> RedisReply {
        try await withCheckedThrowingContinuation { reply in enqueue { $0.send(command, RedisLink.Reply(caller: reply)) } }
    }

    /// The same, for a caller driven by callbacks: `done` runs on the link's event loop (the
    /// caller's own when it runs on one).
    func send(_ command: RedisCommand, then done: @escaping @Sendable (Result<RedisReply, any Error>) -> Void) {
        enqueue { $0.send(command, .callback(done)) }
    }

    /// Sends the commands back to back on one link, so nothing of another caller's comes between
    /// them (ASKING before the command it applies to; WAIT right after a script's writes), and
    /// returns every reply, in order. Throws the first command's error if any failed.
    func send(_ commands: [RedisCommand]) async throws -> [RedisReply] {
        try await withCheckedThrowingContinuation { done in
            let replies = RedisReplies(count: commands.count, done: done)
            enqueue { link in
                for (i, command) in commands.enumerated() { link.send(command, .part(i, of: replies)) }
            }
        }
    }

    func post(_ command: RedisCommand) {
        enqueue { $0.send(command, .none) }
    }

    private func enqueue(_ work: @escaping @Sendable (RedisLink) -> Void) {
        if let link = links.first(where: { $0.eventLoop.inEventLoop }) {
            work(link)
        } else {
            let link = links[next.add(1, ordering: .relaxed).oldValue % links.count]
            link.eventLoop.execute { work(link) }
        }
    }

    /// Closes the links; calls waiting for a reply fail with `.unavailable`. Does not block.
    func shutdown() {
        for link in links {
            if link.eventLoop.inEventLoop { link.shutdown() } else { link.eventLoop.execute { link.shutdown() } }
        }
    }
}

/// The replies to commands sent back to back, collected until the last one arrives. Its parts
/// are delivered on one event loop; the lock is there for the type checker, not for contention.
final class RedisReplies: Sendable {
    private struct Collected {
        var replies: [RedisReply]
        var error: (any Error)?
        var missing: Int
        var done: CheckedContinuation<[RedisReply], any Error>?
    }
    private let state: Mutex<Collected>

    init(count: Int, done: CheckedContinuation<[RedisReply], any Error>) {
        state = Mutex(Collected(replies: Array(repeating: .bulk(nil), count: count), missing: count, done: done))
    }

    func deliver(_ result: Result<RedisReply, any Error>, at index: Int) {
        let finished: (CheckedContinuation<[RedisReply], any Error>, Result<[RedisReply], any Error>)? = state.withLock { s in
            switch result {
            case .success(let reply): s.replies[index] = reply
            case .failure(let error): if s.error == nil { s.error = error }
            }
            s.missing -= 1
            guard s.missing == 0, let done = s.done else { return nil }
            s.done = nil
            return (done, s.error.map { .failure($0) } ?? .success(s.replies))
        }
        if let (done, result) = finished { done.resume(with: result) }
    }
}
