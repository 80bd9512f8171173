import Synchronization
import TollgateRedis

/// Keeps the leases of in-flight requests alive, streamed or not, so a slow answer is never
/// reaped as if its replica had died (a reaped lease is charged its reservation). One loop per
/// replica renews every open lease each third of the lease length. (A sleeping task per request
/// did the same, but a cancelled `Task.sleep` keeps its timer until it would have fired.)
///
/// Settlements are held weakly: one that dies unsettled still reaches its safety-net settle.
final class LeaseRenewer: Sendable {
    private struct Weak: @unchecked Sendable { weak var settlement: Settlement? }
    private let open = Mutex<[ObjectIdentifier: Weak]>([:])
    private let loop = Mutex<Task<Void, Never>?>(nil)

    init(budget: BudgetStore, leaseSeconds: Int) {
        let interval = Duration.seconds(leaseSeconds) / 3
        let task = Task { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: interval)
                guard let leases = self?.open.withLock({ $0.values.compactMap(\.settlement) }) else { return }
                // Concurrent calls share the Redis connections' pipelined writes.
                await withTaskGroup(of: Void.self) { group in
                    for s in leases where !s.isSettled {
                        group.addTask { _ = try? await budget.renew(s.client, s.lease) }
                    }
                }
            }
        }
        loop.withLock { $0 = task }
    }

    func keepAlive(_ settlement: Settlement) { open.withLock { $0[ObjectIdentifier(settlement)] = Weak(settlement: settlement) } }
    func release(_ settlement: Settlement) { _ = open.withLock { $0.removeValue(forKey: ObjectIdentifier(settlement)) } }
    func stop() { loop.withLock { $0?.cancel() } }
}
