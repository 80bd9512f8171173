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
final class BudgetTick: Sendable {
    private struct Key: Hashable {
        let loop: ObjectIdentifier
        let client: ClientID
    }

    /// The operations of one leader's batch, in order; the leader's own is first.
    private final class Batch: Sendable {
        private struct State {
            var operations: [BudgetOperation]
            var joined: [CheckedContinuation<RedisReply, any Error>] = []
            var sealed = false
        }
        private let state: Mutex<State>

        init(_ first: BudgetOperation) { state = Mutex(State(operations: [first])) }

        /// False once the leader has sent: the caller goes alone.
        func join(_ operation: BudgetOperation, _ reply: CheckedContinuation<RedisReply, any Error>) -> Bool {
            state.withLock { s in
                guard !s.sealed else { return false }
                s.operations.append(operation)
                s.joined.append(reply)
                return true
            }
        }

        func seal() -> ([BudgetOperation], [CheckedContinuation<RedisReply, any Error>]) {
            state.withLock { s in
                s.sealed = true
                return (s.operations, s.joined)
            }
        }
    }

    /// A batch that closed between finding it and joining it; the operation goes alone.
    private struct Closed: Error {}

    private let open = Mutex<[Key: Batch]>([:])
    /// apply_v6 calls sent (batches of two operations or more): how the tests see a batch.
    let batchesSent = Atomic<Int>(0)

    /// The operation's reply (reserve_v5's or settle_v5's shape). Throws what `RedisConnection.call`
    /// throws: every operation of a batch whose call failed gets that call's error.
    func send(_ client: ClientID, _ operation: BudgetOperation, via store: BudgetStore) async throws -> RedisReply {
        guard let apply = store.scripts.apply, let loop = MultiThreadedEventLoopGroup.currentEventLoop else {
            return try await alone(operation, via: store)
        }
        let key = Key(loop: ObjectIdentifier(loop), client: client)
        let mine = Batch(operation)
        let found: Batch? = open.withLock { open in
            if let batch = open[key] { return batch }
            open[key] = mine
            return nil
        }
        if let batch = found {
            do {
                let reply = try await withCheckedThrowingContinuation { reply in
                    if !batch.join(operation, reply) { reply.resume(throwing: Closed()) }
                }
                if case .error(let message) = reply { throw RedisError.server(message) }
                return reply
            } catch is Closed {
                return try await alone(operation, via: store)
            }
        }
        // Lead: the tasks already queued on this loop run before this one, and may join.
        await withCheckedContinuation { (due: CheckedContinuation<Void, Never>) in
            loop.execute {
                _ = self.open.withLock { $0.removeValue(forKey: key) }
                due.resume()
            }
        }
        let (operations, joined) = mine.seal()
        if joined.isEmpty { return try await alone(operation, via: store) }
        let parts: [RedisReply]
        do {
            let call = store.applyCall(client, operations)
            batchesSent.add(1, ordering: .relaxed)
            let reply = try await store.redis.call(.script(apply, keys: call.keys, args: call.args))
            guard let all = reply.array, all.count == operations.count else {
                throw RedisError.unexpectedReply("\(apply.name): \(operations.count) operations, reply \(reply)")
            }
            parts = all
        } catch {
            for reply in joined { reply.resume(throwing: error) }
            throw error
        }
        for (reply, part) in zip(joined, parts.dropFirst()) { reply.resume(returning: part) }
        if case .error(let message) = parts[0] { throw RedisError.server(message) }
        return parts[0]
    }

    private func alone(_ operation: BudgetOperation, via store: BudgetStore) async throws -> RedisReply {
        switch operation {
        case .reserve(let call): return try await store.redis.call(.script(store.scripts.reserve, keys: call.keys, args: call.args))
        case .settle(let call): return try await store.redis.call(.script(store.scripts.settle, keys: call.keys, args: call.args))
        }
    }
}
