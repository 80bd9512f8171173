/// The answer to a request from a client over budget whose policy is `on_limit: stop`: a 200 with
/// a well-formed completion in the route's own wire format, whose text says the budget is
/// exhausted. Agent frameworks treat an error as a crash or retry it; a completion ends their turn
/// cleanly. Nothing is sent upstream, so every usage count is zero.
///
/// The shapes are those the official SDKs parse (Tests/sdk/stop_answers.py checks them against a
/// live replica), the same as TollgateMockProvider renders for real completions. Ids carry the
/// provider's prefix and a `tollgate` marker (`chatcmpl-tollgate-…`, `resp_tollgate_…`,
/// `msg_tollgate_…`) so a stop answer is recognisable in logs and traces.
public struct BudgetStopAnswer: Sendable {
    public let route: ProxyRoute
    public let model: String
    public let text: String
    public let stream: Bool
    /// The client asked for `stream_options.include_usage` (chat and legacy completions streams).
    public let includeUsage: Bool
    /// The unique part of the ids; letters and digits only (anything else is dropped).
    public let idToken: String
    public let created: UnixTime

    /// Nil for `.embeddings`: a vector has no place for a message, so the caller refuses instead.
    public init?(
        route: ProxyRoute, model: String, text: String, stream: Bool, includeUsage: Bool = false,
        idToken: String, created: UnixTime
    ) {
        guard route.hasOutput else { return nil }
        self.route = route
        self.model = model
        self.text = text
        self.stream = stream
        self.includeUsage = includeUsage
        let token = String(idToken.unicodeScalars.filter { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0)) })
        self.idToken = token.isEmpty ? "0" : token
        self.created = created
    }

    /// The answer for a scanned request: its model, and whether it streams and asked for usage.
    public init?(route: ProxyRoute, request: ScannedRequest, text: String, idToken: String, created: UnixTime) {
        self.init(
            route: route, model: request.model, text: text, stream: request.stream,
            includeUsage: request.clientIncludesUsage, idToken: idToken, created: created)
    }

    /// `The daily budget for client 'x' is exhausted; it resets at 2026-12-01T00:00:00Z. No request was sent to the model.`
    /// A workflow run's budget (`resetsAt` nil) does not reset: the message says to start a new run.
    public static func message(client: ClientID, period: BudgetPeriod, resetsAt: UnixTime?) -> String {
        let reset = resetsAt.map { "it resets at \($0.rfc3339)" } ?? "a run's budget does not reset; start a new run"
        return "The \(period.rawValue) budget for client '\(client)' is exhausted; \(reset). No request was sent to the model."
    }

    public var contentType: String { stream ? "text/event-stream" : "application/json" }

    /// The whole response body: one JSON document, or every event of the stream.
    public var body: String { stream ? events.joined() : json }

    /// The non-streamed JSON body.
    public var json: String {
        switch route {
        case .chatCompletions: return OpenAIShape(self).chatCompletion
        case .completions: return OpenAIShape(self).textCompletion
        case .responses: return ResponsesShape(self).response(final: true)
        // `.embeddings` never gets here: `init` refuses it.
        case .messages, .embeddings: return AnthropicShape(self).message
        }
    }

    /// The stream's events, each a complete SSE event ending in a blank line.
    public var events: [String] {
        switch route {
        case .chatCompletions: return OpenAIShape(self).chatEvents
        case .completions: return OpenAIShape(self).textEvents
        case .responses: return ResponsesShape(self).events
        case .messages, .embeddings: return AnthropicShape(self).events
        }
    }

    static func data(_ json: String) -> String { "data: \(json)\n\n" }
    static func event(_ name: String, _ json: String) -> String { "event: \(name)\ndata: \(json)\n\n" }
}

/// Chat completions and legacy text completions: bare `data:` events ending with `[DONE]`.
private struct OpenAIShape {
    let answer: BudgetStopAnswer
    init(_ answer: BudgetStopAnswer) { self.answer = answer }

