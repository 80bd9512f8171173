import Hummingbird
import TollgateCore

/// `POST /v1/messages`, Anthropic's Messages API.
enum AnthropicMessagesRoute {
    static func add(to router: Router<some RequestContext>) {
        router.mockRoute(.post, "/v1/messages", family: .anthropic) { call in
            // Anthropic, unlike OpenAI, has no default output cap and rejects a request without one.
            guard let cap = call.cap("max_tokens") else {
                return call.family.error(.badRequest, type: "invalid_request_error", message: "max_tokens: Field required")
            }
            let prompt = PromptTokens.count(call.body["system"], call.body["messages"])
            let completion = MockCompletion(promptTokens: prompt, cap: cap, knobs: call.knobs)
            let reply = MessagesReply(call: call, completion: completion)
            return call.answer(completion, stream: reply.events, json: reply.message)
        }
    }
}

/// One Anthropic message, whole or as its event stream.
struct MessagesReply {
    let call: MockCall
    let completion: MockCompletion
    let id = MockIdentity.id("msg_")

    var stopReason: String { completion.hitCap ? "max_tokens" : "end_turn" }

    var message: String {
        """
        {"id":"\(id)","type":"message","role":"assistant","model":\(jsonQuoted(call.model)),\
        "content":[{"type":"text","text":\(jsonQuoted(completion.text))}],\
        "stop_reason":"\(stopReason)","stop_sequence":null,"usage":\(usage(outputTokens: completion.completionTokens))}
        """
    }

    /// Anthropic's input_tokens excludes cache reads and writes: the prompt is input + cache_read +
    /// cache_creation, and cache_creation splits into its 5-minute and 1-hour parts.
    private func usage(outputTokens: Int) -> String {
        let c = completion
        let writes = c.cacheWriteTokens + c.cacheWrite1hTokens
        let tools = call.knobs.webSearchCalls > 0 ? #","server_tool_use":{"web_search_requests":\#(call.knobs.webSearchCalls)}"# : ""
        return """
            {"input_tokens":\(c.promptTokens - c.cachedTokens - writes),"cache_creation_input_tokens":\(writes),\
            "cache_read_input_tokens":\(c.cachedTokens),\
            "cache_creation":{"ephemeral_5m_input_tokens":\(c.cacheWriteTokens),"ephemeral_1h_input_tokens":\(c.cacheWrite1hTokens)},\
            "output_tokens":\(outputTokens),"service_tier":\(jsonQuoted(call.servedTier("standard")))\(tools)}
            """
    }

    /// message_start reports 1 output token (as Anthropic does); message_delta has the final count.
    var events: [String] {
        let start = """
            {"id":"\(id)","type":"message","role":"assistant","model":\(jsonQuoted(call.model)),"content":[],\
            "stop_reason":null,"stop_sequence":null,"usage":\(usage(outputTokens: 1))}
            """
        let delta = #"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":\#(jsonQuoted(MockCompletion.token))}}"#
        var events = [
            SSE.event("message_start", #"{"type":"message_start","message":\#(start)}"#),
            SSE.event("content_block_start", #"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#),
            SSE.event("ping", #"{"type": "ping"}"#),
        ]
        events += Array(repeating: SSE.event("content_block_delta", delta), count: completion.visibleTokens)
        events += [
            SSE.event("content_block_stop", #"{"type":"content_block_stop","index":0}"#),
            SSE.event("message_delta", """
                {"type":"message_delta","delta":{"stop_reason":"\(stopReason)","stop_sequence":null},\
                "usage":{"output_tokens":\(completion.completionTokens)}}
                """),
            SSE.event("message_stop", #"{"type":"message_stop"}"#),
        ]
        return events
    }
}
