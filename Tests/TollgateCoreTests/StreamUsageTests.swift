import Foundation
import Testing
@testable import TollgateCore

@Suite("StreamUsageTracker: usage from provider streams")
struct StreamUsageTests {
    /// Runs `events` (each `data:` payload or full event text) through parser and tracker.
    static func run(_ route: ProxyRoute, hide: Bool = false, _ stream: String) -> (tracker: StreamUsageTracker, forwarded: [[UInt8]?]) {
        var parser = SSEParser()
        var tracker = StreamUsageTracker(route: route, hideInjectedUsage: hide)
        let forwarded = parser.feed(stream.bytes).map { tracker.observe($0) }
        return (tracker, forwarded)
    }

    static let chatStream = """
        data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":""}}],"usage":null}

        data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"Hel"}}],"usage":null}

        data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"lo!"},"finish_reason":"stop"}],"usage":null}

        data: {"id":"c1","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":10,"completion_tokens":2,"total_tokens":12,"prompt_tokens_details":{"cached_tokens":4}}}

        data: [DONE]


        """

    @Test("OpenAI chat: when the client asked for usage, every event passes unchanged")
    func chatClientUsage() throws {
        let (tracker, forwarded) = Self.run(.chatCompletions, hide: false, Self.chatStream)
        var parser = SSEParser()
        #expect(forwarded == parser.feed(Self.chatStream.bytes).map(\.raw))
        #expect(tracker.usage == TokenUsage(input: 6, cachedInput: 4, output: 2))
        #expect(tracker.streamedOutputEvents == 2)
        #expect(tracker.streamedOutputBytes == 6)
    }

    @Test("OpenAI chat: injected usage is read, then hidden from the client")
    func chatInjectedUsage() throws {
        let (tracker, forwarded) = Self.run(.chatCompletions, hide: true, Self.chatStream)
        #expect(tracker.usage == TokenUsage(input: 6, cachedInput: 4, output: 2))
        #expect(forwarded.count == 5)
        #expect(forwarded[3] == nil, "the usage-only chunk is dropped")
        for i in [0, 1, 2] {
            let raw = try #require(forwarded[i])
            #expect(!raw.text.contains("usage"))
            var parser = SSEParser()
            let event = try #require(parser.feed(raw).first)
            let json = try JSONValue.parse(event.data)
            #expect(json["usage"] == nil)
            #expect(json["id"]?.string == "c1")
        }
        #expect(forwarded[2]?.text == #"data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"lo!"},"finish_reason":"stop"}]}"# + "\n\n")
        #expect(forwarded[4]?.text == "data: [DONE]\n\n")
    }

    @Test("OpenAI chat: usage text inside content is escaped, so it is never stripped")
    func contentMentioningUsage() throws {
        let stream = #"data: {"choices":[{"delta":{"content":",\"usage\":null"}}],"usage":null}"# + "\n\n"
        let (_, forwarded) = Self.run(.chatCompletions, hide: true, stream)
        let raw = try #require(forwarded.first ?? nil)
        #expect(raw.text == #"data: {"choices":[{"delta":{"content":",\"usage\":null"}}]}"# + "\n\n")
    }

    @Test("legacy completions count streamed text")
    func completionsText() {
        let stream = #"data: {"choices":[{"text":"Hello there","index":0}]}"# + "\n\n" + #"data: {"choices":[{"text":" you","index":0}]}"# + "\n\n"
        let (tracker, _) = Self.run(.completions, stream)
        #expect(tracker.streamedOutputEvents == 2)
        #expect(tracker.streamedOutputBytes == 15)
        #expect(tracker.usage == nil)
    }

    static let anthropicStream = """
        event: message_start
        data: {"type":"message_start","message":{"id":"msg_1","role":"assistant","usage":{"input_tokens":25,"cache_read_input_tokens":100,"cache_creation_input_tokens":50,"output_tokens":1}}}

        event: content_block_start
        data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

        event: ping
        data: {"type": "ping"}

        event: content_block_delta
        data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}}

        event: content_block_delta
        data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" world"}}

        event: message_delta
        data: {"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":15}}

        event: message_stop
        data: {"type":"message_stop"}


        """

    @Test("Anthropic: message_start's input counts merge with message_delta's output count")
    func anthropicMerge() {
        let (tracker, forwarded) = Self.run(.messages, Self.anthropicStream)
        #expect(tracker.usage == TokenUsage(input: 25, cachedInput: 100, cacheWrite: 50, output: 15))
        #expect(forwarded.allSatisfy { $0 != nil })
        #expect(tracker.streamedOutputEvents == 2)
        #expect(tracker.streamedOutputBytes == 11)
    }

    @Test("Anthropic: before message_delta the usage is message_start's")
    func anthropicStartOnly() {
        let start = Self.anthropicStream.components(separatedBy: "\n\n")[0] + "\n\n"
        let (tracker, _) = Self.run(.messages, start)
        #expect(tracker.usage == TokenUsage(input: 25, cachedInput: 100, cacheWrite: 50, output: 1))
    }

