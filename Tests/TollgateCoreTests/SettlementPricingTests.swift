import Testing
@testable import TollgateCore

@Suite("Settlement: what a reported usage costs")
struct SettlementPricingTests {
    @Test("Anthropic 1-hour cache writes are split from the 5-minute ones and priced at their own rate")
    func oneHourWrites() throws {
        let usage = try JSONValue.parse("""
            {"input_tokens":10,"cache_read_input_tokens":0,"cache_creation_input_tokens":300,
             "cache_creation":{"ephemeral_5m_input_tokens":100,"ephemeral_1h_input_tokens":200},"output_tokens":50}
            """)
        let parsed = TokenUsage.anthropic(usage)
        #expect(parsed == TokenUsage(input: 10, cacheWrite: 100, cacheWrite1h: 200, output: 50))
        // 10 × 3,000 + 100 × 3,750 + 200 × 6,000 + 50 × 15,000 nano-USD
        #expect(try Fixture.price("claude-sonnet-4-5").cost(of: parsed!) == NanoUSD(2_355_000))
    }

    @Test("the served tier scales the bill; an unknown tier is priced at the dearest", arguments: [
        (String?.none, Int64(750_000)), ("default", 750_000), ("flex", 375_000), ("priority", 1_500_000), ("turbo", 1_500_000),
    ])
    func tiers(tier: String?, cost: Int64) throws {
        let usage = TokenUsage(input: 1_000, output: 1_000, serviceTier: tier) // 1,000 × 150 + 1,000 × 600
        #expect(try Fixture.price("gpt-4o-mini").cost(of: usage) == NanoUSD(cost))
    }

    @Test("the tier multiplies before the one rounding at the end")
    func roundsOnce() throws {
        // gpt-5-nano cached input: 5 nano-USD a token; at flex 2.5, rounded up once to 3.
        #expect(try Fixture.price("gpt-5-nano").cost(of: TokenUsage(cachedInput: 1, serviceTier: "flex")) == NanoUSD(3))
        // Three tokens: 7.5 → 8, not 3 × 3 = 9.
        #expect(try Fixture.price("gpt-5-nano").cost(of: TokenUsage(cachedInput: 3, serviceTier: "flex")) == NanoUSD(8))
    }

    @Test("above 200,000 input tokens every token of claude-sonnet-4-5 is priced at the long-context rates")
    func longContext() throws {
        let price = try Fixture.price("claude-sonnet-4-5")
        // 150,000 × 6,000 + 60,000 × 600 + 1,000 × 22,500
        #expect(price.cost(of: TokenUsage(input: 150_000, cachedInput: 60_000, output: 1_000)) == NanoUSD(958_500_000))
        // Exactly at the threshold: 200,000 × 3,000 + 1,000 × 15,000
        #expect(price.cost(of: TokenUsage(input: 200_000, output: 1_000)) == NanoUSD(615_000_000))
    }

    @Test("Responses tool calls are counted from the output items and charged their fee")
    func responsesToolCalls() throws {
        let body = try JSONValue.parse("""
            {"service_tier":"default","output":[{"type":"web_search_call","id":"ws_1"},{"type":"web_search_call","id":"ws_2"},
             {"type":"message","content":[]}],"usage":{"input_tokens":100,"output_tokens":10}}
            """)
        let usage = ProxyRoute.responses.usage(inResponse: body)
        #expect(usage == TokenUsage(input: 100, output: 10, serviceTier: "default", serverToolCalls: ["web_search_call": 2]))
        // 100 × 2,500 + 10 × 10,000 + 2 × $0.025
        #expect(try Fixture.price("gpt-4o").cost(of: usage!) == NanoUSD(50_350_000))
    }

