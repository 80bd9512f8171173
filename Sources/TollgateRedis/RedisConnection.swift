import CHiredis
import Dispatch
import Foundation
import Logging
import Synchronization
import TollgateCore

/// One hiredis connection owned by one thread. Callers enqueue commands and await replies;
/// the thread drains the queue in batches — append every command, then read every reply — so
/// all requests that arrive while a batch is in flight share one write and one read (pipelining).
/// No event loop ever blocks on Redis.
public final class RedisConnection: Sendable {
    public let endpoint: RedisEndpoint
    let timeoutMilliseconds: Int
    /// Loaded on every (re)connect; EVALSHA names them.
    let scripts: [RedisScript]
    let logger: Logger

    struct Pending {
        let command: RedisCommand
        let continuation: CheckedContinuation<RedisReply, any Error>
    }
    struct Queue {
        var pending: [Pending] = []
        var running = true
        var connected = false
        /// While reconnecting after a failure, callers fail fast instead of piling up.
        var downUntil: DispatchTime = .now()
        var lastError = ""
    }
    private let queue = Mutex(Queue())
    private let wakeup = DispatchSemaphore(value: 0)
    private let stopped = DispatchSemaphore(value: 0)

    public init(endpoint: RedisEndpoint, timeoutMilliseconds: Int, scripts: [RedisScript], logger: Logger) {
        self.endpoint = endpoint
        self.scripts = scripts
        self.timeoutMilliseconds = timeoutMilliseconds
        self.logger = logger
        let thread = Thread { [self] in
            var connection = ConnectionThread(owner: self)
            connection.run()
        }
        thread.name = "tollgate-redis"
        thread.start()
    }

    public var isConnected: Bool { queue.withLock { $0.connected } }

    public func send(_ command: RedisCommand) async throws -> RedisReply {
        try await withCheckedThrowingContinuation { continuation in
            let failure: RedisError? = queue.withLock { q in
                guard q.running else { return .unavailable("connection is shut down") }
                if !q.connected, q.downUntil > .now() { return .unavailable(q.lastError) }
                q.pending.append(Pending(command: command, continuation: continuation))
                return nil
            }
            if let failure { continuation.resume(throwing: failure) } else { wakeup.signal() }
        }
    }

    /// Runs a command and turns an error reply into a thrown `RedisError.server`.
    public func call(_ command: RedisCommand) async throws -> RedisReply {
        let reply = try await send(command)
        if case .error(let message) = reply { throw RedisError.server(message) }
        return reply
    }

    public func shutdown() {
        let wasRunning = queue.withLock { q in
            defer { q.running = false }
            return q.running
        }
        guard wasRunning else { return }
        wakeup.signal()
        stopped.wait()
    }

    fileprivate func takeBatch() -> [Pending]? {
        while true {
            let state: (batch: [Pending], running: Bool) = queue.withLock { q in
                defer { q.pending.removeAll(keepingCapacity: true) }
                return (q.pending, q.running)
            }
            if !state.batch.isEmpty { return state.batch }
            if !state.running { return nil }
            wakeup.wait()
        }
    }

    fileprivate func markUp() { queue.withLock { $0.connected = true } }

    fileprivate func markDown(_ why: String, backoffMilliseconds: Int) {
        queue.withLock { q in
            q.connected = false
            q.lastError = why
            q.downUntil = .now() + .milliseconds(backoffMilliseconds)
        }
    }

    fileprivate func finishStopping() {
        let leftovers = queue.withLock { q in
            defer { q.pending.removeAll() }
            return q.pending
        }
        for p in leftovers { p.continuation.resume(throwing: RedisError.unavailable("connection is shut down")) }
        stopped.signal()
    }
}

/// The thread's side: owns the hiredis context, which is not thread-safe.
private struct ConnectionThread {
    let owner: RedisConnection
    var context: UnsafeMutablePointer<redisContext>?
    var shas: [String: String] = [:]
    var backoffMilliseconds = 50

    init(owner: RedisConnection) { self.owner = owner }

    mutating func run() {
        // Connect eagerly so readiness and script loading do not wait for the first request.
        _ = connect()
        while let batch = owner.takeBatch() {
            if context == nil, !connect() {
                let why = "cannot connect to \(owner.endpoint.host):\(owner.endpoint.port)"
                for p in batch { p.continuation.resume(throwing: RedisError.unavailable(why)) }
                continue
            }
            execute(batch)
        }
        disconnect()
        owner.finishStopping()
    }

