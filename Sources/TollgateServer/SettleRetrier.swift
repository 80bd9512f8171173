import Logging
import Metrics
import ServiceLifecycle
import Synchronization
import TollgateCore
import TollgateRedis

/// Where a request's charge is when its response (or its stream's last event) goes out.
public enum SettleDurability: Sendable, Equatable {
    /// Charged in Redis.
    case inRedis
    /// In this replica's settle journal, synced to disk; replayed into Redis when it answers.
    case journaled
    /// In memory only (no journal, or it was full or failing): retried until Redis answers. Lost
    /// if this replica stops first; then the lease is reaped and charged its reservation.
    case retrying
    /// Another path settled this request first.
    case alreadySettled
}

/// Gets every settle into Redis, whatever Redis is doing. A settle that cannot reach Redis after
/// a quick retry goes to the journal (or, failing that, a bounded queue in memory); this
/// service replays the journal — left by a crash at start, and whenever Redis answers again —
/// and retries the queue. Replay is exactly-once because `settle_v5.lua` is: the lease member
/// carries the reservation and is removed in the same step that charges it, so a settle that
/// already reached Redis (its reply lost) charges nothing the second time.
///
/// On graceful shutdown (after the HTTP servers have drained) it tries the queue once more and
/// journals what is left.
public final class SettleRetrier: Service, Sendable {
    public struct Settings: Sendable {
        /// Attempts before a settle is journaled, and the pause between them: a blip (a
        /// reconnect, a failover) should not cost a journal write.
        public var quickAttempts = 2
        public var quickPause = Duration.milliseconds(50)
        /// In-memory settles kept for retry; beyond it they are dropped (and counted).
        public var queueLimit = 10_000
        public var initialBackoff = Duration.milliseconds(100)
        public var maxBackoff = Duration.seconds(2)
        /// Journal records replayed at once (they share the Redis connections' pipelines).
        public var replayConcurrency = 64
        public init() {}
    }

    let budget: BudgetStore
    public let journal: SettleJournal?
    let settings: Settings
    let logger: Logger
    private let queue = Mutex<[JournaledSettle]>([])
    /// Settles running after their response went out (`settleAfterResponse`), awaited at shutdown.
    private let afterResponse = Mutex<(next: Int, running: [Int: Task<Void, Never>])>((0, [:]))
    private let wakes: AsyncStream<Void>
    private let wake: AsyncStream<Void>.Continuation

