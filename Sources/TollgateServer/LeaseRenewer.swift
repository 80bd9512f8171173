import Synchronization
import TollgateRedis

/// Keeps the leases of open streams alive, so a long stream is never reaped as if its replica had
/// died. One loop per replica renews every open stream's lease each third of the lease length.
/// (A sleeping task per stream did the same, but a cancelled `Task.sleep` keeps its timer until
/// it would have fired: memory grew with every stream of the last lease/3 seconds.)
final class LeaseRenewer: Sendable {
    private let open = Mutex<[ObjectIdentifier: Settlement]>([:])
    private let loop = Mutex<Task<Void, Never>?>(nil)

    init(budget: BudgetStore, leaseSeconds: Int) {
        let interval = Duration.seconds(leaseSeconds) / 3
        let task = Task { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: interval)
                guard let streams = self?.open.withLock({ Array($0.values) }) else { return }
                // Concurrent calls share the Redis connections' pipelined writes.
                await withTaskGroup(of: Void.self) { group in
                    for s in streams where !s.isSettled {
                        group.addTask { _ = try? await budget.renew(s.client, s.lease) }
                    }
                }
            }
        }
        loop.withLock { $0 = task }
    }

    func keepAlive(_ settlement: Settlement) { open.withLock { $0[ObjectIdentifier(settlement)] = settlement } }
    func release(_ settlement: Settlement) { _ = open.withLock { $0.removeValue(forKey: ObjectIdentifier(settlement)) } }
    func stop() { loop.withLock { $0?.cancel() } }
}
