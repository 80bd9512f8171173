import Foundation
import Logging
import Metrics
import ServiceLifecycle
import TollgateCore
import TollgateRedis
import TollgateUpstream

/// Drains the alert outboxes into the sinks, in every replica, never on a request's path.
///
/// Delivery is at least once per sink: an entry leaves the outbox only when every sink has it or
/// has given up, and what each sink already has is recorded, so a sender that takes over after
/// a crash resends only to the others. A receiver de-duplicates on the alert's `id`. Failures
/// that may pass (connection, timeout, 5xx, 429) are retried with exponential backoff up to
/// `maxAttempts`; the rest fail at once. Metrics: tollgate_alerts_{fired,delivered,retried,failed}_total.
public final class AlertSender: Service, Sendable {
    public struct Settings: Sendable {
        public var sinks: [any AlertSink]
        public var maxAttempts = 10
        public var initialBackoff = Duration.milliseconds(500)
        public var maxBackoff = Duration.seconds(60)
        public var pollInterval = Duration.milliseconds(500)
        /// How often the outboxes are found by SCAN too (what a crashed replica never indexed).
        public var rescanInterval = Duration.seconds(60)
        public var batch = 32
        /// Unique per process: the consumer name in the outbox's group.
        public var consumer = "\(ProcessInfo.processInfo.hostName)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"

        public init(sinks: [any AlertSink]) { self.sinks = sinks }

        /// An entry untouched this long belongs to a dead sender: longer than any backoff plus
        /// the attempt itself, since a live sender touches what it retries.
        var claimIdle: Duration { maxBackoff * 2 + .seconds(60) }
    }

    private let outbox: AlertOutbox
    private let settings: Settings
    private let logger: Logger

    public init(outbox: AlertOutbox, settings: Settings, logger: Logger) {
        self.outbox = outbox
        self.settings = settings
        self.logger = logger
    }

    /// One taken entry and how its delivery is going.
    struct Delivery {
        var entry: AlertOutbox.Entry
        var attempts = 0
        var gaveUp: Set<String> = []
        var due = ContinuousClock.now
    }

    public func run() async throws {
        try await cancelWhenGracefulShutdown { [self] in
            var retrying: [String: Delivery] = [:]
            var lastRescan: ContinuousClock.Instant?
            while !Task.isCancelled {
                do {
                    if lastRescan.map({ $0.duration(to: .now) >= settings.rescanInterval }) ?? true {
                        try await outbox.rescan()
                        lastRescan = .now
                    }
                    try await takeNew(into: &retrying)
                    // Oldest first (stream ids grow with time), so a receiver sees 50 % before 80 %.
                    let now = ContinuousClock.now
                    let due = retrying.filter { $0.value.due <= now }.sorted { Self.streamOrder($0.value.entry.id) < Self.streamOrder($1.value.entry.id) }
                    for (key, delivery) in due {
                        retrying[key] = await attempt(delivery)
                    }
                } catch is CancellationError {
                    return
                } catch {
                    logger.warning("alert sender: Redis unavailable, will retry", metadata: ["error": "\(error)"])
                }
                let nextDue = retrying.values.map(\.due).min() ?? .now + settings.pollInterval
                try await Task.sleep(until: min(nextDue, .now + settings.pollInterval), clock: .continuous)
            }
        }
    }

    private func takeNew(into retrying: inout [String: Delivery]) async throws {
        for client in try await outbox.popPending(count: settings.batch) {
            let claimIdle = Int(settings.claimIdle.components.seconds * 1000)
            for entry in try await outbox.take(client, consumer: settings.consumer, count: settings.batch, claimIdleMilliseconds: claimIdle) {
                let key = entry.client.rawValue + "|" + entry.id
                guard retrying[key] == nil else { continue }
                if !entry.claimed { Counter(label: "tollgate_alerts_fired_total").increment() }
                retrying[key] = Delivery(entry: entry)
            }
        }
    }

    /// Tries every sink that does not have the entry yet. Returns the delivery to retry, or nil
    /// when it is finished (delivered everywhere, or given up).
    private func attempt(_ delivery: Delivery) async -> Delivery? {
        var d = delivery
        guard let alert = d.entry.alert else {
            logger.error("alert outbox entry does not parse; dropped", metadata: ["client": "\(d.entry.client)", "entry": "\(d.entry.id)"])
            return await finish(d)
        }
        d.attempts += 1
        let before = d.entry.delivered
        var retry = false
        for sink in settings.sinks where !d.entry.delivered.contains(sink.name) && !d.gaveUp.contains(sink.name) {
            do {
                try await sink.deliver(alert)
                d.entry.delivered.insert(sink.name)
                Counter(label: "tollgate_alerts_delivered_total", dimensions: [("sink", sink.name)]).increment()
            } catch {
                let retriable = (error as? AlertDeliveryError)?.isRetriable ?? true
                if retriable && d.attempts < settings.maxAttempts {
                    retry = true
                    Counter(label: "tollgate_alerts_retried_total", dimensions: [("sink", sink.name)]).increment()
                    logger.info("alert delivery failed, will retry", metadata: [
                        "sink": "\(sink.name)", "alert": "\(alert.id)", "attempt": "\(d.attempts)", "error": "\(error)"])
                } else {
                    d.gaveUp.insert(sink.name)
                    Counter(label: "tollgate_alerts_failed_total", dimensions: [("sink", sink.name)]).increment()
                    logger.error("alert delivery failed for good", metadata: [
                        "sink": "\(sink.name)", "alert": "\(alert.id)", "attempts": "\(d.attempts)", "error": "\(error)"])
                }
            }
        }
        do {
            if d.entry.delivered != before { try await outbox.markDelivered(d.entry, sinks: d.entry.delivered) }
            guard retry else { return await finish(d) }
            try await outbox.touch(d.entry, consumer: settings.consumer)
        } catch {
            logger.warning("alert sender: Redis unavailable, will retry", metadata: ["error": "\(error)"])
        }
        d.due = .now + backoff(after: d.attempts)
        return d
    }

    private func finish(_ d: Delivery) async -> Delivery? {
        do {
            try await outbox.finish(d.entry)
            return nil
        } catch {
            var later = d
            later.due = .now + settings.pollInterval
            return later
        }
    }

    /// A stream entry id `<ms>-<seq>` as numbers; ids of different clients' streams compare by time.
    static func streamOrder(_ id: String) -> (UInt64, UInt64) {
        let parts = id.split(separator: "-")
        return (parts.first.flatMap { UInt64($0) } ?? 0, parts.count > 1 ? UInt64(parts[1]) ?? 0 : 0)
    }

    /// initial · 2^(attempts − 1), at most maxBackoff.
    func backoff(after attempts: Int) -> Duration {
        min(settings.initialBackoff * (1 << min(attempts - 1, 20)), settings.maxBackoff)
    }
}
