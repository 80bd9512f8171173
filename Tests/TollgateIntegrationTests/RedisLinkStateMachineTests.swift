import NIOCore
import Testing
import TollgateCore
@testable import TollgateRedis

/// The Redis connection's protocol logic, driven event by event with no server: channels are
/// names, callers are numbers, time is literal (milliseconds since an arbitrary start), and
/// the commands' bytes are labels (the machine never looks inside them).
@Suite("Redis link state machine, without a server", .timeLimit(.minutes(1)))
struct RedisLinkStateMachineTests {
    typealias Machine = RedisLinkStateMachine<String, Int>

    static let plain = RedisEndpoint(url: "redis://127.0.0.1:6379")!
    static let timeout = TimeAmount.seconds(2)

    static func at(_ milliseconds: Int) -> NIODeadline { .uptimeNanoseconds(UInt64(milliseconds) * 1_000_000) }
    static func bytes(_ label: String) -> ByteBuffer { ByteBuffer(string: label) }
    static func command(_ label: String, script: Bool = false) -> Machine.Command { .init(bytes: bytes(label), isScript: script) }
    static func writes(_ channel: String, _ labels: [String], flush: Bool) -> Machine.Writes {
        .init(channel: channel, buffers: labels.map(bytes), scheduleFlush: flush)
    }
    static func bulk(_ s: String) -> RedisReply { .bulk(Array(s.utf8)) }
    static func down(_ outage: RedisOutage?, close: String?, sent: [Int] = [], unsent: [Int] = [], why: RedisOutage) -> Machine.Action {
        .goDown(.init(close: close, report: outage, sent: sent, sentError: .unknownOutcome(why.why), unsent: unsent, unsentError: why.unsent))
    }

    /// A machine connected on `channel` at 1000 ms, with no handshake; `scripts` SCRIPT LOADs answered.
    static func ready(_ channel: String = "c1", scripts: [String] = []) -> Machine {
        var m = Machine(timeout: timeout, endpoint: plain, now: at(1000))
        #expect(m.connectRequested() == .connect(armTimerAt: nil))
        let setup = m.connected(channel, setup: .commands(handshake: [], scripts: scripts.map(bytes)), now: at(1000))
        guard !scripts.isEmpty else {
            #expect(setup == .becomeReady(writes(channel, [], flush: false)))
            return m
        }
        #expect(setup == .writeAll(writes(channel, scripts, flush: true)))
        #expect(m.flushDue(now: at(1000)) == .flush(channel, armTimerAt: at(3000)))
        for (i, _) in scripts.enumerated().dropLast() { #expect(m.received(bulk("sha\(i)"), on: channel, now: at(1001)) == .none) }
        #expect(m.received(bulk("sha"), on: channel, now: at(1001)) == .becomeReady(writes(channel, [], flush: false)))
        return m
    }

    @Test("calls while down fail fast, as not sent, until the retry time; the first call after it connects")
    func downFailsFastThenConnects() {
        var m = Machine(timeout: Self.timeout, endpoint: Self.plain, now: Self.at(1000))
        #expect(m.send(Self.command("GET a"), for: 1, now: Self.at(1000)) == .connect(armTimerAt: Self.at(3000)))
        #expect(m.send(Self.command("GET b"), for: 2, now: Self.at(1000)) == .none)
        let refused = RedisOutage.lost("Connection refused")
        #expect(m.failed(refused, on: nil, now: Self.at(1100)) == Self.down(refused, close: nil, unsent: [1, 2], why: refused))
        #expect(m.send(Self.command("GET c"), for: 3, now: Self.at(1100)) == .fail(3, .unavailable("Connection refused")))
        #expect(m.send(Self.command("GET d"), for: 4, now: Self.at(1149)) == .fail(4, .unavailable("Connection refused")))
        #expect(m.send(Self.command("GET e"), for: 5, now: Self.at(1150)) == .connect(armTimerAt: nil)) // caller 1's timer (3000) is still to fire
        #expect(m.connectRequested() == .none, "already connecting")
    }

    @Test("a caller waiting for a connect that stalls fails as not sent at its own deadline; the connect goes on for the next")
    func waitingCallersHaveDeadlines() {
        var m = Machine(timeout: Self.timeout, endpoint: Self.plain, now: Self.at(1000))
        let silent: (String) -> Bool = { _ in false }
        let expired = RedisError.unavailable("no connection to Redis within 2000 ms; not sent")
        #expect(m.send(Self.command("GET 1"), for: 1, now: Self.at(1000)) == .connect(armTimerAt: Self.at(3000)))
        #expect(m.send(Self.command("GET 2"), for: 2, now: Self.at(1500)) == .none, "the timer is armed for caller 1")
        #expect(m.timerFired(now: Self.at(3000), unreadBytes: silent) == .expire([1], expired, armTimerAt: Self.at(3500)))
        #expect(m.timerFired(now: Self.at(3500), unreadBytes: silent) == .expire([2], expired, armTimerAt: nil))
        #expect(m.send(Self.command("GET 3"), for: 3, now: Self.at(3600)) == .armTimer(at: Self.at(5600)), "still connecting")
        #expect(m.connected("c1", setup: .commands(handshake: [], scripts: []), now: Self.at(3700))
                == .becomeReady(Self.writes("c1", ["GET 3"], flush: true)), "only the caller still waiting is written")
        #expect(m.flushDue(now: Self.at(3700)) == .flush("c1", armTimerAt: nil))
        #expect(m.received(Self.bulk("three"), on: "c1", now: Self.at(3701)) == .resume(3, Self.bulk("three")))
        #expect(m.timerFired(now: Self.at(5600), unreadBytes: silent) == .none, "nothing left to time")
    }

