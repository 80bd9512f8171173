import Testing
@testable import TollgateCore

@Suite("CostEstimator: strict mode without holes")
struct StrictBoundsTests {
    static func estimate(_ body: String, _ route: ProxyRoute, model: String, _ estimator: CostEstimator = CostEstimator(mode: .strict)) throws -> CostEstimate {
        try estimator.estimate(try Fixture.scan(body, route), route: route, price: try Fixture.price(model))
    }

    static let fileByID = #"{"model":"gpt-4o-mini","max_tokens":100,"messages":[{"role":"user","content":[{"type":"text","text":"sum up"},{"type":"file","file":{"file_id":"file-abc"}}]}]}"#

    @Test("a file by id is refused with a message naming the field and the setting")
    func unseenRefused() throws {
        let error = #expect(throws: UnboundedCost.self) { try Self.estimate(Self.fileByID, .chatCompletions, model: "gpt-4o-mini") }
        #expect(error?.field == "messages[0].content[1].file.file_id")
        #expect(error?.setting == "budget.unseen_input")
        #expect(error?.message.contains("messages[0].content[1].file.file_id") == true)
        #expect(error?.message.contains("budget.unseen_input: context_window") == true)
    }

    @Test("with unseen_input: context_window the input bound is the model's whole context window")
    func unseenContextWindow() throws {
        let e = try Self.estimate(Self.fileByID, .chatCompletions, model: "gpt-4o-mini", CostEstimator(mode: .strict, unseenInput: .contextWindow))
        #expect(e.inputTokenBound == 128_000)
        #expect(e.fixedCost == NanoUSD(19_200_000)) // 128,000 × 150 nano-USD
        #expect(e.worstCase == NanoUSD(19_200_000 + 600 * 100))
    }

