import Hummingbird
import TollgateCore

/// `POST /v1/chat/completions` and the legacy `POST /v1/completions`, in OpenAI's wire format.
enum OpenAIChatRoutes {
    static func add(to router: Router<some RequestContext>) {
        router.mockRoute(.post, "/v1/chat/completions", family: .openAI) { call in
            let prompt = PromptTokens.count(call.body["messages"])
            let completion = MockCompletion(promptTokens: prompt, cap: call.cap("max_completion_tokens", "max_tokens"), knobs: call.knobs)
            let reply = ChatReply(call: call, completion: completion, id: MockIdentity.id("chatcmpl-"), created: MockIdentity.now)
            return call.answer(completion, stream: reply.chatEvents, json: reply.chatCompletion)
        }
        router.mockRoute(.post, "/v1/completions", family: .openAI) { call in
            let prompt = PromptTokens.count(call.body["prompt"])
            // The legacy endpoint stops at 16 tokens when the request sets no max_tokens.
            let completion = MockCompletion(promptTokens: prompt, cap: call.cap("max_tokens") ?? 16, knobs: call.knobs)
            let reply = ChatReply(call: call, completion: completion, id: MockIdentity.id("cmpl-"), created: MockIdentity.now)
            return call.answer(completion, stream: reply.textEvents, json: reply.textCompletion)
        }
    }
}

/// One OpenAI chat or text completion, rendered whole or as stream chunks.
struct ChatReply {
    let call: MockCall
    let completion: MockCompletion
    let id: String
    let created: Int

    var finishReason: String { completion.hitCap ? "length" : "stop" }

    var chatCompletion: String {
        let message = #"{"role":"assistant","content":\#(jsonQuoted(completion.text)),"refusal":null}"#
        return """
            {"id":"\(id)","object":"chat.completion","created":\(created),"model":\(jsonQuoted(call.model)),\
            "choices":[{"index":0,"message":\(message),"logprobs":null,"finish_reason":"\(finishReason)"}],\
            "usage":\(call.knobs.omitUsage ? "null" : completion.openAIUsage),"service_tier":\(jsonQuoted(call.servedTier("default"))),"system_fingerprint":"fp_mock"}
            """
    }

    /// Role chunk, one chunk per token, the finish chunk, the usage chunk if asked for, `[DONE]`.
    var chatEvents: [String] {
        func chunk(_ delta: String, finish: String = "null") -> String {
            chatChunk(choices: #"[{"index":0,"delta":\#(delta),"logprobs":null,"finish_reason":\#(finish)}]"#)
        }
        var events = [chunk(#"{"role":"assistant","content":"","refusal":null}"#)]
        events += Array(repeating: chunk(#"{"content":\#(jsonQuoted(MockCompletion.token))}"#), count: completion.visibleTokens)
        events.append(chunk("{}", finish: "\"\(finishReason)\""))
        return finishingStream(events, usageChunk: chatChunk(choices: "[]", usage: completion.openAIUsage))
    }

    private func chatChunk(choices: String, usage: String = "null") -> String {
        let head = """
            {"id":"\(id)","object":"chat.completion.chunk","created":\(created),"model":\(jsonQuoted(call.model)),\
            "service_tier":\(jsonQuoted(call.servedTier("default"))),"system_fingerprint":"fp_mock","choices":\(choices)
            """
        return head + usageTail(usage) + "}"
    }

    var textCompletion: String {
        """
        {"id":"\(id)","object":"text_completion","created":\(created),"model":\(jsonQuoted(call.model)),\
        "choices":[{"text":\(jsonQuoted(completion.text)),"index":0,"logprobs":null,"finish_reason":"\(finishReason)"}],\
        "usage":\(call.knobs.omitUsage ? "null" : completion.openAIUsage)}
        """
    }

    /// One chunk per token, an empty-text chunk with the finish reason, usage if asked for, `[DONE]`.
    var textEvents: [String] {
        func chunk(_ text: String, finish: String = "null") -> String {
            textChunk(choices: #"[{"text":\#(jsonQuoted(text)),"index":0,"logprobs":null,"finish_reason":\#(finish)}]"#)
        }
        var events = Array(repeating: chunk(MockCompletion.token), count: completion.visibleTokens)
        events.append(chunk("", finish: "\"\(finishReason)\""))
        return finishingStream(events, usageChunk: textChunk(choices: "[]", usage: completion.openAIUsage))
    }

    private func textChunk(choices: String, usage: String = "null") -> String {
        #"{"id":"\#(id)","object":"text_completion","created":\#(created),"model":\#(jsonQuoted(call.model)),"choices":\#(choices)"#
            + usageTail(usage) + "}"
    }

    /// With `include_usage` OpenAI ends every chunk with `"usage":null` (the real numbers come in
    /// a last chunk with no choices); without it the field is absent.
    private func usageTail(_ usage: String) -> String {
        call.includeUsage ? #","usage":\#(usage)"# : ""
    }

    private func finishingStream(_ events: [String], usageChunk: String) -> [String] {
        (call.includeUsage && !call.knobs.omitUsage ? events + [usageChunk] : events).map(SSE.data) + [SSE.done]
    }
}

extension MockCompletion {
    /// OpenAI's `usage` object for chat, completions: cached tokens are inside prompt_tokens and
    /// reasoning tokens inside completion_tokens.
    var openAIUsage: String {
        """
        {"prompt_tokens":\(promptTokens),"completion_tokens":\(completionTokens),"total_tokens":\(totalTokens),\
        "prompt_tokens_details":{"cached_tokens":\(cachedTokens),"audio_tokens":0},\
        "completion_tokens_details":{"reasoning_tokens":\(reasoningTokens),"audio_tokens":0,\
        "accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}
        """
    }
}
