import TollgateCore

/// Target `request-estimate`: the bytes as a request body on every paid route. Scanning must
/// answer a `ScannedRequest` or a `RequestProblem`; estimating must answer a `CostEstimate` or an
/// `UnboundedCost`; every estimate is non-negative and its worst case fits Int64 and the reserve
/// script's exact-integer range (Lua numbers are doubles: 2^53).
enum RequestEstimateCheck {
    static let table: PriceTable = {
        do { return try PriceTable.bundled() } catch { fatalError("the bundled pricing table does not load: \(error)") }
    }()
    static let models = table.models.keys.sorted()

    /// Both modes, each with the strictest and the most permissive policies.
    static let estimators: [CostEstimator] = BudgetMode.allCases.flatMap { mode in
        [CostEstimator(mode: mode),
         CostEstimator(mode: mode, unseenInput: .contextWindow, serverTools: .allow, background: .allow)]
    }

    static func check(_ bytes: [UInt8]) throws(InvariantViolation) {
        for route in ProxyRoute.allCases {
            let request: ScannedRequest
            do { request = try ScannedRequest(body: bytes, route: route) } catch { continue }
            try expect(request.contentTokenBound >= 0, "\(route): negative content token bound \(request.contentTokenBound)")
            try expect(request.choices >= 1, "\(route): \(request.choices) choices")
            // The request's own model when the table prices it, and one the input picks, so every
            // table row (long context, tiers, tool fees) is reached whatever model the body names.
            var prices = [models[Int(fnv1a(bytes) % UInt64(models.count))]].compactMap { table.models[$0] }
            if let own = table.price(for: request.model) { prices.append(own) }
            for price in prices {
                for estimator in estimators {
                    guard let estimate = try? estimator.estimate(request, route: route, price: price) else { continue }
                    try checkEstimate(estimate, route: route)
                }
            }
        }
    }

    static func checkEstimate(_ e: CostEstimate, route: ProxyRoute) throws(InvariantViolation) {
        let context = "\(route) \(e)"
        try expect(e.inputTokenBound >= 0 && e.fixedCost.value >= 0 && e.perOutputToken.value >= 0, "negative estimate: \(context)")
        try expect(e.minimumOutputTokens >= 0 && e.minimumOutputTokens <= e.requestedOutputTokens,
                   "minimum reply outside 0...requested: \(context)")
        try expect(e.requestedOutputTokens <= ScannedRequest.maxOutputTokens, "reply cap above the scanner's bound: \(context)")
        let (product, productOverflow) = e.perOutputToken.value.multipliedReportingOverflow(by: e.requestedOutputTokens)
        let (worst, sumOverflow) = e.fixedCost.value.addingReportingOverflow(product)
        try expect(!productOverflow && !sumOverflow, "worst case overflows Int64: \(context)")
        try expect(worst < NanoUSD.scriptLimit.value, "worst case \(worst) is past Lua's exact integers: \(context)")
        try expect(e.worstCase.value == worst && e.cost(outputTokens: e.minimumOutputTokens).value <= worst,
                   "cost not monotonic in reply tokens: \(context)")
    }
}
