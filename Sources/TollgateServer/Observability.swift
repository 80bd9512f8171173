import Foundation
import Glibc
import Logging
import Metrics
import NIOConcurrencyHelpers
import TollgateCore

/// How a request ended, as counted in `tollgate_requests_total{outcome}` and the access log.
enum Outcome: String, Sendable {
    case forwarded, refusedBudget = "refused_budget", refusedLoop = "refused_loop", stopped, refusedAuth = "refused_auth", badRequest = "bad_request"
    case upstreamError = "upstream_error", redisError = "redis_error", clientGone = "client_disconnected"
    /// Refused before reading its body: every large-body permit was taken (`LargeBodyGate`).
    case refusedBusy = "refused_busy"
}

/// Everything known about one request when it ends; the single source for its access-log line
/// and its metrics. Never holds a key or a prompt.
struct RequestRecord: Sendable {
    var requestID = ReservationID.unique().rawValue
    var route: String
    var client: String?
    var model: String?
    var stream = false
    var status = 0
    var outcome = Outcome.forwarded
    var estimate: NanoUSD?
    var cost: NanoUSD?
    /// How `cost` was decided: reported usage, a bound, the reservation, or nothing billed.
    var charged: ChargeBasis?
    var usage: TokenUsage?
    let started = ContinuousClock.now
    var upstreamStarted: ContinuousClock.Instant?
    var upstreamFinished: ContinuousClock.Instant?
    var reserveDuration: Duration?
    var settleDuration: Duration?
    var leasesReaped = 0
    /// `on_limit: warn` let it through over the limit.
    var overLimit = false
    /// The model the client asked for, when the policy sent a cheaper one (`model`).
    var downgradedFrom: String?

    init(route: String) { self.route = route }
}

/// Metrics (swift-metrics, rendered by swift-prometheus at /metrics; README lists them) and the
/// JSON access log: one line per request.
struct Observability: Sendable {
    /// Receives each access-log line; nil disables the access log (tests).
    let accessLog: (@Sendable (String) -> Void)?
    /// Models named in labels must come from the pricing table, so label cardinality stays bounded.
    let knownModels: Set<String>

    /// The request metrics' handles, made on first use and kept (`RequestMetrics`).
    let metrics = RequestMetrics()

    static let streamsInFlight = Meter(label: "tollgate_streams_in_flight")

    func finish(_ r: RequestRecord) {
        let model = r.model.map { knownModels.contains($0) ? $0 : "other" } ?? "none"
        let handles = metrics.handles(route: r.route, model: model, status: r.status, outcome: r.outcome)
        handles.requests.increment()
        if let d = r.reserveDuration { metrics.reserveDuration.recordNanoseconds(d.nanoseconds) }
        if let d = r.settleDuration { metrics.settleDuration.recordNanoseconds(d.nanoseconds) }
        if let e = r.estimate { handles.reserved.increment(by: Int64(e.value)) }
        if let c = r.cost { handles.spent.increment(by: Int64(c.value)) }
        if r.leasesReaped > 0 { handles.leasesReaped.increment(by: Int64(r.leasesReaped)) }
        if r.overLimit { handles.overLimit.increment() }
        if r.downgradedFrom != nil { handles.downgrades.increment() }
        switch r.outcome {
        case .upstreamError: handles.upstreamErrors.increment()
        case .redisError: handles.redisErrors.increment()
        default: break
        }
        accessLog?(Self.line(r))
    }

