import Crypto
import Foundation
import Logging
import NIOCore
import NIOPosix
import TollgateCore

/// One Redis connection owned by one NIO event loop. Everything here runs on that loop, which
/// is why the class can be `@unchecked Sendable`. A request served by the loop writes its
/// command without a thread hop; every command written during one loop tick goes out in one
/// flush (pipelining), and replies come back in order. What to do on each event is decided by
/// `RedisLinkStateMachine`; this class performs it: the socket, hiredis and the logging.
final class RedisLink: @unchecked Sendable {
    /// Where a command's reply goes: a waiting caller, or nowhere (`RedisConnection.post`).
    /// Or one place in a sequence sent back to back (`RedisNode.send(_:)` with several commands).
    enum Reply {
        case caller(CheckedContinuation<RedisReply, any Error>)
        case part(Int, of: RedisReplies)
        /// A caller driven by its loop's callbacks (no task waits): called on the link's loop.
        case callback(@Sendable (Result<RedisReply, any Error>) -> Void)
        case none

        init(caller: CheckedContinuation<RedisReply, any Error>?) { self = caller.map { .caller($0) } ?? .none }

        func resume(returning reply: RedisReply) {
            switch self {
            case .caller(let c): c.resume(returning: reply)
            case .part(let i, let all): all.deliver(.success(reply), at: i)
            case .callback(let done): done(.success(reply))
            case .none: break
            }
        }
        func resume(throwing error: any Error) {
            switch self {
            case .caller(let c): c.resume(throwing: error)
            case .part(let i, let all): all.deliver(.failure(error), at: i)
            case .callback(let done): done(.failure(error))
            case .none: break
            }
        }
    }

    /// A connection, named for the state machine by its channel; the socket is for `unreadBytes`.
    struct Connection: Equatable {
        let channel: any Channel
        /// The connected socket's descriptor (NIO owns it; see RedisSocket).
        let socket: CInt

        static func == (a: Connection, b: Connection) -> Bool { a.channel === b.channel }
    }

    typealias Machine = RedisLinkStateMachine<Connection, Reply>

    let eventLoop: any EventLoop
    private let settings: Settings
    var endpoint: RedisEndpoint { settings.endpoint }
    /// Every protocol decision; this class performs its actions (socket, hiredis, logging).
    private var machine: Machine
    /// EVALSHA names scripts by the SHA-1 of their source, which SCRIPT LOAD also returns.
    private var shas: [String: String] = [:]
    private var timer: Scheduled<Void>?
    private let allocator = ByteBufferAllocator()

    init(eventLoop: any EventLoop, settings: Settings) {
        self.eventLoop = eventLoop
        self.settings = settings
        machine = Machine(timeout: settings.timeout, endpoint: settings.endpoint, now: .now())
    }

    // MARK: events (on the event loop)

    /// A caller's command fails alone, as not sent, when it cannot be encoded: the machine only
    /// sees commands that can be written.
    func send(_ command: RedisCommand, _ reply: Reply) {
        eventLoop.preconditionInEventLoop()
        let args = argv(command)
        guard let bytes = encode(args) else {
            reply.resume(throwing: RedisError.unavailable("\(Self.unencodable(args)); not sent"))
            return
        }
        var isScript = false, isWait = false
        switch command {
        case .script: isScript = true
        case .command(let args): isWait = args.first == "WAIT"
        }
        perform(machine.send(.init(bytes: bytes, isScript: isScript, isWait: isWait), for: reply, now: .now()))
    }

    func connect() {
        eventLoop.preconditionInEventLoop()
        perform(machine.connectRequested())
    }

    func shutdown() {
        eventLoop.preconditionInEventLoop()
        perform(machine.shutdown())
    }

    fileprivate func received(_ reply: RedisReply, on connection: Connection) {
        perform(machine.received(reply, on: connection, now: .now()))
    }

    fileprivate func unreadable(_ why: String, on connection: Connection) {
        perform(machine.replyUnreadable(why, on: connection, now: .now()))
    }

    fileprivate func failed(_ outage: RedisOutage, on connection: Connection?) {
        perform(machine.failed(outage, on: connection, now: .now()))
    }

    private func connected(_ connection: Connection) {
        perform(machine.connected(connection, setup: encodeSetup(), now: .now()))
    }

    // MARK: actions

    private func perform(_ action: Machine.Action) {
        switch action {
        case .none: break
        case .write(let bytes, let connection, let scheduleFlush):
            connection.channel.write(bytes, promise: nil)
            if scheduleFlush { self.scheduleFlush() }
        case .writeAll(let writes):
            write(writes)
        case .becomeReady(let writes):
            settings.logger.info("connected to Redis", metadata: ["redis": "\(settings.endpoint)"])
            write(writes)
        case .resume(let reply, let value):
            reply.resume(returning: value)
        case .fail(let reply, let error):
            reply.resume(throwing: error)
        case .connect(let deadline):
            startConnecting()
            if let deadline { armTimer(at: deadline) }
        case .expire(let replies, let error, let deadline):
            for reply in replies { reply.resume(throwing: error) }
            if let deadline { armTimer(at: deadline) }
        case .close(let connection):
            connection.channel.close(promise: nil)
        case .flush(let connection, let deadline):
            connection.channel.flush()
            if let deadline { armTimer(at: deadline) }
        case .armTimer(let deadline):
            armTimer(at: deadline)
        case .goDown(let teardown):
            if let outage = teardown.report { report(outage) }
            finish(teardown)
        case .shutDown(let teardown):
            timer?.cancel()
            timer = nil
            finish(teardown)
        }
    }