    var model: String { jsonQuoted(answer.model) }
    var text: String { jsonQuoted(answer.text) }

    static let usage = """
        {"prompt_tokens":0,"completion_tokens":0,"total_tokens":0,\
        "prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},\
        "completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,\
        "accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}
        """

    var chatID: String { "chatcmpl-tollgate-" + answer.idToken }
    var textID: String { "cmpl-tollgate-" + answer.idToken }

    var chatCompletion: String {
        let message = #"{"role":"assistant","content":\#(text),"refusal":null,"annotations":[]}"#
        return """
            {"id":"\(chatID)","object":"chat.completion","created":\(answer.created.seconds),"model":\(model),\
            "choices":[{"index":0,"message":\(message),"logprobs":null,"finish_reason":"stop"}],"usage":\(Self.usage)}
            """
    }

    /// Role chunk, the text in one chunk, the finish chunk, the usage chunk if asked for, `[DONE]`.
    var chatEvents: [String] {
        func chunk(_ delta: String, finish: String = "null") -> String {
            chatChunk(#"[{"index":0,"delta":\#(delta),"logprobs":null,"finish_reason":\#(finish)}]"#)
        }
        return finishing([
            chunk(#"{"role":"assistant","content":"","refusal":null}"#),
            chunk(#"{"content":\#(text)}"#),
            chunk("{}", finish: #""stop""#),
        ], usageChunk: chatChunk("[]", usage: Self.usage))
    }

    private func chatChunk(_ choices: String, usage: String = "null") -> String {
        #"{"id":"\#(chatID)","object":"chat.completion.chunk","created":\#(answer.created.seconds),"model":\#(model),"choices":\#(choices)"#
            + usageTail(usage) + "}"
    }

    var textCompletion: String {
        """
        {"id":"\(textID)","object":"text_completion","created":\(answer.created.seconds),"model":\(model),\
        "choices":[{"text":\(text),"index":0,"logprobs":null,"finish_reason":"stop"}],"usage":\(Self.usage)}
        """
    }

    /// The text in one chunk, an empty-text chunk with the finish reason, usage if asked for, `[DONE]`.
    var textEvents: [String] {
        func chunk(_ text: String, finish: String = "null") -> String {
            textChunk(#"[{"text":\#(text),"index":0,"logprobs":null,"finish_reason":\#(finish)}]"#)
        }
        return finishing([chunk(text), chunk(#""""#, finish: #""stop""#)], usageChunk: textChunk("[]", usage: Self.usage))
    }

    private func textChunk(_ choices: String, usage: String = "null") -> String {
        #"{"id":"\#(textID)","object":"text_completion","created":\#(answer.created.seconds),"model":\#(model),"choices":\#(choices)"#
            + usageTail(usage) + "}"
    }

    /// With `include_usage` OpenAI ends every chunk with `"usage":null` and sends the numbers in a
    /// last chunk with no choices; without it the field is absent.
    private func usageTail(_ usage: String) -> String {
        answer.includeUsage ? #","usage":\#(usage)"# : ""
    }

    private func finishing(_ chunks: [String], usageChunk: String) -> [String] {
        (answer.includeUsage ? chunks + [usageChunk] : chunks).map(BudgetStopAnswer.data) + ["data: [DONE]\n\n"]
    }
}

/// OpenAI's Responses API: a `response` object, or its named events numbered by `sequence_number`.
private struct ResponsesShape {
    let answer: BudgetStopAnswer
    init(_ answer: BudgetStopAnswer) { self.answer = answer }

    var id: String { "resp_tollgate_" + answer.idToken }
    var messageID: String { "msg_tollgate_" + answer.idToken }

    /// `cache_write_tokens` is required by the current SDKs' `ResponseUsage`.
    static let usage = """
        {"input_tokens":0,"input_tokens_details":{"cached_tokens":0,"cache_write_tokens":0},\
        "output_tokens":0,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":0}
        """

    /// Before the end of a stream the response is `in_progress`, with no output and no usage.
    /// The request's own settings are unknown here, so they read as the API's defaults.
    func response(final: Bool) -> String {
        """
        {"id":"\(id)","object":"response","created_at":\(answer.created.seconds),\
        "status":"\(final ? "completed" : "in_progress")","error":null,"incomplete_details":null,\
        "instructions":null,"max_output_tokens":null,"model":\(jsonQuoted(answer.model)),\
        "output":[\(final ? message(status: "completed", text: answer.text) : "")],\
        "parallel_tool_calls":true,"temperature":null,"tool_choice":"auto","tools":[],"top_p":null,\
        "metadata":{},"usage":\(final ? Self.usage : "null")}
        """
    }

    private func message(status: String, text: String?) -> String {
        let content = text.map { "[\(outputText($0))]" } ?? "[]"
        return #"{"type":"message","id":"\#(messageID)","status":"\#(status)","role":"assistant","content":\#(content)}"#
    }

    private func outputText(_ text: String) -> String {
        #"{"type":"output_text","text":\#(jsonQuoted(text)),"annotations":[]}"#
    }

    var events: [String] {
        let item = #""item_id":"\#(messageID)","output_index":0,"content_index":0"#
        let text = answer.text
        let bodies: [(type: String, fields: String)] = [
            ("response.created", #""response":\#(response(final: false))"#),
            ("response.in_progress", #""response":\#(response(final: false))"#),
            ("response.output_item.added", #""output_index":0,"item":\#(message(status: "in_progress", text: nil))"#),
            ("response.content_part.added", #"\#(item),"part":\#(outputText(""))"#),
            ("response.output_text.delta", #"\#(item),"delta":\#(jsonQuoted(text)),"logprobs":[]"#),
            ("response.output_text.done", #"\#(item),"text":\#(jsonQuoted(text)),"logprobs":[]"#),
            ("response.content_part.done", #"\#(item),"part":\#(outputText(text))"#),
            ("response.output_item.done", #""output_index":0,"item":\#(message(status: "completed", text: text))"#),
            ("response.completed", #""response":\#(response(final: true))"#),
        ]
        return bodies.enumerated().map { n, event in
            BudgetStopAnswer.event(event.type, #"{"type":"\#(event.type)","sequence_number":\#(n),\#(event.fields)}"#)
        }
    }
}

/// Anthropic's Messages API: a `message` object, or message_start … message_stop.
private struct AnthropicShape {
    let answer: BudgetStopAnswer
    init(_ answer: BudgetStopAnswer) { self.answer = answer }

    var id: String { "msg_tollgate_" + answer.idToken }

    static let usage = #"{"input_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":0}"#

    func message(content: String, stopReason: String) -> String {
        """
        {"id":"\(id)","type":"message","role":"assistant","model":\(jsonQuoted(answer.model)),"content":\(content),\
        "stop_reason":\(stopReason),"stop_sequence":null,"usage":\(Self.usage)}
        """
    }

    var message: String {
        message(content: #"[{"type":"text","text":\#(jsonQuoted(answer.text))}]"#, stopReason: #""end_turn""#)
    }

    var events: [String] {
        let delta = #"{"type":"text_delta","text":\#(jsonQuoted(answer.text))}"#
        return [
            BudgetStopAnswer.event("message_start", #"{"type":"message_start","message":\#(message(content: "[]", stopReason: "null"))}"#),
            BudgetStopAnswer.event("content_block_start", #"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#),
            BudgetStopAnswer.event("content_block_delta", #"{"type":"content_block_delta","index":0,"delta":\#(delta)}"#),
            BudgetStopAnswer.event("content_block_stop", #"{"type":"content_block_stop","index":0}"#),
            BudgetStopAnswer.event("message_delta", #"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":0}}"#),
            BudgetStopAnswer.event("message_stop", #"{"type":"message_stop"}"#),
        ]
    }
}