    @Test("a model without a context window cannot bound unseen input, and says what to add")
    func unseenNoWindow() throws {
        let price = ModelPrice(input: PricePerMillion(nanoUSD: 1_000_000_000), output: PricePerMillion(nanoUSD: 1_000_000_000), maxOutputTokens: 100)
        let request = try Fixture.scan(Self.fileByID)
        let error = #expect(throws: UnboundedCost.self) {
            try CostEstimator(mode: .strict, unseenInput: .contextWindow).estimate(request, route: .chatCompletions, price: price)
        }
        #expect(error?.setting == "pricing_file")
        #expect(error?.message.contains("context_window") == true)
    }

    @Test("estimate mode refuses nothing new: unseen input, server tools and background pass")
    func estimateModeRefusesNothingNew() throws {
        let body = #"{"model":"gpt-4o","background":true,"previous_response_id":"r","input":"hi","tools":[{"type":"web_search"}]}"#
        let e = try Self.estimate(body, .responses, model: "gpt-4o", CostEstimator(mode: .estimate))
        #expect(e.requestedOutputTokens == 1_000)
        #expect(!e.cutStreamHasBound)
    }

    @Test("a provider-run tool is refused unless budget.server_tools allows it")
    func serverToolRefused() throws {
        let body = #"{"model":"gpt-4o","input":"hi","max_output_tokens":10,"tools":[{"type":"function","name":"f"},{"type":"web_search_preview"}]}"#
        let error = #expect(throws: UnboundedCost.self) { try Self.estimate(body, .responses, model: "gpt-4o") }
        #expect(error?.field == "tools[1]")
        #expect(error?.setting == "budget.server_tools")
        #expect(error?.message.contains("web_search_preview") == true)
    }

    @Test("an allowed OpenAI tool reserves a context window per call plus one, and its fee per call")
    func serverToolAllowedOpenAI() throws {
        let body = #"{"model":"gpt-4o","input":"hi","max_output_tokens":10,"tools":[{"type":"web_search_preview"}]}"#
        let e = try Self.estimate(body, .responses, model: "gpt-4o", CostEstimator(mode: .strict, serverTools: .allow))
        #expect(e.inputTokenBound == 768_000) // 128,000 × (5 calls + 1)
        // 768,000 × 2,500 nano-USD = 1,920,000,000; 5 calls × $0.025 = 125,000,000.
        #expect(e.fixedCost == NanoUSD(2_045_000_000))
        #expect(!e.cutStreamHasBound)
    }

    @Test("Anthropic max_uses and the configured call cap bound the calls")
    func serverToolMaxUses() throws {
        let body = #"{"model":"claude-haiku-4-5","max_tokens":10,"messages":[{"role":"user","content":"hi"}],"tools":[{"type":"web_search_20250305","name":"web_search","max_uses":2}]}"#
        let e = try Self.estimate(body, .messages, model: "claude-haiku-4-5", CostEstimator(mode: .strict, serverTools: .allow))
        #expect(e.inputTokenBound == 600_000) // 200,000 × (2 + 1)
        #expect(e.fixedCost == NanoUSD(620_000_000)) // 600,000 × 1,000 + 2 × $0.01
        let capped = try Self.estimate(body, .messages, model: "claude-haiku-4-5", CostEstimator(mode: .strict, serverTools: .allow, serverToolMaxCalls: 1))
        #expect(capped.inputTokenBound == 400_000)
        #expect(capped.fixedCost == NanoUSD(410_000_000))
    }

    @Test("Responses max_tool_calls caps the calls across tools")
    func maxToolCalls() throws {
        let body = #"{"model":"gpt-4o","input":"hi","max_output_tokens":10,"max_tool_calls":1,"tools":[{"type":"web_search"},{"type":"file_search","vector_store_ids":["v"]}]}"#
        let e = try Self.estimate(body, .responses, model: "gpt-4o", CostEstimator(mode: .strict, serverTools: .allow))
        #expect(e.inputTokenBound == 256_000) // 128,000 × (1 + 1)
        #expect(e.fixedCost == NanoUSD(665_000_000)) // 256,000 × 2,500 + 1 × $0.025 (the file search gets no call)
    }

    @Test("a tool the fee table does not list is refused even when server tools are allowed")
    func unpricedTool() throws {
        let body = #"{"model":"gpt-4o","input":"hi","tools":[{"type":"hologram_2031"}]}"#
        let error = #expect(throws: UnboundedCost.self) {
            try Self.estimate(body, .responses, model: "gpt-4o", CostEstimator(mode: .strict, serverTools: .allow))
        }
        #expect(error?.field == "tools[0]")
        #expect(error?.setting == "pricing_file")
    }

    @Test("a long reread context is priced at the long-context rates")
    func longContextServerTool() throws {
        let body = #"{"model":"claude-sonnet-4-5","max_tokens":10,"messages":[{"role":"user","content":"hi"}],"tools":[{"type":"web_search_20250305","name":"web_search","max_uses":1}]}"#
        let e = try Self.estimate(body, .messages, model: "claude-sonnet-4-5", CostEstimator(mode: .strict, serverTools: .allow))
        #expect(e.inputTokenBound == 2_000_000) // 1,000,000 × (1 + 1)
        #expect(e.fixedCost == NanoUSD(12_010_000_000)) // 2,000,000 × 6,000 + $0.01
        #expect(e.perOutputToken == NanoUSD(22_500))
    }

    @Test("background is refused unless budget.background allows it")
    func background() throws {
        let body = #"{"model":"gpt-4o","input":"hi","background":true,"max_output_tokens":10}"#
        let error = #expect(throws: UnboundedCost.self) { try Self.estimate(body, .responses, model: "gpt-4o") }
        #expect(error?.field == "background")
        #expect(error?.setting == "budget.background")
        let e = try Self.estimate(body, .responses, model: "gpt-4o", CostEstimator(mode: .strict, background: .allow))
        #expect(e.requestedOutputTokens == 10)
    }

    @Test("a tier the table does not price is refused in every mode", arguments: BudgetMode.allCases)
    func unpricedTier(mode: BudgetMode) throws {
        let body = Fixture.chat(["hi"], extra: #","service_tier":"turbo""#)
        let error = #expect(throws: UnboundedCost.self) { try Self.estimate(body, .chatCompletions, model: "gpt-4o-mini", CostEstimator(mode: mode)) }
        #expect(error?.field == "service_tier")
        #expect(error?.message.contains("turbo") == true)
    }

    @Test("the requested tier scales every rate; auto and default are the default tier", arguments: [
        ("flex", Int64(75), Int64(300)), ("priority", 300, 1_200), ("auto", 150, 600), ("default", 150, 600),
    ])
    func tier(tier: String, perInput: Int64, perOutput: Int64) throws {
        let body = Fixture.chat(["hi"], extra: #","service_tier":"\#(tier)","max_tokens":10"#)
        let e = try Self.estimate(body, .chatCompletions, model: "gpt-4o-mini")
        #expect(e.fixedCost == NanoUSD(perInput * e.inputTokenBound))
        #expect(e.perOutputToken == NanoUSD(perOutput))
    }

    @Test("cache writes are priced only when asked for, the 1-hour rate only for ttl 1h", arguments: [
        ("", Int64(3_000)),
        (#","cache_control":{"type":"ephemeral"}"#, 3_750),
        (#","cache_control":{"type":"ephemeral","ttl":"1h"}"#, 6_000),
    ])
    func cacheRates(cache: String, perInput: Int64) throws {
        let body = #"{"model":"claude-sonnet-4-5","max_tokens":10,"messages":[{"role":"user","content":[{"type":"text","text":"hi"\#(cache)}]}]}"#
        let e = try Self.estimate(body, .messages, model: "claude-sonnet-4-5")
        #expect(e.fixedCost == NanoUSD(perInput * e.inputTokenBound))
    }

    @Test("the minimum reply is above the thinking budget, so a clamp never reaches it")
    func thinkingMinimum() throws {
        let body = #"{"model":"claude-sonnet-4-5","max_tokens":4000,"thinking":{"type":"enabled","budget_tokens":2000},"messages":[]}"#
        let e = try Self.estimate(body, .messages, model: "claude-sonnet-4-5")
        #expect(e.minimumOutputTokens == 2_001)
        #expect(e.requestedOutputTokens == 4_000)
        #expect(!e.cutStreamHasBound) // thinking is hidden reasoning
        let invalid = body.replacingOccurrences(of: "4000", with: "1500")
        #expect(try Self.estimate(invalid, .messages, model: "claude-sonnet-4-5").minimumOutputTokens == 1_500)
    }

    @Test("a model with hidden reasoning has no cut-stream bound; one without has", arguments: [
        ("o3", false), ("gpt-5-mini", false), ("gpt-4o", true), ("gpt-4.1-nano", true),
    ])
    func cutBoundFlag(model: String, hasBound: Bool) throws {
        #expect(try Self.estimate(Fixture.chat(["hi"]), .chatCompletions, model: model).cutStreamHasBound == hasBound)
    }

    @Test("images are bounded by the model's rule: gpt-4o-mini high is 48,169 tokens, not 2,000", arguments: [
        ("gpt-4o-mini", "high", Int64(48_169)), ("gpt-4o-mini", "low", 2_833), ("gpt-4o-mini", "auto", 48_169),
        ("gpt-4o", "high", 1_445), ("gpt-4o", "low", 85), ("gpt-5", "high", 1_190), ("o3", "high", 1_275),
        ("gpt-4.1-mini", "low", 2_489), ("gpt-4.1-nano", "high", 3_779), ("o4-mini", "high", 2_642),
    ])
    func imageRule(model: String, detail: String, tokens: Int64) throws {
        let request = try Fixture.scan(#"{"model":"\#(model)","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"u","detail":"\#(detail)"}}]}]}"#)
        #expect(request.inputTokenBound(for: try Fixture.price(model)) - request.contentTokenBound == tokens)
    }

    @Test("Anthropic's tool-use system prompt is added when tools are present")
    func toolOverhead() throws {
        let price = try Fixture.price("claude-sonnet-4-5")
        let with = try Fixture.scan(#"{"model":"claude-sonnet-4-5","max_tokens":9,"messages":[],"tools":[{"name":"f","input_schema":{}}]}"#, .messages)
        #expect(with.inputTokenBound(for: price) - with.contentTokenBound == 346)
        let without = try Fixture.scan(#"{"model":"claude-sonnet-4-5","max_tokens":9,"messages":[]}"#, .messages)
        #expect(without.inputTokenBound(for: price) == without.contentTokenBound)
    }

    @Test("a chat prompt never bounds above the context window; embeddings arrays are not capped")
    func contextWindowCap() throws {
        let long = String(repeating: "a", count: 20_000)
        let chat = try Fixture.scan(#"{"model":"gpt-3.5-turbo","messages":[{"role":"user","content":"\#(long)"}]}"#)
        #expect(chat.inputTokenBound(for: try Fixture.price("gpt-3.5-turbo")) == 16_385)
        let inputs = Array(repeating: #""\#(String(repeating: "b", count: 5_000))""#, count: 3).joined(separator: ",")
        let embeddings = try Fixture.scan(#"{"model":"text-embedding-3-small","input":[\#(inputs)]}"#, .embeddings)
        #expect(embeddings.inputTokenBound(for: try Fixture.price("text-embedding-3-small")) == embeddings.contentTokenBound)
        #expect(embeddings.contentTokenBound >= 15_000)
    }
}
