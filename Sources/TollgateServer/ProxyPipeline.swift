import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import TollgateCore
import TollgateRedis
import TollgateUpstream

/// A paid request's whole journey, top to bottom:
/// identify → estimate → reserve → forward → stream or collect → settle → log.
/// The budget itself is decided in `lua/reserve_v4.lua` (called through `BudgetStore.reserve`).
struct ProxyPipeline: Sendable {
    let config: TollgateConfig
    let prices: PriceTable
    let estimator: CostEstimator
    let identity: ClientIdentity
    let budget: BudgetStore
    let upstream: UpstreamClient
    let renewer: LeaseRenewer
    let retrier: SettleRetrier
    let providerKeys: [APIFamily: String]
    let observability: Observability
    let logger: Logger
    static let maxBodyBytes = 64 << 20

    func proxy(_ route: ProxyRoute, _ request: Request, _ context: TollgateRequestContext) async -> Response {
        var record = RequestRecord(route: route.path)
        do {
            let (response, streaming) = try await run(route, request, context, &record)
            if !streaming { observability.finish(record) } // a stream logs when it ends
            return response
        } catch {
            let failure = error as? ProxyError ?? .badRequest(.invalidJSON("\(error)"))
            record.status = Int(failure.status.code)
            record.outcome = failure.outcome
            observability.finish(record)
            return failure.response(family: route.family)
        }
    }

    private func run(_ route: ProxyRoute, _ request: Request, _ context: TollgateRequestContext,
                     _ record: inout RequestRecord) async throws -> (Response, streaming: Bool) {
        // 1. Identify the client.
        let client = try await identity.identify(request.headers)
        record.client = client.rawValue

        // 2. Read the body and estimate the worst case.
        let bytes = try await readBody(request)
        let scanned: ScannedRequest
        do { scanned = try ScannedRequest(body: bytes, route: route) } catch { throw ProxyError.badRequest(error) }
        record.model = scanned.model
        record.stream = scanned.stream
        guard let requestedPrice = prices.price(for: scanned.model) else {
            throw ProxyError.unknownModel(scanned.model, pricing: config.pricingFile ?? "the bundled pricing.yaml")
        }
        let requested = try priced(scanned, route: route, price: requestedPrice)
        try refuseUnpricedBetas(request.headers, route: route)

        // 3. Reserve it, or refuse without sending anything upstream. The client's policy (on-limit
        // mode, downgrade, loop breaker, run and header budgets) is decided in the same script call.
        // One id for the reservation in Redis and the access-log line, so operators can match them.
        let reservation = ReservationID(rawValue: record.requestID)
        let options = try reserveOptions(request.headers, scanned, route: route)
        let grant: BudgetGrant
        let sent: PricedRequest
        switch try await reserve(client, reservation, requested, options, scanned, route: route, &record) {
        case .granted(let g, let p): (grant, sent) = (g, p)
        case .stop(let refusal): return (stopAnswer(refusal, client: client, scanned, route: route, &record), false)
        }
        let (price, estimate) = (sent.price, sent.estimate)
        // Every in-flight lease is renewed, streamed or not: a slow answer is not a dead replica.
        let settlement = Settlement(retrier: retrier, client: client, lease: grant.lease, reserved: grant.reserved,
                                    model: sent.model, renewer: renewer, logger: logger)

        // 4. Forward, with the granted reply cap (strict mode) and a usage chunk for OpenAI streams.
        var rewrite = BodyRewrite()
        if let cheaper = grant.downgradedTo { rewrite.set("model", json: jsonQuoted(cheaper)) }
        if config.budget.mode == .strict, route.hasOutput, scanned.outputLimit?.tokens != grant.grantedOutputTokens {
            rewrite.setOutputLimit(grant.grantedOutputTokens, request: scanned, route: route)
        }
        let injectUsage = scanned.stream && [.chatCompletions, .completions].contains(route) && !scanned.clientIncludesUsage
        if injectUsage { rewrite.requestStreamUsage(scanned) }
        let bill = Bill(price: price, reserved: grant.reserved, strict: config.budget.mode == .strict)
        guard context.channel.isActive else {
            // The client left while its budget was reserved: nothing is sent, so nothing is charged.
            await settle(settlement, bill.charge(.notSent), usage: nil, &record)
            throw ProxyError.clientDisconnected
        }
        record.upstreamStarted = .now
        var outgoing = upstreamRequest(route.family, request, body: rewrite.apply(to: scanned))
        outgoing.collectBody = !scanned.stream
        let transfer = upstream.start(outgoing)
        let watch = await context.watchDisconnect { transfer.cancel() }

        var parts = transfer.parts.makeAsyncIterator()
        let first = await parts.next()
        guard case .head(let head)? = first else {
            watch?.unwatch()
            let failure: UpstreamError
            if case .failed(let e)? = first { failure = e } else { failure = UpstreamError(kind: .connect, message: "no response") }
            throw await fail(failure, settlement, bill, route, nil, &record)
        }
        record.status = head.status
        var headers = ForwardedHeaders.client(from: head)
        for (name, value) in ForwardedHeaders.budget(grant, requestedModel: scanned.model) { headers[name] = value }
        let status = HTTPResponse.Status(code: head.status)

        // 5a. Streams pass through event by event and settle when they end, however they end.
        if scanned.stream, (200..<300).contains(head.status), head.header("content-type")?.hasPrefix("text/event-stream") == true {
            let relay = StreamRelay(
                route: route, bill: bill, estimate: estimate, settlement: settlement, transfer: transfer,
                hideInjectedUsage: injectUsage, observability: observability, record: record, watch: watch)
            return (Response(status: status, headers: headers, body: ResponseBody { writer in try await relay.run(&writer) }), true)
        }

        // 5b. Everything else is collected, priced from its usage, settled, then returned.
        var body = ByteBuffer()
        defer { watch?.unwatch() }
        while let part = await parts.next() {
            switch part {
            case .body(let chunk): body.writeBytes(chunk)
            case .head, .end: continue
            case .failed(let e):
                throw await fail(e, settlement, bill, route, body, &record)
            }
        }
        record.upstreamFinished = .now
        let usage = (200..<300).contains(head.status)
            ? (try? JSONValue.parse(body.readableBytesView)).flatMap(route.usage(inResponse:)) : nil
        record.outcome = (200..<300).contains(head.status) ? .forwarded : .upstreamError
        await settle(settlement, bill.charge(.answered(status: head.status, usage: usage)), usage: usage, &record)
        return (Response(status: status, headers: headers, body: .init(byteBuffer: body)), false)
    }

