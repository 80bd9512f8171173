import Testing
@testable import TollgateCore

@Suite("CostEstimator: sizing a reservation")
struct CostEstimatorTests {
    static func estimate(_ mode: BudgetMode, _ body: String, _ route: ProxyRoute = .chatCompletions,
                         model: String = "gpt-4o-mini") throws -> (CostEstimate, ScannedRequest, ModelPrice) {
        let request = try Fixture.scan(body, route)
        let price = try Fixture.price(model)
        return (try CostEstimator(mode: mode).estimate(request, route: route, price: price), request, price)
    }

    @Test("strict: an explicit cap is reserved in full, the minimum is 16 tokens")
    func strictExplicitCap() throws {
        let (e, r, _) = try Self.estimate(.strict, Fixture.chat(["hi"], extra: #","max_tokens":100"#))
        #expect(e.requestedOutputTokens == 100)
        #expect(e.minimumOutputTokens == 16)
        #expect(e.inputTokenBound == e.inputTokenBound)
        // gpt-4o-mini: $0.15 input → 150 nano-USD a token; $0.60 output → 600.
        #expect(e.fixedCost == NanoUSD(150 * e.inputTokenBound))
        #expect(e.perOutputToken == NanoUSD(600))
        #expect(e.worstCase == NanoUSD(150 * e.inputTokenBound + 600 * 100))
        #expect(e.cost(outputTokens: 16) == NanoUSD(150 * e.inputTokenBound + 600 * 16))
    }

    @Test("strict: a cap below the minimum reply is also the minimum", arguments: [Int64(0), 1, 15, 16, 17])
    func strictSmallCap(cap: Int64) throws {
        let (e, _, _) = try Self.estimate(.strict, Fixture.chat(["hi"], extra: #","max_completion_tokens":\#(cap)"#))
        #expect(e.requestedOutputTokens == cap)
        #expect(e.minimumOutputTokens == min(cap, 16))
    }

    @Test("strict: without a cap, chat reserves the model's largest reply")
    func strictModelMax() throws {
        let (e, _, price) = try Self.estimate(.strict, Fixture.chat(["hi"]))
        #expect(e.requestedOutputTokens == price.maxOutputTokens)
        #expect(e.requestedOutputTokens == 16_384)
        #expect(e.minimumOutputTokens == 16)
    }

    @Test("strict: without a cap, legacy completions reserve the provider default of 16")
    func strictCompletionsDefault() throws {
        let (e, _, _) = try Self.estimate(.strict, #"{"model":"gpt-3.5-turbo-instruct","prompt":"Say hi"}"#, .completions, model: "gpt-3.5-turbo-instruct")
        #expect(e.requestedOutputTokens == 16)
        #expect(e.minimumOutputTokens == 16)
    }

    @Test("estimate: reserves a typical reply, capped by the request's own cap", arguments: [
        (#""#, Int64(1_000)), (#","max_tokens":300"#, 300), (#","max_tokens":5000"#, 1_000), (#","max_tokens":0"#, 0),
    ])
    func estimateMode(extra: String, expected: Int64) throws {
        let (e, _, _) = try Self.estimate(.estimate, Fixture.chat(["hi"], extra: extra))
        #expect(e.requestedOutputTokens == expected)
        #expect(e.minimumOutputTokens == expected)
    }

    @Test("the minimum and typical reply sizes are configurable")
    func configurable() throws {
        let request = try Fixture.scan(Fixture.chat(["hi"]))
        let price = try Fixture.price("gpt-4o-mini")
        let strict = try CostEstimator(mode: .strict, minimumReplyTokens: 64, typicalReplyTokens: 10).estimate(request, route: .chatCompletions, price: price)
        #expect(strict.minimumOutputTokens == 64)
        #expect(strict.requestedOutputTokens == 16_384)
        let estimate = try CostEstimator(mode: .estimate, minimumReplyTokens: 64, typicalReplyTokens: 10).estimate(request, route: .chatCompletions, price: price)
        #expect(estimate.requestedOutputTokens == 10)
    }

    @Test("embeddings have no output: the whole estimate is the input", arguments: BudgetMode.allCases)
    func embeddings(mode: BudgetMode) throws {
        let (e, r, _) = try Self.estimate(mode, #"{"model":"text-embedding-3-small","input":["a","b"]}"#, .embeddings, model: "text-embedding-3-small")
        #expect(e.perOutputToken == .zero)
        #expect(e.requestedOutputTokens == 0)
        #expect(e.minimumOutputTokens == 0)
        #expect(e.fixedCost == NanoUSD(20 * e.inputTokenBound)) // $0.02 per million
        #expect(e.worstCase == e.fixedCost)
    }

    @Test("n choices multiply the per-token output cost, not the input", arguments: [Int64(1), 2, 3, 128])
    func choices(n: Int64) throws {
        let (e, r, _) = try Self.estimate(.strict, Fixture.chat(["hi"], extra: #","n":\#(n),"max_tokens":50"#))
        #expect(e.perOutputToken == NanoUSD(600 * n))
        #expect(e.fixedCost == NanoUSD(150 * e.inputTokenBound))
        #expect(e.worstCase == NanoUSD(150 * e.inputTokenBound + 600 * n * 50))
    }

    @Test("Anthropic input without cache_control is priced at the input rate: it cannot write the cache")
    func anthropicWorstInput() throws {
        let (e, _, _) = try Self.estimate(.strict, #"{"model":"claude-sonnet-4-5","max_tokens":1024,"messages":[{"role":"user","content":"hi"}]}"#,
                                           .messages, model: "claude-sonnet-4-5")
        #expect(e.fixedCost == NanoUSD(3_000 * e.inputTokenBound)) // $3.00, not the $3.75 cache-write rate
        #expect(e.perOutputToken == NanoUSD(15_000))
        #expect(e.requestedOutputTokens == 1_024)
    }

    @Test("a reasoning price above the output price sets the per-token cost")
    func dearReasoning() throws {
        let price = ModelPrice(input: PricePerMillion(nanoUSD: 1_000_000_000), output: PricePerMillion(nanoUSD: 2_000_000_000),
                               reasoning: PricePerMillion(nanoUSD: 5_000_000_001), maxOutputTokens: 100)
        let request = try Fixture.scan(Fixture.chat(["hi"]))
        let e = try CostEstimator(mode: .strict).estimate(request, route: .chatCompletions, price: price)
        #expect(e.perOutputToken == NanoUSD(5_001)) // 5000.000001 rounded up
        #expect(e.requestedOutputTokens == 100)
    }

    @Test("the worst case covers the real bill of any reply the reservation allows")
    func worstCaseCoversBill() throws {
        let (e, r, price) = try Self.estimate(.strict, Fixture.chat(["hello there"], extra: #","max_tokens":200"#), model: "gpt-4o")
        for output: Int64 in [0, 1, 199, 200] {
            let bill = price.cost(of: TokenUsage(input: e.inputTokenBound, output: output))
            #expect(bill <= e.cost(outputTokens: output))
        }
    }

    @Test("an absurd max_tokens is refused before any arithmetic can overflow", arguments: ["9223372036854775807", "10000001"])
    func hugeCapIsRefused(cap: String) {
        let body = #"{"model":"gpt-4o-mini","max_tokens":"# + cap + #","messages":[]}"#
        #expect(throws: RequestProblem.invalidField("max_tokens", "must be an integer from 0 to 10000000")) {
            _ = try ScannedRequest(body: Array(body.utf8), route: .chatCompletions)
        }
    }

    // Beyond 2^53 the script's comparison is still right (any such cost exceeds every limit),
    // and the clamped amount it then computes is below the limit, so exact.
    @Test("the largest accepted cap and n do not overflow Int64")
    func largestCapFits() throws {
        let (e, _, _) = try Self.estimate(.strict, Fixture.chat(["hi"], extra: #","max_tokens":10000000,"n":128"#), model: "o1")
        #expect(e.worstCase.value == e.fixedCost.value + 60_000 * 128 * 10_000_000)
    }
}
