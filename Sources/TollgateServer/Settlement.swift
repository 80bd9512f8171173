import Foundation
import Logging
import Metrics
import Synchronization
import TollgateCore
import TollgateRedis

/// Settles one lease exactly once, whichever way the request ends (normal end, client gone,
/// upstream error), and keeps the lease renewed until then. `settle_v5.lua` is idempotent, so a
/// settle whose reply was lost is retried safely. A settle that cannot reach Redis is journaled
/// before `settle` returns (`SettleRetrier`), and replayed when Redis answers again.
final class Settlement: Sendable {
    let retrier: SettleRetrier
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

    init(retrier: SettleRetrier, client: ClientID, lease: Lease, reserved: NanoUSD, model: String, renewer: LeaseRenewer, logger: Logger) {
        self.retrier = retrier
        self.client = client
        self.lease = lease
        self.reserved = reserved
        self.model = model
        self.renewer = renewer
        self.logger = logger
        renewer.keepAlive(self)
    }

    var isSettled: Bool { done.load(ordering: .acquiring) }

    /// Returns once the charge is in Redis or in the journal (or, with neither reachable, queued
    /// in memory): the caller sends the response, or the stream's last event, only then.
    @discardableResult
    func settle(_ cost: NanoUSD) async -> SettleDurability {
        guard done.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged else { return .alreadySettled }
        renewer.release(self)
        return await retrier.settle(order(cost))
    }

    /// Settles without holding the caller: for an answer the client already has in full, so
    /// only a crash before the charge lands can change what is charged (the lease is then reaped
    /// and charged its reservation: over, never under).
    func settleAfterResponse(_ cost: NanoUSD, on executor: (any TaskExecutor)?, timer: Metrics.Timer?) {
        guard done.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged else { return }
        renewer.release(self)
        retrier.settleAfterResponse(order(cost), on: executor, timer: timer)
    }

    private func order(_ cost: NanoUSD) -> JournaledSettle {
        JournaledSettle(client: client, lease: lease, cost: cost, model: model, endedAtMilliseconds: Int64(Date().timeIntervalSince1970 * 1_000))
    }

    deinit {
        guard !done.load(ordering: .acquiring) else { return }
        renewer.release(self)
        // The settle retrier runs it (no task per request): in Redis soon, or journaled at shutdown.
        retrier.enqueue(order(reserved))
        logger.warning("request ended without a settle; charged its reservation", metadata: ["reservation": "\(lease.reservation)"])
    }
}