    @Test("Anthropic: a message_delta that repeats input counts replaces them")
    func anthropicCumulativeDelta() {
        let stream = Self.anthropicStream.replacingOccurrences(
            of: #""usage":{"output_tokens":15}"#,
            with: #""usage":{"input_tokens":30,"cache_read_input_tokens":100,"cache_creation_input_tokens":0,"output_tokens":15}"#)
        let (tracker, _) = Self.run(.messages, stream)
        #expect(tracker.usage == TokenUsage(input: 30, cachedInput: 100, cacheWrite: 0, output: 15))
    }

    static let responsesStream = """
        event: response.created
        data: {"type":"response.created","response":{"id":"resp_1","status":"in_progress","usage":null}}

        event: response.output_text.delta
        data: {"type":"response.output_text.delta","item_id":"m1","delta":"Hi"}

        event: response.output_text.delta
        data: {"type":"response.output_text.delta","item_id":"m1","delta":" there"}

        event: response.completed
        data: {"type":"response.completed","response":{"id":"resp_1","status":"completed","usage":{"input_tokens":40,"input_tokens_details":{"cached_tokens":8},"output_tokens":30,"output_tokens_details":{"reasoning_tokens":20},"total_tokens":70}}}


        """

    @Test("Responses: usage comes from response.completed")
    func responsesCompleted() {
        let (tracker, forwarded) = Self.run(.responses, Self.responsesStream)
        #expect(tracker.usage == TokenUsage(input: 32, cachedInput: 8, output: 10, reasoning: 20))
        #expect(tracker.streamedOutputEvents == 2)
        #expect(tracker.streamedOutputBytes == 8)
        #expect(forwarded.allSatisfy { $0 != nil })
    }

    @Test("Responses: an incomplete response reports usage too")
    func responsesIncomplete() {
        let stream = Self.responsesStream.replacingOccurrences(of: "response.completed", with: "response.incomplete")
        #expect(Self.run(.responses, stream).tracker.usage == TokenUsage(input: 32, cachedInput: 8, output: 10, reasoning: 20))
    }

    @Test("a cut stream with nothing streamed is bounded by the input bound and one output token")
    func cutBoundEmpty() {
        let tracker = StreamUsageTracker(route: .chatCompletions, hideInjectedUsage: true)
        #expect(tracker.cutStreamBound(for: Self.estimate(input: 500)) == TokenUsage(input: 500, output: 1))
    }

    @Test("a cut stream of a model with hidden reasoning has no bound below its reservation", arguments: ProxyRoute.allCases)
    func cutBoundHiddenReasoning(route: ProxyRoute) {
        let tracker = StreamUsageTracker(route: route, hideInjectedUsage: false)
        #expect(tracker.cutStreamBound(for: Self.estimate(input: 10, hasBound: false)) == nil)
    }

    @Test("a cut stream counts one token per streamed byte, not per four")
    func cutBoundCountsBytes() {
        // 40 deltas "tokN " : 10 × 5 bytes (N < 10) + 30 × 6 bytes = 230 bytes.
        let deltas = (0..<40).map { #"data: {"choices":[{"delta":{"content":"tok\#($0) "}}]}"# + "\n\n" }.joined()
        let (tracker, _) = Self.run(.chatCompletions, hide: true, deltas)
        #expect(tracker.usage == nil)
        #expect(tracker.cutStreamBound(for: Self.estimate(input: 77)) == TokenUsage(input: 77, output: 230))
    }

    @Test("a cut Anthropic stream keeps the input it reported and bounds the output by the bytes streamed")
    func cutBoundWithPartialUsage() {
        let cut = Self.anthropicStream.components(separatedBy: "event: message_delta")[0]
        let (tracker, _) = Self.run(.messages, cut)
        #expect(tracker.finalUsage == nil)
        let bound = tracker.cutStreamBound(for: Self.estimate(input: 9_999))
        #expect(bound == TokenUsage(input: 25, cachedInput: 100, cacheWrite: 50, output: 11))
    }

    @Test("a cut stream counts streamed tool-call arguments")
    func cutBoundCountsToolCalls() {
        // 30 fragments {"kN": : 10 × 6 bytes + 20 × 7 bytes = 200 bytes.
        let chunks = (0..<30).map { i in
            #"data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"k\#(i)\":"}}]}}]}"# + "\n\n"
        }.joined()
        let (tracker, _) = Self.run(.chatCompletions, hide: true, chunks)
        #expect(tracker.cutStreamBound(for: Self.estimate(input: 10))?.output == 200)
    }

    static func estimate(input: Int64, hasBound: Bool = true) -> CostEstimate {
        CostEstimate(inputTokenBound: input, fixedCost: .zero, perOutputToken: .zero, requestedOutputTokens: 100,
                     minimumOutputTokens: 16, cutStreamHasBound: hasBound)
    }
}
