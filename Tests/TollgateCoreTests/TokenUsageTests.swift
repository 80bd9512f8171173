import Testing
@testable import TollgateCore

@Suite("TokenUsage: one price per field")
struct TokenUsageTests {
    @Test("OpenAI chat usage: cached tokens leave input, reasoning tokens leave output")
    func openAIChat() throws {
        let usage = try JSONValue.parse("""
            {"prompt_tokens":1200,"completion_tokens":300,"total_tokens":1500,
             "prompt_tokens_details":{"cached_tokens":1000,"audio_tokens":0},
             "completion_tokens_details":{"reasoning_tokens":200}}
            """)
        let u = try #require(TokenUsage.openAI(usage))
        #expect(u == TokenUsage(input: 200, cachedInput: 1_000, output: 100, reasoning: 200))
        #expect(u.inputTotal == 1_200)
        #expect(u.outputTotal == 300)
    }

    @Test("OpenAI usage without details (or with null details) is all plain input and output")
    func openAIPlain() throws {
        let plain = try JSONValue.parse(#"{"prompt_tokens":12,"completion_tokens":5}"#)
        #expect(TokenUsage.openAI(plain) == TokenUsage(input: 12, output: 5))
        let nulls = try JSONValue.parse(#"{"prompt_tokens":12,"completion_tokens":5,"prompt_tokens_details":null,"completion_tokens_details":null}"#)
        #expect(TokenUsage.openAI(nulls) == TokenUsage(input: 12, output: 5))
        let embeddings = try JSONValue.parse(#"{"prompt_tokens":8,"total_tokens":8}"#)
        #expect(TokenUsage.openAI(embeddings) == TokenUsage(input: 8))
    }

    @Test("OpenAI usage without prompt_tokens is not usage", arguments: [
        #"{}"#, #"{"completion_tokens":5}"#, #"{"prompt_tokens":"12"}"#, #"{"prompt_tokens":1.5}"#, #"null"#, #"[1]"#,
    ])
    func openAIMissing(text: String) throws {
        #expect(TokenUsage.openAI(try JSONValue.parse(text)) == nil)
    }

    @Test("Responses API usage: input_tokens includes cached, output_tokens includes reasoning")
    func responses() throws {
        let usage = try JSONValue.parse("""
            {"usage":{"input_tokens":500,"input_tokens_details":{"cached_tokens":100},
             "output_tokens":50,"output_tokens_details":{"reasoning_tokens":30},"total_tokens":550}}
            """)
        #expect(TokenUsage.openAIResponses(usage) == TokenUsage(input: 400, cachedInput: 100, output: 20, reasoning: 30))
        #expect(TokenUsage.openAIResponses(try JSONValue.parse(#"{"usage":{"prompt_tokens":5}}"#)) == nil)
    }

    @Test("Anthropic usage: the three input counts are disjoint and kept as reported")
    func anthropic() throws {
        let usage = try JSONValue.parse("""
            {"input_tokens":10,"cache_read_input_tokens":2000,"cache_creation_input_tokens":300,"output_tokens":50}
            """)
        let u = try #require(TokenUsage.anthropic(usage))
        #expect(u == TokenUsage(input: 10, cachedInput: 2_000, cacheWrite: 300, output: 50))
        #expect(u.inputTotal == 2_310)
    }

    @Test("Anthropic usage needs at least one of input_tokens and output_tokens")
    func anthropicPartial() throws {
        #expect(TokenUsage.anthropic(try JSONValue.parse(#"{"output_tokens":15}"#)) == TokenUsage(output: 15))
        #expect(TokenUsage.anthropic(try JSONValue.parse(#"{"input_tokens":7}"#)) == TokenUsage(input: 7))
        #expect(TokenUsage.anthropic(try JSONValue.parse(#"{"cache_read_input_tokens":7}"#)) == nil)
    }
}

@Suite("ProxyRoute: what each endpoint needs")
struct ProxyRouteTests {
    @Test("paths, families and reply-cap fields", arguments: [
        (ProxyRoute.chatCompletions, "/v1/chat/completions", APIFamily.openAI, ["max_completion_tokens", "max_tokens"], Int64?.none),
        (.completions, "/v1/completions", .openAI, ["max_tokens"], 16),
        (.embeddings, "/v1/embeddings", .openAI, [], 0),
        (.responses, "/v1/responses", .openAI, ["max_output_tokens"], nil),
        (.messages, "/v1/messages", .anthropic, ["max_tokens"], nil),
    ])
    func shape(route: ProxyRoute, path: String, family: APIFamily, fields: [String], providerDefault: Int64?) {
        #expect(route.path == path)
        #expect(ProxyRoute(rawValue: path) == route)
        #expect(route.family == family)
        #expect(route.outputLimitFields == fields)
        #expect(route.providerDefaultOutputTokens == providerDefault)
        #expect(route.hasOutput == (route != .embeddings))
    }

    @Test("each route reads usage from a complete response in its own family's shape")
    func responseUsage() throws {
        let chat = try JSONValue.parse(#"{"id":"x","usage":{"prompt_tokens":9,"completion_tokens":3}}"#)
        #expect(ProxyRoute.chatCompletions.usage(inResponse: chat) == TokenUsage(input: 9, output: 3))
        #expect(ProxyRoute.embeddings.usage(inResponse: chat) == TokenUsage(input: 9, output: 3))
        let responses = try JSONValue.parse(#"{"usage":{"input_tokens":9,"output_tokens":3}}"#)
        #expect(ProxyRoute.responses.usage(inResponse: responses) == TokenUsage(input: 9, output: 3))
        #expect(ProxyRoute.chatCompletions.usage(inResponse: responses) == nil)
        let messages = try JSONValue.parse(#"{"usage":{"input_tokens":9,"cache_read_input_tokens":4,"output_tokens":3}}"#)
        #expect(ProxyRoute.messages.usage(inResponse: messages) == TokenUsage(input: 9, cachedInput: 4, output: 3))
    }

    @Test("usage read from the answer's bytes, its text stepped over: tier, billed tool calls and the last of a repeated usage count")
    func responseUsageFromBytes() {
        let chat = #"{"id":"x","choices":[{"message":{"content":"a long answer \"quoted\" {not json}"}}],"service_tier":"flex","usage":{"prompt_tokens":9,"completion_tokens":3}}"#
        #expect(ProxyRoute.chatCompletions.usage(inResponseBytes: Array(chat.utf8)) == TokenUsage(input: 9, output: 3, serviceTier: "flex"))
        let repeated = #"{"usage":{"prompt_tokens":1,"completion_tokens":1},"usage":{"prompt_tokens":9,"completion_tokens":3}}"#
        #expect(ProxyRoute.chatCompletions.usage(inResponseBytes: Array(repeated.utf8)) == TokenUsage(input: 9, output: 3))
        let responses = #"{"output":[{"type":"web_search_call"},{"type":"message","content":[]},{"type":"web_search_call"}],"usage":{"input_tokens":9,"output_tokens":3}}"#
        #expect(ProxyRoute.responses.usage(inResponseBytes: Array(responses.utf8))
                == TokenUsage(input: 9, output: 3, serverToolCalls: ["web_search_call": 2]))
        let messages = #"{"content":[{"type":"text","text":"hi"}],"usage":{"input_tokens":9,"cache_read_input_tokens":4,"output_tokens":3}}"#
        #expect(ProxyRoute.messages.usage(inResponseBytes: Array(messages.utf8)) == TokenUsage(input: 9, cachedInput: 4, output: 3))
        #expect(ProxyRoute.chatCompletions.usage(inResponseBytes: Array(#"{"usage":{"prompt_tokens":9"#.utf8)) == nil, "cut JSON")
        #expect(ProxyRoute.chatCompletions.usage(inResponseBytes: Array("[1,2]".utf8)) == nil)
    }

    @Test("an OpenAI answer's usage is read in place as the tree reads it: details, escaped and repeated keys, clamps, and what is not usage",
          arguments: [ProxyRoute.chatCompletions, .completions, .embeddings])
    func openAIInPlace(route: ProxyRoute) {
        func usage(_ json: String) -> TokenUsage? { route.usage(inResponseBytes: Array(json.utf8)) }
        #expect(usage(#"{"id":"c","usage":{"prompt_tokens":1200,"completion_tokens":300,"prompt_tokens_details":{"cached_tokens":1000},"completion_tokens_details":{"reasoning_tokens":200}},"service_tier":"priority"}"#)
                == TokenUsage(input: 200, cachedInput: 1_000, output: 100, reasoning: 200, serviceTier: "priority"))
        // Escaped keys name the same members; the last of a repeated key counts, nested ones too.
        #expect(usage(#"{"usage":{"prompt\u005ftokens":10,"completion_tokens":1,"completion_tokens":4,"prompt_tokens_details":{"cached_tokens":2,"cached_tokens":3}}}"#)
                == TokenUsage(input: 7, cachedInput: 3, output: 4))
        #expect(usage(#"{"usage":{"prompt_tokens":5},"usage":{"prompt_tokens":6}}"#) == TokenUsage(input: 6))
        // Held to 0...2^40; a count not written as an integer is not a count.
        #expect(usage(#"{"usage":{"prompt_tokens":-5,"completion_tokens":99999999999999999}}"#) == TokenUsage(input: 0, output: 1 << 40))
        #expect(usage(#"{"usage":{"prompt_tokens":9,"completion_tokens":3.0}}"#) == TokenUsage(input: 9))
        #expect(usage(#"{"usage":{"prompt_tokens":"9"}}"#) == nil)
        #expect(usage(#"{"usage":{"prompt_tokens":9},"service_tier":7}"#) == TokenUsage(input: 9))
        #expect(usage(#"{"usage":[{"prompt_tokens":9}]}"#) == nil)
        #expect(usage(#"{"usage":null}"#) == nil)
        #expect(usage(#"{"usage":{"prompt_tokens":9}} trailing"#) == nil, "not one JSON document")
    }

    @Test("a response without usage, or with usage null, reports none", arguments: ProxyRoute.allCases)
    func noUsage(route: ProxyRoute) throws {
        #expect(route.usage(inResponse: try JSONValue.parse(#"{"usage":null}"#)) == nil)
        #expect(route.usage(inResponse: try JSONValue.parse(#"{"id":"x"}"#)) == nil)
    }
}
