import NIOCore
import TollgateCore

/// How soon a link that went down tries again. Not in the generic machine: a generic type
/// cannot hold static stored properties.
enum RedisLinkPace {
    /// Reconnects back off from 50 ms to 250 ms only: until a link reconnects, its callers are
    /// refused, and a Redis that restarts is back within moments (a refused connect costs it nothing).
    static let firstBackoff = TimeAmount.milliseconds(50), maxBackoff = TimeAmount.milliseconds(250)
    /// A loading Redis is retried at this pace, whatever the backoff.
    static let loadingRetry = TimeAmount.milliseconds(100)
    /// A refused login or setup repeats the same mistake: retried rarely, and logged once.
    static let refusedRetry = TimeAmount.seconds(2)
    /// A deadline passed but the reply sits unread in the socket: look again this soon.
    static let unreadRecheck = TimeAmount.milliseconds(10)
}

/// The protocol logic of one Redis connection, with no I/O: which commands are in flight and
/// whose replies they carry, what waits for a connection, the setup after each connect, the
/// NOSCRIPT reload, the deadlines and the backoff. Each event is one mutating method that
/// returns the `Action` the link must perform (`RedisLink` owns the socket, hiredis and the
/// logger). Time comes in as arguments, never read here, so tests drive it with literal deadlines.
///
/// `Channel` names a connection (the link's NIO channel; a plain value in tests). `Caller` is
/// where a reply goes (`RedisLink.Reply`; a plain value in tests). Commands arrive encoded.
struct RedisLinkStateMachine<Channel: Equatable, Caller> {
    private enum State {
        /// Not connected. Callers fail fast until `retryAt`, then the next call reconnects.
        case down(retryAt: NIODeadline, outage: RedisOutage)
        case connecting
        /// Connected; AUTH, SELECT and SCRIPT LOAD are in flight. Callers wait in `waiting`.
        case settingUp(Channel)
        case ready(Channel)
        case shutDown
    }

    private enum Entry {
        /// A caller's command. `rerun` keeps a script's bytes while a NOSCRIPT may still rerun it
        /// (once); nil for other commands and for a rerun.
        case caller(Caller, rerun: ByteBuffer?)
        /// A caller's WAIT. Superseded (no caller) when the script before it was rerun: the WAIT
        /// sent again behind the rerun answers its caller instead, and this reply is dropped.
        case wait(Caller?, bytes: ByteBuffer)
        /// AUTH / SELECT / SCRIPT LOAD, named by their step (never their arguments: AUTH carries
        /// the password): their replies complete the setup (or fail the connection).
        case setup(String)
    }

    private let timeout: TimeAmount
    /// Names the setting to fix when Redis refuses a setup step.
    private let endpoint: RedisEndpoint
    private var state: State
    /// Sent, awaiting replies, oldest first, with the time each must be answered by.
    private var inFlight = CircularBuffer<(entry: Entry, deadline: NIODeadline)>()
    /// Accepted while connecting; sent once the setup is done, or failed as not sent at its
    /// deadline: a connect that stalls (a thread pool busy elsewhere, a setup Redis does not
    /// answer) must not hold a caller longer than any command would be held.
    private var waiting = CircularBuffer<(command: Command, caller: Caller, deadline: NIODeadline)>()
    /// The SCRIPT LOADs of the current connection, sent again after a NOSCRIPT.
    private var scriptLoads: [ByteBuffer] = []
    private var backoff = RedisLinkPace.firstBackoff
    /// The last outage logged, so a Redis that stays down is reported once, not on every retry.
    private var reported: RedisOutage?
    private var setupPending = 0
    /// SCRIPT LOADs sent after a NOSCRIPT and not answered yet.
    private var reloadsPending = 0
    /// How many commands at the tail of `inFlight` are written but not flushed yet.
    private var unflushed = 0
    private var flushScheduled = false
    private var timerArmed = false

    init(timeout: TimeAmount, endpoint: RedisEndpoint, now: NIODeadline) {
        self.timeout = timeout
        self.endpoint = endpoint
        state = .down(retryAt: now, outage: .lost("not connected yet"))
    }

    private var current: Channel? {
        switch state {
        case .settingUp(let c), .ready(let c): return c
        case .down, .connecting, .shutDown: return nil
        }
    }

    // MARK: callers

    /// A caller's command, already encoded (one that cannot be encoded never gets here).
    mutating func send(_ command: Command, for caller: Caller, now: NIODeadline) -> Action {
        switch state {
        case .shutDown:
            return .fail(caller, .unavailable("connection is shut down"))
        case .down(let retryAt, let outage):
            guard retryAt <= now else { return .fail(caller, outage.unsent) }
            waiting.append((command, caller, now + timeout))
            state = .connecting
            return .connect(armTimerAt: armTimer())
        case .connecting, .settingUp:
            waiting.append((command, caller, now + timeout))
            return armTimer().map { .armTimer(at: $0) } ?? .none
        case .ready(let channel):
            // The hot path: one write, no array.
            record(Self.entry(command, caller))
            return .write(command.bytes, on: channel, scheduleFlush: claimFlush())
        }
    }

