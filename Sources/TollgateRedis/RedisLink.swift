import Crypto
import Foundation
import Logging
import NIOCore
import NIOPosix
import TollgateCore

/// One Redis connection owned by one NIO event loop. Everything here runs on that loop, which
/// is why the class can be `@unchecked Sendable`. A request served by the loop writes its
/// command without a thread hop; every command written during one loop tick goes out in one
/// flush (pipelining), and replies come back in order.
final class RedisLink: @unchecked Sendable {
    /// Where a command's reply goes: a waiting caller, or nowhere (`RedisConnection.post`).
    /// Or one place in a sequence sent back to back (`RedisNode.send(_:)` with several commands).
    enum Reply {
        case caller(CheckedContinuation<RedisReply, any Error>)
        case part(Int, of: RedisReplies)
        case none

        init(caller: CheckedContinuation<RedisReply, any Error>?) { self = caller.map { .caller($0) } ?? .none }

        func resume(returning reply: RedisReply) {
            switch self {
            case .caller(let c): c.resume(returning: reply)
            case .part(let i, let all): all.deliver(.success(reply), at: i)
            case .none: break
            }
        }
        func resume(throwing error: any Error) {
            switch self {
            case .caller(let c): c.resume(throwing: error)
            case .part(let i, let all): all.deliver(.failure(error), at: i)
            case .none: break
            }
        }
    }

    /// Reconnects back off from 50 ms to 250 ms only: until a link reconnects, its callers are
    /// refused, and a Redis that restarts is back within moments (a refused connect costs it nothing).
    static let firstBackoff = TimeAmount.milliseconds(50), maxBackoff = TimeAmount.milliseconds(250)
    /// A loading Redis is retried at this pace, whatever the backoff.
    static let loadingRetry = TimeAmount.milliseconds(100)
    /// A refused login or setup repeats the same mistake: retried rarely, and logged once.
    static let refusedRetry = TimeAmount.seconds(2)

    private enum State {
        /// Not connected. Callers fail fast until `retryAt`, then the next call reconnects.
        case down(retryAt: NIODeadline, outage: RedisOutage)
        case connecting
        /// Connected; AUTH, SELECT and SCRIPT LOAD are in flight. Callers wait in `waiting`.
        case settingUp(any Channel)
        case ready(any Channel)
        case shutDown
    }

    private enum Entry {
        case caller(RedisCommand, Reply, retried: Bool)
        /// AUTH / SELECT / SCRIPT LOAD, named by their step (never their arguments: AUTH carries
        /// the password): their replies complete the setup (or fail the connection).
        case setup(String)
    }

    let eventLoop: any EventLoop
    private let settings: Settings
    var endpoint: RedisEndpoint { settings.endpoint }
    private var state: State
    /// EVALSHA names scripts by the SHA-1 of their source, which SCRIPT LOAD also returns.
    private var shas: [String: String] = [:]
    /// Sent, awaiting replies, oldest first, with the time each must be answered by.
    private var inFlight = CircularBuffer<(entry: Entry, deadline: NIODeadline)>()
    /// Accepted while connecting; sent once the setup is done.
    private var waiting: [(command: RedisCommand, reply: Reply)] = []
    private var reader = RedisReplyReader()
    private var flushScheduled = false
    private var timer: Scheduled<Void>?
    private var backoff = RedisLink.firstBackoff
    /// The last outage logged, so a Redis that stays down is reported once, not on every retry.
    private var reported: RedisOutage?
    private var setupPending = 0
    /// SCRIPT LOADs sent after a NOSCRIPT and not answered yet.
    private var reloadsPending = 0
    /// How many commands at the tail of `inFlight` are written but not flushed yet.
    private var unflushed = 0
    /// The connected socket's descriptor (NIO owns it; see RedisSocket).
    private var socket: CInt?

    init(eventLoop: any EventLoop, settings: Settings) {
        self.eventLoop = eventLoop
        self.settings = settings
        state = .down(retryAt: .now(), outage: .lost("not connected yet"))
    }

    private var current: (any Channel)? {
        switch state {
        case .settingUp(let c), .ready(let c): return c
        default: return nil
        }
    }

    // MARK: callers (on the event loop)

    func send(_ command: RedisCommand, _ reply: Reply) {
        eventLoop.preconditionInEventLoop()
        switch state {
        case .shutDown:
            reply.resume(throwing: RedisError.unavailable("connection is shut down"))
        case .down(let retryAt, let outage):
            guard retryAt <= .now() else {
                reply.resume(throwing: outage.unsent)
                return
            }
            waiting.append((command, reply))
            connect()
        case .connecting, .settingUp:
            waiting.append((command, reply))
        case .ready(let channel):
            write(.caller(command, reply, retried: false), on: channel)
        }
    }

