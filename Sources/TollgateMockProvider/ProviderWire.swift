import HTTPTypes
import Hummingbird
import TollgateCore

/// Which provider's conventions a route follows: error JSON, SSE framing, id headers.
enum ProviderFamily: Sendable {
    case openAI, anthropic

    /// The family's error body. The shapes are the providers' own so the proxy's error handling
    /// is exercised against what it will really see.
    func errorJSON(type: String, message: String) -> String {
        switch self {
        case .openAI:
            return #"{"error":{"message":\#(jsonQuoted(message)),"type":\#(jsonQuoted(type)),"param":null,"code":null}}"#
        case .anthropic:
            return #"{"type":"error","error":{"type":\#(jsonQuoted(type)),"message":\#(jsonQuoted(message))}}"#
        }
    }

    /// The error type a forced failure (`X-Mock-Status`) reports.
    var failureType: String {
        switch self {
        case .openAI: "server_error"
        case .anthropic: "api_error"
        }
    }

    /// Both providers tag every response with a request id; proxies often log it.
    var requestIDField: HTTPField {
        switch self {
        case .openAI: HTTPField(name: HTTPField.Name("x-request-id")!, value: MockIdentity.id("req_"))
        case .anthropic: HTTPField(name: HTTPField.Name("request-id")!, value: MockIdentity.id("req_"))
        }
    }

    func error(_ status: HTTPResponse.Status, type: String, message: String) -> Response {
        json(errorJSON(type: type, message: message), status: status)
    }

    /// With `X-Mock-Drop-After-Bytes: N` only the first N bytes go out before the connection is
    /// torn down: a provider that was reached, started answering, and broke.
    /// `onSent` runs once the whole body was written.
    func json(_ body: String, status: HTTPResponse.Status = .ok, knobs: MockKnobs? = nil,
              onSent: (@Sendable () -> Void)? = nil) -> Response {
        let headers: HTTPFields = [.contentType: "application/json", requestIDField.name: requestIDField.value]
        guard let drop = knobs?.dropAfterBytes else {
            guard let onSent else {
                return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: body)))
            }
            return Response(status: status, headers: headers, body: ResponseBody { writer in
                try await writer.write(ByteBuffer(string: body))
                try await writer.finish(nil)
                onSent()
            })
        }
        let bytes = Array(body.utf8)
        return Response(status: status, headers: headers, body: ResponseBody { writer in
            try await writer.write(ByteBuffer(bytes: bytes.prefix(drop)))
            throw StreamDropped()
        })
    }

    /// A `text/event-stream` response that writes and flushes each event on its own, paced by
    /// `X-Mock-Chunk-Delay-Ms`. With `X-Mock-Drop-After-Chunks: N` it throws after N events:
    /// Hummingbird then closes the connection mid-body, the way a provider outage looks to a proxy.
    /// A stream with N or fewer events completes normally.
    /// `onEnd` learns how many events went out and whether the stream finished.
    func eventStream(_ events: [String], knobs: MockKnobs,
                     onEnd: (@Sendable (_ sentEvents: Int, _ finished: Bool) -> Void)? = nil) -> Response {
        Response(
            status: .ok,
            headers: [.contentType: "text/event-stream", .cacheControl: "no-cache", requestIDField.name: requestIDField.value],
            body: ResponseBody { writer in
                var sent = 0
                do {
                    for (index, event) in events.enumerated() {
                        if let drop = knobs.dropAfterEvents, index >= drop { throw StreamDropped() }
                        if index > 0, let delay = knobs.chunkDelay { try await Task.sleep(for: delay) }
                        try await writer.write(ByteBuffer(string: event))
                        sent += 1
                    }
                    try await writer.finish(nil)
                } catch {
                    onEnd?(sent, false)
                    throw error
                }
                onEnd?(sent, true)
            })
    }
}

/// Thrown from a response body to tear its connection down (`X-Mock-Drop-After-Chunks`).
struct StreamDropped: Error {}

/// SSE framing: OpenAI chat/completions send bare `data:` lines; Anthropic and the Responses API
/// name each event.
enum SSE {
    static func data(_ json: String) -> String { "data: \(json)\n\n" }
    static func event(_ name: String, _ json: String) -> String { "event: \(name)\ndata: \(json)\n\n" }
    static let done = "data: [DONE]\n\n"
}

/// A parsed request as a route handler sees it, after latency and fault knobs were applied.
struct MockCall: Sendable {
    let body: JSONValue
    let headers: HTTPFields
    let knobs: MockKnobs
    let family: ProviderFamily
    /// Where this reply is billed (`--usage-log`), nil when nothing is logged.
    var usageLog: MockUsageLog? = nil

    var model: String { body["model"]?.string ?? "mock-model" }
    var isStream: Bool { body["stream"]?.bool == true }
    /// OpenAI only reports usage in a stream when asked, and then puts `"usage":null` on every chunk.
    var includeUsage: Bool { body["stream_options"]?["include_usage"]?.bool == true }
    /// A whole JSON answer, honouring the knobs that cut it.
    func json(_ body: String) -> Response { family.json(body, knobs: knobs) }

    /// The reply, streamed or whole as the request asked, billed in the usage log once it was
    /// sent; a stream cut short bills at most one output token per event that went out.
    func answer(_ completion: MockCompletion, stream events: @autoclosure () -> [String], json body: @autoclosure () -> String) -> Response {
        guard let log = usageLog else { return isStream ? family.eventStream(events(), knobs: knobs) : json(body()) }
        let (tag, model) = (knobs.tag, model)
        if isStream {
            return family.eventStream(events(), knobs: knobs) { sent, finished in
                let output = finished ? completion.completionTokens : min(sent, completion.completionTokens)
                log.record(tag: tag, model: model, completion: completion, outputTokens: output, complete: finished)
            }
        }
        return family.json(body(), knobs: knobs) {
            log.record(tag: tag, model: model, completion: completion, outputTokens: completion.completionTokens, complete: true)
        }
    }
    /// The tier the reply reports, `fallback` unless `X-Mock-Service-Tier` says otherwise.
    func servedTier(_ fallback: String) -> String { knobs.serviceTier ?? fallback }

    /// The smallest of the given cap fields present in the body (nil: no cap).
    func cap(_ fields: String...) -> Int? {
        fields.compactMap { body[$0]?.int }.map { max(0, Int($0)) }.min()
    }
}

extension Router {
    /// Adds a provider route: applies `X-Mock-Latency-Ms` and `X-Mock-Status`, rejects bodies that
    /// are not JSON objects the way the provider would, then hands over to `reply`.
    func mockRoute(
        _ method: HTTPRequest.Method, _ path: RouterPath, family: ProviderFamily,
        reply: @escaping @Sendable (MockCall) async throws -> Response
    ) {
        on(path, method: method) { request, _ in
            let knobs = MockKnobs(headers: request.headers)
            if let latency = knobs.latency { try await Task.sleep(for: latency) }
            if let status = knobs.failureStatus {
                return family.error(status, type: family.failureType, message: "mock failure")
            }
            var request = request
            let bytes = try await request.collectBody(upTo: MockProvider.maxBodyBytes)
            var body = JSONValue.object([])
            if method == .post {
                guard let parsed = try? JSONValue.parse(bytes.readableBytesView), case .object = parsed else {
                    return family.error(.badRequest, type: "invalid_request_error", message: "mock: the request body is not a JSON object")
                }
                body = parsed
            }
            return try await reply(MockCall(body: body, headers: request.headers, knobs: knobs, family: family, usageLog: MockUsageLog.current))
        }
    }
}