    private static func entry(_ command: Command, _ caller: Caller) -> Entry {
        command.isWait ? .wait(caller, bytes: command.bytes) : .caller(caller, rerun: command.rerun)
    }

    /// Connect now unless connected or connecting (the link's first connect; ignores the backoff).
    mutating func connectRequested() -> Action {
        guard case .down = state else { return .none }
        state = .connecting
        return .connect(armTimerAt: nil)
    }

    mutating func shutdown() -> Action {
        let channel = current
        state = .shutDown
        timerArmed = false
        let error = RedisError.unavailable("connection is shut down")
        return .shutDown(drain(close: channel, report: nil, sent: error, unsent: error))
    }

    // MARK: the connection's life

    mutating func connected(_ channel: Channel, setup: Setup, now: NIODeadline) -> Action {
        guard case .connecting = state else { return .close(channel) } // shut down meanwhile
        state = .settingUp(channel)
        switch setup {
        case .commands(let handshake, let scripts): return setUp(channel, handshake: handshake, scripts: scripts)
        case .unencodable(let why): return failed(.lost(why), on: channel, now: now)
        }
    }

    private mutating func setUp(_ channel: Channel, handshake: [SetupCommand], scripts: [ByteBuffer]) -> Action {
        scriptLoads = scripts
        setupPending = handshake.count + scripts.count
        if setupPending == 0 { return becomeReady(channel) }
        var buffers: [ByteBuffer] = []
        buffers.reserveCapacity(setupPending)
        for command in handshake {
            record(.setup(command.step))
            buffers.append(command.bytes)
        }
        for load in scripts {
            record(.setup("SCRIPT LOAD"))
            buffers.append(load)
        }
        return .writeAll(Writes(channel: channel, buffers: buffers, scheduleFlush: claimFlush()))
    }

    private mutating func becomeReady(_ channel: Channel) -> Action {
        state = .ready(channel)
        backoff = RedisLinkPace.firstBackoff
        reported = nil
        let queued = waiting
        waiting.removeAll()
        var buffers: [ByteBuffer] = []
        buffers.reserveCapacity(queued.count)
        for (command, caller, _) in queued {
            record(Self.entry(command, caller))
            buffers.append(command.bytes)
        }
        return .becomeReady(Writes(channel: channel, buffers: buffers, scheduleFlush: !buffers.isEmpty && claimFlush()))
    }

    /// The connection is unusable: what was sent has an unknown outcome, what waited was not
    /// sent. `channel` nil: the connect failed, or a deadline passed (whichever channel is current).
    mutating func failed(_ outage: RedisOutage, on channel: Channel?, now: NIODeadline) -> Action {
        switch state {
        case .shutDown, .down: return .none
        case .connecting, .settingUp, .ready: break
        }
        // A late event from an older channel must not take down the current one (or a connect in progress).
        let broken = current
        if let channel, channel != broken { return .none }
        let retryIn: TimeAmount
        switch outage {
        case .lost:
            retryIn = backoff
            backoff = min(backoff * 2, RedisLinkPace.maxBackoff)
        case .loading: retryIn = RedisLinkPace.loadingRetry
        case .refused: retryIn = RedisLinkPace.refusedRetry
        }
        state = .down(retryAt: now + retryIn, outage: outage)
        let report = outage == reported ? nil : outage
        reported = outage
        return .goDown(drain(close: broken, report: report, sent: .unknownOutcome(outage.why), unsent: outage.unsent))
    }

    /// Empties the queues: their callers go to the link with what to tell them.
    private mutating func drain(close channel: Channel?, report: RedisOutage?, sent: RedisError, unsent: RedisError) -> Teardown {
        var lost: [Caller] = []
        for item in inFlight {
            switch item.entry {
            case .caller(let caller, _), .wait(let caller?, _): lost.append(caller)
            case .wait(nil, _), .setup: break
            }
        }
        inFlight.removeAll()
        unflushed = 0
        reloadsPending = 0
        let queued = waiting.map(\.caller)
        waiting.removeAll()
        return Teardown(close: channel, report: report, sent: lost, sentError: sent, unsent: queued, unsentError: unsent)
    }

    // MARK: reading

