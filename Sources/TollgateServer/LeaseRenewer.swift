import ServiceLifecycle
import Synchronization
import TollgateRedis

/// Keeps the leases of in-flight requests alive, streamed or not, so a slow answer is never
/// reaped as if its replica had died (a reaped lease is charged its reservation). One loop per
/// replica renews every open lease each third of the lease length. (A sleeping task per request
/// did the same, but a cancelled `Task.sleep` keeps its timer until it would have fired.)
///
/// A `Service`: `serve` runs it in its ServiceGroup, and it stops after the HTTP servers have
/// drained and the settles are in (their leases need renewing until then).
///
/// Settlements are held weakly: one that dies unsettled still reaches its safety-net settle.
public final class LeaseRenewer: Service, Sendable {
    private struct Weak: @unchecked Sendable { weak var settlement: Settlement? }
    private let open = Mutex<[ObjectIdentifier: Weak]>([:])
    private let budget: BudgetStore
    private let interval: Duration

    init(budget: BudgetStore, leaseSeconds: Int) {
        self.budget = budget
        interval = Duration.seconds(leaseSeconds) / 3
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown { [self] in
            while (try? await Task.sleep(for: interval)) != nil {
                await renewOpenLeases()
            }
        }
    }

    private func renewOpenLeases() async {
        let leases = open.withLock { $0.values.compactMap(\.settlement) }
        // Concurrent calls share the Redis connections' pipelined writes.
        await withTaskGroup(of: Void.self) { [budget] group in
            for s in leases where !s.isSettled {
                group.addTask { _ = try? await budget.renew(s.client, s.lease) }
            }
        }
    }

    func keepAlive(_ settlement: Settlement) { open.withLock { $0[ObjectIdentifier(settlement)] = Weak(settlement: settlement) } }
    func release(_ settlement: Settlement) { _ = open.withLock { $0.removeValue(forKey: ObjectIdentifier(settlement)) } }
}
