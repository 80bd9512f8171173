import NIOCore
import NIOPosix
import Synchronization
import TollgateCore

/// One reserve or settle, as its v5 call's keys and arguments.
enum BudgetOperation: Sendable {
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
    private struct Entry: Sendable {
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
            guard batch.join(entry) else { return try await alone(operation, via: store) }
            return try await entry.reply.value()
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
        let parked = taken?.entries ?? []
        if joined.isEmpty && parked.isEmpty { return try await alone(operation, via: store) }
        let own = Entry(operation: operation, reply: ReplySlot())
        await sendBatch(client, parked + [own] + joined, apply: apply, via: store)
        return try await own.reply.value()
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
                if unclaimed.count > 1 {
                    await sendBatch(key.client, unclaimed, apply: apply, via: store)
                } else {
                    do { entry.reply.deliver(.success(try await alone(entry.operation, via: store))) } catch { entry.reply.deliver(.failure(error)) }
                }
            }
        }
        return try await entry.reply.value()
    }

    /// One apply_v6 call for `entries`, in order; each gets its part of the reply, or the error.
    private func sendBatch(_ client: ClientID, _ entries: [Entry], apply: RedisScript, via store: BudgetStore) async {
        let call = store.applyCall(client, entries.map(\.operation))
        batchesSent.add(1, ordering: .relaxed)
        do {
            let reply = try await store.redis.call(.script(apply, keys: call.keys, args: call.args))
            guard let parts = reply.array, parts.count == entries.count else {
                throw RedisError.unexpectedReply("\(apply.name): \(entries.count) operations, reply \(reply)")
            }
            for (entry, part) in zip(entries, parts) { entry.reply.deliver(.success(part)) }
        } catch {
            for entry in entries { entry.reply.deliver(.failure(error)) }
        }
    }

    private func alone(_ operation: BudgetOperation, via store: BudgetStore) async throws -> RedisReply {
        switch operation {
        case .reserve(let call): return try await store.redis.call(.script(store.scripts.reserve, keys: call.keys, args: call.args))
        case .settle(let call): return try await store.redis.call(.script(store.scripts.settle, keys: call.keys, args: call.args))
        }
    }
}

/// One operation's reply: delivered once by whoever sent it, awaited by its caller, in either order.
private final class ReplySlot: Sendable {
    private let state = Mutex<(reply: Result<RedisReply, any Error>?, waiter: CheckedContinuation<RedisReply, any Error>?)>((nil, nil))

    func deliver(_ reply: Result<RedisReply, any Error>) {
        let waiter: CheckedContinuation<RedisReply, any Error>? = state.withLock { s in
            guard let w = s.waiter else {
                s.reply = reply
                return nil
            }
            s.waiter = nil
            return w
        }
        waiter?.resume(with: reply)
    }

    /// The reply; an error reply (one operation of a batch refused) is thrown as `.server`.
    func value() async throws -> RedisReply {
        let reply = try await withCheckedThrowingContinuation { (waiter: CheckedContinuation<RedisReply, any Error>) in
            let ready: Result<RedisReply, any Error>? = state.withLock { s in
                if let r = s.reply { return r }
                s.waiter = waiter
                return nil
            }
            if let ready { waiter.resume(with: ready) }
        }
        if case .error(let message) = reply { throw RedisError.server(message) }
        return reply
    }
}