    @Test("callers waiting through a setup Redis does not answer fail with it, at the setup's deadline, not later")
    func waitingThroughSilentSetup() {
        var m = Machine(timeout: Self.timeout, endpoint: Self.plain, now: Self.at(1000))
        let silent: (String) -> Bool = { _ in false }
        #expect(m.send(Self.command("GET 1"), for: 1, now: Self.at(1000)) == .connect(armTimerAt: Self.at(3000)))
        #expect(m.connected("c1", setup: .commands(handshake: [], scripts: [Self.bytes("LOAD")]), now: Self.at(1000))
                == .writeAll(Self.writes("c1", ["LOAD"], flush: true)))
        #expect(m.flushDue(now: Self.at(1000)) == .flush("c1", armTimerAt: nil))
        #expect(m.send(Self.command("GET 2"), for: 2, now: Self.at(2000)) == .none)
        // 3000: the SCRIPT LOAD (flushed at 1000) is as overdue as caller 1: the connection goes, with both callers.
        let lost = RedisOutage.lost("no reply within 2000 ms")
        #expect(m.timerFired(now: Self.at(3000), unreadBytes: silent) == Self.down(lost, close: "c1", unsent: [1, 2], why: lost))
    }

    @Test("callers queued while connecting and setting up are written in order once the setup is answered")
    func queuedCallersWrittenInOrder() {
        var m = Machine(timeout: Self.timeout, endpoint: RedisEndpoint(url: "redis://127.0.0.1:6379/3")!, now: Self.at(1000))
        #expect(m.send(Self.command("GET 1"), for: 1, now: Self.at(1000)) == .connect(armTimerAt: Self.at(3000)))
        #expect(m.send(Self.command("GET 2"), for: 2, now: Self.at(1001)) == .none)
        let setup = Machine.Setup.commands(handshake: [.init(step: "SELECT", bytes: Self.bytes("SELECT 3"))], scripts: [Self.bytes("LOAD")])
        #expect(m.connected("c1", setup: setup, now: Self.at(1005)) == .writeAll(Self.writes("c1", ["SELECT 3", "LOAD"], flush: true)))
        #expect(m.send(Self.command("GET 3"), for: 3, now: Self.at(1006)) == .none)
        #expect(m.flushDue(now: Self.at(1006)) == .flush("c1", armTimerAt: nil), "armed for caller 1 already (3000)")
        #expect(m.received(.status("OK"), on: "c1", now: Self.at(1007)) == .none)
        #expect(m.received(Self.bulk("sha"), on: "c1", now: Self.at(1008))
                == .becomeReady(Self.writes("c1", ["GET 1", "GET 2", "GET 3"], flush: true)))
        #expect(m.flushDue(now: Self.at(1008)) == .flush("c1", armTimerAt: nil), "the timer is armed already")
        #expect(m.received(Self.bulk("one"), on: "c1", now: Self.at(1009)) == .resume(1, Self.bulk("one")))
        #expect(m.received(Self.bulk("two"), on: "c1", now: Self.at(1009)) == .resume(2, Self.bulk("two")))
        #expect(m.received(Self.bulk("three"), on: "c1", now: Self.at(1009)) == .resume(3, Self.bulk("three")))
    }

    @Test("a refused setup step: callers fail as not sent, naming the setting; the next try is 2 s later")
    func setupRefused() {
        var m = Machine(timeout: Self.timeout, endpoint: RedisEndpoint(url: "redis://127.0.0.1:6379/3")!, now: Self.at(1000))
        #expect(m.send(Self.command("GET 1"), for: 1, now: Self.at(1000)) == .connect(armTimerAt: Self.at(3000)))
        let setup = Machine.Setup.commands(handshake: [.init(step: "SELECT", bytes: Self.bytes("SELECT 3"))], scripts: [])
        #expect(m.connected("c1", setup: setup, now: Self.at(1000)) == .writeAll(Self.writes("c1", ["SELECT 3"], flush: true)))
        let refused = RedisOutage.refused("Redis refused database 3 (SELECT: ERR DB index is out of range); fix the /DB part of redis.url")
        #expect(m.received(.error("ERR DB index is out of range"), on: "c1", now: Self.at(1010))
                == .goDown(.init(close: "c1", report: refused, sent: [], sentError: .unknownOutcome(refused.why),
                                 unsent: [1], unsentError: .misconfigured(refused.why))))
        #expect(m.send(Self.command("GET 2"), for: 2, now: Self.at(3009)) == .fail(2, .misconfigured(refused.why)))
        #expect(m.send(Self.command("GET 3"), for: 3, now: Self.at(3010)) == .connect(armTimerAt: nil))
    }

    @Test("replies reach their callers in the order the commands were sent; one flush per tick")
    func repliesInOrder() {
        var m = Self.ready()
        #expect(m.send(Self.command("GET a"), for: 1, now: Self.at(1100)) == .write(Self.bytes("GET a"), on: "c1", scheduleFlush: true))
        #expect(m.send(Self.command("GET b"), for: 2, now: Self.at(1100)) == .write(Self.bytes("GET b"), on: "c1", scheduleFlush: false))
        #expect(m.flushDue(now: Self.at(1101)) == .flush("c1", armTimerAt: Self.at(3101)))
        #expect(m.send(Self.command("GET c"), for: 3, now: Self.at(1102)) == .write(Self.bytes("GET c"), on: "c1", scheduleFlush: true))
        #expect(m.received(.integer(10), on: "c1", now: Self.at(1103)) == .resume(1, .integer(10)))
        #expect(m.received(.error("WRONGTYPE"), on: "c1", now: Self.at(1103)) == .resume(2, .error("WRONGTYPE")))
        #expect(m.received(.integer(30), on: "c1", now: Self.at(1103)) == .resume(3, .integer(30)))
    }

    @Test("a reply with nothing in flight takes the connection down")
    func replyWithoutRequest() {
        var m = Self.ready()
        let lost = RedisOutage.lost("reply without a request")
        #expect(m.received(.status("OK"), on: "c1", now: Self.at(1200)) == Self.down(lost, close: "c1", why: lost))
        #expect(m.send(Self.command("GET a"), for: 1, now: Self.at(1249)) == .fail(1, .unavailable("reply without a request")))
        #expect(m.send(Self.command("GET a"), for: 2, now: Self.at(1250)) == .connect(armTimerAt: Self.at(3250)))
    }

    @Test("NOSCRIPT: one SCRIPT LOAD serves every rerun; a second NOSCRIPT on a rerun goes to its caller")
    func noscriptReloadsOnce() {
        var m = Self.ready(scripts: ["LOAD reserve", "LOAD settle"])
        for caller in 1...3 {
            #expect(m.send(Self.command("EVALSHA \(caller)", script: true), for: caller, now: Self.at(1100))
                    == .write(Self.bytes("EVALSHA \(caller)"), on: "c1", scheduleFlush: caller == 1))
        }
        #expect(m.send(Self.command("DEL x"), for: 4, now: Self.at(1100)) == .write(Self.bytes("DEL x"), on: "c1", scheduleFlush: false))
        #expect(m.flushDue(now: Self.at(1100)) == .flush("c1", armTimerAt: nil), "armed by the setup's SCRIPT LOADs")
        let noscript = RedisReply.error("NOSCRIPT No matching script. Please use EVAL.")
        #expect(m.received(noscript, on: "c1", now: Self.at(1101))
                == .writeAll(Self.writes("c1", ["LOAD reserve", "LOAD settle", "EVALSHA 1"], flush: true)))
        #expect(m.received(noscript, on: "c1", now: Self.at(1101)) == .writeAll(Self.writes("c1", ["EVALSHA 2"], flush: false)))
        #expect(m.received(.integer(3), on: "c1", now: Self.at(1101)) == .resume(3, .integer(3)))
        // Not a script: its error is its reply.
        #expect(m.received(noscript, on: "c1", now: Self.at(1101)) == .resume(4, noscript))
        #expect(m.flushDue(now: Self.at(1102)) == .flush("c1", armTimerAt: nil))
        #expect(m.received(Self.bulk("sha-reserve"), on: "c1", now: Self.at(1103)) == .none)
        #expect(m.received(Self.bulk("sha-settle"), on: "c1", now: Self.at(1103)) == .none)
        #expect(m.received(noscript, on: "c1", now: Self.at(1103)) == .resume(1, noscript), "a rerun is not rerun again")
        #expect(m.received(.integer(2), on: "c1", now: Self.at(1103)) == .resume(2, .integer(2)))
        // The reload was answered: the next NOSCRIPT loads the scripts again.
        #expect(m.send(Self.command("EVALSHA 5", script: true), for: 5, now: Self.at(1104)) == .write(Self.bytes("EVALSHA 5"), on: "c1", scheduleFlush: true))
        #expect(m.flushDue(now: Self.at(1104)) == .flush("c1", armTimerAt: nil))
        #expect(m.received(noscript, on: "c1", now: Self.at(1105))
                == .writeAll(Self.writes("c1", ["LOAD reserve", "LOAD settle", "EVALSHA 5"], flush: true)))
    }

    @Test("NOSCRIPT behind which a WAIT was written: the WAIT goes again behind the rerun, and its caller gets that one's reply")
    func waitFollowsTheRerun() {
        var m = Self.ready(scripts: ["LOAD reserve"])
        #expect(m.send(Self.command("EVALSHA 1", script: true), for: 1, now: Self.at(1100)) == .write(Self.bytes("EVALSHA 1"), on: "c1", scheduleFlush: true))
        let wait = Machine.Command(bytes: Self.bytes("WAIT 1 500"), isScript: false, isWait: true)
        #expect(m.send(wait, for: 2, now: Self.at(1100)) == .write(Self.bytes("WAIT 1 500"), on: "c1", scheduleFlush: false))
        #expect(m.flushDue(now: Self.at(1100)) == .flush("c1", armTimerAt: nil))
        let noscript = RedisReply.error("NOSCRIPT No matching script. Please use EVAL.")
        #expect(m.received(noscript, on: "c1", now: Self.at(1101))
                == .writeAll(Self.writes("c1", ["LOAD reserve", "EVALSHA 1", "WAIT 1 500"], flush: true)))
        #expect(m.flushDue(now: Self.at(1101)) == .flush("c1", armTimerAt: nil))
        // The first WAIT ran before the rerun: what it confirmed is not the script's writes.
        #expect(m.received(.integer(1), on: "c1", now: Self.at(1101)) == .none)
        #expect(m.received(Self.bulk("sha-reserve"), on: "c1", now: Self.at(1102)) == .none)
        #expect(m.received(.integer(7), on: "c1", now: Self.at(1102)) == .resume(1, .integer(7)))
        #expect(m.received(.integer(0), on: "c1", now: Self.at(1103)) == .resume(2, .integer(0)), "the WAIT behind the rerun")
        // A WAIT whose script ran answers as it is.
        #expect(m.send(Self.command("EVALSHA 3", script: true), for: 3, now: Self.at(1104)) == .write(Self.bytes("EVALSHA 3"), on: "c1", scheduleFlush: true))
        #expect(m.send(wait, for: 4, now: Self.at(1104)) == .write(Self.bytes("WAIT 1 500"), on: "c1", scheduleFlush: false))
        #expect(m.received(.integer(8), on: "c1", now: Self.at(1105)) == .resume(3, .integer(8)))
        #expect(m.received(.integer(1), on: "c1", now: Self.at(1105)) == .resume(4, .integer(1)))
    }

    @Test("the deadline timer: unread bytes in the socket rearm it; a silent Redis takes the connection down, sent commands with an unknown outcome")
    func deadlineTimer() {
        var m = Self.ready()
        #expect(m.send(Self.command("GET a"), for: 1, now: Self.at(1000)) == .write(Self.bytes("GET a"), on: "c1", scheduleFlush: true))
        // Fired before the command was flushed: its deadline is not known yet; the flush arms it.
        #expect(m.timerFired(now: Self.at(1000)) { _ in true } == .none)
        #expect(m.flushDue(now: Self.at(1010)) == .flush("c1", armTimerAt: Self.at(3010)))
        #expect(m.send(Self.command("GET b"), for: 2, now: Self.at(1500)) == .write(Self.bytes("GET b"), on: "c1", scheduleFlush: true))
        #expect(m.flushDue(now: Self.at(1500)) == .flush("c1", armTimerAt: nil))
        #expect(m.received(.integer(1), on: "c1", now: Self.at(1600)) == .resume(1, .integer(1)))
        // The oldest was answered: the next oldest's deadline is later.
        #expect(m.timerFired(now: Self.at(3010)) { _ in Issue.record("the socket is asked only when a deadline passed"); return true }
                == .armTimer(at: Self.at(3500)))
        var asked: [String] = []
        #expect(m.timerFired(now: Self.at(3500)) { asked.append($0); return true } == .armTimer(at: Self.at(3510)))
        #expect(asked == ["c1"])
        #expect(m.send(Self.command("GET c"), for: 3, now: Self.at(3505)) == .write(Self.bytes("GET c"), on: "c1", scheduleFlush: true))
        let silent = RedisOutage.lost("no reply within 2000 ms")
        #expect(m.timerFired(now: Self.at(3510)) { _ in false } == Self.down(silent, close: "c1", sent: [2, 3], why: silent))
        #expect(m.flushDue(now: Self.at(3510)) == .none, "nothing to flush once down")
    }

    @Test("a loading Redis (-LOADING) is retried 100 ms later")
    func loadingRetry() {
        var m = Machine(timeout: Self.timeout, endpoint: Self.plain, now: Self.at(1000))
        #expect(m.send(Self.command("GET 1"), for: 1, now: Self.at(1000)) == .connect(armTimerAt: Self.at(3000)))
        #expect(m.connected("c1", setup: .commands(handshake: [], scripts: [Self.bytes("LOAD")]), now: Self.at(1000))
                == .writeAll(Self.writes("c1", ["LOAD"], flush: true)))
        let loading = RedisOutage.loading("Redis is loading its dataset (SCRIPT LOAD: LOADING Redis is loading the dataset in memory)")
        #expect(m.received(.error("LOADING Redis is loading the dataset in memory"), on: "c1", now: Self.at(1020))
                == Self.down(loading, close: "c1", unsent: [1], why: loading))
        #expect(m.send(Self.command("GET 2"), for: 2, now: Self.at(1119)) == .fail(2, .unavailable(loading.why)))
        #expect(m.send(Self.command("GET 3"), for: 3, now: Self.at(1120)) == .connect(armTimerAt: nil))
    }

    @Test("lost connections back off 50, 100, 200, 250, 250 ms; a connection that becomes ready resets it to 50")
    func backoff() {
        var m = Machine(timeout: Self.timeout, endpoint: Self.plain, now: Self.at(0))
        let lost = RedisOutage.lost("Connection refused")
        var now = 1000
        #expect(m.connectRequested() == .connect(armTimerAt: nil))
        for (attempt, delay) in [50, 100, 200, 250, 250].enumerated() {
            _ = m.failed(lost, on: nil, now: Self.at(now))
            #expect(m.send(Self.command("GET"), for: attempt, now: Self.at(now + delay - 1)) == .fail(attempt, .unavailable(lost.why)))
            now += delay
            #expect(m.send(Self.command("GET"), for: attempt, now: Self.at(now)) == .connect(armTimerAt: attempt == 0 ? Self.at(now + 2000) : nil), "armed by the first caller, still to fire")
        }
        #expect(m.connected("c1", setup: .commands(handshake: [], scripts: []), now: Self.at(now))
                == .becomeReady(Self.writes("c1", ["GET"], flush: true)))
        _ = m.failed(.lost("connection closed by Redis"), on: "c1", now: Self.at(2000))
        #expect(m.send(Self.command("GET"), for: 9, now: Self.at(2049)) == .fail(9, .unavailable("connection closed by Redis")))
        #expect(m.send(Self.command("GET"), for: 9, now: Self.at(2050)) == .connect(armTimerAt: nil))
    }

    @Test("late events from an old channel are ignored: they neither take down the new one nor a connect in progress")
    func oldChannelIgnored() {
        var m = Self.ready("c1")
        #expect(m.send(Self.command("GET a"), for: 1, now: Self.at(1100)) == .write(Self.bytes("GET a"), on: "c1", scheduleFlush: true))
        #expect(m.flushDue(now: Self.at(1100)) == .flush("c1", armTimerAt: Self.at(3100)))
        let closed = RedisOutage.lost("connection closed by Redis")
        #expect(m.failed(closed, on: "c1", now: Self.at(1200)) == Self.down(closed, close: "c1", sent: [1], why: closed))
        #expect(m.send(Self.command("GET b"), for: 2, now: Self.at(1250)) == .connect(armTimerAt: nil))
        #expect(m.failed(.error(ChannelError.ioOnClosedChannel, endpoint: Self.plain), on: "c1", now: Self.at(1251)) == .none)
        #expect(m.received(.integer(1), on: "c1", now: Self.at(1251)) == .none)
        #expect(m.connected("c2", setup: .commands(handshake: [], scripts: []), now: Self.at(1260))
                == .becomeReady(Self.writes("c2", ["GET b"], flush: true)))
        #expect(m.replyUnreadable("Redis protocol error", on: "c1", now: Self.at(1261)) == .none)
        #expect(m.failed(closed, on: "c1", now: Self.at(1261)) == .none)
        #expect(m.received(.integer(1), on: "c1", now: Self.at(1261)) == .none)
        #expect(m.received(.integer(2), on: "c2", now: Self.at(1262)) == .resume(2, .integer(2)))
    }

    @Test("shutdown fails everything as unavailable and every later call; a connect finishing after it is closed")
    func shutdown() {
        var m = Self.ready()
        #expect(m.send(Self.command("GET a"), for: 1, now: Self.at(1100)) == .write(Self.bytes("GET a"), on: "c1", scheduleFlush: true))
        let gone = RedisError.unavailable("connection is shut down")
        #expect(m.shutdown() == .shutDown(.init(close: "c1", report: nil, sent: [1], sentError: gone, unsent: [], unsentError: gone)))
        #expect(m.send(Self.command("GET b"), for: 2, now: Self.at(9000)) == .fail(2, gone))
        #expect(m.connectRequested() == .none)
        #expect(m.failed(.lost("connection closed by Redis"), on: "c1", now: Self.at(9000)) == .none)

        var connecting = Machine(timeout: Self.timeout, endpoint: Self.plain, now: Self.at(1000))
        #expect(connecting.send(Self.command("GET a"), for: 1, now: Self.at(1000)) == .connect(armTimerAt: Self.at(3000)))
        #expect(connecting.shutdown() == .shutDown(.init(close: nil, report: nil, sent: [], sentError: gone, unsent: [1], unsentError: gone)))
        #expect(connecting.connected("c1", setup: .commands(handshake: [], scripts: []), now: Self.at(1001)) == .close("c1"))
    }

    @Test("an outage is reported once while it persists, again when it changes, and again after a recovery")
    func outageReportedOnce() {
        var m = Machine(timeout: Self.timeout, endpoint: Self.plain, now: Self.at(1000))
        let refused = RedisOutage.lost("Connection refused")
        let loading = RedisOutage.loading("Redis is loading its dataset (SCRIPT LOAD: LOADING)")
        #expect(m.connectRequested() == .connect(armTimerAt: nil))
        #expect(m.failed(refused, on: nil, now: Self.at(1000)) == Self.down(refused, close: nil, why: refused))
        #expect(m.connectRequested() == .connect(armTimerAt: nil))
        #expect(m.failed(refused, on: nil, now: Self.at(1100)) == Self.down(nil, close: nil, why: refused))
        #expect(m.connectRequested() == .connect(armTimerAt: nil))
        #expect(m.failed(loading, on: nil, now: Self.at(1200)) == Self.down(loading, close: nil, why: loading))
        #expect(m.connectRequested() == .connect(armTimerAt: nil))
        #expect(m.failed(refused, on: nil, now: Self.at(1300)) == Self.down(refused, close: nil, why: refused))
        #expect(m.connectRequested() == .connect(armTimerAt: nil))
        #expect(m.connected("c1", setup: .commands(handshake: [], scripts: []), now: Self.at(1400)) == .becomeReady(Self.writes("c1", [], flush: false)))
        #expect(m.failed(refused, on: "c1", now: Self.at(1500)) == Self.down(refused, close: "c1", why: refused))
    }

    @Test("a setup command that cannot be encoded takes the new connection down")
    func unencodableSetup() {
        var m = Machine(timeout: Self.timeout, endpoint: Self.plain, now: Self.at(1000))
        #expect(m.send(Self.command("GET a"), for: 1, now: Self.at(1000)) == .connect(armTimerAt: Self.at(3000)))
        let why = RedisOutage.lost("SCRIPT could not be encoded (over 2 GiB, or out of memory)")
        #expect(m.connected("c1", setup: .unencodable(why.why), now: Self.at(1000)) == Self.down(why, close: "c1", unsent: [1], why: why))
    }
}