    func connect() {
        eventLoop.preconditionInEventLoop()
        if case .down = state {} else { return }
        state = .connecting
        let (ep, transport, timeout, eventLoop) = (settings.endpoint, settings.transport, settings.timeout, self.eventLoop)
        if case .unusable(let why) = transport { return failed(.refused(why), channel: nil) }
        NIOThreadPool.singleton.runIfActive(eventLoop: eventLoop) {
            try RedisSocket.connect(host: ep.host, port: ep.port, timeoutMilliseconds: Int(timeout.nanoseconds / 1_000_000))
        }.flatMap { [self] fd in
            ClientBootstrap(group: eventLoop)
                .channelInitializer { [self] channel in
                    channel.eventLoop.makeCompletedFuture {
                        // TLS below the Redis handler: the link reads and writes plain RESP.
                        if case .tls(let tls) = transport { try channel.pipeline.syncOperations.addHandler(tls.handler()) }
                        try channel.pipeline.syncOperations.addHandler(RedisLinkHandler(link: self))
                    }
                }
                .withConnectedSocket(fd)
                .map { ($0, fd) }
        }.whenComplete { [self] result in
            switch result {
            case .success(let (channel, fd)): connected(channel, socket: fd)
            case .failure(let error): failed(.error(error, endpoint: ep), channel: nil)
            }
        }
    }

    func shutdown() {
        eventLoop.preconditionInEventLoop()
        let channel = current
        state = .shutDown
        socket = nil
        timer?.cancel()
        failAll(inFlightWith: .unavailable("connection is shut down"), waitingWith: .unavailable("connection is shut down"))
        channel?.close(promise: nil)
    }

    // MARK: the connection's life

    private func connected(_ channel: any Channel, socket: CInt) {
        guard case .connecting = state else {
            channel.close(promise: nil) // shut down meanwhile
            return
        }
        state = .settingUp(channel)
        self.socket = socket
        reader = RedisReplyReader()
        let handshake = settings.handshake
        setupPending = handshake.count + settings.scripts.count
        for (step, args) in handshake {
            guard write(.setup(step), args: args, on: channel) else { return }
        }
        guard loadScripts(on: channel) else { return }
        if setupPending == 0 { becomeReady(channel) }
    }

    private func becomeReady(_ channel: any Channel) {
        state = .ready(channel)
        backoff = Self.firstBackoff
        reported = nil
        settings.logger.info("connected to Redis", metadata: ["redis": "\(settings.endpoint)"])
        let queued = waiting
        waiting.removeAll()
        for (command, reply) in queued { write(.caller(command, reply, retried: false), on: channel) }
    }

    /// The connection is unusable: what was sent has an unknown outcome, what waited was not sent.
    func failed(_ outage: RedisOutage, channel: (any Channel)?) {
        switch state {
        case .shutDown, .down: return
        case .connecting, .settingUp, .ready: break
        }
        // A late event from an older channel must not take down the current one (or a connect in progress).
        let broken = current
        if let channel, channel !== broken { return }
        let retryIn: TimeAmount
        switch outage {
        case .lost:
            retryIn = backoff
            backoff = min(backoff * 2, Self.maxBackoff)
        case .loading: retryIn = Self.loadingRetry
        case .refused: retryIn = Self.refusedRetry
        }
        state = .down(retryAt: .now() + retryIn, outage: outage)
        socket = nil
        report(outage)
        failAll(inFlightWith: .unknownOutcome(outage.why), waitingWith: outage.unsent)
        broken?.close(promise: nil)
    }

    private func report(_ outage: RedisOutage) {
        guard outage != reported else { return }
        reported = outage
        if case .refused = outage {
            settings.logger.error("Redis refused Tollgate's connection", metadata: ["reason": "\(outage.why)", "redis": "\(settings.endpoint)"])
        } else {
            settings.logger.warning("Redis connection down", metadata: ["reason": "\(outage.why)", "redis": "\(settings.endpoint)"])
        }
    }

    private func failAll(inFlightWith sent: RedisError, waitingWith unsent: RedisError) {
        let lost = inFlight
        inFlight.removeAll()
        unflushed = 0
        reloadsPending = 0
        let queued = waiting
        waiting.removeAll()
        for item in lost {
            if case .caller(_, let reply, _) = item.entry { reply.resume(throwing: sent) }
        }
        for (_, reply) in queued { reply.resume(throwing: unsent) }
    }

    // MARK: writing

    private func write(_ entry: Entry, on channel: any Channel) {
        guard case .caller(let command, _, _) = entry else { return }
        write(entry, args: argv(command), on: channel)
    }

