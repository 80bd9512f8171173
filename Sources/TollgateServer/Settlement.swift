import Logging
import Synchronization
import TollgateCore
import TollgateRedis

/// Settles one lease exactly once, whichever way the request ends (normal end, client gone,
/// upstream error), and keeps the lease renewed until then. `settle_v4.lua` is idempotent, so a
/// settle whose reply was lost is retried safely; if Redis stays away the lease is reaped, which
/// charges its reservation, and a late settle corrects that down to the real cost.
final class Settlement: Sendable {
    let budget: BudgetStore
    let client: ClientID
    let lease: Lease
    let logger: Logger
    /// The reservation: charged if this object dies unsettled (the response body never ran),
    /// since the request was sent and the provider may bill it.
    let reserved: NanoUSD
    /// The model sent upstream (after any downgrade): the day's per-model spend counts it.
    let model: String
    private let renewer: LeaseRenewer
    private let done = Atomic<Bool>(false)

    init(budget: BudgetStore, client: ClientID, lease: Lease, reserved: NanoUSD, model: String, renewer: LeaseRenewer, logger: Logger) {
        self.budget = budget
        self.client = client
        self.lease = lease
        self.reserved = reserved
        self.model = model
        self.renewer = renewer
        self.logger = logger
        renewer.keepAlive(self)
    }

    var isSettled: Bool { done.load(ordering: .acquiring) }

    /// Returns false when this reservation was already settled by another path.
    @discardableResult
    func settle(_ cost: NanoUSD) async -> Bool {
        guard done.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged else { return false }
        renewer.release(self)
        do {
            _ = try await budget.settle(client, lease, actual: cost, model: model)
        } catch {
            Self.retryInBackground(budget: budget, client: client, lease: lease, cost: cost, model: model, logger: logger, firstError: error)
        }
        return true
    }

    static func retryInBackground(budget: BudgetStore, client: ClientID, lease: Lease, cost: NanoUSD, model: String, logger: Logger,
                                  firstError: any Error) {
        logger.warning("settle failed, retrying", metadata: ["client": "\(client)", "reservation": "\(lease.reservation)", "error": "\(firstError)"])
        Task {
            var delay: UInt64 = 100_000_000
            for _ in 0..<12 {
                try? await Task.sleep(nanoseconds: delay)
                if (try? await budget.settle(client, lease, actual: cost, model: model)) != nil { return }
                delay = min(delay * 2, 5_000_000_000)
            }
            logger.error("settle abandoned; the lease will be reaped and charged its reservation instead of this cost",
                         metadata: ["client": "\(client)", "reservation": "\(lease.reservation)", "cost_usd": "\(cost.usdString)"])
        }
    }

    deinit {
        guard !done.load(ordering: .acquiring) else { return }
        renewer.release(self)
        let (budget, client, lease, cost, model) = (self.budget, self.client, self.lease, reserved, self.model)
        Task { _ = try? await budget.settle(client, lease, actual: cost, model: model) }
        logger.warning("request ended without a settle; charged its reservation", metadata: ["reservation": "\(lease.reservation)"])
    }
}
