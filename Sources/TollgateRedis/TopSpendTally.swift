import NIOCore
import NIOPosix
import Synchronization
import TollgateCore

/// The top-spender sets' increments, summed per event loop, set and client over `window`: one
/// `ZINCRBY` per set and client in that time instead of one per settle, as `BudgetTick` does for
/// the scripts. Off an event loop each increment is posted at once.
///
/// Why a window and not the next tick: a posted command's reply still wakes its loop when it
/// comes back. At c=1 that was one more sleep and wake-up of the loop per request, on a VM where
/// a wake-up is the dearest thing a request does (wrk c=1, A/B: p50 817–860 → 669–748 µs, CPU per
/// request 641 → 492–564 µs). The sets rank clients; 50 ms behind is not a difference anyone reads.
final class TopSpendTally: Sendable {
    static let window = TimeAmount.milliseconds(50)

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
            for command in Self.commands(Entry(set: set, client: client), Due(amount: amount, expireIn: seconds)) { redis.post(command) }
            return
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
        loop.scheduleTask(in: Self.window) {
            let due: [Entry: Due] = self.pending.withLock { $0.removeValue(forKey: id) } ?? [:]
            for (entry, amount) in due {
                for command in Self.commands(entry, amount) { self.redis.post(command) }
            }
        }
    }

    /// Sends what every loop has summed and not sent yet, and waits for Redis to take it: the
    /// replica's last settles reach the sets before its Redis connections close.
    func flush() async {
        let due: [(Entry, Due)] = pending.withLock { pending in
            defer { pending.removeAll() }
            return pending.values.flatMap { $0.map { ($0.key, $0.value) } }
        }
        for (entry, amount) in due {
            for command in Self.commands(entry, amount) { _ = try? await redis.send(command) }
        }
    }

    private static func commands(_ entry: Entry, _ due: Due) -> [RedisCommand] {
        var commands: [RedisCommand] = [.command(["ZINCRBY", entry.set, String(due.amount), entry.client.rawValue])]
        if let seconds = due.expireIn { commands.append(.command(["EXPIRE", entry.set, String(seconds), "NX"])) }
        return commands
    }
}
