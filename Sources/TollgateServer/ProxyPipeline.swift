import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import TollgateCore
import TollgateRedis
import TollgateUpstream

/// A paid request's whole journey, top to bottom:
/// identify → estimate → reserve → forward → stream or collect → settle → log.
/// The budget itself is decided in `lua/reserve_v5.lua` (called through `BudgetStore.reserve`).
///
/// A class, not a struct: its fields (the whole config among them) are 2 KB, and an async method
/// of a struct may copy them into its frame. Frames are carved from the connection task's
/// allocator, which keeps its high-water mark while the connection lives, so 2 KB per frame was
/// 2 KB per open stream (issue 13: memory per open stream).
final class ProxyPipeline: Sendable {
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
    let largeBodies: LargeBodyGate
    /// Tollgate's own request headers (the budget headers), lowercased: never forwarded.
    let ownHeaders: Set<String>
    /// The same, as field names to look them up by.
    let budgetHeaderFields: [String: HTTPField.Name]

    init(config: TollgateConfig, prices: PriceTable, estimator: CostEstimator, identity: ClientIdentity, budget: BudgetStore,
         upstream: UpstreamClient, renewer: LeaseRenewer, retrier: SettleRetrier, providerKeys: [APIFamily: String],
         observability: Observability, logger: Logger, largeBodies: LargeBodyGate) {
        self.config = config
        self.prices = prices
        self.estimator = estimator
        self.identity = identity
        self.budget = budget
        self.upstream = upstream
        self.renewer = renewer
        self.retrier = retrier
        self.providerKeys = providerKeys
        self.observability = observability
        self.logger = logger
        self.largeBodies = largeBodies
        ownHeaders = Set(config.clients.budgetHeaders.all.map { $0.lowercased() })
        budgetHeaderFields = config.clients.budgetHeaders.fields
    }

