/// Tokens a provider reported, normalised so each field is billed at exactly one price:
/// `input` excludes cache hits and writes, `output` excludes reasoning.
public struct TokenUsage: Hashable, Sendable {
    public var input: Int64 = 0
    public var cachedInput: Int64 = 0
    public var cacheWrite: Int64 = 0
    public var output: Int64 = 0
    public var reasoning: Int64 = 0

    public init(input: Int64 = 0, cachedInput: Int64 = 0, cacheWrite: Int64 = 0, output: Int64 = 0, reasoning: Int64 = 0) {
        self.input = input
        self.cachedInput = cachedInput
        self.cacheWrite = cacheWrite
        self.output = output
        self.reasoning = reasoning
    }

    public var inputTotal: Int64 { input + cachedInput + cacheWrite }
    public var outputTotal: Int64 { output + reasoning }

    /// OpenAI chat / completions / embeddings `usage`: prompt_tokens includes cached tokens and
    /// completion_tokens includes reasoning tokens.
    public static func openAI(_ usage: JSONValue) -> TokenUsage? {
        guard let prompt = usage["prompt_tokens"]?.int else { return nil }
        let cached = usage["prompt_tokens_details"]?["cached_tokens"]?.int ?? 0
        let completion = usage["completion_tokens"]?.int ?? 0
        let reasoning = usage["completion_tokens_details"]?["reasoning_tokens"]?.int ?? 0
        return TokenUsage(input: prompt - cached, cachedInput: cached, output: completion - reasoning, reasoning: reasoning)
    }

    /// OpenAI Responses API `usage`: input_tokens includes cached, output_tokens includes reasoning.
    public static func openAIResponses(_ usage: JSONValue) -> TokenUsage? {
        guard let input = usage["input_tokens"]?.int else { return nil }
        let cached = usage["input_tokens_details"]?["cached_tokens"]?.int ?? 0
        let output = usage["output_tokens"]?.int ?? 0
        let reasoning = usage["output_tokens_details"]?["reasoning_tokens"]?.int ?? 0
        return TokenUsage(input: input - cached, cachedInput: cached, output: output - reasoning, reasoning: reasoning)
    }

    /// Anthropic `usage`: the three input counts are disjoint.
    public static func anthropic(_ usage: JSONValue) -> TokenUsage? {
        let input = usage["input_tokens"]?.int
        let output = usage["output_tokens"]?.int
        guard input != nil || output != nil else { return nil }
        return TokenUsage(
            input: input ?? 0, cachedInput: usage["cache_read_input_tokens"]?.int ?? 0,
            cacheWrite: usage["cache_creation_input_tokens"]?.int ?? 0, output: output ?? 0)
    }
}
