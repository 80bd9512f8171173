import NIOCore
import NIOPosix
import Synchronization
import TollgateCore

/// One reserve or settle, as its v5 call's keys and arguments.
package enum BudgetOperation: Sendable {
    case reserve(BudgetStore.ScriptCall)
    case settle(BudgetStore.ScriptCall)
}

/// Gathers the reserves and settles of one client that reach Redis on one event loop in the
/// same tick, and sends them as one apply_v6 call (lua/apply_v6.lua: one TIME, one read of
/// each hash, one write per counter), handing each caller its own part of the reply.
///
/// The first operation of a client in a tick leads: it queues a task behind the ones already
/// waiting on its loop (requests whose bytes or upstream answer arrived in the same wake) and
/// sends when that task runs; operations of the client submitted before then join. A leader
/// that no one joined sends its v5 call as before, so an operation alone costs Redis what it
/// did. Callers off an event loop (tests, CLI) and scripts without apply_v6 send alone.
/// Every key of one client carries its {C} hash tag, so a batch is one Redis Cluster slot.
///
/// One call per client in flight (group commit): operations of a client whose call is still in
/// flight queue behind it, from every loop, and go together as the next call when its reply comes
/// back; the first of them sends it. Under load a batch so grows with Redis's round trip and
/// Redis does less work per operation (one TIME, one read of each hash); alone, nothing waits.
///
/// A settle that may wait (`mayWait`: a non-streamed answer's, sent already) parks for up to
/// `settleWindow` instead of leading: the client's next reserve on this loop takes it along,
/// first in its batch, so the reserve sees what the settle gives back, and Redis gets one call
/// for both. Its reservation holds the budget meanwhile, so waiting can only over-reserve for
/// those milliseconds, never overspend. Settles nobody took go together when the window ends.
final class BudgetTick: Sendable {
    /// How long a settle that may wait waits for a reserve to ride with.
    let settleWindow: TimeAmount

    init(settleWindow: TimeAmount = .milliseconds(2)) { self.settleWindow = settleWindow }

    private struct Key: Hashable {
        let loop: ObjectIdentifier
        let client: ClientID
    }

    /// An operation and where its reply goes.
    fileprivate struct Entry: Sendable {
        let operation: BudgetOperation
        let reply: ReplySlot
    }

    /// The operations of one leader's batch, in order; the leader's own is first.
    private final class Batch: Sendable {
        private struct State {
            var joined: [Entry] = []
            var sealed = false
        }
        private let state = Mutex(State())

        /// False once the leader has sent: the caller goes another way.
        func join(_ entry: Entry) -> Bool {
            state.withLock { s in
                guard !s.sealed else { return false }
                s.joined.append(entry)
                return true
            }
        }

        func seal() -> [Entry] {
            state.withLock { s in
                s.sealed = true
                return s.joined
            }
        }
    }

    /// Settles parked for one (loop, client), which parking they belong to, and the first one's
    /// wait: resumed by the window's end or by the reserve that takes them, whichever comes first.
    private struct Parked {
        let id: Int
        var entries: [Entry]
        var due: CheckedContinuation<Void, Never>?

        /// The first one's wait, to resume once (nil when that is done or it is not waiting yet).
        mutating func takeDue() -> CheckedContinuation<Void, Never>? {
            defer { due = nil }
            return due
        }
    }

    private struct State {
        var open: [Key: Batch] = [:]
        var parked: [Key: Parked] = [:]
        var nextParking = 0
        /// Clients with a call in flight, and the operations queued behind it.
        var inFlight: [ClientID: [Entry]] = [:]
    }
    private let state = Mutex(State())
    /// apply_v6 calls sent (batches of two operations or more): how the tests see a batch.
    let batchesSent = Atomic<Int>(0)

