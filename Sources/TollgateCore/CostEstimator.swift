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
    /// The tier the request asked for; a cut stream's bound is priced at it.
    public var serviceTier: String?
    /// False when a stream cut before its usage has no provable bound below the reservation:
    /// hidden reasoning, provider-run tools (each call re-reads the context), or input the body
    /// does not carry bounded only by a guess (estimate mode).
    public var cutStreamHasBound: Bool

    public init(inputTokenBound: Int64, fixedCost: NanoUSD, perOutputToken: NanoUSD, requestedOutputTokens: Int64,
                minimumOutputTokens: Int64, serviceTier: String? = nil, cutStreamHasBound: Bool = true) {
        self.inputTokenBound = inputTokenBound
        self.fixedCost = fixedCost
        self.perOutputToken = perOutputToken
        self.requestedOutputTokens = requestedOutputTokens
        self.minimumOutputTokens = minimumOutputTokens
        self.serviceTier = serviceTier
        self.cutStreamHasBound = cutStreamHasBound
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
    /// What strict mode does with requests it cannot bound from their body.
    public var unseenInput: UnseenInputPolicy
    public var serverTools: ServerToolPolicy
    public var serverToolMaxCalls: Int64
    public var background: BackgroundPolicy

    public init(mode: BudgetMode, minimumReplyTokens: Int64 = 16, typicalReplyTokens: Int64 = 1_000,
                unseenInput: UnseenInputPolicy = .refuse, serverTools: ServerToolPolicy = .refuse,
                serverToolMaxCalls: Int64 = 5, background: BackgroundPolicy = .refuse) {
        self.mode = mode
        self.minimumReplyTokens = minimumReplyTokens
        self.typicalReplyTokens = typicalReplyTokens
        self.unseenInput = unseenInput
        self.serverTools = serverTools
        self.serverToolMaxCalls = serverToolMaxCalls
        self.background = background
    }

    public init(budget: TollgateConfig.Budget) {
        self.init(mode: budget.mode, minimumReplyTokens: budget.minimumReplyTokens, typicalReplyTokens: budget.typicalReplyTokens,
                  unseenInput: budget.unseenInput, serverTools: budget.serverTools,
                  serverToolMaxCalls: budget.serverToolMaxCalls, background: budget.background)
    }

    /// - Throws: `UnboundedCost` when strict mode cannot bound the request (and the config does
    ///   not allow it), or when the request names a service tier the table does not price.
    public func estimate(_ request: ScannedRequest, route: ProxyRoute, price: ModelPrice) throws(UnboundedCost) -> CostEstimate {
        guard let tier = price.tierMultiplier(request.serviceTier) else {
            throw .unpricedTier(request.serviceTier ?? "", model: request.model, known: price.serviceTiers.keys.sorted())
        }
        var input = request.inputTokenBound(for: price)
        let fees: NanoUSD
        if mode == .strict {
            if request.background, background != .allow { throw .background }
            if let first = request.unseenInputs.first {
                guard unseenInput == .contextWindow else { throw .unseenInput(first) }
                guard let window = price.contextWindow else { throw .noContextWindow(field: first.field, model: request.model) }
                input = window
            }
            (input, fees) = try strictServerTools(request, price: price, input: input)
        } else {
            fees = serverToolFees(request, price: price).fees
        }
        let hiddenReasoning = price.hiddenReasoning || request.thinkingBudgetTokens != nil
        let cutStreamHasBound = !hiddenReasoning && request.serverTools.isEmpty && (mode == .strict || request.unseenInputs.isEmpty)

        // The dearest rates the request can incur: long-context ones when the bound passes the
        // threshold, cache writes only when it asks for caching, all scaled to its tier.
        let rates = price.rates(forInputTokens: input)
        let fixed = tier.scale(rates.worstInput(cacheControl: request.cacheControl)).cost(ofTokens: input) + fees
        guard route.hasOutput else {
            return CostEstimate(inputTokenBound: input, fixedCost: fixed, perOutputToken: .zero, requestedOutputTokens: 0,
                                minimumOutputTokens: 0, serviceTier: request.serviceTier, cutStreamHasBound: cutStreamHasBound)
        }
        let perToken = NanoUSD(tier.scale(rates.worstOutput).perTokenCeiling.value * request.choices)
        let cap = request.outputLimit?.tokens ?? route.providerDefaultOutputTokens ?? price.maxOutputTokens
        switch mode {
        case .strict:
            // Anthropic rejects max_tokens at or below the thinking budget: refuse rather than clamp there.
            let minimum = max(minimumReplyTokens, (request.thinkingBudgetTokens ?? -1) + 1)
            return CostEstimate(inputTokenBound: input, fixedCost: fixed, perOutputToken: perToken, requestedOutputTokens: cap,
                                minimumOutputTokens: min(cap, minimum), serviceTier: request.serviceTier, cutStreamHasBound: cutStreamHasBound)
        case .estimate:
            let typical = min(cap, typicalReplyTokens)
            return CostEstimate(inputTokenBound: input, fixedCost: fixed, perOutputToken: perToken, requestedOutputTokens: typical,
                                minimumOutputTokens: typical, serviceTier: request.serviceTier, cutStreamHasBound: cutStreamHasBound)
        }
    }

    /// Each call of a provider-run tool may re-read the whole context (at most the context
    /// window) and carries its fee; `calls + 1` reads in all.
    func strictServerTools(_ request: ScannedRequest, price: ModelPrice, input: Int64) throws(UnboundedCost) -> (Int64, NanoUSD) {
        guard let first = request.serverTools.first else { return (input, .zero) }
        guard serverTools == .allow else { throw .serverTool(first) }
        guard let window = price.contextWindow else { throw .noContextWindow(field: first.field, model: request.model) }
        let (calls, fees, unpriced) = serverToolFees(request, price: price)
        if let unpriced { throw .unpricedTool(unpriced) }
        return (max(input, window * (calls + 1)), fees)
    }

    /// Calls: each tool's `max_uses`, capped by `budget.server_tool_max_calls` and, across
    /// tools, by the request's `max_tool_calls`.
    func serverToolFees(_ request: ScannedRequest, price: ModelPrice) -> (calls: Int64, fees: NanoUSD, unpriced: ServerTool?) {
        var calls: Int64 = 0
        var fees = NanoUSD.zero
        var unpriced: ServerTool?
        var left = request.maxToolCalls ?? Int64.max
        for tool in request.serverTools {
            let n = max(0, min(tool.maxUses ?? serverToolMaxCalls, serverToolMaxCalls, left))
            left -= n
            calls += n
            guard let fee = price.toolFee(tool.billedAs) else { unpriced = unpriced ?? tool; continue }
            fees = fees + NanoUSD(fee.value * n)
        }
        return (calls, fees, unpriced)
    }
}

public enum UnseenInputPolicy: String, Sendable, CaseIterable {
    /// Strict mode refuses requests with input the body does not carry.
    case refuse
    /// Reserve the model's whole context window as their input.
    case contextWindow = "context_window"
}

public enum ServerToolPolicy: String, Sendable, CaseIterable {
    case refuse
    /// Reserve `context_window × (calls + 1)` input plus each tool's fee per call.
    case allow
}

public enum BackgroundPolicy: String, Sendable, CaseIterable {
    case refuse
    /// Forward `background: true`; with no usage in the answer, the reservation is charged.
    case allow
}
