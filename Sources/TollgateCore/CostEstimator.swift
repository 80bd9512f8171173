/// How reservations are sized.
public enum BudgetMode: String, Sendable, CaseIterable {
    /// Reserve the worst case and clamp the reply cap to what the budget affords: never overshoots.
    case strict
    /// Reserve a typical reply; a request may spend more than it reserved (bound in the README).
    case estimate
}

/// The worst-case cost of a request, in the shape the reserve script decides on:
/// `fixedCost + perOutputToken × outputTokens`, where the script may lower `outputTokens`
/// down to `minimumOutputTokens` to fit the remaining budget.
public struct CostEstimate: Sendable, Equatable {
    public var inputTokenBound: Int64
    public var fixedCost: NanoUSD
    public var perOutputToken: NanoUSD
    public var requestedOutputTokens: Int64
    public var minimumOutputTokens: Int64

    public init(inputTokenBound: Int64, fixedCost: NanoUSD, perOutputToken: NanoUSD, requestedOutputTokens: Int64, minimumOutputTokens: Int64) {
        self.inputTokenBound = inputTokenBound
        self.fixedCost = fixedCost
        self.perOutputToken = perOutputToken
        self.requestedOutputTokens = requestedOutputTokens
        self.minimumOutputTokens = minimumOutputTokens
    }

    public var worstCase: NanoUSD { NanoUSD(fixedCost.value + perOutputToken.value * requestedOutputTokens) }
    public func cost(outputTokens: Int64) -> NanoUSD { NanoUSD(fixedCost.value + perOutputToken.value * outputTokens) }
}

public struct CostEstimator: Sendable {
    public var mode: BudgetMode
    /// Below this many reply tokens a clamped request is refused instead (strict mode).
    public var minimumReplyTokens: Int64
    /// What `estimate` mode reserves for a reply when the cap allows more.
    public var typicalReplyTokens: Int64

    public init(mode: BudgetMode, minimumReplyTokens: Int64 = 16, typicalReplyTokens: Int64 = 1_000) {
        self.mode = mode
        self.minimumReplyTokens = minimumReplyTokens
        self.typicalReplyTokens = typicalReplyTokens
    }

    public func estimate(_ request: ScannedRequest, route: ProxyRoute, price: ModelPrice) -> CostEstimate {
        let input = request.inputTokenBound
        let fixed = price.worstInput.cost(ofTokens: input)
        guard route.hasOutput else {
            return CostEstimate(inputTokenBound: input, fixedCost: fixed, perOutputToken: .zero, requestedOutputTokens: 0, minimumOutputTokens: 0)
        }
        // Reasoning tokens count against the same cap, so price every output token at the dearer rate.
        let perToken = NanoUSD(max(price.output, price.reasoning).perTokenCeiling.value * request.choices)
        let cap = request.outputLimit?.tokens ?? route.providerDefaultOutputTokens ?? price.maxOutputTokens
        switch mode {
        case .strict:
            return CostEstimate(inputTokenBound: input, fixedCost: fixed, perOutputToken: perToken,
                                requestedOutputTokens: cap, minimumOutputTokens: min(cap, minimumReplyTokens))
        case .estimate:
            let typical = min(cap, typicalReplyTokens)
            return CostEstimate(inputTokenBound: input, fixedCost: fixed, perOutputToken: perToken,
                                requestedOutputTokens: typical, minimumOutputTokens: typical)
        }
    }
}