    /// The operation's reply (reserve_v5's or settle_v5's shape). Throws what `RedisConnection.call`
    /// throws: every operation of a batch whose call failed gets that call's error.
    func send(_ client: ClientID, _ operation: BudgetOperation, mayWait: Bool = false, via store: BudgetStore) async throws -> RedisReply {
        guard let apply = store.scripts.apply, let loop = MultiThreadedEventLoopGroup.currentEventLoop else {
            return try await alone(operation, via: store)
        }
        let key = Key(loop: ObjectIdentifier(loop), client: client)
        if mayWait { return try await park(Entry(operation: operation, reply: ReplySlot()), key, loop: loop, apply: apply, via: store) }
        let mine = Batch()
        let found: Batch? = state.withLock { s in
            if let batch = s.open[key] { return batch }
            s.open[key] = mine
            return nil
        }
        if let batch = found {
            let entry = Entry(operation: operation, reply: ReplySlot())
            guard batch.join(entry) else { return try await dispatch(client, [entry], own: entry, apply: apply, via: store) }
            return try await outcome(of: entry, client, apply: apply, via: store)
        }
        // Lead: the tasks already queued on this loop run before this one, and may join.
        await withCheckedContinuation { (due: CheckedContinuation<Void, Never>) in
            loop.execute {
                _ = self.state.withLock { $0.open.removeValue(forKey: key) }
                due.resume()
            }
        }
        let joined = mine.seal()
        var taken = state.withLock { $0.parked.removeValue(forKey: key) }
        taken?.takeDue()?.resume()
        let own = Entry(operation: operation, reply: ReplySlot())
        return try await dispatch(client, (taken?.entries ?? []) + [own] + joined, own: own, apply: apply, via: store)
    }

    /// Sends `entries` (`own` among them) now, or queues them behind the client's call in flight;
    /// returns `own`'s reply.
    private func dispatch(_ client: ClientID, _ entries: [Entry], own: Entry, apply: RedisScript, via store: BudgetStore) async throws -> RedisReply {
        let queued = state.withLock { s in
            guard s.inFlight[client] != nil else {
                s.inFlight[client] = []
                return false
            }
            s.inFlight[client]!.append(contentsOf: entries)
            return true
        }
        if queued { return try await outcome(of: own, client, apply: apply, via: store) }
        return try await lead(client, entries, own: own, apply: apply, via: store)
    }

    /// An operation handed to another's call: its reply, or the turn to send the queue it heads.
    private func outcome(of entry: Entry, _ client: ClientID, apply: RedisScript, via store: BudgetStore) async throws -> RedisReply {
        switch await entry.reply.turn() {
        case .reply(let reply): return try Self.unwrapped(reply)
        case .lead(let queue): return try await lead(client, queue, own: entry, apply: apply, via: store)
        }
    }

    /// Sends `entries` as the client's call in flight, delivers every reply but `own`'s, which it
    /// returns, and hands the queue that gathered meanwhile to its first operation.
    private func lead(_ client: ClientID, _ entries: [Entry], own: Entry, apply: RedisScript, via store: BudgetStore) async throws -> RedisReply {
        let mine: Result<RedisReply, any Error>
        if entries.count == 1 {
            do { mine = .success(try await alone(own.operation, via: store)) } catch { mine = .failure(error) }
        } else {
            mine = await sendBatch(client, entries, own: own, apply: apply, via: store)
        }
        let next: [Entry]? = state.withLock { s in
            guard let queue = s.inFlight[client], !queue.isEmpty else {
                s.inFlight[client] = nil
                return nil
            }
            s.inFlight[client] = []
            return queue
        }
        if let next { next[0].reply.deliver(.lead(next)) }
        return try Self.unwrapped(mine)
    }

