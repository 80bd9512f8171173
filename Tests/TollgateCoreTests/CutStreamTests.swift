import Testing
@testable import TollgateCore

@Suite("Cut streams: the provable usage bound")
struct CutStreamTests {
    static func estimate(input: Int64, tier: String? = nil, hasBound: Bool = true) -> CostEstimate {
        CostEstimate(inputTokenBound: input, fixedCost: .zero, perOutputToken: .zero, requestedOutputTokens: 100,
                     minimumOutputTokens: 16, serviceTier: tier, cutStreamHasBound: hasBound)
    }

    @Test("every choice's content, refusal, reasoning and tool-call arguments count, byte for byte")
    func allChoicesAllFields() {
        // "héllo" 6 bytes + "no" 2 + "think" 5 + "{\"a\":1}" 7 + "x" 1 (choice 1) = 21
        let stream = """
            data: {"choices":[{"index":0,"delta":{"content":"héllo","refusal":"no"}},{"index":1,"delta":{"content":"x"}}]}

            data: {"choices":[{"index":0,"delta":{"reasoning_content":"think","tool_calls":[{"index":0,"function":{"arguments":"{\\"a\\":1}"}}]}}]}


            """
        var parser = SSEParser()
        var tracker = StreamUsageTracker(route: .chatCompletions, hideInjectedUsage: true)
        for event in parser.feed(stream.bytes) { _ = tracker.observe(event) }
        #expect(tracker.streamedOutputBytes == 21)
        #expect(tracker.cutStreamBound(for: Self.estimate(input: 40)) == TokenUsage(input: 40, output: 21))
    }

    @Test("the bound is priced at the requested tier, or the tier the stream already named")
    func tier() {
        var tracker = StreamUsageTracker(route: .chatCompletions, hideInjectedUsage: true)
        #expect(tracker.cutStreamBound(for: Self.estimate(input: 5, tier: "flex")) == TokenUsage(input: 5, output: 1, serviceTier: "flex"))
        var parser = SSEParser()
        for event in parser.feed(#"data: {"service_tier":"default","choices":[{"index":0,"delta":{"content":"ab"}}]}"#.bytes + "\n\n".bytes) {
            _ = tracker.observe(event)
        }
        #expect(tracker.cutStreamBound(for: Self.estimate(input: 5, tier: "auto")) == TokenUsage(input: 5, output: 2, serviceTier: "default"))
    }

    @Test("no bound below the reservation when the estimate says so (hidden reasoning, provider-run tools)")
    func noBound() {
        let tracker = StreamUsageTracker(route: .messages, hideInjectedUsage: false)
        #expect(tracker.cutStreamBound(for: Self.estimate(input: 5, hasBound: false)) == nil)
    }

    @Test("Anthropic: message_delta adds to message_start's usage, 1-hour writes and tool calls included")
    func anthropicMerge() {
        let stream = """
            event: message_start
            data: {"type":"message_start","message":{"usage":{"input_tokens":25,"cache_creation_input_tokens":50,"cache_creation":{"ephemeral_5m_input_tokens":20,"ephemeral_1h_input_tokens":30},"output_tokens":1,"service_tier":"standard"}}}

            event: content_block_delta
            data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"abc"}}


            """
        var parser = SSEParser()
        var tracker = StreamUsageTracker(route: .messages, hideInjectedUsage: false)
        for event in parser.feed(stream.bytes) { _ = tracker.observe(event) }
        #expect(tracker.finalUsage == nil)
        #expect(tracker.cutStreamBound(for: Self.estimate(input: 9_999)) ==
                TokenUsage(input: 25, cacheWrite: 20, cacheWrite1h: 30, output: 3, serviceTier: "standard"))
        let end = """
            event: message_delta
            data: {"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":7,"server_tool_use":{"web_search_requests":2}}}


            """
        for event in parser.feed(end.bytes) { _ = tracker.observe(event) }
        #expect(tracker.finalUsage == TokenUsage(input: 25, cacheWrite: 20, cacheWrite1h: 30, output: 7, serviceTier: "standard",
                                                 serverToolCalls: ["web_search": 2]))
    }
}
