import Foundation
import ServiceLifecycle
import TollgateRedis
import TollgateUpstream

// The replica's connections and files as services. Each waits for the graceful shutdown and then
// closes its part; `Tollgate.services(accessLog:)` orders them so that what others use closes after
// them (the ServiceGroup stops services in reverse start order).

/// The Redis connections; closes last, after every settle has been written or journaled and the
/// top-spender increments still being summed have been sent.
struct RedisConnectionService: Service {
    let redis: RedisConnection
    let budget: BudgetStore

    func run() async throws {
        try? await gracefulShutdown()
        await budget.flushBookkeeping()
        redis.shutdown()
    }
}

/// The settle journal; closes after the settle retrier has journaled what Redis did not take.
struct SettleJournalService: Service {
    let journal: SettleJournal

    func run() async throws {
        try? await gracefulShutdown()
        journal.close()
    }
}

/// The curl thread; stops once no request, stream or alert needs it.
struct UpstreamClientService: Service {
    let upstream: UpstreamClient

    func run() async throws {
        try? await gracefulShutdown()
        // Stopping joins the curl thread (a blocking wait); in `serve` Swift concurrency runs on
        // the event loops, so the wait happens on a thread of its own.
        let upstream = self.upstream
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            Thread {
                upstream.shutdown()
                done.resume()
            }.start()
        }
    }
}
