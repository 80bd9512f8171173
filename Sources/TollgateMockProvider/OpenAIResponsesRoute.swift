import Hummingbird
import TollgateCore

/// `POST /v1/responses`, OpenAI's Responses API.
enum OpenAIResponsesRoute {
    static func add(to router: Router<some RequestContext>) {
        router.mockRoute(.post, "/v1/responses", family: .openAI) { call in
            let prompt = PromptTokens.count(call.body["instructions"], call.body["input"])
            let completion = MockCompletion(promptTokens: prompt, cap: call.cap("max_output_tokens"), knobs: call.knobs)
            let reply = ResponsesReply(call: call, completion: completion)
            // `background: true` is answered at once with a queued response and no usage; OpenAI
            // generates (and bills) it later, to be fetched with GET /v1/responses/{id}.
            if call.body["background"]?.bool == true, !call.isStream { return call.json(reply.queued) }
            return call.answer(completion, stream: reply.events, json: reply.response(final: true))
        }
    }
}

/// One Responses API reply. A reply cut by `max_output_tokens` is `"status":"incomplete"` and its
/// stream ends with `response.incomplete` rather than `response.completed`, as OpenAI does.
struct ResponsesReply {
    let call: MockCall
    let completion: MockCompletion
    let id = MockIdentity.id("resp_")
    let messageID = MockIdentity.id("msg_")
    let createdAt = MockIdentity.now

    var finalStatus: String { completion.hitCap ? "incomplete" : "completed" }

    var queued: String { response(final: false, status: "queued") }

    /// The response object; before the end of a stream it is `in_progress` with no output yet.
    func response(final: Bool, status: String? = nil) -> String {
        let status = status ?? (final ? finalStatus : "in_progress")
        let incomplete = final && completion.hitCap ? #"{"reason":"max_output_tokens"}"# : "null"
        let cap = call.body["max_output_tokens"]?.int.map(String.init) ?? "null"
        return """
            {"id":"\(id)","object":"response","created_at":\(createdAt),"status":"\(status)","error":null,\
            "incomplete_details":\(incomplete),"max_output_tokens":\(cap),"model":\(jsonQuoted(call.model)),\
            "service_tier":\(jsonQuoted(call.servedTier("default"))),\
            "output":[\(final ? webSearchCalls + message(status: finalStatus, text: completion.text) : "")],\
            "usage":\(final && !call.knobs.omitUsage ? usage : "null")}
            """
    }

    /// Built-in web searches the model ran, as output items before the message (billed per call).
    private var webSearchCalls: String {
        (0..<call.knobs.webSearchCalls).map { _ in
            #"{"type":"web_search_call","id":"\#(MockIdentity.id("ws_"))","status":"completed","action":{"type":"search","query":"mock"}},"#
        }.joined()
    }

    private func message(status: String, text: String?) -> String {
        let content = text.map { "[\(outputText($0))]" } ?? "[]"
        return #"{"type":"message","id":"\#(messageID)","status":"\#(status)","role":"assistant","content":\#(content)}"#
    }

    private func outputText(_ text: String) -> String {
        #"{"type":"output_text","text":\#(jsonQuoted(text)),"annotations":[]}"#
    }

    /// input_tokens includes the cached ones and output_tokens the reasoning ones.
    var usage: String {
        """
        {"input_tokens":\(completion.promptTokens),"input_tokens_details":{"cached_tokens":\(completion.cachedTokens)},\
        "output_tokens":\(completion.completionTokens),"output_tokens_details":{"reasoning_tokens":\(completion.reasoningTokens)},\
        "total_tokens":\(completion.totalTokens)}
        """
    }

    /// The event sequence OpenAI sends for a single text message, numbered by `sequence_number`.
    var events: [String] {
        let item = #""item_id":"\#(messageID)","output_index":0,"content_index":0"#
        var bodies: [(type: String, fields: String)] = [
            ("response.created", #""response":\#(response(final: false))"#),
            ("response.in_progress", #""response":\#(response(final: false))"#),
            ("response.output_item.added", #""output_index":0,"item":\#(message(status: "in_progress", text: nil))"#),
            ("response.content_part.added", #"\#(item),"part":\#(outputText(""))"#),
        ]
        let delta = #"\#(item),"delta":\#(jsonQuoted(MockCompletion.token)),"logprobs":[]"#
        bodies += Array(repeating: ("response.output_text.delta", delta), count: completion.visibleTokens)
        bodies += [
            ("response.output_text.done", #"\#(item),"text":\#(jsonQuoted(completion.text)),"logprobs":[]"#),
            ("response.content_part.done", #"\#(item),"part":\#(outputText(completion.text))"#),
            ("response.output_item.done", #""output_index":0,"item":\#(message(status: finalStatus, text: completion.text))"#),
            ("response.\(finalStatus)", #""response":\#(response(final: true))"#),
        ]
        return bodies.enumerated().map { n, event in
            SSE.event(event.type, #"{"type":"\#(event.type)","sequence_number":\#(n),\#(event.fields)}"#)
        }
    }
}
