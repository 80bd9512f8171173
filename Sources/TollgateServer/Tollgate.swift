import Hummingbird
import Logging
import NIOCore
import TollgateCore
import TollgateRedis
import TollgateUpstream

/// One Tollgate replica: its Redis connection, its curl thread and its HTTP routes.
/// Replicas share nothing but Redis, so any number of them can run side by side.
public final class Tollgate: Sendable {
    public let config: TollgateConfig
    public let redis: RedisConnection
    public let upstream: UpstreamClient
    public let budget: BudgetStore
    let pipeline: ProxyPipeline
    let logger: Logger

    /// - Parameter clockOffsetSeconds: shifts Redis TIME in the scripts; tests only.
    public init(config: TollgateConfig, environment: [String: String], logger: Logger, clockOffsetSeconds: Int64 = 0) throws {
        self.config = config
        self.logger = logger
        var prices = try config.pricingFile.map { path in
            try PriceTable.parse(yaml: String(contentsOfFile: path, encoding: .utf8), origin: path)
        } ?? PriceTable.bundled()
        prices.defaultPrice = config.defaultPrice
        guard let endpoint = RedisEndpoint(url: config.redis.url) else {
            throw ConfigError(key: "redis.url", message: "must look like redis://HOST:PORT/DB")
        }
        let scripts = try BudgetScripts.load()
        redis = RedisConnection(endpoint: endpoint, timeoutMilliseconds: config.redis.timeoutMilliseconds, scripts: scripts.all, logger: logger)
        var settings = UpstreamClient.Settings()
        settings.connectTimeoutMilliseconds = config.upstream.connectTimeoutMilliseconds
        settings.timeoutSeconds = config.upstream.timeoutSeconds
        settings.maxConnections = config.upstream.maxConnections
        upstream = UpstreamClient(settings: settings)
        var policy = BudgetStore.Policy(
            defaultDailyLimit: config.clients.dailyLimit, defaultMonthlyLimit: config.clients.monthlyLimit,
            leaseSeconds: config.budget.leaseSeconds, dayGraceSeconds: config.budget.dayGraceSeconds,
            monthGraceSeconds: config.budget.monthGraceSeconds, utcOffsetSeconds: { [config] in config.utcOffsetSeconds() })
        policy.clockOffsetSeconds = clockOffsetSeconds
        budget = BudgetStore(redis: redis, scripts: scripts, policy: policy)
        var keys: [APIFamily: String] = [:]
        for family in [APIFamily.openAI, .anthropic] {
            if let name = config.provider(family).apiKeyEnv, let key = environment[name], !key.isEmpty { keys[family] = key }
        }
        pipeline = ProxyPipeline(
            config: config, prices: prices,
            estimator: CostEstimator(mode: config.budget.mode, minimumReplyTokens: config.budget.minimumReplyTokens,
                                     typicalReplyTokens: config.budget.typicalReplyTokens),
            budget: budget, upstream: upstream, providerKeys: keys, logger: logger)
    }

    public func router() -> Router<TollgateRequestContext> {
        let router = Router(context: TollgateRequestContext.self)
        router.addMiddleware { OpenAINotFoundMiddleware() }
        let pipeline = self.pipeline
        for route in ProxyRoute.allCases {
            router.post(RouterPath(route.path)) { request, context in await pipeline.proxy(route, request, context) }
        }
        router.get("/v1/models") { request, context in await pipeline.passThrough(request, context) }
        router.get("/healthz") { _, _ in "ok\n" }
        let redis = self.redis
        // Ready when Redis answers now (a real PING, which also reconnects a dropped connection).
        router.get("/readyz") { _, _ -> Response in
            do {
                _ = try await redis.call(.command(["PING"]))
                return Response(status: .ok, body: .init(byteBuffer: ByteBuffer(string: "ready\n")))
            } catch {
                return Response(status: .serviceUnavailable, body: .init(byteBuffer: ByteBuffer(string: "not ready: \(error)\n")))
            }
        }
        return router
    }

    public func application(onServerRunning: @escaping @Sendable (any Channel) async -> Void = { _ in }) -> some ApplicationProtocol {
        Application(
            router: router(),
            server: .http1(configuration: .init(additionalChannelHandlers: [CloseOnInputClosedHandler()])),
            configuration: .init(address: .hostname(config.server.host, port: config.server.port), serverName: "tollgate"),
            onServerRunning: onServerRunning,
            logger: logger)
    }

    /// Stops the Redis and curl threads (after the HTTP server has stopped).
    public func shutdown() {
        upstream.shutdown()
        redis.shutdown()
    }
}

/// Unknown paths answer in the OpenAI error shape, which every OpenAI SDK can read.
struct OpenAINotFoundMiddleware: RouterMiddleware {
    typealias Context = TollgateRequestContext
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as HTTPError where error.status == .notFound || error.status == .methodNotAllowed {
            return ProxyError.notFound(method: request.method.rawValue, path: request.uri.path).response(family: .openAI)
        }
    }
}