    /// A settle that may wait: joins a batch about to be sent, or parks until a reserve takes it
    /// or the window ends; the first to park keeps the time.
    private func park(_ entry: Entry, _ key: Key, loop: any EventLoop, apply: RedisScript, via store: BudgetStore) async throws -> RedisReply {
        let parking: Int? = state.withLock { s in
            if let batch = s.open[key], batch.join(entry) { return nil }
            if s.parked[key] != nil {
                s.parked[key]!.entries.append(entry)
                return nil
            }
            s.nextParking &+= 1
            s.parked[key] = Parked(id: s.nextParking, entries: [entry])
            return s.nextParking
        }
        if let parking {
            await withCheckedContinuation { (due: CheckedContinuation<Void, Never>) in
                let waiting = state.withLock { s in
                    guard s.parked[key]?.id == parking else { return false } // taken already
                    s.parked[key]!.due = due
                    return true
                }
                guard waiting else { return due.resume() }
                // On completion, not in the task: a loop shutting down fails it instead of running it.
                loop.scheduleTask(in: settleWindow) {}.futureResult.whenComplete { _ in
                    let due = self.state.withLock { s in s.parked[key]?.id == parking ? s.parked[key]!.takeDue() : nil }
                    due?.resume()
                }
            }
            let unclaimed: [Entry]? = state.withLock { s in
                guard s.parked[key]?.id == parking else { return nil } // a reserve took them
                return s.parked.removeValue(forKey: key)?.entries
            }
            if let unclaimed {
                return try await dispatch(key.client, unclaimed, own: entry, apply: apply, via: store)
            }
        }
        return try await outcome(of: entry, key.client, apply: apply, via: store)
    }

    /// One apply_v6 call for `entries`, in order; each but `own` gets its part of the reply, or the
    /// error, and `own`'s is returned.
    private func sendBatch(_ client: ClientID, _ entries: [Entry], own: Entry, apply: RedisScript, via store: BudgetStore) async -> Result<RedisReply, any Error> {
        let call = store.applyCall(client, entries.map(\.operation))
        batchesSent.add(1, ordering: .relaxed)
        var mine: Result<RedisReply, any Error> = .failure(RedisError.unexpectedReply("\(apply.name): no reply for an operation"))
        do {
            let reply = try await store.redis.call(.script(apply, keys: call.keys, args: call.args))
            guard let parts = reply.array, parts.count == entries.count else {
                throw RedisError.unexpectedReply("\(apply.name): \(entries.count) operations, reply \(reply)")
            }
            for (entry, part) in zip(entries, parts) {
                if entry.reply === own.reply { mine = .success(part) } else { entry.reply.deliver(.reply(.success(part))) }
            }
        } catch {
            for entry in entries where entry.reply !== own.reply { entry.reply.deliver(.reply(.failure(error))) }
            mine = .failure(error)
        }
        return mine
    }

    /// An error reply (one operation of a batch refused) is thrown as `.server`.
    private static func unwrapped(_ reply: Result<RedisReply, any Error>) throws -> RedisReply {
        let reply = try reply.get()
        if case .error(let message) = reply { throw RedisError.server(message) }
        return reply
    }

    private func alone(_ operation: BudgetOperation, via store: BudgetStore) async throws -> RedisReply {
        switch operation {
        case .reserve(let call): return try await store.redis.call(.script(store.scripts.reserve, keys: call.keys, args: call.args))
        case .settle(let call): return try await store.redis.call(.script(store.scripts.settle, keys: call.keys, args: call.args))
        }
    }
}

/// What a queued operation gets: its reply, or the turn to send the queue it heads (`queue`,
/// itself first).
private enum Turn: Sendable {
    case reply(Result<RedisReply, any Error>)
    case lead([BudgetTick.Entry])
}

/// One operation's turn: delivered once by whoever has it, awaited by its caller, in either order.
private final class ReplySlot: Sendable {
    private let state = Mutex<(turn: Turn?, waiter: CheckedContinuation<Turn, Never>?)>((nil, nil))

    func deliver(_ turn: Turn) {
        let waiter: CheckedContinuation<Turn, Never>? = state.withLock { s in
            guard let w = s.waiter else {
                s.turn = turn
                return nil
            }
            s.waiter = nil
            return w
        }
        waiter?.resume(returning: turn)
    }

    func turn() async -> Turn {
        await withCheckedContinuation { (waiter: CheckedContinuation<Turn, Never>) in
            let ready: Turn? = state.withLock { s in
                if let t = s.turn { return t }
                s.waiter = waiter
                return nil
            }
            if let ready { waiter.resume(returning: ready) }
        }
    }
}
