import NIOCore
import NIOPosix
import Synchronization
import TollgateCore

/// The top-spender sets' increments of one event-loop tick, summed per set and client: one
/// `ZINCRBY` per set and client a tick instead of one per settle, as `BudgetTick` does for the
/// scripts. Off an event loop each increment is posted at once.
final class TopSpendTally: Sendable {
    private struct Entry: Hashable {
        let set: String
        let client: ClientID
    }
    private struct Due {
        var amount: Int64 = 0
        /// `EXPIRE … NX` after the increment (the first this process makes to the set): before
        /// it, the set may not exist yet and NX would set nothing.
        var expireIn: Int?
    }
    private let redis: RedisConnection
    private let pending = Mutex<[ObjectIdentifier: [Entry: Due]]>([:])

    init(redis: RedisConnection) { self.redis = redis }

    func add(_ amount: Int64, to set: String, for client: ClientID, thenExpireIn seconds: Int?) {
        guard let loop = MultiThreadedEventLoopGroup.currentEventLoop else {
            return post(Entry(set: set, client: client), Due(amount: amount, expireIn: seconds))
        }
        let id = ObjectIdentifier(loop)
        let first: Bool = pending.withLock { pending in
            let first = pending[id] == nil
            var due = pending[id, default: [:]][Entry(set: set, client: client), default: Due()]
            due.amount += amount
            due.expireIn = due.expireIn ?? seconds
            pending[id, default: [:]][Entry(set: set, client: client)] = due
            return first
        }
        guard first else { return }
        loop.execute {
            let due: [Entry: Due] = self.pending.withLock { $0.removeValue(forKey: id) } ?? [:]
            for (entry, amount) in due { self.post(entry, amount) }
        }
    }

    private func post(_ entry: Entry, _ due: Due) {
        redis.post(.command(["ZINCRBY", entry.set, String(due.amount), entry.client.rawValue]))
        if let seconds = due.expireIn { redis.post(.command(["EXPIRE", entry.set, String(seconds), "NX"])) }
    }
}
