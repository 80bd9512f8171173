import ArgumentParser
import Foundation
import Hummingbird
import Logging
import Metrics
import NIOCore
import NIOPosix
import Prometheus
import ServiceLifecycle
import TollgateCore
import TollgateRedis
import TollgateServer

@main
struct TollgateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tollgate",
        abstract: "A budget-enforcing proxy for OpenAI and Anthropic APIs.",
        subcommands: [Serve.self, Budgets.self, Spend.self, Keys.self, CheckConfig.self, Version.self],
        defaultSubcommand: Serve.self)
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the proxy (and the admin API).")

    @Option(name: .long, help: "YAML config file (see deploy/tollgate.yaml). Without it, defaults plus TOLLGATE_* variables.")
    var config: String?

    func run() async throws {
        // Run Swift concurrency's jobs on NIO's event loops: a request's handler then runs on the
        // thread that owns its connection instead of hopping to the cooperative pool and back.
        NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
        let environment = ProcessInfo.processInfo.environment
        let settings = try loadConfig(config)
        // Large request bodies and closed connections give their memory back to the kernel
        // (process-wide; see MemoryTrim).
        MemoryTrim.enable(idleTimeoutSeconds: settings.server.idleTimeoutSeconds)
        var logger = Logger(label: "tollgate")
        logger.logLevel = Logger.Level(rawValue: settings.logLevel) ?? .info
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        let tollgate: Tollgate
        let accessLog = AccessLogWriter()
        do {
            tollgate = try Tollgate(config: settings, environment: environment, logger: logger, accessLog: accessLog.writeLine, metrics: registry)
        } catch let error as ConfigError {
            throw ConfigProblem(error: error)
        }
        defer { tollgate.shutdown() }
        try await verifyRedis(tollgate.redis, logger: logger)
        // Shut down in reverse: the HTTP servers drain first (their requests settle and log), then
        // the alert sender, then the replica's own services (see `Tollgate.services`).
        var services = tollgate.services(accessLog: accessLog)
        if let sender = tollgate.alertSender() { services.append(sender) }
        if settings.admin.enabled { services.append(tollgate.adminApplication()) }
        services.append(tollgate.application())
        // SIGTERM: stop accepting, let in-flight requests and streams finish (and settle) up to the grace period.
        var lifecycle = ServiceGroupConfiguration(
            services: services.map { ServiceGroupConfiguration.ServiceConfiguration(service: $0) },
            gracefulShutdownSignals: [.sigterm, .sigint],
            cancellationSignals: [],
            logger: logger)
        // Past the grace period the remaining requests are cancelled; their streams settle on the way out.
        lifecycle.maximumGracefulShutdownDuration = .seconds(settings.server.shutdownGraceSeconds)
        let group = ServiceGroup(configuration: lifecycle)
        logger.info("tollgate starting", metadata: [
            "address": "\(settings.server.host):\(settings.server.port)", "admin": "\(settings.admin.enabled ? "\(settings.admin.host):\(settings.admin.port)" : "off")",
            "mode": "\(settings.budget.mode.rawValue)", "auth": "\(settings.clients.auth.rawValue)", "redis": "\(settings.redis.redacted)",
        ])
        try await group.run()
    }
}

struct CheckConfig: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "check-config", abstract: "Validate a config file and exit.")
    @Argument(help: "YAML config file") var file: String

    func run() throws {
        let c = try loadConfig(file)
        print("ok: \(file) (mode \(c.budget.mode.rawValue), redis \(c.redis.redacted), port \(c.server.port))")
    }
}

struct Version: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the version.")
    func run() { print("tollgate \(tollgateVersion)") }
}

let tollgateVersion = "0.2.0"

func loadConfig(_ path: String?) throws -> TollgateConfig {
    do { return try TollgateConfig.load(file: path, environment: ProcessInfo.processInfo.environment) } catch let error as ConfigError {
        throw ConfigProblem(error: error)
    }
}

/// Fails the start when Redis refuses Tollgate (a password, user, permission or certificate to
/// fix), so a bad rollout stops at once instead of answering 503 forever. A Redis that does not
/// answer yet is no reason to stop: it may start after us, and /readyz says so meanwhile.
func verifyRedis(_ redis: RedisConnection, logger: Logger) async throws {
    do { try await redis.verify() } catch let error as RedisError {
        if case .misconfigured = error { throw RedisProblem(error: error) }
        logger.warning("Redis does not answer yet; starting anyway, /readyz reports not ready until it does",
                       metadata: ["reason": "\(error)", "redis": "\(redis.endpoint)"])
    }
}

struct RedisProblem: Error, CustomStringConvertible {
    let error: RedisError
    var description: String { error.description }
}

/// Printed as "Error: config error at 'key': how to fix", without the usage text: the command
/// line was fine, the file was not.
struct ConfigProblem: Error, CustomStringConvertible {
    let error: ConfigError
    var description: String { error.description }
}