    /// The access-log line, written field by field (this runs once per request; building a
    /// JSONValue tree for it cost more than the rest of the request's bookkeeping).
    static func line(_ r: RequestRecord) -> String {
        // Appended piece by piece into one buffer: `a + b + c` makes a string per `+`.
        var line = "{\"time\":\""
        line.reserveCapacity(512)
        line.append(utcTimestamp())
        line.append("\"")
        func field(_ name: String, _ json: String) {
            line.append(",\"")
            line.append(name)
            line.append("\":")
            line.append(json)
        }
        func text(_ value: String?) -> String { value.map(jsonQuoted) ?? "null" }
        field("request_id", jsonQuoted(r.requestID))
        field("route", jsonQuoted(r.route))
        field("client", text(r.client))
        field("model", text(r.model))
        field("stream", r.stream ? "true" : "false")
        field("status", String(r.status))
        field("outcome", "\"" + r.outcome.rawValue + "\"")
        field("estimate_usd", r.estimate?.usdString ?? "null")
        field("cost_usd", r.cost?.usdString ?? "null")
        if let c = r.charged { field("charged", "\"" + c.rawValue + "\"") }
        if r.overLimit { field("over_limit", "true") }
        if let from = r.downgradedFrom { field("downgraded_from", jsonQuoted(from)) }
        if let u = r.usage {
            field("input_tokens", String(u.inputTotal))
            field("cached_input_tokens", String(u.cachedInput))
            field("output_tokens", String(u.outputTotal))
            field("reasoning_tokens", String(u.reasoning))
        }
        if let s = r.upstreamStarted, let f = r.upstreamFinished { field("upstream_ms", milliseconds(f - s)) }
        field("total_ms", milliseconds(ContinuousClock.now - r.started))
        line.append("}")
        return line
    }

    static func milliseconds(_ d: Duration) -> String {
        let micros = d.components.seconds * 1_000_000 + d.components.attoseconds / 1_000_000_000_000
        return NanoUSD.formatDecimal(micros, scale: 3)
    }
}

/// The handles `Observability.finish` increments, looked up once per (route, model, status,
/// outcome) and kept: making a `Counter` goes through the metrics factory's registry, its lock and
/// its label matching on every call, a few percent of a request's CPU. Every label comes from a
/// bounded set (routes, priced models, statuses, outcomes), so the table stays small. Made per
/// `Observability` (after `MetricsSystem.bootstrap`), so the handles are the bootstrapped factory's.
final class RequestMetrics: Sendable {
    struct Key: Hashable { let route: String, model: String, status: Int, outcome: Outcome }

    struct Handles: Sendable {
        let requests, reserved, spent, overLimit, downgrades: Counter
        let leasesReaped, upstreamErrors, redisErrors: Counter
    }

    private let table = NIOLockedValueBox<[Key: Handles]>([:])
    let reserveDuration = Metrics.Timer(label: "tollgate_reserve_duration_seconds")
    /// Also recorded by settles that run after their response (`SettleRetrier.settleAfterResponse`).
    let settleDuration = Metrics.Timer(label: "tollgate_settle_duration_seconds")

    func handles(route: String, model: String, status: Int, outcome: Outcome) -> Handles {
        let key = Key(route: route, model: model, status: status, outcome: outcome)
        if let found = table.withLockedValue({ $0[key] }) { return found }
        let made = Handles(
            requests: Counter(label: "tollgate_requests_total", dimensions: [
                ("route", route), ("model", model), ("status", String(status)), ("outcome", outcome.rawValue),
            ]),
            reserved: Counter(label: "tollgate_reserved_nanousd_total", dimensions: [("model", model)]),
            spent: Counter(label: "tollgate_spent_nanousd_total", dimensions: [("model", model)]),
            overLimit: Counter(label: "tollgate_over_limit_requests_total", dimensions: [("model", model)]),
            downgrades: Counter(label: "tollgate_downgrades_total", dimensions: [("model", model)]),
            leasesReaped: Counter(label: "tollgate_leases_reaped_total"),
            upstreamErrors: Counter(label: "tollgate_upstream_errors_total"),
            redisErrors: Counter(label: "tollgate_redis_errors_total"))
        table.withLockedValue { $0[key] = made }
        return made
    }
}

extension Duration {
    var nanoseconds: Int64 { components.seconds * 1_000_000_000 + components.attoseconds / 1_000_000_000 }
}

/// The access log's timestamp, `2026-11-23T18:24:38.123Z`, built by hand: Foundation's ISO 8601
/// formatter cost more than the rest of the line.
func utcTimestamp() -> String {
    var now = timespec()
    clock_gettime(CLOCK_REALTIME, &now)
    return CivilDate.timestamp(Int64(now.tv_sec), milliseconds: Int64(now.tv_nsec) / 1_000_000)
}
