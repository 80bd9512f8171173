import Hummingbird
import NIOCore
import TollgateCore
import TollgateRedis
import TollgateUpstream

/// Every way Tollgate itself answers instead of the provider, rendered in the route's API
/// family shape so the official SDKs raise their usual status error with a readable body.
enum ProxyError: Error {
    case missingClientID(header: String)
    /// `clients.auth: keys`: no virtual key, or an unknown or revoked one.
    case unauthorized(missing: Bool)
    case invalidClientID(header: String)
    case badRequest(RequestProblem)
    case bodyTooLarge(limit: Int)
    /// Every `server.large_body_concurrency` permit stayed taken for `LargeBodyGate.maxWait`.
    case largeBodiesBusy(permits: Int)
    case unknownModel(String, pricing: String)
    case budgetExceeded(BudgetRefusal, client: ClientID, status: Int)
    /// The loop breaker: the same request too often (always 429, with Retry-After).
    case loopDetected(LoopTrip)
    case budgetUnavailable(RedisError)
    case upstreamUnavailable(UpstreamError, provider: String)
    /// The provider's answer passed one of Tollgate's bounds before it started (`UpstreamLimit`).
    case upstreamLimit(UpstreamError, UpstreamLimit)
    case notFound(method: String, path: String)
    /// The client hung up before the answer; nobody reads this response (nginx's 499).
    case clientDisconnected

    var outcome: Outcome {
        switch self {
        case .budgetExceeded: return .refusedBudget
        case .loopDetected: return .refusedLoop
        case .unauthorized, .missingClientID, .invalidClientID: return .refusedAuth
        case .budgetUnavailable: return .redisError
        case .largeBodiesBusy: return .refusedBusy
        case .upstreamUnavailable, .upstreamLimit: return .upstreamError
        case .clientDisconnected: return .clientGone
        default: return .badRequest
        }
    }

    var status: HTTPResponse.Status {
        switch self {
        case .missingClientID, .invalidClientID, .badRequest, .unknownModel: return .badRequest
        case .unauthorized: return .unauthorized
        case .bodyTooLarge: return .contentTooLarge
        case .budgetExceeded(_, _, let status): return .init(code: status)
        case .loopDetected: return .tooManyRequests
        case .budgetUnavailable, .largeBodiesBusy: return .serviceUnavailable
        case .upstreamUnavailable: return .badGateway
        case .upstreamLimit(_, let limit): return limit == .duration ? .gatewayTimeout : .badGateway
        case .notFound: return .notFound
        case .clientDisconnected: return .init(code: 499, reasonPhrase: "Client Closed Request")
        }
    }

    var type: String {
        switch self {
        case .missingClientID, .invalidClientID, .badRequest, .unknownModel, .bodyTooLarge: return "invalid_request_error"
        case .unauthorized: return "authentication_error"
        case .budgetExceeded: return "budget_exceeded"
        case .loopDetected: return "loop_detected"
        case .budgetUnavailable: return "budget_unavailable"
        case .largeBodiesBusy: return "server_busy"
        case .upstreamUnavailable: return "upstream_unavailable"
        case .upstreamLimit: return "upstream_limit_exceeded"
        case .notFound: return "not_found_error"
        case .clientDisconnected: return "client_disconnected"
        }
    }