    /// False when the command could not be encoded: nothing was written and no reply is awaited
    /// (a slot in `inFlight` without a command would hand every later reply to the wrong
    /// caller). A caller's command fails alone; a setup command takes the connection down.
    @discardableResult
    private func write(_ entry: Entry, args: [String], on channel: any Channel) -> Bool {
        var buffer = channel.allocator.buffer(capacity: 64 + args.reduce(0) { $0 + $1.utf8.count + 16 })
        guard settings.encode(args, &buffer) else {
            let why = "\(args.first ?? "command") could not be encoded (over 2 GiB, or out of memory)"
            switch entry {
            case .caller(_, let reply, _): reply.resume(throwing: RedisError.unavailable("\(why); not sent"))
            case .setup: failed(.lost(why), channel: channel)
            }
            return false
        }
        channel.write(buffer, promise: nil)
        inFlight.append((entry, .distantFuture))
        unflushed += 1
        // One flush per loop tick carries every command written in that tick.
        if !flushScheduled {
            flushScheduled = true
            eventLoop.execute { [self] in
                flushScheduled = false
                current?.flush()
                flushed()
            }
        }
        return true
    }

    /// SCRIPT LOAD of every script; while ready, counted in `reloadsPending`. False when one
    /// could not be encoded (the connection is then down).
    private func loadScripts(on channel: any Channel) -> Bool {
        if case .ready = state { reloadsPending += settings.scripts.count }
        for script in settings.scripts {
            guard write(.setup("SCRIPT LOAD"), args: ["SCRIPT", "LOAD", script.source], on: channel) else { return false }
        }
        return true
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

    /// Each command's time limit starts when it is flushed, so a busy event loop that flushes late
    /// cannot be mistaken for a slow Redis (a busy loop that reads late: see `armTimer`).
    private func flushed() {
        guard unflushed > 0 else { return }
        let deadline = NIODeadline.now() + settings.timeout
        var i = inFlight.index(inFlight.endIndex, offsetBy: -min(unflushed, inFlight.count))
        while i != inFlight.endIndex {
            inFlight[i].deadline = deadline
            i = inFlight.index(after: i)
        }
        unflushed = 0
        armTimer()
    }

    /// A frozen Redis must not hold callers forever: the oldest unanswered command sets the alarm.
    private func armTimer(at deadline: NIODeadline? = nil) {
        guard timer == nil, let oldest = inFlight.first else { return }
        timer = eventLoop.scheduleTask(deadline: deadline ?? oldest.deadline) { [self] in
            timer = nil
            guard let oldest = inFlight.first, oldest.deadline <= .now() else { return armTimer() }
            // Bytes waiting in the socket: Redis did answer, but NIO runs every queued task
            // before it polls sockets again and this loop has been busy. Look again shortly.
            if let socket, RedisSocket.unreadBytes(socket) > 0 { return armTimer(at: .now() + .milliseconds(10)) }
            failed(.lost("no reply within \(settings.timeout.nanoseconds / 1_000_000) ms"), channel: nil)
        }
    }

    // MARK: reading

    func received(_ buffer: ByteBuffer, from channel: any Channel) {
        guard channel === current else { return }
        reader.feed(buffer)
        do {
            while let reply = try reader.next() {
                guard let item = inFlight.popFirst() else {
                    failed(.lost("reply without a request"), channel: channel)
                    return
                }
                handle(reply, for: item.entry, channel: channel)
            }
        } catch {
            failed(.lost("\(error)"), channel: channel)
        }
    }

    private func handle(_ reply: RedisReply, for entry: Entry, channel: any Channel) {
        switch entry {
        case .setup(let what):
            if case .error(let message) = reply {
                failed(.reply(to: what, message, endpoint: settings.endpoint), channel: channel)
                return
            }
            guard case .settingUp = state else { // a NOSCRIPT reload while ready
                reloadsPending -= 1
                return
            }
            setupPending -= 1
            if setupPending == 0 { becomeReady(channel) }
        case .caller(let command, let continuation, let retried):
            if case .error(let message) = reply, message.hasPrefix("NOSCRIPT"), case .script = command, !retried {
                // The script did not run: safe to load it again and rerun. Many callers get
                // NOSCRIPT at once (SCRIPT FLUSH); one reload in flight serves every retry,
                // since each retry is written after it.
                if reloadsPending == 0, !loadScripts(on: channel) {
                    continuation.resume(throwing: RedisError.unavailable("scripts could not be reloaded; not run"))
                    return
                }
                write(.caller(command, continuation, retried: true), on: channel)
                return
            }
            continuation.resume(returning: reply)
        }
    }
}

/// Feeds the link what its socket reads and tells it when the socket goes away.
private final class RedisLinkHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    let link: RedisLink

    init(link: RedisLink) { self.link = link }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        link.received(unwrapInboundIn(data), from: context.channel)
    }

    func channelInactive(context: ChannelHandlerContext) {
        link.failed(.lost("connection closed by Redis"), channel: context.channel)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        link.failed(.error(error, endpoint: link.endpoint), channel: context.channel)
        context.close(promise: nil)
    }
}
