/// Prices of one model, per million tokens, with everything else its bill depends on.
public struct ModelPrice: Hashable, Sendable {
    public var input: PricePerMillion
    /// Cache hits (OpenAI cached_tokens, Anthropic cache_read_input_tokens).
    public var cachedInput: PricePerMillion
    /// Anthropic cache writes with the default 5-minute TTL.
    public var cacheWrite: PricePerMillion
    /// Anthropic cache writes with `ttl: "1h"` (list price: twice the input price).
    public var cacheWrite1h: PricePerMillion
    public var output: PricePerMillion
    /// Reasoning tokens are billed as output unless the table says otherwise.
    public var reasoning: PricePerMillion
    public var maxOutputTokens: Int64
    /// The most input tokens the model accepts; the provider rejects (and does not bill) longer
    /// prompts, so it bounds input the body does not carry. nil: unknown.
    public var contextWindow: Int64?
    /// Worst-case tokens of one image after the provider's resize; nil: `ImageTokens.unknownModel`.
    public var imageTokens: ImageTokens?
    /// Tokens the provider adds to the prompt when a request has tools (Anthropic's tool-use
    /// system prompt); the body does not carry them.
    public var toolUseOverheadTokens: Int64
    /// Rates above a prompt size (Anthropic's long-context premium): they apply to the whole request.
    public var longContext: LongContextPrice?
    /// Multipliers per `service_tier`, the table's `service_tiers:` overlaid with the model's
    /// `tiers:`. Empty: only the default tier, at 1.
    public var serviceTiers: [String: TierMultiplier]
    /// Per-call fees of provider-run tools, by the name the provider bills them under (`ServerTool.billedAs`).
    public var toolFees: [String: NanoUSD]
    /// The model may bill reasoning tokens a stream does not show (OpenAI o-series, gpt-5).
    public var hiddenReasoning: Bool

    public init(input: PricePerMillion, cachedInput: PricePerMillion? = nil, cacheWrite: PricePerMillion? = nil,
                cacheWrite1h: PricePerMillion? = nil, output: PricePerMillion, reasoning: PricePerMillion? = nil,
                maxOutputTokens: Int64, contextWindow: Int64? = nil, imageTokens: ImageTokens? = nil,
                toolUseOverheadTokens: Int64 = 0, longContext: LongContextPrice? = nil,
                serviceTiers: [String: TierMultiplier] = [:], toolFees: [String: NanoUSD] = [:],
                hiddenReasoning: Bool = false) {
        self.input = input
        self.cachedInput = cachedInput ?? input
        self.cacheWrite = cacheWrite ?? input
        self.cacheWrite1h = cacheWrite1h ?? PricePerMillion(nanoUSD: input.nanoUSD * 2)
        self.output = output
        self.reasoning = reasoning ?? output
        self.maxOutputTokens = maxOutputTokens
        self.contextWindow = contextWindow
        self.imageTokens = imageTokens
        self.toolUseOverheadTokens = toolUseOverheadTokens
        self.longContext = longContext
        self.serviceTiers = serviceTiers
        self.toolFees = toolFees
        self.hiddenReasoning = hiddenReasoning
    }

    /// The token rates of a request whose input total is `inputTokens`.
    public func rates(forInputTokens inputTokens: Int64) -> TokenRates {
        if let long = longContext, inputTokens > long.aboveInputTokens { return long.rates }
        return TokenRates(input: input, cachedInput: cachedInput, cacheWrite: cacheWrite, cacheWrite1h: cacheWrite1h,
                          output: output, reasoning: reasoning)
    }

    /// The multiplier of a tier named in a request or a response: absent, `auto` and `default`
    /// mean the default tier. nil: the table does not price that tier.
    public func tierMultiplier(_ tier: String?) -> TierMultiplier? {
        guard let tier, !["auto", "default"].contains(tier) else { return serviceTiers["default"] ?? .one }
        return serviceTiers[tier]
    }

    /// The dearest tier in the table, never below the default.
    public var dearestTier: TierMultiplier { serviceTiers.values.reduce(TierMultiplier.one, max) }

    /// The fee of one call of a provider-run tool, by its billing name; nil: unpriced.
    public func toolFee(_ billedAs: String) -> NanoUSD? { toolFees[billedAs] }

