import Foundation
import Logging
import Metrics
import NIOConcurrencyHelpers
import TollgateCore

/// How a request ended, as counted in `tollgate_requests_total{outcome}` and the access log.
enum Outcome: String, Sendable {
    case forwarded, refusedBudget = "refused_budget", refusedAuth = "refused_auth", badRequest = "bad_request"
    case upstreamError = "upstream_error", redisError = "redis_error", clientGone = "client_disconnected"
}

/// Everything known about one request when it ends; the single source for its access-log line
/// and its metrics. Never holds a key or a prompt.
struct RequestRecord: Sendable {
    var requestID = ReservationID.random().rawValue
    var route: String
    var client: String?
    var model: String?
    var stream = false
    var status = 0
    var outcome = Outcome.forwarded
    var estimate: NanoUSD?
    var cost: NanoUSD?
    var usage: TokenUsage?
    let started = ContinuousClock.now
    var upstreamStarted: ContinuousClock.Instant?
    var upstreamFinished: ContinuousClock.Instant?
    var reserveDuration: Duration?
    var settleDuration: Duration?
    var leasesReaped = 0

    init(route: String) { self.route = route }
}

/// Metrics (swift-metrics, rendered by swift-prometheus at /metrics; README lists them) and the
/// JSON access log: one line per request.
struct Observability: Sendable {
    /// Receives each access-log line; nil disables the access log (tests).
    let accessLog: (@Sendable (String) -> Void)?
    /// Models named in labels must come from the pricing table, so label cardinality stays bounded.
    let knownModels: Set<String>

    static let streamsInFlight = Meter(label: "tollgate_streams_in_flight")

    func finish(_ r: RequestRecord) {
        let model = r.model.map { knownModels.contains($0) ? $0 : "other" } ?? "none"
        Counter(label: "tollgate_requests_total", dimensions: [
            ("route", r.route), ("model", model), ("status", String(r.status)), ("outcome", r.outcome.rawValue),
        ]).increment()
        if let d = r.reserveDuration { Metrics.Timer(label: "tollgate_reserve_duration_seconds").recordNanoseconds(d.nanoseconds) }
        if let d = r.settleDuration { Metrics.Timer(label: "tollgate_settle_duration_seconds").recordNanoseconds(d.nanoseconds) }
        if let e = r.estimate { Counter(label: "tollgate_reserved_nanousd_total", dimensions: [("model", model)]).increment(by: Int64(e.value)) }
        if let c = r.cost { Counter(label: "tollgate_spent_nanousd_total", dimensions: [("model", model)]).increment(by: Int64(c.value)) }
        if r.leasesReaped > 0 { Counter(label: "tollgate_leases_reaped_total").increment(by: Int64(r.leasesReaped)) }
        switch r.outcome {
        case .upstreamError: Counter(label: "tollgate_upstream_errors_total").increment()
        case .redisError: Counter(label: "tollgate_redis_errors_total").increment()
        default: break
        }
        accessLog?(Self.line(r))
    }

    static func line(_ r: RequestRecord) -> String {
        var fields: [(String, JSONValue)] = [
            ("time", .string(Date().formatted(.iso8601))), ("request_id", .string(r.requestID)), ("route", .string(r.route)),
            ("client", r.client.map(JSONValue.string) ?? .null), ("model", r.model.map(JSONValue.string) ?? .null),
            ("stream", .bool(r.stream)), ("status", .number(String(r.status))), ("outcome", .string(r.outcome.rawValue)),
            ("estimate_usd", r.estimate.map { .number($0.usdString) } ?? .null), ("cost_usd", r.cost.map { .number($0.usdString) } ?? .null),
        ]
        if let u = r.usage {
            fields += [("input_tokens", .number(String(u.inputTotal))), ("cached_input_tokens", .number(String(u.cachedInput))),
                       ("output_tokens", .number(String(u.outputTotal))), ("reasoning_tokens", .number(String(u.reasoning)))]
        }
        if let s = r.upstreamStarted, let f = r.upstreamFinished { fields.append(("upstream_ms", .number(milliseconds(f - s)))) }
        fields.append(("total_ms", .number(milliseconds(ContinuousClock.now - r.started))))
        return JSONValue.object(fields.map { (key: $0.0, value: $0.1) }).serialized
    }

    static func milliseconds(_ d: Duration) -> String {
        let micros = d.components.seconds * 1_000_000 + d.components.attoseconds / 1_000_000_000_000
        return NanoUSD.formatDecimal(micros, scale: 3)
    }
}

extension Duration {
    var nanoseconds: Int64 { components.seconds * 1_000_000_000 + components.attoseconds / 1_000_000_000 }
}

/// Writes access-log lines to stdout, whole lines at a time.
public enum StandardOutput {
    private static let lock = NIOLock()
    public static func writeLine(_ line: String) {
        lock.withLock {
            let bytes = Array((line + "\n").utf8)
            bytes.withUnsafeBufferPointer { _ = write(1, $0.baseAddress, $0.count) }
        }
    }
}
