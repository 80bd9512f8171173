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
    /// Anthropic's usage object as reported so far (message_start, then message_delta over it).
    private var anthropicUsage: JSONValue?
    /// OpenAI chat chunks carry the tier served at their top level.
    private var serviceTier: String?

    public init(route: ProxyRoute, hideInjectedUsage: Bool) {
        self.route = route
        self.hideInjectedUsage = hideInjectedUsage
    }

    /// Returns the bytes to pass on for this event (nil: drop it).
    public mutating func observe(_ event: SSEEvent) -> [UInt8]? {
        guard !event.data.isEmpty, event.data != "[DONE]", let json = try? JSONValue.parse(event.data) else { return event.raw }
        switch route {
        case .chatCompletions, .completions:
            if let tier = json["service_tier"]?.string { serviceTier = tier }
            if let u = json["usage"], !u.isNull, let parsed = TokenUsage.openAI(u, serviceTier: serviceTier) {
                usage = parsed
                finalUsage = parsed
                if hideInjectedUsage, case .array(let choices)? = json["choices"], choices.isEmpty { return nil }
            }
            if case .array(let choices)? = json["choices"] {
                for c in choices { countOutput(Self.chatOutput(c)) }
            }
            return hideInjectedUsage ? Self.removingNullUsage(event.raw) : event.raw
        case .messages:
            switch json["type"]?.string {
            case "message_start":
                if let u = json["message"]?["usage"], let parsed = TokenUsage.anthropic(u) { anthropicUsage = u; usage = parsed }
            case "message_delta":
                if let u = json["usage"] {
                    // message_delta carries cumulative counts; newer API versions repeat the input ones.
                    let merged = Self.overlay(anthropicUsage, with: u)
                    anthropicUsage = merged
                    if let parsed = TokenUsage.anthropic(merged) {
                        usage = parsed
                        finalUsage = parsed
                    }
                }
            case "content_block_delta":
                let d = json["delta"]
                countOutput([d?["text"], d?["thinking"], d?["partial_json"]].compactMap { $0?.string })
            default: break
            }
            return event.raw
        case .responses:
            let type = json["type"]?.string ?? event.name ?? ""
            if ["response.completed", "response.incomplete", "response.failed"].contains(type),
               let response = json["response"], let u = response["usage"], !u.isNull, let parsed = TokenUsage.openAIResponses(response) {
                usage = parsed
                finalUsage = parsed
            } else if type.hasSuffix(".delta"), let delta = json["delta"]?.string {
                countOutput([delta])
            }
            return event.raw
        case .embeddings:
            return event.raw
        }
    }

    /// Everything a chat or completions choice streams that is billed as output.
    static func chatOutput(_ choice: JSONValue) -> [String] {
        let d = choice["delta"]
        var parts = [choice["text"], d?["content"], d?["reasoning_content"], d?["reasoning"], d?["refusal"],
                     d?["function_call"]?["arguments"], d?["audio"]?["transcript"], d?["audio"]?["data"]].compactMap { $0?.string }
        if case .array(let calls)? = d?["tool_calls"] {
            parts += calls.compactMap { $0["function"]?["arguments"]?.string }
        }
        return parts
    }

    /// Anthropic's message_delta usage repeats or adds counts over message_start's.
    static func overlay(_ base: JSONValue?, with delta: JSONValue) -> JSONValue {
        guard case .object(var members)? = base, case .object(let updates) = delta else { return delta }
        for (key, value) in updates {
            if let i = members.firstIndex(where: { $0.key == key }) { members[i].value = value } else { members.append((key, value)) }
        }
        return .object(members)
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

    mutating func countOutput(_ texts: [String]) {
        let bytes = texts.reduce(Int64(0)) { $0 + Int64($1.utf8.count) }
        guard bytes > 0 else { return }
        streamedOutputBytes += bytes
        streamedOutputEvents += 1
    }

    /// A provable bound on what a stream that ended before its final usage was billed, or nil
    /// when there is none below the reservation (the caller then charges the reservation):
    /// hidden reasoning or provider-run tools (`estimate.cutStreamHasBound`). Every token
    /// decodes to at least one byte, so the bytes streamed, over all choices, bound the output
    /// (at least one token). The input is what the provider already reported (Anthropic's
    /// message_start) or the request's input bound.
    public func cutStreamBound(for estimate: CostEstimate) -> TokenUsage? {
        guard estimate.cutStreamHasBound else { return nil }
        let output = max(1, streamedOutputBytes)
        if var u = usage {
            u.output = max(u.output, output)
            u.serviceTier = u.serviceTier ?? estimate.serviceTier
            return u
        }
        return TokenUsage(input: estimate.inputTokenBound, output: output, serviceTier: serviceTier ?? estimate.serviceTier)
    }

    /// With include_usage every chunk carries `"usage":null`; a client that did not ask for it
    /// would not see that field, so it is removed.
    static func removingNullUsage(_ raw: [UInt8]) -> [UInt8] {
        let needle = Array(",\"usage\":null".utf8)
        guard raw.count >= needle.count else { return raw }
        // Copies the stretches between occurrences whole; most events have one or none.
        var out: [UInt8] = []
        var copied = 0
        var i = 0
        while let comma = raw[i...].firstIndex(of: needle[0]) {
            guard comma + needle.count <= raw.count else { break }
            if raw[comma..<(comma + needle.count)].elementsEqual(needle) {
                if out.isEmpty { out.reserveCapacity(raw.count - needle.count) }
                out.append(contentsOf: raw[copied..<comma])
                copied = comma + needle.count
                i = copied
            } else {
                i = comma + 1
            }
        }
        guard copied > 0 else { return raw }
        out.append(contentsOf: raw[copied...])
        return out
    }
}
