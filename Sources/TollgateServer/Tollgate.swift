import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import Prometheus
import ServiceLifecycle
import NIOConcurrencyHelpers
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
    public let admin: BudgetAdmin
    public let keys: VirtualKeyStore
    /// Renews the leases of requests in flight; a service (`services`).
    public let renewer: LeaseRenewer
    /// Replays the settle journal and retries settles Redis did not take; a service (`services`).
    public let settleRetrier: SettleRetrier
    let pipeline: ProxyPipeline
    // A lock box, not `Atomic`: a noncopyable stored property in this class's throwing init
    // crashes the Swift 6.3 optimizer (release builds: "Found outside of lifetime use").
    private let stopped = NIOLockedValueBox(false)
    let logger: Logger
    let adminToken: String?
    /// Where /metrics reads from; `serve` bootstraps swift-metrics with the same registry.
    let metrics: PrometheusCollectorRegistry?

    /// - Parameters:
    ///   - accessLog: receives one JSON line per request (nil: no access log); `serve` passes an
    ///     `AccessLogWriter`'s `writeLine`.
    ///   - metrics: the registry swift-metrics was bootstrapped with (nil: no /metrics).
    ///   - clockOffsetSeconds: shifts Redis TIME in the scripts; tests only.
    public init(config: TollgateConfig, environment: [String: String], logger: Logger,
                accessLog: (@Sendable (String) -> Void)?, metrics: PrometheusCollectorRegistry? = nil,
                clockOffsetSeconds: Int64 = 0) throws {
        self.config = config
        self.logger = logger
        self.metrics = metrics
        adminToken = config.admin.tokenEnv.flatMap { environment[$0] }.flatMap { $0.isEmpty ? nil : $0 }
        if config.admin.enabled, !config.admin.isLoopback, adminToken == nil {
            throw ConfigError(key: "admin.host", message: "the admin API may listen on \(config.admin.host) only with a token: set \(config.admin.tokenEnv ?? "admin.token_env"), or keep admin.host 127.0.0.1")
        }
        var prices = try config.pricingFile.map { path in
            try PriceTable.parse(yaml: String(contentsOfFile: path, encoding: .utf8), origin: path)
        } ?? PriceTable.bundled()
        prices.defaultPrice = config.defaultPrice
        let endpoint = try config.redis.endpoint(environment: environment)
        let journal = try Self.openJournal(config.redis.journal, logger: logger)
        let scripts = try BudgetScripts.load()
        redis = RedisConnection(endpoint: endpoint, timeoutMilliseconds: config.redis.timeoutMilliseconds, scripts: scripts.all, logger: logger,
                                topology: try config.redis.topology(environment: environment), waitReplicas: config.redis.effectiveWaitReplicas)
        var settings = UpstreamClient.Settings()
        settings.connectTimeoutMilliseconds = config.upstream.connectTimeoutMilliseconds
        settings.timeoutSeconds = config.upstream.timeoutSeconds
        settings.maxConnections = config.upstream.maxConnections
        settings.maxHeaderBytes = config.upstream.maxHeaderBytes
        settings.maxCollectedBytes = config.upstream.maxResponseBytes
        do { upstream = try UpstreamClient(settings: settings, logger: logger) } catch {
            throw ConfigError(key: "upstream", message: "the upstream client could not start: \(error)")
        }
        var policy = BudgetStore.Policy(
            defaultDailyLimit: config.clients.dailyLimit, defaultMonthlyLimit: config.clients.monthlyLimit,
            // A period's hash outlives it by the analytics retention (spend by day and model), at
            // least by the grace that lets late settles find it.
            leaseSeconds: config.budget.leaseSeconds, dayGraceSeconds: max(config.budget.dayGraceSeconds, config.analytics.retentionSeconds),
            monthGraceSeconds: max(config.budget.monthGraceSeconds, config.analytics.retentionSeconds),
            timezone: { [config] in config.timezoneScheduleForScripts() })
        policy.clockOffsetSeconds = clockOffsetSeconds
        policy.topSpendRetentionSeconds = config.analytics.retentionSeconds
        policy.clientDefaults = config.clients.defaults
        policy.outboxMaxLength = config.alerts.outboxMaxLength
        budget = BudgetStore(redis: redis, scripts: scripts, policy: policy)
        admin = BudgetAdmin(redis: redis, defaultDailyLimit: config.clients.dailyLimit, defaultMonthlyLimit: config.clients.monthlyLimit,
                            defaultPolicy: policy.clientDefaults,
                            timezone: { [config] in config.timezoneSchedule(at: $0) })
        keys = VirtualKeyStore(redis: redis)
        renewer = LeaseRenewer(budget: budget, leaseSeconds: config.budget.leaseSeconds)
        settleRetrier = SettleRetrier(budget: budget, journal: journal, logger: logger)
        var keys: [APIFamily: String] = [:]
        for family in [APIFamily.openAI, .anthropic] {
            if let name = config.provider(family).apiKeyEnv, let key = environment[name], !key.isEmpty { keys[family] = key }
        }
        if config.clients.auth == .keys, keys.count < 2 {
            logger.warning("clients.auth is keys but a provider key is missing: requests to that provider will carry no credentials")
        }
        pipeline = ProxyPipeline(
            config: config, prices: prices,
            estimator: CostEstimator(budget: config.budget),
            identity: ClientIdentity(clients: config.clients, keys: self.keys),
            budget: budget, upstream: upstream, renewer: renewer, retrier: settleRetrier,
            providerKeys: keys,
            observability: Observability(accessLog: accessLog, knownModels: Set(prices.models.keys)), logger: logger,
            largeBodies: LargeBodyGate(permits: config.server.largeBodyConcurrency))
    }

    public func router() -> Router<TollgateRequestContext> {
        let router = Router(context: TollgateRequestContext.self)
        let pipeline = self.pipeline
        // The proxy routes are not here: `ProxyAnswer` sends them to the pipeline before the router.
        router.addMiddleware { OpenAINotFoundMiddleware() }
        router.get("/v1/models") { request, context in await pipeline.passThrough(request, context) }
        router.get("/healthz") { _, _ in "ok\n" }
        // A client's own budget (ClientBudgetRoute.swift), identified like a proxied request.
        let ownBudget = ClientBudgetRoute(identity: ClientIdentity(clients: config.clients, keys: keys), admin: admin,
                                          headerNames: config.clients.budgetHeaders)
        router.get("/v1/budget") { request, _ in await ownBudget.respond(request) }
        if let registry = metrics {
            router.get("/metrics") { _, _ in
                Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                         body: .init(byteBuffer: ByteBuffer(bytes: registry.emitToBuffer())))
            }
        }
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

    /// Hummingbird's idle timeout counts from the connection's start or its last HTTP part: a
    /// request head that never completes produces no part, so it is also the header-read timeout
    /// (slowloris). A request being answered is never timed out.
    var idleTimeout: Duration? {
        config.server.idleTimeoutSeconds > 0 ? .seconds(config.server.idleTimeoutSeconds) : nil
    }

    static let serverName = "tollgate"

    /// The proxy listener (`server.host`:`server.port`): its connections are served by
    /// `ProxyHTTPChannel`, which answers the proxy routes through the pipeline and every other
    /// path through `router()`.
    public func application(onServerRunning: @escaping @Sendable (any Channel) async -> Void = { _ in }) -> some ApplicationProtocol {
        let responder = router().buildResponder()
        let answer = ProxyAnswer(pipeline: pipeline, router: responder, logger: logger, serverName: Self.serverName)
        let idleTimeout = self.idleTimeout
        return Application(
            responder: responder,
            server: HTTPServerBuilder { _ in ProxyHTTPChannel(answer: answer, idleTimeout: idleTimeout) },
            configuration: .init(address: .hostname(config.server.host, port: config.server.port), serverName: Self.serverName),
            onServerRunning: onServerRunning,
            logger: logger)
    }

    /// The operators' listener (`admin.host`:`admin.port`).
    public func adminApplication(onServerRunning: @escaping @Sendable (any Channel) async -> Void = { _ in }) -> some ApplicationProtocol {
        Application(
            router: AdminAPI(admin: admin, keys: keys, token: adminToken, timezone: config.budget.timezone).router(),
            configuration: .init(address: .hostname(config.admin.host, port: config.admin.port), serverName: "tollgate-admin"),
            onServerRunning: onServerRunning,
            logger: logger)
    }

    /// The alert sender over the configured sinks (`alerts.webhook`, `.slack`, `.email`); nil
    /// when none is configured. `serve` runs it as a service beside the HTTP servers.
    public func alertSender() -> AlertSender? {
        let sinks = AlertSinks.make(from: config.alerts, upstream: upstream)
        guard !sinks.isEmpty else { return nil }
        var settings = AlertSender.Settings(sinks: sinks)
        settings.maxAttempts = config.alerts.maxAttempts
        settings.initialBackoff = .milliseconds(config.alerts.initialBackoffMilliseconds)
        settings.maxBackoff = .seconds(config.alerts.maxBackoffSeconds)
        settings.pollInterval = .milliseconds(config.alerts.pollIntervalMilliseconds)
        return AlertSender(outbox: AlertOutbox(redis: redis), settings: settings, logger: logger)
    }

    private static func openJournal(_ settings: TollgateConfig.Redis.Journal, logger: Logger) throws -> SettleJournal? {
        guard let directory = settings.directory else {
            logger.notice("no settle journal (redis.journal.dir unset): a settle Redis cannot take is retried in memory only")
            return nil
        }
        do { return try SettleJournal(directory: directory, maxBytes: settings.maxBytes, logger: logger) } catch {
            throw ConfigError(key: "redis.journal.dir", message: "\(error) (it must be a directory this process may write, "
                              + "on a volume that outlives the process)")
        }
    }

    /// The replica's long-lived parts, in start order; a ServiceGroup shuts them down in reverse.
    /// Put the HTTP servers (and the alert sender) after these, so that on SIGTERM the servers
    /// drain first (their requests settle), then the settle retrier retries or journals what Redis
    /// has not taken, the lease renewer stops, the access log writes what is left, curl stops, the
    /// journal closes, and Redis closes last.
    public func services(accessLog: (any Service)? = nil) -> [any Service] {
        var services: [any Service] = [RedisConnectionService(redis: redis, budget: budget)]
        if let journal = settleRetrier.journal { services.append(SettleJournalService(journal: journal)) }
        services.append(UpstreamClientService(upstream: upstream))
        if let accessLog { services.append(accessLog) }
        services += [renewer, settleRetrier]
        return services
    }

    /// Stops curl, Redis and the journal at once, for a replica whose services never ran (a failed
    /// start, a test). Idempotent; after the services have stopped there is nothing left to do.
    /// Top-spender sums still pending (`TopSpendTally`, up to 50 ms of settles) are dropped here:
    /// a replica that served requests stops through its services, which send them first.
    public func shutdown() {
        guard !stopped.withLockedValue({ stopped in defer { stopped = true }; return stopped }) else { return }
        upstream.shutdown()
        redis.shutdown()
        settleRetrier.journal?.close()
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
