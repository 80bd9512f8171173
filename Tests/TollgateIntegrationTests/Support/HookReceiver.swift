import Hummingbird
import Logging
import NIOCore
import Synchronization

/// A webhook receiver on a free loopback port, recording each request as it arrived.
/// `POST /status/<code>[/<anything>]` answers `<code>` with a body that echoes the request's
/// path (so a test can check that an error message never repeats a URL that is a credential);
/// `POST /flaky/<n>` fails n times, then accepts.
struct HookReceiver: Sendable {
    struct Request: Sendable {
        var path: String
        /// Lowercased names.
        var headers: [String: String]
        var body: [UInt8]
        func header(_ name: String) -> String? { headers[name.lowercased()] }
    }

    final class Log: Sendable {
        let requests = Mutex<[Request]>([])
    }

    let port: Int
    let log: Log
    let server: Task<Void, any Error>

    var requests: [Request] { log.requests.withLock { $0 } }
    func url(_ path: String) -> String { "http://127.0.0.1:\(port)" + path }

    static func start() async throws -> HookReceiver {
        let log = Log()
        let router = Router()
        /// Records the request; returns how many requests its path has had, this one included.
        @Sendable func record(_ request: Hummingbird.Request) async throws -> Int {
            let body = try await request.body.collect(upTo: 1 << 20)
            var headers: [String: String] = [:]
            for field in request.headers { headers[field.name.canonicalName] = field.value }
            let path = request.uri.path
            return log.requests.withLock { requests in
                requests.append(Request(path: path, headers: headers, body: Array(buffer: body)))
                return requests.filter { $0.path == path }.count
            }
        }
        @Sendable func answer(_ request: Hummingbird.Request, _ context: BasicRequestContext) async throws -> Response {
            _ = try await record(request)
            let code = context.parameters.get("code", as: Int.self) ?? 200
            return Response(status: .init(code: code), body: .init(byteBuffer: ByteBuffer(string: "answer \(code) for \(request.uri.path)")))
        }
        // `POST /flaky/<n>`: 500 for the first n requests to that path, 200 after.
        router.post("/flaky/:failures") { request, context in
            let seen = try await record(request)
            let failures = context.parameters.get("failures", as: Int.self) ?? 0
            return Response(status: seen > failures ? .ok : .internalServerError)
        }
        router.post("/status/:code", use: answer)
        router.post("/status/:code/:token", use: answer)
        var logger = Logger(label: "hook-receiver")
        logger.logLevel = .critical
        let (port, server) = try await Replica.run { onRunning in
            Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                        onServerRunning: onRunning, logger: logger)
        }
        return HookReceiver(port: port, log: log, server: server)
    }

    func stop() async {
        server.cancel()
        _ = try? await server.value
    }
}
