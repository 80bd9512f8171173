import Testing
@testable import TollgateCore

/// 2026-11-30T18:00:00Z.
private let created = UnixTime(seconds: 1_796_061_600)
/// Quotes, a newline, a backslash and non-ASCII: the text must survive JSON escaping.
private let text = "Budget \"daily\" is out.\nC:\\tmp — é ✓"

private func answer(_ route: ProxyRoute, stream: Bool, includeUsage: Bool = false) throws -> BudgetStopAnswer {
    try #require(BudgetStopAnswer(
        route: route, model: "gpt-4o-mini", text: text, stream: stream, includeUsage: includeUsage,
        idToken: "abc123", created: created))
}

/// Every event of a stream, parsed by Core's own SSE parser; the body must end on an event boundary.
private func events(_ answer: BudgetStopAnswer) throws -> [(name: String?, data: String)] {
    var parser = SSEParser()
    let parsed = parser.feed(Array(answer.body.utf8))
    #expect(parser.buffered.isEmpty)
    #expect(parsed.map { String(decoding: $0.raw, as: UTF8.self) } == answer.events)
    return parsed.map { ($0.name, $0.data) }
}

private func json(_ text: String) throws -> JSONValue { try JSONValue.parse(text) }

@Suite("Stop answers: a completion in the route's own wire format")
struct BudgetStopAnswerTests {
    @Test("the message names the period, the client and when the budget resets")
    func message() throws {
        let client = try #require(ClientID("x"))
        #expect(BudgetStopAnswer.message(client: client, period: .daily, resetsAt: UnixTime(seconds: 1_796_083_200))
            == "The daily budget for client 'x' is exhausted; it resets at 2026-12-01T00:00:00Z. No request was sent to the model.")
        #expect(BudgetStopAnswer.message(client: client, period: .monthly, resetsAt: UnixTime(seconds: 1_796_083_200))
            == "The monthly budget for client 'x' is exhausted; it resets at 2026-12-01T00:00:00Z. No request was sent to the model.")
    }

    @Test("embeddings have no place for a message, so there is no stop answer")
    func embeddings() {
        #expect(BudgetStopAnswer(route: .embeddings, model: "m", text: "t", stream: false, idToken: "1", created: created) == nil)
    }

    @Test("ids keep only letters and digits of the token")
    func idToken() throws {
        let a = try #require(BudgetStopAnswer(route: .messages, model: "m", text: "t", stream: false, idToken: "a-b_c/9", created: created))
        #expect(try json(a.json)["id"]?.string == "msg_tollgate_abc9")
        let empty = try #require(BudgetStopAnswer(route: .messages, model: "m", text: "t", stream: false, idToken: "--", created: created))
        #expect(try json(empty.json)["id"]?.string == "msg_tollgate_0")
    }

    @Test("content type follows the stream flag", arguments: [
        (false, "application/json"), (true, "text/event-stream"),
    ])
    func contentType(stream: Bool, type: String) throws {
        for route in [ProxyRoute.chatCompletions, .completions, .responses, .messages] {
            #expect(try answer(route, stream: stream).contentType == type)
        }
    }

    @Test("a scanned request gives its model, stream flag and include_usage")
    func fromRequest() throws {
        let body = #"{"model":"gpt-4.1","stream":true,"stream_options":{"include_usage":true},"messages":[]}"#
        let request = try Fixture.scan(body)
        let a = try #require(BudgetStopAnswer(route: .chatCompletions, request: request, text: "t", idToken: "1", created: created))
        #expect(a.model == "gpt-4.1")
        #expect(a.stream)
        #expect(a.includeUsage)
    }

    // MARK: chat completions

    @Test("chat.completion: id, object, model, message, finish_reason and zero usage")
    func chatCompletion() throws {
        let body = try json(try answer(.chatCompletions, stream: false).body)
        #expect(body["id"]?.string == "chatcmpl-tollgate-abc123")
        #expect(body["object"]?.string == "chat.completion")
        #expect(body["created"]?.int == 1_796_061_600)
        #expect(body["model"]?.string == "gpt-4o-mini")
        guard case .array(let choices) = body["choices"] else { Issue.record("no choices"); return }
        #expect(choices.count == 1)
        #expect(choices[0]["index"]?.int == 0)
        #expect(choices[0]["message"]?["role"]?.string == "assistant")
        #expect(choices[0]["message"]?["content"]?.string == text)
        #expect(choices[0]["finish_reason"]?.string == "stop")
        #expect(body["usage"]?["prompt_tokens"]?.int == 0)
        #expect(body["usage"]?["completion_tokens"]?.int == 0)
        #expect(body["usage"]?["total_tokens"]?.int == 0)
        #expect(ProxyRoute.chatCompletions.usage(inResponse: body) == TokenUsage())
    }

    @Test("chat stream: role chunk, text, finish chunk, [DONE]; no usage field unless asked")
    func chatStream() throws {
        let all = try events(try answer(.chatCompletions, stream: true))
        #expect(all.count == 4)
        #expect(all.last?.data == "[DONE]")
        #expect(all.allSatisfy { $0.name == nil })
        let chunks = try all.dropLast().map { try json($0.data) }
        for chunk in chunks {
            #expect(chunk["id"]?.string == "chatcmpl-tollgate-abc123")
            #expect(chunk["object"]?.string == "chat.completion.chunk")
            #expect(chunk["model"]?.string == "gpt-4o-mini")
            #expect(chunk["usage"] == nil)
        }
        #expect(chunks[0]["choices"].flatMap(first)?["delta"]?["role"]?.string == "assistant")
        let streamed = chunks.compactMap { $0["choices"].flatMap(first)?["delta"]?["content"]?.string }.joined()
        #expect(streamed == text)
        #expect(chunks.map { $0["choices"].flatMap(first)?["finish_reason"] } == [.null, .null, .string("stop")])
    }

    @Test("chat stream with include_usage: usage null on each chunk, then a zero-usage chunk without choices")
    func chatStreamUsage() throws {
        let all = try events(try answer(.chatCompletions, stream: true, includeUsage: true))
        #expect(all.count == 5)
        #expect(all.last?.data == "[DONE]")
        let chunks = try all.dropLast().map { try json($0.data) }
        #expect(chunks.dropLast().allSatisfy { $0["usage"] == .null })
        let last = try #require(chunks.last)
        #expect(last["choices"] == .array([]))
        #expect(last["usage"]?["prompt_tokens"]?.int == 0)
        #expect(last["usage"]?["completion_tokens"]?.int == 0)
        #expect(last["usage"]?["total_tokens"]?.int == 0)
    }

    // MARK: legacy completions

    @Test("text_completion: id, object, choices[0].text, finish_reason and zero usage")
    func textCompletion() throws {
        let body = try json(try answer(.completions, stream: false).body)
        #expect(body["id"]?.string == "cmpl-tollgate-abc123")
        #expect(body["object"]?.string == "text_completion")
        #expect(body["created"]?.int == 1_796_061_600)
        #expect(body["model"]?.string == "gpt-4o-mini")
        #expect(body["choices"].flatMap(first)?["text"]?.string == text)
        #expect(body["choices"].flatMap(first)?["index"]?.int == 0)
        #expect(body["choices"].flatMap(first)?["finish_reason"]?.string == "stop")
        #expect(body["usage"]?["total_tokens"]?.int == 0)
    }

    @Test("legacy stream: text chunk, finish chunk, usage chunk when asked, [DONE]", arguments: [false, true])
    func textStream(includeUsage: Bool) throws {
        let all = try events(try answer(.completions, stream: true, includeUsage: includeUsage))
        #expect(all.count == (includeUsage ? 4 : 3))
        #expect(all.last?.data == "[DONE]")
        let chunks = try all.dropLast().map { try json($0.data) }
        #expect(chunks.allSatisfy { $0["object"]?.string == "text_completion" && $0["id"]?.string == "cmpl-tollgate-abc123" })
        #expect(chunks.compactMap { $0["choices"].flatMap(first)?["text"]?.string }.joined() == text)
        #expect(chunks[1]["choices"].flatMap(first)?["finish_reason"]?.string == "stop")
        if includeUsage {
            #expect(chunks[2]["choices"] == .array([]))
            #expect(chunks[2]["usage"]?["total_tokens"]?.int == 0)
        } else {
            #expect(chunks.allSatisfy { $0["usage"] == nil })
        }
    }

    // MARK: Responses API

    @Test("response: completed, one assistant message with output_text, zero usage")
    func response() throws {
        let body = try json(try answer(.responses, stream: false).body)
        try expectCompletedResponse(body)
        #expect(ProxyRoute.responses.usage(inResponse: body) == TokenUsage())
    }

    @Test("Responses stream: the nine events in order, numbered, each named as its type")
    func responsesStream() throws {
        let all = try events(try answer(.responses, stream: true))
        #expect(all.map(\.name) == [
            "response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
            "response.output_text.delta", "response.output_text.done", "response.content_part.done",
            "response.output_item.done", "response.completed",
        ])
        let bodies = try all.map { try json($0.data) }
        #expect(bodies.map { $0["type"]?.string } == all.map(\.name))
        #expect(bodies.map { $0["sequence_number"]?.int } == [0, 1, 2, 3, 4, 5, 6, 7, 8])
        #expect(bodies[0]["response"]?["id"]?.string == "resp_tollgate_abc123")
        #expect(bodies[0]["response"]?["status"]?.string == "in_progress")
        #expect(bodies[0]["response"]?["output"] == .array([]))
        #expect(bodies[2]["item"]?["id"]?.string == "msg_tollgate_abc123")
        #expect(bodies[2]["item"]?["status"]?.string == "in_progress")
        for event in bodies[3...6] {
            #expect(event["item_id"]?.string == "msg_tollgate_abc123")
            #expect(event["output_index"]?.int == 0)
            #expect(event["content_index"]?.int == 0)
        }
        #expect(bodies[4]["delta"]?.string == text)
        #expect(bodies[5]["text"]?.string == text)
        #expect(bodies[6]["part"]?["text"]?.string == text)
        #expect(bodies[7]["item"]?["status"]?.string == "completed")
        try expectCompletedResponse(try #require(bodies[8]["response"]))
    }

    private func expectCompletedResponse(_ body: JSONValue) throws {
        #expect(body["id"]?.string == "resp_tollgate_abc123")
        #expect(body["object"]?.string == "response")
        #expect(body["created_at"]?.int == 1_796_061_600)
        #expect(body["status"]?.string == "completed")
        #expect(body["model"]?.string == "gpt-4o-mini")
        #expect(body["error"] == .null)
        let item = try #require(body["output"].flatMap(first))
        #expect(item["type"]?.string == "message")
        #expect(item["id"]?.string == "msg_tollgate_abc123")
        #expect(item["role"]?.string == "assistant")
        #expect(item["status"]?.string == "completed")
        let part = try #require(item["content"].flatMap(first))
        #expect(part["type"]?.string == "output_text")
        #expect(part["text"]?.string == text)
        #expect(part["annotations"] == .array([]))
        #expect(body["usage"]?["input_tokens"]?.int == 0)
        #expect(body["usage"]?["input_tokens_details"]?["cached_tokens"]?.int == 0)
        #expect(body["usage"]?["input_tokens_details"]?["cache_write_tokens"]?.int == 0)
        #expect(body["usage"]?["output_tokens"]?.int == 0)
        #expect(body["usage"]?["output_tokens_details"]?["reasoning_tokens"]?.int == 0)
        #expect(body["usage"]?["total_tokens"]?.int == 0)
    }

    // MARK: Anthropic Messages

    @Test("message: id, type, role, one text block, end_turn and zero usage")
    func anthropicMessage() throws {
        let body = try json(try answer(.messages, stream: false).body)
        #expect(body["id"]?.string == "msg_tollgate_abc123")
        #expect(body["type"]?.string == "message")
        #expect(body["role"]?.string == "assistant")
        #expect(body["model"]?.string == "gpt-4o-mini")
        #expect(body["content"].flatMap(first)?["type"]?.string == "text")
        #expect(body["content"].flatMap(first)?["text"]?.string == text)
        #expect(body["stop_reason"]?.string == "end_turn")
        #expect(body["stop_sequence"] == .null)
        #expect(body["usage"]?["input_tokens"]?.int == 0)
        #expect(body["usage"]?["output_tokens"]?.int == 0)
        #expect(ProxyRoute.messages.usage(inResponse: body) == TokenUsage())
    }

    @Test("Anthropic stream: message_start … message_stop, each named as its type")
    func anthropicStream() throws {
        let all = try events(try answer(.messages, stream: true))
        #expect(all.map(\.name) == [
            "message_start", "content_block_start", "content_block_delta", "content_block_stop", "message_delta", "message_stop",
        ])
        let bodies = try all.map { try json($0.data) }
        #expect(bodies.map { $0["type"]?.string } == all.map(\.name))
        let start = try #require(bodies[0]["message"])
        #expect(start["id"]?.string == "msg_tollgate_abc123")
        #expect(start["role"]?.string == "assistant")
        #expect(start["content"] == .array([]))
        #expect(start["stop_reason"] == .null)
        #expect(start["usage"]?["input_tokens"]?.int == 0)
        #expect(bodies[1]["content_block"]?["type"]?.string == "text")
        #expect(bodies[2]["index"]?.int == 0)
        #expect(bodies[2]["delta"]?["type"]?.string == "text_delta")
        #expect(bodies[2]["delta"]?["text"]?.string == text)
        #expect(bodies[4]["delta"]?["stop_reason"]?.string == "end_turn")
        #expect(bodies[4]["usage"]?["output_tokens"]?.int == 0)
    }
}

private func first(_ v: JSONValue) -> JSONValue? {
    guard case .array(let items) = v else { return nil }
    return items.first
}