    /// Settles a non-streamed request that got no complete answer and says what the client gets.
    func fail(_ e: UpstreamError, _ settlement: Settlement, _ bill: Bill, _ route: ProxyRoute,
              _ received: ByteBuffer?, _ record: inout RequestRecord) async -> ProxyError {
        // The whole answer may have arrived just before the failure: then its usage is the truth.
        let usage = received.flatMap { (try? JSONValue.parse($0.readableBytesView)).flatMap(route.usage(inResponse:)) }
        let ending: UpstreamEnding
        if let usage {
            ending = .answered(status: 200, usage: usage)
        } else if e.kind == .connect {
            ending = .notSent
        } else {
            // Cut after the request reached the provider (timeout, reset, or the client hung up):
            // the provider may finish and bill it, so it is charged its reservation.
            ending = .cut(bound: nil)
        }
        await settle(settlement, bill.charge(ending), usage: usage, &record)
        return e.kind == .cancelled ? .clientDisconnected : .upstreamUnavailable(e, provider: config.provider(route.family).baseURL)
    }

    func settle(_ settlement: Settlement, _ charge: Charge, usage: TokenUsage?, _ record: inout RequestRecord) async {
        record.usage = usage
        record.cost = charge.cost
        record.charged = charge.basis
        record.settleDuration = await settle(settlement, charge.cost)
    }

    func settle(_ settlement: Settlement, _ cost: NanoUSD) async -> Duration {
        let started = ContinuousClock.now
        await settlement.settle(cost)
        return ContinuousClock.now - started
    }

    /// `GET /v1/models`: passed through at no cost (Anthropic's when the request speaks Anthropic).
    func passThrough(_ request: Request, _ context: TollgateRequestContext) async -> Response {
        let family: APIFamily = request.headers[HTTPField.Name("anthropic-version")!] != nil ? .anthropic : .openAI
        if config.clients.auth == .keys {
            do { _ = try await identity.identify(request.headers) } catch {
                return (error as? ProxyError ?? .unauthorized(missing: true)).response(family: family)
            }
        }
        let transfer = upstream.start(upstreamRequest(family, request, body: []))
        let watch = await context.watchDisconnect { transfer.cancel() }
        defer { watch?.unwatch() }
        var head: UpstreamResponseHead?
        var body = ByteBuffer()
        for await part in transfer.parts {
            switch part {
            case .head(let h): head = h
            case .body(let chunk): body.writeBytes(chunk)
            case .end: break
            case .failed(let e):
                return ProxyError.upstreamUnavailable(e, provider: config.provider(family).baseURL).response(family: family)
            }
        }
        guard let head else { return ProxyError.notFound(method: "GET", path: request.uri.path).response(family: family) }
        return Response(status: .init(code: head.status), headers: ForwardedHeaders.client(from: head), body: .init(byteBuffer: body))
    }

    func readBody(_ request: Request) async throws -> [UInt8] {
        do {
            let buffer = try await request.body.collect(upTo: Self.maxBodyBytes)
            return Array(buffer.readableBytesView)
        } catch let error as any HTTPResponseError where error.status == .contentTooLarge {
            throw ProxyError.bodyTooLarge(limit: Self.maxBodyBytes)
        } catch {
            // A broken chunked encoding or a cut upload is the client's mistake, not a size.
            throw ProxyError.badRequest(.malformedBody(String(describing: error).prefix(120).description))
        }
    }

    /// The path as the router matched it: `//v1/chat/completions` and `/v1/chat/completions/`
    /// reach the chat route, so the provider gets `/v1/chat/completions`, not the raw spelling.
    static func canonicalPath(_ path: String) -> String {
        "/" + path.split(separator: "/").joined(separator: "/")
    }

    func upstreamRequest(_ family: APIFamily, _ request: Request, body: [UInt8]) -> UpstreamRequest {
        var url = config.provider(family).baseURL + Self.canonicalPath(request.uri.path)
        if let query = request.uri.query, !query.isEmpty { url += "?" + query }
        let headers = ForwardedHeaders.upstream(
            from: request.headers, idHeader: config.clients.idHeader, family: family, providerKey: providerKeys[family],
            dropClientCredentials: config.clients.auth == .keys,
            strip: Set(config.clients.budgetHeaders.all.map { $0.lowercased() }))
        return UpstreamRequest(url: url, method: request.method.rawValue, headers: headers, body: body)
    }
}
