import Foundation
import Hummingbird
import Logging
import Prometheus
import ServiceLifecycle
import NIOCore
import TollgateCore
import TollgateMockProvider
import TollgateServer
import TollgateUpstream

/// A Tollgate replica running in-process on a free loopback port, talking to the real test Redis
/// and a mock provider. Several replicas in one test share only Redis, as in production.
struct Replica: Sendable {
    let tollgate: Tollgate
    let port: Int
    let server: Task<Void, any Error>
    var baseURL: String { "http://127.0.0.1:\(port)" }

    /// Starts this replica's admin listener on a free port; returns its base URL and server task.
    func startAdmin() async throws -> (url: String, server: Task<Void, any Error>) {
        let (port, task) = try await Self.run { tollgate.adminApplication(onServerRunning: $0) }
        return ("http://127.0.0.1:\(port)", task)
    }

    /// Runs an application built with the given on-running hook; returns its bound port once it listens.
    /// `services` run beside it and stop after it, in reverse order (a replica's `services()`).
    static func run<App: ApplicationProtocol>(
        services: [any Service] = [],
        _ make: (@escaping @Sendable (any Channel) async -> Void) -> App
    ) async throws -> (port: Int, server: Task<Void, any Error>) {
        let (ports, report) = AsyncStream<Int>.makeStream()
        let app = make { channel in
            report.yield(channel.localAddress?.port ?? 0)
            report.finish()
        }
        // Cancelling the returned task shuts the server down gracefully: cancelling a Hummingbird
        // server outright while connections wait in its accept queue deinits their channels
        // unfinished, which NIO traps on ("Deinited NIOAsyncWriter without calling finish()").
        var configuration = ServiceGroupConfiguration(services: services + [app], logger: Logger(label: "test-server"))
        configuration.maximumGracefulShutdownDuration = .seconds(2)
        let group = ServiceGroup(configuration: configuration)
        let task = Task {
            defer { report.finish() }
            // Not a child: the outer task's cancellation must not cancel the server abruptly.
            let running = Task { try await group.run() }
            try await withTaskCancellationHandler {
                try await running.value
            } onCancel: {
                Task { await group.triggerGracefulShutdown() }
            }
        }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next() else { throw CancellationError() }
        return (port, task)
    }

    static func start(upstream: String, redisURL: String = TestRedis.url, environment: [String: String] = [:],
                      configure: (inout TollgateConfig) -> Void = { _ in },
                      accessLog: (@Sendable (String) -> Void)? = nil, metrics: PrometheusCollectorRegistry? = nil) async throws -> Replica {
        let tollgate = try makeTollgate(upstream: upstream, redisURL: redisURL, environment: environment, configure: configure,
                                        accessLog: accessLog, metrics: metrics)
        // The lease renewer and the settle retrier run as in `serve`, stopping after the server.
        let (port, server) = try await run(services: tollgate.services()) { tollgate.application(onServerRunning: $0) }
        return Replica(tollgate: tollgate, port: port, server: server)
    }

    static func makeTollgate(upstream: String, redisURL: String = TestRedis.url, environment: [String: String] = [:],
                             configure: (inout TollgateConfig) -> Void = { _ in },
                             accessLog: (@Sendable (String) -> Void)? = nil, metrics: PrometheusCollectorRegistry? = nil) throws -> Tollgate {
        var config = TollgateConfig()
        config.server.host = "127.0.0.1"
        config.server.port = 0
        config.redis.url = redisURL
        config.admin.port = 0
        config.openAI.baseURL = upstream
        config.anthropic.baseURL = upstream
        configure(&config)
        var logger = TestRedis.logger
        // Cancelling a test server logs "Waiting on child channel" errors; TEST_LOG=debug shows all.
        logger.logLevel = ProcessInfo.processInfo.environment["TEST_LOG"].flatMap(Logger.Level.init(rawValue:)) ?? .critical
        return try Tollgate(config: config, environment: environment, logger: logger, accessLog: accessLog, metrics: metrics)
    }

    func stop() async {
        server.cancel()
        _ = try? await server.value
        tollgate.shutdown()
    }
}

/// A real HTTP client over loopback (libcurl through Tollgate's own upstream client).
struct TestClient: Sendable {
    static let shared = TestClient()
    let curl = UpstreamClient()

    struct Reply: Sendable {
        var status: Int
        var head: UpstreamResponseHead
        var body: [UInt8]
        var text: String { String(decoding: body, as: UTF8.self) }
        var json: JSONValue? { try? JSONValue.parse(body) }
        func header(_ name: String) -> String? { head.header(name) }
    }

    func send(_ method: String, _ url: String, _ body: String = "", headers: [(String, String)] = []) async -> Reply {
        let request = UpstreamRequest(url: url, method: method, headers: [("Content-Type", "application/json")] + headers.map { ($0.0, $0.1) }, body: Array(body.utf8))
        return await collect(curl.start(request))
    }

    func post(_ url: String, _ body: String, headers: [(String, String)] = []) async -> Reply {
        let request = UpstreamRequest(url: url, method: "POST", headers: [("Content-Type", "application/json")] + headers.map { ($0.0, $0.1) }, body: Array(body.utf8))
        return await collect(curl.start(request))
    }

    func get(_ url: String, headers: [(String, String)] = []) async -> Reply {
        await collect(curl.start(UpstreamRequest(url: url, method: "GET", headers: headers.map { ($0.0, $0.1) }, body: [])))
    }

    func collect(_ transfer: UpstreamTransfer) async -> Reply {
        var reply = Reply(status: 0, head: UpstreamResponseHead(status: 0, headers: []), body: [])
        for await part in transfer.parts {
            switch part {
            case .head(let h): reply.head = h; reply.status = h.status
            case .body(let b): reply.body += b
            case .end, .failed: break
            }
        }
        return reply
    }

    /// Starts a request and hands back the transfer, to read part of a stream and hang up.
    func start(_ url: String, _ body: String, headers: [(String, String)]) -> UpstreamTransfer {
        curl.start(UpstreamRequest(url: url, method: "POST", headers: [("Content-Type", "application/json")] + headers.map { ($0.0, $0.1) }, body: Array(body.utf8)))
    }
}

/// Waits until `condition` holds (settles run after the response is sent), up to ~15 s: tests run
/// in parallel on a 2-core machine, so a settle can take seconds under load. It returns as soon
/// as the condition holds, so the bound costs nothing when things go right.
func eventually(_ condition: () async throws -> Bool) async throws -> Bool {
    for _ in 0..<300 {
        if try await condition() { return true }
        try await Task.sleep(nanoseconds: 50_000_000)
    }
    return false
}

/// The bundled pricing table, the one source of truth for expected costs.
let bundledPrices = try! PriceTable.bundled()
