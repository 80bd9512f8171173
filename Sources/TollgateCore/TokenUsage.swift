/// Tokens a provider reported, normalised so each field is billed at exactly one price:
/// `input` excludes cache hits and writes, `output` excludes reasoning.
public struct TokenUsage: Hashable, Sendable {
    public var input: Int64 = 0
    public var cachedInput: Int64 = 0
    /// Cache writes at the 5-minute rate (Anthropic).
    public var cacheWrite: Int64 = 0
    /// Cache writes at the 1-hour rate (Anthropic `cache_creation.ephemeral_1h_input_tokens`).
    public var cacheWrite1h: Int64 = 0
    public var output: Int64 = 0
    public var reasoning: Int64 = 0
    /// The tier the provider served the request on (nil: not reported, the default tier).
    public var serviceTier: String?
    /// Calls of provider-run tools, by the name their fee is listed under (`ServerTool.billedAs`).
    public var serverToolCalls: [String: Int64] = [:]

    public init(input: Int64 = 0, cachedInput: Int64 = 0, cacheWrite: Int64 = 0, cacheWrite1h: Int64 = 0,
                output: Int64 = 0, reasoning: Int64 = 0, serviceTier: String? = nil, serverToolCalls: [String: Int64] = [:]) {
        self.input = input
        self.cachedInput = cachedInput
        self.cacheWrite = cacheWrite
        self.cacheWrite1h = cacheWrite1h
        self.output = output
        self.reasoning = reasoning
        self.serviceTier = serviceTier
        self.serverToolCalls = serverToolCalls
    }

    public var inputTotal: Int64 { input + cachedInput + cacheWrite + cacheWrite1h }
    public var outputTotal: Int64 { output + reasoning }

    /// OpenAI chat / completions / embeddings `usage`: prompt_tokens includes cached tokens and
    /// completion_tokens includes reasoning tokens. `serviceTier`: the response's top-level field.
    public static func openAI(_ usage: JSONValue, serviceTier: String? = nil) -> TokenUsage? {
        openAI(serviceTier: serviceTier) { key, inner in (inner.map { usage[key]?[$0] } ?? usage[key])?.tokenCount }
    }

    /// The same, read in place from a validated answer (`JSONView`), without a tree: every
    /// non-streamed OpenAI answer is priced here.
    static func openAI(_ view: JSONView, usageAt usage: Int, serviceTier: String?) -> TokenUsage? {
        openAI(serviceTier: serviceTier) { key, inner in
            let value = view.member(key, of: usage)
            return view.int(inner.map { view.member($0, of: value) } ?? value).map(clampedTokenCount)
        }
    }

    /// `count(key, inner)`: the token count at `usage.key` (or `usage.key.inner`), nil when absent.
    private static func openAI(serviceTier: String?, count: (_ key: String, _ inner: String?) -> Int64?) -> TokenUsage? {
        guard let prompt = count("prompt_tokens", nil) else { return nil }
        let cached = count("prompt_tokens_details", "cached_tokens") ?? 0
        let completion = count("completion_tokens", nil) ?? 0
        let reasoning = count("completion_tokens_details", "reasoning_tokens") ?? 0
        return TokenUsage(input: prompt - cached, cachedInput: cached, output: completion - reasoning, reasoning: reasoning,
                          serviceTier: serviceTier)
    }

    /// OpenAI Responses API: `response` is the whole response object (usage, service_tier and the
    /// output items, which are where provider-run tool calls show). input_tokens includes cached,
    /// output_tokens includes reasoning.
    public static func openAIResponses(_ response: JSONValue) -> TokenUsage? {
        guard let usage = response["usage"], let input = usage["input_tokens"]?.tokenCount else { return nil }
        let cached = usage["input_tokens_details"]?["cached_tokens"]?.tokenCount ?? 0
        let output = usage["output_tokens"]?.tokenCount ?? 0
        let reasoning = usage["output_tokens_details"]?["reasoning_tokens"]?.tokenCount ?? 0
        var calls: [String: Int64] = [:]
        if case .array(let items)? = response["output"] {
            for item in items {
                if let type = item["type"]?.string, ServerTool.openAIBilledCalls.contains(type) { calls[type, default: 0] += 1 }
            }
        }
        return TokenUsage(input: input - cached, cachedInput: cached, output: output - reasoning, reasoning: reasoning,
                          serviceTier: response["service_tier"]?.string, serverToolCalls: calls)
    }

    /// Anthropic `usage`: the three input counts are disjoint. `cache_creation_input_tokens` is
    /// the 5-minute plus the 1-hour writes; `cache_creation.ephemeral_1h_input_tokens` says how
    /// many were 1-hour. `server_tool_use` counts provider-run tool calls (`web_search_requests`).
    public static func anthropic(_ usage: JSONValue) -> TokenUsage? {
        let input = usage["input_tokens"]?.tokenCount
        let output = usage["output_tokens"]?.tokenCount
        guard input != nil || output != nil else { return nil }
        let writes = usage["cache_creation_input_tokens"]?.tokenCount ?? 0
        let writes1h = min(writes, usage["cache_creation"]?["ephemeral_1h_input_tokens"]?.tokenCount ?? 0)
        var calls: [String: Int64] = [:]
        if case .object(let members)? = usage["server_tool_use"] {
            for (key, value) in members {
                guard let n = value.tokenCount else { continue }
                calls[key.hasSuffix("_requests") ? String(key.dropLast("_requests".count)) : key] = n
            }
        }
        return TokenUsage(
            input: input ?? 0, cachedInput: usage["cache_read_input_tokens"]?.tokenCount ?? 0,
            cacheWrite: writes - writes1h, cacheWrite1h: writes1h, output: output ?? 0,
            serviceTier: usage["service_tier"]?.string, serverToolCalls: calls)
    }
}

extension JSONValue {
    /// A token count as a provider reported it, held to 0...2^40: a negative count bills
    /// nothing, and one past any real reply stays at a bound that still charges the most. The
    /// upstream's numbers are not trusted: unclamped, `prompt_tokens` = Int64.min with one
    /// cached token overflowed `prompt - cached` and crashed the replica (found by the
    /// `sse-stream` fuzz target's harness; FuzzRegressionTests).
    var tokenCount: Int64? { int.map(clampedTokenCount) }
}

/// A reported token count held to 0...2^40 (`JSONValue.tokenCount` says why).
func clampedTokenCount(_ n: Int64) -> Int64 { Swift.min(Swift.max(n, 0), 1 << 40) }