    func proxy(_ route: ProxyRoute, _ request: Request, _ context: TollgateRequestContext) async -> Response {
        var record = RequestRecord(route: route.path)
        var permit: LargeBodyGate.Permit?
        defer {
            // Here the body and every copy of it are gone: give its pages back (see MemoryTrim).
            if let permit { permit.release(); MemoryTrim.afterLargeBody() }
        }
        do {
            let (response, streaming) = try await run(route, request, context, &record, &permit)
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

    /// The journey's steps in order. Only what crosses an await lives here; each step's own work
    /// is a function that is never inlined. An async function's frame has a slot for every
    /// temporary of what is inlined into it, frames come from the connection task's allocator,
    /// and that allocator keeps its high-water mark while the connection lives: a 7 KB frame
    /// here was 7 KB per open stream (issue 13).
    private func run(_ route: ProxyRoute, _ request: Request, _ context: TollgateRequestContext,
                     _ record: inout RequestRecord, _ permit: inout LargeBodyGate.Permit?) async throws -> (Response, streaming: Bool) {
        // 1. Identify the client.
        let client = try await identity.identify(request.headers)
        record.client = client.rawValue

        // 2. Read the body and estimate the worst case.
        let bytes = try await readBody(request, context, &permit)
        let (scanned, fingerprint) = try await scan(bytes, route: route, large: permit != nil)
        let (requested, options) = try estimate(scanned, fingerprint, request.headers, route: route, &record)

        // 3. Reserve it, or refuse without sending anything upstream. The client's policy (on-limit
        // mode, downgrade, loop breaker, run and header budgets) is decided in the same script call.
        // One id for the reservation in Redis and the access-log line, so operators can match them.
        let reservation = ReservationID(rawValue: record.requestID)
        let grant: BudgetGrant
        let sent: PricedRequest
        switch try await reserve(client, reservation, requested, options, scanned, route: route, &record) {
        case .granted(let g, let p): (grant, sent) = (g, p)
        case .stop(let refusal): return (stopAnswer(refusal, client: client, scanned, route: route, &record), false)
        }
        // Every in-flight lease is renewed, streamed or not: a slow answer is not a dead replica.
        let settlement = Settlement(retrier: retrier, client: client, lease: grant.lease, reserved: grant.reserved,
                                    model: sent.model, renewer: renewer, logger: logger)
        let bill = Bill(price: sent.price, reserved: grant.reserved, strict: config.budget.mode == .strict)
        guard context.channel.isActive else {
            // The client left while its budget was reserved: nothing is sent, so nothing is charged.
            await settle(settlement, bill.charge(.notSent), usage: nil, &record)
            throw ProxyError.clientDisconnected
        }

        // 4. Forward, with the granted reply cap (strict mode) and a usage chunk for OpenAI streams.
        var forwarded = forwardedRequest(request, scanned, grant, route: route)
        record.upstreamStarted = .now
        let loop = context.channel.eventLoop
        let drain = TimeAmount.milliseconds(Int64(config.upstream.drainAfterHangupMilliseconds))
        guard scanned.stream else {
            // 5a. A whole answer is handed over once, priced from its usage, settled, returned.
            let call = upstream.collect(forwarded.request)
            forwarded.request.body = [] // curl has its own copy (COPYPOSTFIELDS)
            let watch = await context.watchDisconnect { Self.clientLeft(call, drain: drain, on: loop) }
            defer { watch?.unwatch() }
            let answer = await call.answer()
            guard let head = answer.head, answer.failure == nil else {
                let failure = answer.failure ?? UpstreamError(kind: .connect, message: "no response")
                throw await fail(failure, settlement, bill, route, answer.head.map { _ in ByteBuffer(bytes: answer.body) }, &record)
            }
            record.status = head.status
            return (collectedResponse(head, ByteBuffer(bytes: answer.body), grant, scanned, route: route, bill, settlement, context, &record), false)
        }
        let transfer = upstream.start(forwarded.request)
        forwarded.request.body = [] // curl has its own copy (COPYPOSTFIELDS); ours need not live as long as the answer
        let watch = await context.watchDisconnect { Self.clientLeft(transfer, drain: drain, on: loop) }
        var parts = transfer.parts.makeAsyncIterator()
        let first = await parts.next()
        guard case .head(let head)? = first else {
            watch?.unwatch()
            let failure: UpstreamError
            if case .failed(let e)? = first { failure = e } else { failure = UpstreamError(kind: .connect, message: "no response") }
            throw await fail(failure, settlement, bill, route, nil, &record)
        }
        record.status = head.status

        // 5b. Streams pass through event by event and settle when they end, however they end.
        if (200..<300).contains(head.status), head.header("content-type")?.hasPrefix("text/event-stream") == true {
            let relay = StreamRelay(
                route: route, bill: bill, estimate: sent.estimate, settlement: settlement, transfer: transfer,
                hideInjectedUsage: forwarded.injectsUsage, observability: observability, record: record, watch: watch,
                maxEventBytes: config.upstream.maxSSEEventBytes, drain: drain)
            // From here a hang-up lets the stream be read on for `drain` (the relay's own).
            watch?.watch { relay.clientLeft() }
            return (streamResponse(head, grant, scanned, relay), true)
        }

        // 5c. A stream request answered with something else (an error) arrives in parts: collected,
        // held to the same bound curl holds a whole answer to.
        defer { watch?.unwatch() }
        var body = ByteBuffer()
        while let part = await parts.next() {
            switch part {
            case .body(let chunk):
                guard body.readableBytes + chunk.count <= config.upstream.maxResponseBytes else {
                    transfer.cancel()
                    throw await fail(Self.responseTooLarge(config.upstream.maxResponseBytes), settlement, bill, route, nil, &record)
                }
                body.writeBytes(chunk)
            case .head, .end: continue
            case .failed(let e):
                throw await fail(e, settlement, bill, route, body, &record)
            }
        }
        return (collectedResponse(head, body, grant, scanned, route: route, bill, settlement, context, &record), false)
    }

    /// The client left before the answer ended (a stream's relay takes over once its head is
    /// here). A request curl has not sent a byte of yet is cancelled at once: the provider never
    /// sees it, and it is charged nothing. One already sent is read on, not cut, for `drain`
    /// (`upstream.drain_after_hangup_ms`): an answer that arrives meanwhile is charged the usage
    /// it reports, not the reservation a cut answer is charged (the provider bills it either way).
    static func clientLeft(_ transfer: some UpstreamCancellable, drain: TimeAmount, on loop: any EventLoop) {
        transfer.cancelUnlessSent()
        transfer.cancel(after: drain, on: loop)
    }

    /// Step 2's pricing: the requested model's prices and worst case, and what the policy needs.
    @inline(never)
    private func estimate(_ scanned: ScannedRequest, _ fingerprint: RequestFingerprint, _ headers: HTTPFields, route: ProxyRoute,
                          _ record: inout RequestRecord) throws -> (PricedRequest, ReserveOptions) {
        record.model = scanned.model
        record.stream = scanned.stream
        guard let requestedPrice = prices.price(for: scanned.model) else {
            throw ProxyError.unknownModel(scanned.model, pricing: config.pricingFile ?? "the bundled pricing.yaml")
        }
        let requested = try priced(scanned, route: route, price: requestedPrice)
        try refuseUnpricedBetas(headers, route: route)
        return (requested, try reserveOptions(headers, scanned, fingerprint: fingerprint))
    }

    /// Step 4's request: the body with the granted reply cap (strict mode), the cheaper model of a
    /// downgrade, and the usage chunk an OpenAI stream needs to be priced (hidden from the client
    /// again when it did not ask for it: `injectsUsage`).
    @inline(never)
    private func forwardedRequest(_ request: Request, _ scanned: ScannedRequest, _ grant: BudgetGrant,
                                  route: ProxyRoute) -> (request: UpstreamRequest, injectsUsage: Bool) {
        var rewrite = BodyRewrite()
        if let cheaper = grant.downgradedTo { rewrite.set("model", json: jsonQuoted(cheaper)) }
        if config.budget.mode == .strict, route.hasOutput, scanned.outputLimit?.tokens != grant.grantedOutputTokens {
            rewrite.setOutputLimit(grant.grantedOutputTokens, request: scanned, route: route)
        }
        let injectUsage = scanned.stream && [.chatCompletions, .completions].contains(route) && !scanned.clientIncludesUsage
        if injectUsage { rewrite.requestStreamUsage(scanned) }
        var outgoing = upstreamRequest(route.family, request, body: rewrite.apply(to: scanned))
        outgoing.collectBody = !scanned.stream
        return (outgoing, injectUsage)
    }

    /// The provider's headers for the client, with the budget's.
    private func responseHeaders(_ head: UpstreamResponseHead, _ grant: BudgetGrant, _ scanned: ScannedRequest) -> HTTPFields {
        ForwardedHeaders.client(from: head, adding: ForwardedHeaders.budget(grant, requestedModel: scanned.model))
    }

    @inline(never)
    private func streamResponse(_ head: UpstreamResponseHead, _ grant: BudgetGrant, _ scanned: ScannedRequest, _ relay: StreamRelay) -> Response {
        Response(status: HTTPResponse.Status(code: head.status), headers: responseHeaders(head, grant, scanned),
                 body: ResponseBody { writer in try await relay.run(&writer) })
    }

    /// A whole answer: priced from its usage, settled after it goes out, returned.
    @inline(never)
    private func collectedResponse(_ head: UpstreamResponseHead, _ body: ByteBuffer, _ grant: BudgetGrant, _ scanned: ScannedRequest,
                                   route: ProxyRoute, _ bill: Bill, _ settlement: Settlement, _ context: TollgateRequestContext,
                                   _ record: inout RequestRecord) -> Response {
        record.upstreamFinished = .now
        let usage = (200..<300).contains(head.status)
            ? route.usage(inResponseBytes: body.readableBytesView) : nil
        record.outcome = (200..<300).contains(head.status) ? .forwarded : .upstreamError
        if !context.channel.isActive {
            // The client left while the answer was read on (`clientLeft`): logged as a hang-up,
            // charged what the answer reports.
            (record.outcome, record.status) = (.clientGone, 499)
        }
        // Settled after the answer goes out: the whole answer is here and priced, so the client
        // need not wait for Redis (issue 13, item 4). The reservation holds the worst case until
        // then, so no budget can be overspent meanwhile; a crash in between leaves the lease to
        // be reaped and charged its reservation. Streams still settle before their last event.
        let charge = bill.charge(.answered(status: head.status, usage: usage))
        (record.usage, record.cost, record.charged) = (usage, charge.cost, charge.basis)
        settlement.settleAfterResponse(charge.cost, on: EventLoopExecutor.of(context.channel.eventLoop),
                                       timer: observability.metrics.settleDuration)
        return Response(status: HTTPResponse.Status(code: head.status), headers: responseHeaders(head, grant, scanned),
                        body: .init(byteBuffer: body))
    }

    /// An answer held whole that passed `upstream.max_response_bytes`, counted and logged as curl's
    /// own check does (`TransferContext`).
    static func responseTooLarge(_ limit: Int) -> UpstreamError {
        UpstreamMetrics.exceeded(.responseBody)
        return UpstreamError(kind: .transfer, message: "the provider's answer is larger than \(UpstreamLimit.responseBody.configKey) (\(limit) bytes)",
                             limit: .responseBody)
    }

    /// Settles a non-streamed request that got no complete answer and says what the client gets.
    func fail(_ e: UpstreamError, _ settlement: Settlement, _ bill: Bill, _ route: ProxyRoute,
              _ received: ByteBuffer?, _ record: inout RequestRecord) async -> ProxyError {
        // The whole answer may have arrived just before the failure: then its usage is the truth.
        let usage = received.flatMap { route.usage(inResponseBytes: $0.readableBytesView) }
        let ending: UpstreamEnding
        if let usage {
            ending = .answered(status: 200, usage: usage)
        } else if !e.mayHaveReachedProvider {
            // Never connected, or the client left before curl sent a byte of the request.
            ending = .notSent
        } else {
            // Cut after the request reached the provider (timeout, reset, or the client hung up):
            // the provider may finish and bill it, so it is charged its reservation.
            ending = .cut(bound: nil)
        }
        await settle(settlement, bill.charge(ending), usage: usage, &record)
        if let limit = e.limit { return .upstreamLimit(e, limit) }
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
        // Held to upstream.max_response_bytes by curl.
        let call = upstream.collect(upstreamRequest(family, request, body: []))
        let watch = await context.watchDisconnect { call.cancel() }
        defer { watch?.unwatch() }
        let answer = await call.answer()
        if let e = answer.failure {
            if let limit = e.limit { return ProxyError.upstreamLimit(e, limit).response(family: family) }
            return ProxyError.upstreamUnavailable(e, provider: config.provider(family).baseURL).response(family: family)
        }
        guard let head = answer.head else { return ProxyError.notFound(method: "GET", path: request.uri.path).response(family: family) }
        return Response(status: .init(code: head.status), headers: ForwardedHeaders.client(from: head),
                        body: .init(byteBuffer: ByteBuffer(bytes: answer.body)))
    }

    /// The body's facts and its loop-breaker fingerprint. A large body is walked on Swift's
    /// global executor, not the connection's event loop: its scan takes long enough (hundreds of
    /// ms in release, far more in debug) to stall every connection on that loop, and the
    /// `LargeBodyGate` timers with them.
    func scan(_ bytes: [UInt8], route: ProxyRoute, large: Bool) async throws -> (ScannedRequest, RequestFingerprint) {
        let work = { @Sendable () throws -> (ScannedRequest, RequestFingerprint) in
            let scanned: ScannedRequest
            do throws(RequestProblem) { scanned = try ScannedRequest(body: bytes, route: route) } catch { throw ProxyError.badRequest(error) }
            return (scanned, RequestFingerprint(route: route, request: scanned))
        }
        guard large else { return try work() }
        return try await withTaskExecutorPreference(globalConcurrentExecutor) { try work() }
    }

    /// Reads the body into one array sized from Content-Length, refusing one over
    /// `server.max_body_bytes` before reading it. A large body (`server.large_body_bytes`) first
    /// takes a permit from `largeBodies`, so only so many are in memory at once.
    func readBody(_ request: Request, _ context: TollgateRequestContext, _ permit: inout LargeBodyGate.Permit?) async throws -> [UInt8] {
        let limit = config.server.maxBodyBytes
        let declared = request.headers[.contentLength].flatMap { Int($0) }
        if let declared, declared > limit { throw ProxyError.bodyTooLarge(limit: limit) }
        func admitLarge() async throws {
            guard permit == nil else { return }
            permit = await largeBodies.enter(on: context.channel.eventLoop)
            if permit == nil { throw ProxyError.largeBodiesBusy(permits: largeBodies.permits) }
        }
        if let declared, declared >= config.server.largeBodyBytes { try await admitLarge() }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(declared ?? 0)
        do {
            for try await chunk in request.body {
                guard bytes.count + chunk.readableBytes <= limit else { throw ProxyError.bodyTooLarge(limit: limit) }
                // A chunked body has no declared size: it takes its permit once it grows large.
                if bytes.count + chunk.readableBytes >= config.server.largeBodyBytes { try await admitLarge() }
                bytes.append(contentsOf: chunk.readableBytesView)
            }
        } catch let error as ProxyError {
            throw error
        } catch {
            // A broken chunked encoding or a cut upload is the client's mistake, not a size.
            throw ProxyError.badRequest(.malformedBody(String(describing: error).prefix(120).description))
        }
        return bytes
    }

    /// The path as the router matched it: `//v1/chat/completions` and `/v1/chat/completions/`
    /// reach the chat route, so the provider gets `/v1/chat/completions`, not the raw spelling.
    static func canonicalPath(_ path: String) -> String {
        // Nearly every path is canonical already: checked on its bytes, it is kept as it is.
        let bytes = path.utf8
        let slash = UInt8(ascii: "/")
        let canonical = bytes.first == slash && (bytes.count == 1 || bytes.last != slash)
            && !zip(bytes, bytes.dropFirst()).contains { $0 == slash && $1 == slash }
        return canonical ? path : "/" + path.split(separator: "/").joined(separator: "/")
    }

    func upstreamRequest(_ family: APIFamily, _ request: Request, body: [UInt8]) -> UpstreamRequest {
        var url = config.provider(family).baseURL + Self.canonicalPath(request.uri.path)
        if let query = request.uri.query, !query.isEmpty { url += "?" + query }
        let headers = ForwardedHeaders.upstream(
            from: request.headers, idHeader: config.clients.idHeader, family: family, providerKey: providerKeys[family],
            dropClientCredentials: config.clients.auth == .keys,
            strip: ownHeaders)
        return UpstreamRequest(url: url, method: request.method.rawValue, headers: headers, body: body)
    }
}
