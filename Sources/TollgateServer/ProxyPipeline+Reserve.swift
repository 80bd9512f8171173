import HTTPTypes
import Hummingbird
import TollgateCore
import TollgateRedis

/// Step 3 of the journey: reserve with the client's policy. The decision is `reserve_v5.lua`'s;
/// this file prices what the script may need (the cheaper model of a downgrade) and turns its
/// answer into a grant, an error, or a stop answer.
extension ProxyPipeline {
    /// A request's model with its prices and worst-case estimate.
    struct PricedRequest: Sendable {
        var model: String
        var price: ModelPrice
        var estimate: CostEstimate
    }

    enum ReserveResult {
        case granted(BudgetGrant, PricedRequest)
        /// Over the limit with `on_limit: stop`: answer with a completion, send nothing.
        case stop(BudgetRefusal)
    }

    func priced(_ scanned: ScannedRequest, route: ProxyRoute, price: ModelPrice, model: String? = nil) throws -> PricedRequest {
        do {
            return PricedRequest(model: model ?? scanned.model, price: price, estimate: try estimator.estimate(scanned, route: route, price: price))
        } catch {
            throw ProxyError.badRequest(.unboundedCost(error))
        }
    }

    /// Strict mode: an `anthropic-beta` the pricing does not cover may cost more than estimated.
    func refuseUnpricedBetas(_ headers: HTTPFields, route: ProxyRoute) throws {
        guard config.budget.mode == .strict, route.family == .anthropic,
              let beta = AnthropicBetas.unbounded(headers[values: .anthropicBeta], allowed: config.budget.allowedBetas).first else { return }
        throw ProxyError.badRequest(.invalidHeader("anthropic-beta", "The anthropic-beta \"\(beta)\" may change what the request costs, and Tollgate's pricing does not cover it, so strict mode cannot bound it. Remove it, or have the operator add it to budget.allowed_betas once the pricing table covers it."))
    }

    /// The cheaper model's prices and estimate, for the same body.
    func pricedFallback(_ model: String, _ scanned: ScannedRequest, route: ProxyRoute) throws -> PricedRequest {
        guard let price = prices.price(for: model) else {
            throw ProxyError.unknownModel(model, pricing: "\(config.pricingFile ?? "the bundled pricing.yaml"), named by this client's downgrade policy")
        }
        return try priced(scanned, route: route, price: price, model: model)
    }

    /// What the request brings to the policy: its fingerprint, run and header budgets (headers
    /// Tollgate strips before forwarding), and the cheaper model the config's defaults expect.
    func reserveOptions(_ headers: HTTPFields, _ scanned: ScannedRequest, fingerprint: RequestFingerprint) throws -> ReserveOptions {
        let caps = try BudgetHeaderCaps(headers, names: config.clients.budgetHeaders, fields: budgetHeaderFields)
        var options = ReserveOptions(model: scanned.model)
        options.fingerprint = fingerprint.hex
        options.dailyCap = caps.daily
        options.monthlyCap = caps.monthly
        if let run = caps.run { options.run = ReserveOptions.Run(id: run.rawValue, cap: caps.runLimit) }
        return options
    }

    @inline(never)
    func reserve(_ client: ClientID, _ reservation: ReservationID, _ requested: PricedRequest, _ options: ReserveOptions,
                 _ scanned: ScannedRequest, route: ProxyRoute, _ record: inout RequestRecord) async throws -> ReserveResult {
        let started = ContinuousClock.now
        defer { record.reserveDuration = ContinuousClock.now - started }
        var options = options
        var fallback: PricedRequest?
        if let cheaper = config.clients.defaults.downgrade?.models[scanned.model] {
            fallback = try? pricedFallback(cheaper, scanned, route: route)
        }
        // At most twice: the second time with the cheaper model the client's own policy names.
        for _ in 0..<2 {
            options.fallback = fallback.map { ReserveOptions.Fallback(model: $0.model, estimate: $0.estimate) }
            let outcome: ReserveOutcome
            do {
                outcome = try await budget.reserve(client, reservation, estimate: requested.estimate, options: options)
            } catch let error as RedisError {
                // Fail closed. An unknown outcome may have left a lease: the reaper charges it.
                throw ProxyError.budgetUnavailable(error)
            }
            if let result = try answer(outcome, client, requested, scanned, route: route, &fallback, &record) { return result }
        }
        throw ProxyError.budgetUnavailable(.unexpectedReply("reserve asked twice for a downgrade model"))
    }

    /// What the script's answer means for the request; nil: ask again with `fallback` priced.
    /// Never inlined: in an async loop, every temporary of an inlined callee gets its own slot in
    /// the caller's frame (issue 13: memory per open stream; see ProxyPipeline).
    @inline(never)
    private func answer(_ outcome: ReserveOutcome, _ client: ClientID, _ requested: PricedRequest, _ scanned: ScannedRequest,
                        route: ProxyRoute, _ fallback: inout PricedRequest?, _ record: inout RequestRecord) throws -> ReserveResult? {
        switch outcome {
        case .granted(let grant):
            record.estimate = grant.reserved
            record.leasesReaped = grant.leasesReaped
            record.overLimit = grant.overLimit
            if let cheaper = grant.downgradedTo, let fallback, fallback.model == cheaper {
                record.downgradedFrom = scanned.model
                record.model = cheaper
                return .granted(grant, fallback)
            }
            return .granted(grant, requested)
        case .refused(let refusal):
            record.leasesReaped = refusal.leasesReaped
            if refusal.action == .stop { return .stop(refusal) }
            throw ProxyError.budgetExceeded(refusal, client: client, status: config.budget.exceededStatus)
        case .loopDetected(let trip):
            record.leasesReaped = trip.leasesReaped
            throw ProxyError.loopDetected(trip)
        case .priceFallback(let model):
            fallback = try pricedFallback(model, scanned, route: route)
            return nil
        }
    }

    /// `on_limit: stop`: a 200 completion in the route's own shape that says the budget is
    /// exhausted and when it resets. Nothing was sent upstream and nothing is charged.
    func stopAnswer(_ refusal: BudgetRefusal, client: ClientID, _ scanned: ScannedRequest, route: ProxyRoute,
                    _ record: inout RequestRecord) -> Response {
        record.status = 200
        record.outcome = .stopped
        let text = BudgetStopAnswer.message(client: client, period: refusal.period, resetsAt: refusal.resetsAt)
        guard let answer = BudgetStopAnswer(route: route, request: scanned, text: text, idToken: record.requestID, created: .now) else {
            // Embeddings have no place for a message: they get the usual refusal.
            record.outcome = .refusedBudget
            record.status = config.budget.exceededStatus
            return ProxyError.budgetExceeded(refusal, client: client, status: config.budget.exceededStatus).response(family: route.family)
        }
        var headers: HTTPFields = [.contentType: answer.contentType]
        headers[.budgetExceeded] = "true"
        headers[.budgetOnLimit] = "stop"
        headers[.budgetLimit] = refusal.limit.usdString
        headers[.budgetRemaining] = max(.zero, refusal.limit - refusal.spent - refusal.reserved).usdString
        if let resets = refusal.resetsAt { headers[.budgetResetsAt] = resets.rfc3339 }
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: answer.body)))
    }
}