    /// Connects, selects the database and loads every script (so a restarted Redis with an empty
    /// script cache does not send every caller into NOSCRIPT at once).
    mutating func connect() -> Bool {
        let ep = owner.endpoint
        context = tg_redis_connect_ms(ep.host, Int32(ep.port), owner.timeoutMilliseconds)
        guard let c = context, c.pointee.err == 0 else {
            fail("connect failed")
            return false
        }
        // Without a socket timeout a frozen Redis would block redisGetReply forever.
        tg_redis_set_timeout_ms(c, owner.timeoutMilliseconds)
        if ep.database != 0, case .error = roundTrip(["SELECT", String(ep.database)]) ?? .error("") {
            fail("SELECT \(ep.database) failed")
            return false
        }
        for script in owner.scripts {
            guard let sha = roundTrip(["SCRIPT", "LOAD", script.source])?.string, sha.count == 40 else {
                fail("SCRIPT LOAD \(script.name) failed")
                return false
            }
            shas[script.name] = sha
        }
        backoffMilliseconds = 50
        owner.markUp()
        owner.logger.info("connected to Redis", metadata: ["redis": "\(ep.host):\(ep.port)/\(ep.database)"])
        return true
    }

    mutating func fail(_ why: String) {
        let detail = context.map { String(cString: tg_redis_errstr($0)) } ?? ""
        disconnect()
        owner.markDown(why + (detail.isEmpty ? "" : ": " + detail), backoffMilliseconds: backoffMilliseconds)
        owner.logger.warning("Redis connection down", metadata: ["reason": "\(why) \(detail)"])
        backoffMilliseconds = min(backoffMilliseconds * 2, 2_000)
    }

    mutating func disconnect() {
        if let c = context { redisFree(c) }
        context = nil
        owner.queue_markDisconnected()
    }

    func argv(_ command: RedisCommand) -> [String] {
        switch command {
        case .command(let args): return args
        case .script(let s, let keys, let args): return ["EVALSHA", shas[s.name] ?? "", String(keys.count)] + keys + args
        }
    }

    /// Appends all, reads all. A failure mid-way leaves the rest with an unknown outcome.
    mutating func execute(_ batch: [RedisConnection.Pending]) {
        guard let replies = pipeline(batch.map { argv($0.command) }) else {
            let why = String(cString: tg_redis_errstr(context!))
            fail("I/O error")
            for p in batch { p.continuation.resume(throwing: RedisError.unknownOutcome(why)) }
            return
        }
        var retry: [RedisConnection.Pending] = []
        for (p, reply) in zip(batch, replies) {
            if case .error(let message) = reply, message.hasPrefix("NOSCRIPT"), case .script = p.command {
                retry.append(p) // the script did not run: safe to load and run again
            } else {
                p.continuation.resume(returning: reply)
            }
        }
        guard !retry.isEmpty else { return }
        for script in owner.scripts {
            if let sha = roundTrip(["SCRIPT", "LOAD", script.source])?.string { shas[script.name] = sha }
        }
        guard context != nil, let again = pipeline(retry.map { argv($0.command) }) else {
            fail("I/O error during NOSCRIPT reload")
            for p in retry { p.continuation.resume(throwing: RedisError.unknownOutcome("connection lost")) }
            return
        }
        for (p, reply) in zip(retry, again) { p.continuation.resume(returning: reply) }
    }

    /// nil when the connection failed; then the context has been freed by the caller via `fail`.
    func pipeline(_ commands: [[String]]) -> [RedisReply]? {
        guard let c = context else { return nil }
        for args in commands {
            let cStrings = args.map { strdup($0) }
            defer { cStrings.forEach { free($0) } }
            var pointers = cStrings.map { UnsafePointer($0) }
            var lengths = args.map { $0.utf8.count }
            redisAppendCommandArgv(c, Int32(args.count), &pointers, &lengths)
        }
        var replies: [RedisReply] = []
        replies.reserveCapacity(commands.count)
        for _ in commands {
            var raw: UnsafeMutableRawPointer?
            guard redisGetReply(c, &raw) == REDIS_OK, let raw else { return nil }
            let reply = raw.assumingMemoryBound(to: redisReply.self)
            replies.append(RedisReply(reply))
            freeReplyObject(raw)
        }
        return replies
    }

    mutating func roundTrip(_ args: [String]) -> RedisReply? {
        guard let r = pipeline([args]) else {
            if context != nil { fail("I/O error") }
            return nil
        }
        return r.first
    }
}

extension RedisConnection {
    fileprivate func queue_markDisconnected() { queue.withLock { $0.connected = false } }
}
