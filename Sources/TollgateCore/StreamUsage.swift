/// Follows a provider's SSE stream: finds the usage it reports, counts what was streamed (for
/// a settle when the client leaves before any usage arrives), and decides which events the
/// client sees (the usage chunk Tollgate asked OpenAI for is dropped when the client did not).
public struct StreamUsageTracker: Sendable {
    public let route: ProxyRoute
    /// True when Tollgate added `include_usage` that the client did not ask for.
    public let hideInjectedUsage: Bool
    public private(set) var usage: TokenUsage?
    /// The usage once the provider reported its final count (OpenAI's usage chunk, Responses'
    /// terminal event, Anthropic's message_delta); `usage` may be partial before that.
    public private(set) var finalUsage: TokenUsage?
    public private(set) var streamedOutputBytes: Int64 = 0
    public private(set) var streamedOutputEvents: Int64 = 0
    private var anthropicUsage: TokenUsage?

    public init(route: ProxyRoute, hideInjectedUsage: Bool) {
        self.route = route
        self.hideInjectedUsage = hideInjectedUsage
    }

    /// Returns the bytes to pass on for this event (nil: drop it).
    public mutating func observe(_ event: SSEEvent) -> [UInt8]? {
        guard !event.data.isEmpty, event.data != "[DONE]", let json = try? JSONValue.parse(event.data) else { return event.raw }
        switch route {
        case .chatCompletions, .completions:
            if let u = json["usage"], !u.isNull, let parsed = TokenUsage.openAI(u) {
                usage = parsed
                finalUsage = parsed
                if hideInjectedUsage, case .array(let choices)? = json["choices"], choices.isEmpty { return nil }
            }
            if case .array(let choices)? = json["choices"] {
                for c in choices {
                    let text = c["delta"]?["content"]?.string ?? c["text"]?.string ?? c["delta"]?["reasoning_content"]?.string ?? ""
                    countOutput(text)
                    if case .array(let calls)? = c["delta"]?["tool_calls"] {
                        for call in calls { countOutput(call["function"]?["arguments"]?.string ?? "") }
                    }
                }
            }
            return hideInjectedUsage ? Self.removingNullUsage(event.raw) : event.raw
        case .messages:
            switch json["type"]?.string {
            case "message_start":
                if let u = json["message"]?["usage"], let parsed = TokenUsage.anthropic(u) { anthropicUsage = parsed; usage = parsed }
            case "message_delta":
                if let u = json["usage"] {
                    var merged = anthropicUsage ?? TokenUsage()
                    // message_delta carries cumulative counts; newer API versions repeat the input ones.
                    if let o = u["output_tokens"]?.int { merged.output = o }
                    if let i = u["input_tokens"]?.int { merged.input = i }
                    if let c = u["cache_read_input_tokens"]?.int { merged.cachedInput = c }
                    if let w = u["cache_creation_input_tokens"]?.int { merged.cacheWrite = w }
                    anthropicUsage = merged
                    usage = merged
                    finalUsage = merged
                }
            case "content_block_delta":
                countOutput(json["delta"]?["text"]?.string ?? json["delta"]?["thinking"]?.string ?? json["delta"]?["partial_json"]?.string ?? "")
            default: break
            }
            return event.raw
        case .responses:
            let type = json["type"]?.string ?? event.name ?? ""
            if ["response.completed", "response.incomplete", "response.failed"].contains(type),
               let u = json["response"]?["usage"], !u.isNull, let parsed = TokenUsage.openAIResponses(u) {
                usage = parsed
                finalUsage = parsed
            } else if type.hasSuffix(".delta"), let delta = json["delta"]?.string {
                countOutput(delta)
            }
            return event.raw
        case .embeddings:
            return event.raw
        }
    }

    /// The event after which a client considers the stream complete.
    public static func isTerminal(_ event: SSEEvent, route: ProxyRoute) -> Bool {
        switch route {
        case .chatCompletions, .completions, .embeddings:
            return event.data == "[DONE]"
        case .messages:
            return event.name == "message_stop"
        case .responses:
            return ["response.completed", "response.incomplete", "response.failed"].contains(event.name ?? "")
        }
    }

    mutating func countOutput(_ text: String) {
        guard !text.isEmpty else { return }
        streamedOutputBytes += Int64(text.utf8.count)
        streamedOutputEvents += 1
    }

    /// A provable bound on what a stream that ended before its final usage was billed, or nil
    /// when there is none below the reservation. Every token decodes to at least one byte, so
    /// the streamed bytes bound the visible output; reasoning the stream does not show has no
    /// such bound. The input is what the provider reported (Anthropic's message_start) or the
    /// request's input bound.
    public func cutStreamBound(inputTokenBound: Int64, hiddenReasoning: Bool) -> TokenUsage? {
        guard !hiddenReasoning else { return nil }
        let output = max(1, streamedOutputBytes)
        if var u = usage {
            u.output = max(u.output, output)
            return u
        }
        return TokenUsage(input: inputTokenBound, output: output)
    }

    /// With include_usage every chunk carries `"usage":null`; a client that did not ask for it
    /// would not see that field, so it is removed.
    static func removingNullUsage(_ raw: [UInt8]) -> [UInt8] {
        let needle = Array(",\"usage\":null".utf8)
        guard raw.count >= needle.count else { return raw }
        var out: [UInt8] = []
        out.reserveCapacity(raw.count)
        var i = 0
        while i < raw.count {
            if raw[i] == needle[0], i + needle.count <= raw.count, raw[i..<(i + needle.count)].elementsEqual(needle) {
                i += needle.count
                continue
            }
            out.append(raw[i])
            i += 1
        }
        return out
    }
}
