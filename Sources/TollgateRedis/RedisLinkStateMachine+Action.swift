import NIOCore

/// What goes into the machine, and what it tells the link to do.
extension RedisLinkStateMachine {
    /// A caller's command, encoded.
    struct Command {
        let bytes: ByteBuffer
        /// An EVALSHA: a NOSCRIPT reply reloads the scripts and reruns it once.
        let isScript: Bool
        /// A WAIT (`RedisWait` sends one right behind a script): when that script is rerun, the
        /// WAIT is sent again behind the rerun, whose writes it must confirm.
        var isWait = false

        var rerun: ByteBuffer? { isScript ? bytes : nil }
    }

    /// A handshake command (AUTH, SELECT), named by its step for the error that names the setting.
    struct SetupCommand {
        let step: String
        let bytes: ByteBuffer
    }

    /// What a new connection sends before callers may use it.
    enum Setup {
        /// The handshake, then one SCRIPT LOAD per script (sent again after a NOSCRIPT).
        case commands(handshake: [SetupCommand], scripts: [ByteBuffer])
        /// One of them could not be encoded (hiredis: out of memory, or over 2 GiB): the
        /// connection is useless, and goes down.
        case unencodable(String)
    }

    /// Buffers to write on a channel in this order.
    struct Writes {
        let channel: Channel
        let buffers: [ByteBuffer]
        /// True for the first write of a loop tick: schedule one flush (`flushDue`) for the tick.
        let scheduleFlush: Bool
    }

    /// Everything a connection leaves behind when it goes away.
    struct Teardown {
        /// The broken channel, to close; nil when none was connected.
        let close: Channel?
        /// The outage to log; nil when it is the one already logged (a Redis that stays down is
        /// reported once) or on shutdown.
        let report: RedisOutage?
        /// Sent, no reply yet: they may or may not have run.
        let sent: [Caller]
        let sentError: RedisError
        /// Never sent.
        let unsent: [Caller]
        let unsentError: RedisError
    }

    enum Action {
        case none
        /// Write one command; schedule the tick's flush when told to.
        case write(ByteBuffer, on: Channel, scheduleFlush: Bool)
        case writeAll(Writes)
        /// The setup is done: log "connected", then write the callers that waited for it.
        case becomeReady(Writes)
        case resume(Caller, RedisReply)
        case fail(Caller, RedisError)
        /// Open a connection; its outcome comes back as `connected` or `failed(_, on: nil, _)`.
        /// Arm the deadline timer too if a deadline is given (the first caller waiting for it).
        case connect(armTimerAt: NIODeadline?)
        /// Callers that waited for a connection until their deadline: fail them, not sent.
        case expire([Caller], RedisError, armTimerAt: NIODeadline?)
        /// A connection that is not wanted any more.
        case close(Channel)
        /// Flush the channel, then arm the deadline timer if a deadline is given.
        case flush(Channel, armTimerAt: NIODeadline?)
        case armTimer(at: NIODeadline)
        /// Log the outage if given, fail the callers, close the channel.
        case goDown(Teardown)
        /// Cancel the timer, fail the callers, close the channel.
        case shutDown(Teardown)
    }
}

// Tests compare actions with plain channel and caller values.
extension RedisLinkStateMachine.Command: Equatable {}
extension RedisLinkStateMachine.SetupCommand: Equatable {}
extension RedisLinkStateMachine.Writes: Equatable {}
extension RedisLinkStateMachine.Teardown: Equatable where Caller: Equatable {}
extension RedisLinkStateMachine.Action: Equatable where Caller: Equatable {}
