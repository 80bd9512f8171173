import Hummingbird
import ServiceLifecycle

/// A wire-faithful fake of the OpenAI and Anthropic HTTP APIs, for tests, demos and benchmarks.
/// Replies are deterministic (see `MockCompletion`) and shaped per request by `MockHeader` knobs;
/// every request is kept in `recorder`.
public struct MockProvider: Sendable {
    /// Large enough for any prompt a test or benchmark sends.
    static let maxBodyBytes = 64 << 20

    public let recorder: MockRecorder
    /// Where `POST /hooks/alerts` appends the alerts it receives (nil: accepted, not kept).
    public var alertsFile: String?
    /// Where each reply's billed usage goes, one JSON line each (nil: not logged).
    public var usageLog: MockUsageLog?

    public init(recorder: MockRecorder = MockRecorder(), alertsFile: String? = nil, usageLog: MockUsageLog? = nil) {
        self.recorder = recorder
        self.alertsFile = alertsFile
        self.usageLog = usageLog
    }

    public func router() -> Router<BasicRequestContext> {
        let router = Router()
        router.add(middleware: RecordingMiddleware(recorder: recorder, usageLog: usageLog))
        OpenAIChatRoutes.add(to: router)
        OpenAIResponsesRoute.add(to: router)
        OpenAIEmbeddingsAndModels.add(to: router)
        AnthropicMessagesRoute.add(to: router)
        MockAlertHook.add(to: router, file: alertsFile)
        return router
    }

    /// The Hummingbird application serving `router()`; `onRunning` receives the bound port.
    public func application(
        host: String, port: Int, onRunning: @escaping @Sendable (Int) async -> Void = { _ in }
    ) -> Application<RouterResponder<BasicRequestContext>> {
        Application(
            router: router(),
            configuration: .init(address: .hostname(host, port: port), serverName: "tollgate-mock-provider"),
            onServerRunning: { await onRunning($0.localAddress?.port ?? port) })
    }

    /// Serves until SIGINT or SIGTERM (the executable's entry point).
    public static func run(host: String, port: Int, alertsFile: String? = nil, usageLog: String? = nil) async throws {
        let log = try usageLog.map { try MockUsageLog(path: $0) }
        try await MockProvider(alertsFile: alertsFile, usageLog: log).application(host: host, port: port).runService()
    }

    /// Starts a mock in-process on `port` (0: any free port) and returns once it accepts
    /// connections. Call `stop()` when done.
    public static func start(
        host: String = "127.0.0.1", port: Int = 0, recorder: MockRecorder = MockRecorder()
    ) async throws -> RunningMockProvider {
        let (boundPorts, reportPort) = AsyncStream<Int>.makeStream()
        var app = MockProvider(recorder: recorder).application(host: host, port: port) { port in
            reportPort.yield(port)
            reportPort.finish()
        }
        // Tests start many of these; the per-server "started" lines would drown their output.
        app.logger.logLevel = .warning
        var configuration = ServiceGroupConfiguration(services: [app], logger: app.logger)
        // A stream still running (long chunk delays) would hold graceful shutdown open; cut it short.
        configuration.maximumGracefulShutdownDuration = .seconds(2)
        let group = ServiceGroup(configuration: configuration)
        let server = Task {
            // If binding fails the stream must still end, or start() would wait forever.
            defer { reportPort.finish() }
            try await group.run()
        }
        var ports = boundPorts.makeAsyncIterator()
        guard let boundPort = await ports.next() else {
            try await server.value  // rethrows the bind error
            throw MockProviderError.stoppedBeforeListening
        }
        return RunningMockProvider(host: host, port: boundPort, recorder: recorder, group: group, server: server)
    }
}

/// A mock started by `MockProvider.start`.
public struct RunningMockProvider: Sendable {
    public let host: String
    public let port: Int
    public let recorder: MockRecorder
    let group: ServiceGroup
    let server: Task<Void, any Error>

    /// `http://host:port`, to configure as the upstream base URL.
    public var baseURL: String { "http://\(host):\(port)" }

    /// Shuts the server down gracefully (idle keep-alive connections close at once) and waits
    /// until it has stopped.
    public func stop() async {
        await group.triggerGracefulShutdown()
        _ = try? await server.value
    }
}

public enum MockProviderError: Error, CustomStringConvertible {
    case stoppedBeforeListening

    public var description: String {
        switch self {
        case .stoppedBeforeListening: "the mock provider stopped before it started listening"
        }
    }
}