    var message: String {
        switch self {
        case .missingClientID(let header):
            return "Missing \(header) header. Send \(header): <your client id> with every request (\(ClientID.rule)), or ask the operator to set clients.unknown: default."
        case .unauthorized(let missing):
            return missing
                ? "No API key. Send your Tollgate key (tg-…) as the API key: Authorization: Bearer tg-… or x-api-key: tg-…."
                : "The API key is not a valid Tollgate key, or it was revoked. Ask an operator for a key (tollgate keys create)."
        case .invalidClientID(let header):
            return "Invalid \(header) header. A client id is \(ClientID.rule)."
        case .badRequest(let problem):
            return problem.message
        case .bodyTooLarge(let limit):
            return "The request body is larger than \(ByteSize(limit)), the most this Tollgate accepts (server.max_body_bytes). Send a smaller request (images by URL instead of inline), or ask the operator to raise server.max_body_bytes."
        case .largeBodiesBusy(let permits):
            return "Tollgate is already reading \(permits) large request bodies (server.large_body_concurrency), and none finished within \(LargeBodyGate.maxWait.nanoseconds / 1_000_000_000) s. Nothing was charged; retry shortly."
        case .unknownModel(let model, let pricing):
            return "Model '\(model)' is not in the pricing table (\(pricing)), so its cost cannot be bounded. Use a listed model, add it to the pricing file, or configure default_price."
        case .budgetExceeded(let r, let client, _):
            let reset = r.resetsAt.map { "It resets at \($0.rfc3339)" } ?? "A run's budget does not reset; start a new run (X-Budget-Run)"
            return "Client '\(client)' has reached its \(r.period.rawValue) budget of $\(r.limit.usdString) (spent $\(r.spent.usdString), reserved by in-flight requests $\(r.reserved.usdString)). \(reset); ask an operator to raise the limit, or send a request with a smaller max_tokens."
        case .loopDetected(let trip):
            return "The same request was sent \(trip.seen) times within \(trip.windowSeconds) s (at most \(trip.maxRepeats) are allowed): this looks like a runaway loop, so it was not forwarded. Change the request, or retry after \(trip.retryAt.rfc3339); an operator can turn the loop breaker off for this client (loop_max 0)."
        case .budgetUnavailable(let e):
            return "Tollgate cannot reach its budget store (\(e)), so the request was not forwarded. Retry shortly; if it persists, check that Redis is up."
        case .upstreamUnavailable(let e, let provider):
            return "Could not reach the provider at \(provider): \(e.message). Nothing was charged; retry later."
        case .upstreamLimit(let e, let limit):
            return "Tollgate stopped the provider's answer: \(e.message). The request reached the provider, so it was charged as a cut answer. Ask the operator to raise \(limit.configKey) if such answers are expected."
        case .clientDisconnected:
            return "The client closed the connection before the answer."
        case .notFound(let method, let path):
            return "Tollgate does not proxy \(method) \(path). Supported: POST \(ProxyRoute.allCases.map(\.path).joined(separator: ", ")) and GET /v1/models, GET /v1/budget."
        }
    }

    /// Extra fields a program can act on (the budget ones).
    var details: [(String, String)] {
        if case .loopDetected(let trip) = self {
            return [("count", String(trip.seen)), ("max_repeats", String(trip.maxRepeats)), ("window_seconds", String(trip.windowSeconds))]
        }
        guard case .budgetExceeded(let r, let client, _) = self else { return [] }
        return [
            ("client_id", jsonQuoted(client.rawValue)), ("limit_type", jsonQuoted(r.period.rawValue)),
            ("limit_usd", r.limit.usdString), ("spent_usd", r.spent.usdString),
            ("reserved_usd", r.reserved.usdString), ("resets_at", r.resetsAt.map { jsonQuoted($0.rfc3339) } ?? "null"),
        ]
    }

    func response(family: APIFamily, now: UnixTime = .now) -> Response {
        let fields = [("type", jsonQuoted(type)), ("code", jsonQuoted(code)), ("message", jsonQuoted(message))] + details
        let inner = "{" + fields.map { "\(jsonQuoted($0.0)):\($0.1)" }.joined(separator: ",") + "}"
        let body = family == .anthropic ? "{\"type\":\"error\",\"error\":\(inner)}" : "{\"error\":\(inner)}"
        var headers: HTTPFields = [.contentType: "application/json"]
        if case .budgetExceeded(let r, _, let status) = self, status == 429, let resets = r.resetsAt {
            headers[.retryAfter] = String(max(1, resets.seconds - now.seconds))
        }
        if case .loopDetected(let trip) = self { headers[.retryAfter] = String(max(1, trip.retryAt.seconds - now.seconds)) }
        if case .budgetUnavailable = self { headers[.retryAfter] = "1" }
        if case .largeBodiesBusy = self { headers[.retryAfter] = "1" }
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: body)))
    }

    var code: String {
        switch self {
        case .missingClientID: return "missing_client_id"
        case .unauthorized(let missing): return missing ? "missing_api_key" : "invalid_api_key"
        case .invalidClientID: return "invalid_client_id"
        case .badRequest: return "invalid_request"
        case .bodyTooLarge: return "request_too_large"
        case .largeBodiesBusy: return "large_bodies_busy"
        case .unknownModel: return "unknown_model"
        default: return type
        }
    }
}

extension UnixTime {
    static var now: UnixTime {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return UnixTime(seconds: Int64(ts.tv_sec))
    }
}

#if canImport(Glibc)
import Glibc
#endif

/// "16 MiB", or the exact bytes when not a whole number of MiB.
struct ByteSize: CustomStringConvertible {
    let bytes: Int
    init(_ bytes: Int) { self.bytes = bytes }
    var description: String { bytes % 1_048_576 == 0 ? "\(bytes / 1_048_576) MiB" : "\(bytes) bytes" }
}