    public init(budget: BudgetStore, journal: SettleJournal?, settings: Settings = Settings(), logger: Logger) {
        self.budget = budget
        self.journal = journal
        self.settings = settings
        self.logger = logger
        (wakes, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    // MARK: The settle path

    /// Charges in Redis, or makes the charge durable in the journal, before returning (the caller
    /// holds the response until then). Never throws: the worst case is `.retrying`.
    /// `mayWait`: the answer is out already, so the first try may wait to share a Redis call
    /// (`BudgetStore.settle`).
    public func settle(_ s: JournaledSettle, mayWait: Bool = false) async -> SettleDurability {
        var failure: (any Error)?
        for attempt in 0..<settings.quickAttempts {
            if attempt > 0 { try? await Task.sleep(for: settings.quickPause) }
            do {
                _ = try await budget.settle(s.client, s.lease, actual: s.cost, model: s.model, mayWait: mayWait && attempt == 0)
                return .inRedis
            } catch { failure = error }
        }
        let fields: Logger.Metadata = ["client": "\(s.client)", "reservation": "\(s.lease.reservation)", "error": "\(failure.map { "\($0)" } ?? "")"]
        guard let journal else {
            Self.failed("no_journal")
            logger.warning("settle failed; retrying in memory (no redis.journal.dir: lost if this replica stops first)", metadata: fields)
            enqueue(s)
            return .retrying
        }
        switch await journal.append(s) {
        case .durable:
            Self.journaled.increment()
            logger.warning("settle failed; journaled, replayed when Redis answers", metadata: fields)
            wake.yield()
            return .journaled
        case .full:
            Self.failed("journal_full")
            logger.error("settle journal full (redis.journal.max_bytes); retrying in memory", metadata: fields.merging(["path": "\(journal.path)"]) { a, _ in a })
        case .failed(let why):
            Self.failed("journal_error")
            logger.error("settle journal write failed; retrying in memory", metadata: fields.merging(["journal_error": "\(why)"]) { a, _ in a })
        }
        enqueue(s)
        return .retrying
    }

    /// Settles once the response has gone out, on a task of its own: the client does not wait
    /// for Redis. Same path as `settle` (Redis, else the journal, else memory); shutdown waits
    /// for these before it journals what is left.
    func settleAfterResponse(_ s: JournaledSettle, on executor: (any TaskExecutor)?, timer: Metrics.Timer? = nil) {
        afterResponse.withLock { state in
            let id = state.next
            state.next &+= 1
            // Made under the lock, so the task's own removal (which takes it) comes after this insert.
            state.running[id] = Task(executorPreference: executor) { [self] in
                let started = ContinuousClock.now
                _ = await settle(s, mayWait: true)
                timer?.recordNanoseconds((ContinuousClock.now - started).nanoseconds)
                _ = afterResponse.withLock { $0.running.removeValue(forKey: id) }
            }
        }
    }

    /// Queues a settle for retry (the request's own path failed, or it ended without one).
    @discardableResult
    func enqueue(_ s: JournaledSettle) -> Bool {
        let added = queue.withLock { q in
            guard q.count < settings.queueLimit else { return false }
            q.append(s)
            return true
        }
        if added { wake.yield() } else { lost(s, why: "the retry queue is full (\(settings.queueLimit))") }
        return added
    }

    // MARK: The service

    public func run() async throws {
        await cancelWhenGracefulShutdown { [self] in
            var backoff = settings.initialBackoff
            var wakes = self.wakes.makeAsyncIterator()
            while !Task.isCancelled {
                if await pass() {
                    backoff = settings.initialBackoff
                    guard await wakes.next() != nil else { return }
                } else {
                    try? await Task.sleep(for: backoff)
                    backoff = min(backoff * 2, settings.maxBackoff)
                }
            }
        }
        await finish()
    }

    /// One round: retries the queue (journaling what still fails, if there is room), then replays
    /// the journal. True when nothing is left.
    public func pass() async -> Bool {
        let queueDone = await retryQueue()
        return await replayJournal() && queueDone
    }

    /// Replays every journaled settle and removes the ones Redis took. True when none is left.
    public func replayJournal() async -> Bool {
        guard let journal, journal.bytes > 0 else { return true }
        // While Redis is away, a PING says so without reading (and parsing) the whole journal.
        guard (try? await budget.redis.call(.command(["PING"]))) != nil else { return false }
        let scan: SettleJournalFormat.Scan
        do { scan = try await journal.read() } catch {
            logger.error("cannot read the settle journal", metadata: ["error": "\(error)"])
            return false
        }
        for skipped in scan.skipped {
            logger.warning("settle journal: skipped a record that cannot be replayed", metadata: [
                "path": "\(journal.path)", "offset": "\(skipped.offset)", "bytes": "\(skipped.length)", "reason": "\(skipped.reason.rawValue)",
            ])
        }
        var replayed = Set<String>()
        for start in stride(from: 0, to: scan.settles.count, by: settings.replayConcurrency) {
            let chunk = scan.settles[start..<min(start + settings.replayConcurrency, scan.settles.count)]
            let taken = await settleAll(chunk)
            replayed.formUnion(taken.map(\.lease.member))
            // Redis took none of these: it is still away, so the rest waits for the next round.
            if taken.isEmpty { break }
        }
        Self.replayed.increment(by: Int64(replayed.count))
        if !replayed.isEmpty || !scan.skipped.isEmpty {
            do { try await journal.remove(leases: replayed) } catch {
                logger.error("cannot compact the settle journal (its records stay; replay is idempotent)", metadata: ["error": "\(error)"])
                return false
            }
            if !replayed.isEmpty { logger.notice("settle journal replayed into Redis", metadata: ["settles": "\(replayed.count)"]) }
        }
        return replayed.count == scan.settles.count
    }

    private func retryQueue() async -> Bool {
        let pending = queue.withLock { q in defer { q = [] }; return q }
        guard !pending.isEmpty else { return true }
        let done = Set(await settleAll(pending[...]).map(\.lease.member))
        var left = pending.filter { !done.contains($0.lease.member) }
        // Space may have come free in the journal since: a durable record beats one in memory.
        if let journal, !left.isEmpty {
            var kept: [JournaledSettle] = []
            for s in left {
                if await journal.append(s) == .durable { Self.journaled.increment() } else { kept.append(s) }
            }
            left = kept
        }
        for s in left { enqueue(s) }
        return left.isEmpty
    }

    /// Settles these concurrently; returns those Redis took.
    private func settleAll(_ settles: ArraySlice<JournaledSettle>) async -> [JournaledSettle] {
        await withTaskGroup(of: JournaledSettle?.self) { group in
            for s in settles {
                group.addTask { [budget, logger] in
                    do {
                        _ = try await budget.settle(s.client, s.lease, actual: s.cost, model: s.model)
                        return s
                    } catch let error as RedisError {
                        // Redis answered but refused it: not an outage, so an operator must look.
                        switch error {
                        case .server, .unexpectedReply, .misconfigured:
                            logger.warning("Redis refused a journaled settle; retrying", metadata: [
                                "client": "\(s.client)", "reservation": "\(s.lease.reservation)", "error": "\(error)",
                            ])
                        default: break // unavailable, unknown outcome: the outage itself
                        }
                        return nil
                    } catch { return nil }
                }
            }
            var done: [JournaledSettle] = []
            for await s in group { if let s { done.append(s) } }
            return done
        }
    }

    /// Shutdown: one more try for the queue, the journal for the rest; what still fails is lost
    /// (its lease is reaped and charged its reservation).
    private func finish() async {
        // Each is bounded: Redis's timeout, then the journal.
        for task in afterResponse.withLock({ Array($0.running.values) }) { await task.value }
        let pending = queue.withLock { q in defer { q = [] }; return q }
        guard !pending.isEmpty else { return }
        let done = Set(await settleAll(pending[...]).map(\.lease.member))
        for s in pending where !done.contains(s.lease.member) {
            if let journal, await journal.append(s) == .durable {
                Self.journaled.increment()
            } else {
                lost(s, why: "Redis did not answer before shutdown and the journal could not take it")
            }
        }
    }

    private func lost(_ s: JournaledSettle, why: String) {
        Self.failed("lost")
        logger.error("settle lost; the lease will be reaped and charged its reservation instead of this cost", metadata: [
            "client": "\(s.client)", "reservation": "\(s.lease.reservation)", "cost_usd": "\(s.cost.usdString)", "why": "\(why)",
        ])
    }

    // Made at each use, not kept in statics: a metric made before `MetricsSystem.bootstrap`
    // would stay a no-op for the life of the process.
    static var journaled: Counter { Counter(label: "tollgate_settle_journaled_total") }
    static var replayed: Counter { Counter(label: "tollgate_settle_replayed_total") }
    static func failed(_ reason: String) { Counter(label: "tollgate_settle_failed_total", dimensions: [("reason", reason)]).increment() }
}