    @Test("Anthropic server_tool_use is counted under the tool's name and charged its fee")
    func anthropicToolCalls() throws {
        let body = try JSONValue.parse(#"{"usage":{"input_tokens":100,"output_tokens":10,"server_tool_use":{"web_search_requests":3},"service_tier":"standard"}}"#)
        let usage = ProxyRoute.messages.usage(inResponse: body)
        #expect(usage == TokenUsage(input: 100, output: 10, serviceTier: "standard", serverToolCalls: ["web_search": 3]))
        // 100 × 1,000 + 10 × 5,000 + 3 × $0.01
        #expect(try Fixture.price("claude-haiku-4-5").cost(of: usage!) == NanoUSD(30_150_000))
    }

    @Test("chat reads the served tier from the response's top level")
    func chatTier() throws {
        let body = try JSONValue.parse(#"{"service_tier":"flex","usage":{"prompt_tokens":9,"completion_tokens":3}}"#)
        #expect(ProxyRoute.chatCompletions.usage(inResponse: body) == TokenUsage(input: 9, output: 3, serviceTier: "flex"))
    }
}

@Suite("The pricing table's rules")
struct PricingRulesTests {
    @Test("a dated snapshot priced differently from its base is listed itself, and wins over the prefix")
    func pricedSnapshot() throws {
        let table = try Fixture.table()
        let old = try #require(table.price(for: "gpt-4o-2024-05-13"))
        #expect(old.input.nanoUSD == 5_000_000_000)
        #expect(old.output.nanoUSD == 15_000_000_000)
        #expect(old.maxOutputTokens == 4_096)
        #expect(table.price(for: "gpt-4o-2024-08-06")?.input.nanoUSD == 2_500_000_000)
    }

    @Test("the bundled table carries windows, image rules, tiers, fees and long-context rates")
    func bundledRules() throws {
        let mini = try Fixture.price("gpt-4o-mini")
        #expect(mini.contextWindow == 128_000)
        #expect(mini.imageTokens == ImageTokens(high: 48_169, low: 2_833))
        #expect(!mini.hiddenReasoning)
        #expect(mini.tierMultiplier("flex") == TierMultiplier(millionths: 500_000))
        #expect(mini.tierMultiplier("priority") == TierMultiplier(millionths: 2_000_000))
        #expect(mini.tierMultiplier(nil) == .one)
        #expect(mini.tierMultiplier("turbo") == nil)
        #expect(mini.toolFee("web_search_call") == NanoUSD(25_000_000))
        #expect(mini.toolFee("code_interpreter_call") == NanoUSD(30_000_000))
        let sonnet = try Fixture.price("claude-sonnet-4-5")
        #expect(sonnet.cacheWrite1h.nanoUSD == 6_000_000_000)
        #expect(sonnet.toolUseOverheadTokens == 346)
        #expect(sonnet.longContext?.aboveInputTokens == 200_000)
        #expect(sonnet.longContext?.rates.input.nanoUSD == 6_000_000_000)
        #expect(sonnet.longContext?.rates.output.nanoUSD == 22_500_000_000)
        #expect(sonnet.longContext?.rates.cacheWrite1h.nanoUSD == 12_000_000_000)
        #expect(try Fixture.price("o3").hiddenReasoning)
        #expect(try Fixture.price("gpt-5").hiddenReasoning)
    }

    @Test("a model's tiers override the table's, and the rest are inherited")
    func modelTiers() throws {
        let table = try PriceTable.parse(yaml: """
            service_tiers: { default: 1, flex: 0.5, priority: 2 }
            tool_fees_usd: { web_search_call: 0.01 }
            models:
              m: { input: 1, output: 2, max_output_tokens: 10, tiers: { priority: 1.75 } }
            """, origin: "test")
        let m = try #require(table.models["m"])
        #expect(m.tierMultiplier("priority") == TierMultiplier(millionths: 1_750_000))
        #expect(m.tierMultiplier("flex") == TierMultiplier(millionths: 500_000))
        #expect(m.toolFee("web_search_call") == NanoUSD(10_000_000))
        #expect(m.cacheWrite1h.nanoUSD == 2_000_000_000) // absent: twice the input
        #expect(m.contextWindow == nil)
    }

    @Test("without service_tiers only the default tier is priced")
    func noTiers() throws {
        let m = try #require(try PriceTable.parse(yaml: "models: { m: { input: 1, max_output_tokens: 0 } }", origin: "t").models["m"])
        #expect(m.tierMultiplier("default") == .one)
        #expect(m.tierMultiplier("flex") == nil)
    }

    @Test("malformed rules name their key", arguments: [
        ("service_tiers: { flex: half }\nmodels: {}", "t: service_tiers.flex"),
        ("tool_fees_usd: { web_search_call: -1 }\nmodels: {}", "t: tool_fees_usd.web_search_call"),
        ("models: { m: { input: 1, max_output_tokens: 1, context_window: lots } }", "t: models.m.context_window"),
        ("models: { m: { input: 1, max_output_tokens: 1, image_tokens: { low: 5 } } }", "t: models.m.image_tokens.high"),
        ("models: { m: { input: 1, max_output_tokens: 1, long_context: { input: 2, output: 3 } } }", "t: models.m.long_context.above_input_tokens"),
        ("models: { m: { input: 1, max_output_tokens: 1, hidden_reasoning: maybe } }", "t: models.m.hidden_reasoning"),
    ])
    func malformed(yaml: String, key: String) {
        let error = #expect(throws: ConfigError.self) { try PriceTable.parse(yaml: yaml, origin: "t") }
        #expect(error?.key == key)
    }
}