    /// One reply, decoded from what `channel` read.
    mutating func received(_ reply: RedisReply, on channel: Channel, now: NIODeadline) -> Action {
        guard let current, current == channel else { return .none }
        guard let item = inFlight.popFirst() else { return failed(.lost("reply without a request"), on: channel, now: now) }
        switch item.entry {
        case .setup(let step):
            if case .error(let message) = reply {
                return failed(.reply(to: step, message, endpoint: endpoint), on: channel, now: now)
            }
            guard case .settingUp = state else { // a NOSCRIPT reload while ready
                reloadsPending -= 1
                return .none
            }
            setupPending -= 1
            return setupPending == 0 ? becomeReady(channel) : .none
        case .wait(let caller, _):
            return caller.map { .resume($0, reply) } ?? .none
        case .caller(let caller, let rerun):
            guard let rerun, case .error(let message) = reply, message.hasPrefix("NOSCRIPT") else {
                return .resume(caller, reply)
            }
            // The script did not run: safe to load it again and rerun. Many callers get NOSCRIPT
            // at once (SCRIPT FLUSH); one reload in flight serves every rerun, since each rerun is
            // written after it.
            var buffers: [ByteBuffer] = []
            if reloadsPending == 0 {
                reloadsPending = scriptLoads.count
                for load in scriptLoads {
                    record(.setup("SCRIPT LOAD"))
                    buffers.append(load)
                }
            }
            record(.caller(caller, rerun: nil))
            buffers.append(rerun)
            // A WAIT written right behind the script confirmed nothing of the rerun's writes: it
            // goes again behind the rerun, and its caller waits for that one.
            if let next = inFlight.first, case .wait(let waiter?, let wait) = next.entry {
                inFlight[inFlight.startIndex].entry = .wait(nil, bytes: wait)
                record(.wait(waiter, bytes: wait))
                buffers.append(wait)
            }
            return .writeAll(Writes(channel: channel, buffers: buffers, scheduleFlush: claimFlush()))
        }
    }

    /// The bytes `channel` read are not RESP: the stream is unusable.
    mutating func replyUnreadable(_ why: String, on channel: Channel, now: NIODeadline) -> Action {
        failed(.lost(why), on: channel, now: now)
    }

    // MARK: writing and time

    private mutating func record(_ entry: Entry) {
        inFlight.append((entry, .distantFuture))
        unflushed += 1
    }

    /// True for the first write of a loop tick: one flush, scheduled by it, carries them all.
    private mutating func claimFlush() -> Bool {
        defer { flushScheduled = true }
        return !flushScheduled
    }

    /// The flush scheduled by a write is due. Each command's time limit starts now, so a busy
    /// event loop that flushes late cannot be mistaken for a slow Redis (one that reads late:
    /// see `timerFired`).
    mutating func flushDue(now: NIODeadline) -> Action {
        flushScheduled = false
        guard let channel = current else { return .none }
        guard unflushed > 0 else { return .flush(channel, armTimerAt: nil) }
        let deadline = now + timeout
        var i = inFlight.index(inFlight.endIndex, offsetBy: -min(unflushed, inFlight.count))
        while i != inFlight.endIndex {
            inFlight[i].deadline = deadline
            i = inFlight.index(after: i)
        }
        unflushed = 0
        return .flush(channel, armTimerAt: armTimer())
    }

    /// The deadline timer went off. A frozen Redis must not hold callers forever, but bytes
    /// waiting in the socket mean Redis did answer: NIO runs every queued task before it polls
    /// sockets again, and this loop has been busy. `unreadBytes` asks the socket, only then.
    /// Callers still waiting for a connection at their deadline fail as not sent; the connect
    /// goes on for the callers after them.
    mutating func timerFired(now: NIODeadline, unreadBytes: (Channel) -> Bool) -> Action {
        timerArmed = false
        if let oldest = inFlight.first, oldest.deadline <= now {
            if let current, unreadBytes(current) {
                timerArmed = true
                return .armTimer(at: now + RedisLinkPace.unreadRecheck)
            }
            return failed(.lost("no reply within \(milliseconds) ms"), on: nil, now: now)
        }
        var expired: [Caller] = []
        while let first = waiting.first, first.deadline <= now { expired.append(waiting.removeFirst().caller) }
        if !expired.isEmpty {
            return .expire(expired, .unavailable("no connection to Redis within \(milliseconds) ms; not sent"), armTimerAt: armTimer())
        }
        return armTimer().map { .armTimer(at: $0) } ?? .none
    }

    private var milliseconds: Int64 { timeout.nanoseconds / 1_000_000 }

    /// When the timer must go off, if it is not armed: the earliest deadline of the oldest
    /// unanswered command and the oldest caller waiting for a connection. A command has none
    /// before it is flushed (its flush arms the timer).
    private mutating func armTimer() -> NIODeadline? {
        guard !timerArmed else { return nil }
        let sent = inFlight.first.map(\.deadline) ?? .distantFuture
        let deadline = min(sent, waiting.first?.deadline ?? .distantFuture)
        guard deadline != .distantFuture else { return nil }
        timerArmed = true
        return deadline
    }
}