    private func write(_ writes: Machine.Writes) {
        for bytes in writes.buffers { writes.channel.channel.write(bytes, promise: nil) }
        if writes.scheduleFlush { scheduleFlush() }
    }

    /// One flush per loop tick carries every command written in that tick.
    private func scheduleFlush() {
        eventLoop.execute { [self] in perform(machine.flushDue(now: .now())) }
    }

    private func armTimer(at deadline: NIODeadline) {
        timer = eventLoop.scheduleTask(deadline: deadline) { [self] in
            timer = nil
            perform(machine.timerFired(now: .now()) { RedisSocket.unreadBytes($0.socket) > 0 })
        }
    }

    private func finish(_ teardown: Machine.Teardown) {
        for reply in teardown.sent { reply.resume(throwing: teardown.sentError) }
        for reply in teardown.unsent { reply.resume(throwing: teardown.unsentError) }
        teardown.close?.channel.close(promise: nil)
    }

    private func report(_ outage: RedisOutage) {
        if case .refused = outage {
            settings.logger.error("Redis refused Tollgate's connection", metadata: ["reason": "\(outage.why)", "redis": "\(settings.endpoint)"])
        } else {
            settings.logger.warning("Redis connection down", metadata: ["reason": "\(outage.why)", "redis": "\(settings.endpoint)"])
        }
    }

    private func startConnecting() {
        let (ep, transport, timeout, eventLoop) = (settings.endpoint, settings.transport, settings.timeout, self.eventLoop)
        if case .unusable(let why) = transport { return failed(.refused(why), on: nil) }
        NIOThreadPool.singleton.runIfActive(eventLoop: eventLoop) {
            try RedisSocket.connect(host: ep.host, port: ep.port, timeoutMilliseconds: Int(timeout.nanoseconds / 1_000_000))
        }.flatMap { [self] fd in
            ClientBootstrap(group: eventLoop)
                .channelInitializer { [self] channel in
                    channel.eventLoop.makeCompletedFuture {
                        // TLS below the Redis handler: the link reads and writes plain RESP.
                        if case .tls(let tls) = transport { try channel.pipeline.syncOperations.addHandler(tls.handler()) }
                        try channel.pipeline.syncOperations.addHandler(RedisLinkHandler(link: self, socket: fd))
                    }
                }
                .withConnectedSocket(fd)
                .map { Connection(channel: $0, socket: fd) }
        }.whenComplete { [self] result in
            switch result {
            case .success(let connection): connected(connection)
            case .failure(let error): failed(.error(error, endpoint: ep), on: nil)
            }
        }
    }

    // MARK: encoding

    /// The handshake and the SCRIPT LOADs, encoded for a new connection.
    private func encodeSetup() -> Machine.Setup {
        var handshake: [Machine.SetupCommand] = []
        for (step, args) in settings.handshake {
            guard let bytes = encode(args) else { return .unencodable(Self.unencodable(args)) }
            handshake.append(.init(step: step, bytes: bytes))
        }
        var loads: [ByteBuffer] = []
        for script in settings.scripts {
            let args = ["SCRIPT", "LOAD", script.source]
            guard let bytes = encode(args) else { return .unencodable(Self.unencodable(args)) }
            loads.append(bytes)
        }
        return .commands(handshake: handshake, scripts: loads)
    }

    /// Nil when hiredis cannot encode the command.
    private func encode(_ args: [String]) -> ByteBuffer? {
        var buffer = allocator.buffer(capacity: 64 + args.reduce(0) { $0 + $1.utf8.count + 16 })
        return settings.encode(args, &buffer) ? buffer : nil
    }

    private static func unencodable(_ args: [String]) -> String {
        "\(args.first ?? "command") could not be encoded (over 2 GiB, or out of memory)"
    }

    private func argv(_ command: RedisCommand) -> [String] {
        switch command {
        case .command(let args): return args
        case .script(let s, let keys, let args): return ["EVALSHA", sha(of: s), String(keys.count)] + keys + args
        }
    }

    private func sha(of script: RedisScript) -> String {
        if let known = shas[script.name] { return known }
        let sha = Insecure.SHA1.hash(data: Array(script.source.utf8)).map { String(format: "%02x", $0) }.joined()
        shas[script.name] = sha
        return sha
    }
}

/// Decodes what its socket reads (a reader per connection: a new connection starts a fresh
/// stream) and tells the link, and tells it when the socket goes away.
private final class RedisLinkHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    let link: RedisLink
    let socket: CInt
    private let reader = RedisReplyReader()

    init(link: RedisLink, socket: CInt) {
        self.link = link
        self.socket = socket
    }

    private func connection(_ context: ChannelHandlerContext) -> RedisLink.Connection {
        RedisLink.Connection(channel: context.channel, socket: socket)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        reader.feed(unwrapInboundIn(data))
        do {
            while let reply = try reader.next() { link.received(reply, on: connection(context)) }
        } catch {
            link.unreadable("\(error)", on: connection(context))
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        link.failed(.lost("connection closed by Redis"), on: connection(context))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        link.failed(.error(error, endpoint: link.endpoint), on: connection(context))
        context.close(promise: nil)
    }
}