    /// The real cost of what the provider reported, rounded up once at the end.
    public func cost(of usage: TokenUsage) -> NanoUSD {
        let r = rates(forInputTokens: usage.inputTotal)
        let terms: [(Int64, PricePerMillion)] = [
            (usage.input, r.input), (usage.cachedInput, r.cachedInput), (usage.cacheWrite, r.cacheWrite),
            (usage.cacheWrite1h, r.cacheWrite1h), (usage.output, r.output), (usage.reasoning, r.reasoning),
        ]
        let nanoTimesMillion = terms.reduce(Int128(0)) { $0 + Int128(max(0, $1.0)) * Int128($1.1.nanoUSD) }
        // A tier the table does not know was still billed: price it at the dearest tier we know.
        let tier = tierMultiplier(usage.serviceTier) ?? dearestTier
        let scaled = nanoTimesMillion * Int128(tier.millionths)
        // A call the table has no fee for is billed in tokens only (reported in usage above).
        let fees = usage.serverToolCalls.reduce(Int128(0)) { $0 + Int128(max(0, $1.value)) * Int128(toolFees[$1.key]?.value ?? 0) }
        return NanoUSD(PricePerMillion.ceilDiv(scaled + fees * 1_000_000_000_000, 1_000_000_000_000))
    }

    /// The dearest way an input token can be billed (a cache write costs more than plain input).
    public var worstInput: PricePerMillion { max(input, cachedInput, cacheWrite) }
}

/// The per-token prices that apply to one request.
public struct TokenRates: Hashable, Sendable {
    public var input, cachedInput, cacheWrite, cacheWrite1h, output, reasoning: PricePerMillion

    public init(input: PricePerMillion, cachedInput: PricePerMillion, cacheWrite: PricePerMillion,
                cacheWrite1h: PricePerMillion, output: PricePerMillion, reasoning: PricePerMillion) {
        self.input = input
        self.cachedInput = cachedInput
        self.cacheWrite = cacheWrite
        self.cacheWrite1h = cacheWrite1h
        self.output = output
        self.reasoning = reasoning
    }

    /// The dearest rate an input token of this request can incur: cache writes only cost more
    /// when the request asks for caching.
    public func worstInput(cacheControl: CacheControlUse) -> PricePerMillion {
        switch cacheControl {
        case .none: return max(input, cachedInput)
        case .fiveMinutes: return max(input, cachedInput, cacheWrite)
        case .oneHour: return max(input, cachedInput, cacheWrite, cacheWrite1h)
        }
    }

    /// Reasoning tokens count against the same cap as output, so an output token costs the dearer.
    public var worstOutput: PricePerMillion { max(output, reasoning) }
}

/// Anthropic bills every token of a request whose input exceeds a threshold at higher rates
/// (claude-sonnet-4 / 4.5 with the 1M-token context).
public struct LongContextPrice: Hashable, Sendable {
    public var aboveInputTokens: Int64
    public var rates: TokenRates

    public init(aboveInputTokens: Int64, rates: TokenRates) {
        self.aboveInputTokens = aboveInputTokens
        self.rates = rates
    }
}

/// Worst-case tokens of one image, by requested detail.
public struct ImageTokens: Hashable, Sendable {
    /// `detail: high` or `auto` (the provider may choose high), or no detail at all.
    public var high: Int64
    public var low: Int64

    public init(high: Int64, low: Int64) {
        self.high = high
        self.low = low
    }

    /// A model the table gives no image rule is assumed as dear per image as the dearest known
    /// (gpt-4o-mini, high detail: 2,833 + 5,667 × 8 tiles).
    public static let unknownModel = ImageTokens(high: 48_169, low: 48_169)

    public func tokens(_ detail: ImageDetail) -> Int64 { detail == .low ? low : high }
}

/// A price multiplier for a service tier, exact to a millionth (decimal text, never `Double`).
public struct TierMultiplier: Hashable, Comparable, Sendable {
    public var millionths: Int64

    public init(millionths: Int64) { self.millionths = millionths }
    public init?(decimal text: String) {
        guard let v = NanoUSD.parseDecimal(text, scale: 6), v >= 0 else { return nil }
        millionths = v
    }

    public static let one = TierMultiplier(millionths: 1_000_000)
    public static let defaultTiers = ["default": one]
    public static func < (a: TierMultiplier, b: TierMultiplier) -> Bool { a.millionths < b.millionths }

    /// A per-million price times this multiplier, rounded up to the next nano-USD.
    public func scale(_ price: PricePerMillion) -> PricePerMillion {
        PricePerMillion(nanoUSD: PricePerMillion.ceilDiv(Int128(price.nanoUSD) * Int128(millionths), 1_000_000))
    }
}

extension PricePerMillion: Comparable {
    public static func < (a: PricePerMillion, b: PricePerMillion) -> Bool { a.nanoUSD < b.nanoUSD }
}
